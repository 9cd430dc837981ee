"""ProbeResult builders for unit tests."""

from __future__ import annotations

from datetime import UTC, datetime

from probes.result import Outcome, ProbeResult, TokensSource


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
