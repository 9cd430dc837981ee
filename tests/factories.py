"""ProbeResult builders and small helpers for unit tests."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.result import Outcome, ProbeResult, TokensSource

REPO = Path(__file__).resolve().parent.parent  # the checkout


def result(
    ttft: float = 0.3,
    *,
    provider: str = "p",
    model: str = "m",
    probe: str = "short",
    outcome: Outcome = Outcome.OK,
    e2e: float | None = None,
    itls: tuple[float, ...] = (0.02, 0.03),
    started_at: datetime | None = None,
    output_tokens: int = 10,
    input_tokens: int = 20,
    region: str = "local",
) -> ProbeResult:
    e2e = e2e if e2e is not None else ttft + sum(itls)
    return ProbeResult(
        provider=provider,
        model=model,
        probe=probe,
        region=region,
        started_at=started_at or datetime.now(UTC),
        outcome=outcome,
        status_code=200,
        ttfb=ttft / 2,
        ttft=ttft,
        ttft_content=ttft,
        e2e=e2e,
        tpot=(e2e - ttft) / max(1, output_tokens - 1),
        itls=itls,
        itl_mean=sum(itls) / len(itls) if itls else None,
        itl_p95=sorted(itls)[int(0.95 * (len(itls) - 1) + 0.5)] if itls else None,
        itl_max=max(itls) if itls else None,
        output_tokens=output_tokens,
        input_tokens=input_tokens,
        tokens_source=TokensSource.USAGE,
        output_tps=output_tokens / (e2e - ttft) if e2e > ttft else None,
    )


class LoopTicker:
    """Counts the loop steps another task gets while work runs: does the work hand the loop back?"""

    def __init__(self) -> None:
        self.ticks = 0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            self.ticks += 1
            await asyncio.sleep(0)

    async def __aenter__(self) -> LoopTicker:
        self._task = asyncio.create_task(self._run())
        await asyncio.sleep(0)
        return self

    async def __aexit__(self, *exc: Any) -> None:
        assert self._task is not None
        self._task.cancel()
