"""Daily token and cost budgets: probing pauses (logged, metered) once a day's budget is spent."""

from __future__ import annotations

from datetime import UTC, datetime

import structlog

from daemon.config import Budgets, Settings
from daemon.metrics import Metrics
from probes.result import ProbeResult

log = structlog.get_logger("llm_vitals.budget")


def probe_cost(settings: Settings, r: ProbeResult) -> float | None:
    price = settings.price_for(r.provider, r.model)
    if price is None:
        return None
    return ((r.input_tokens or 0) * price.input_per_mtok + (r.output_tokens or 0) * price.output_per_mtok) / 1e6


class BudgetTracker:
    def __init__(self, budgets: Budgets, metrics: Metrics) -> None:
        self.budgets = budgets
        self._metrics = metrics
        self.day = self._today()
        self.tokens = 0
        self.cost = 0.0
        self._paused: set[str] = set()

    @staticmethod
    def _today() -> str:
        return datetime.now(UTC).strftime("%Y-%m-%d")

    def restore(self, state: dict[str, object] | None) -> None:
        if state and state.get("day") == self._today():
            self.tokens = int(state.get("tokens", 0))  # type: ignore[call-overload]
            self.cost = float(state.get("cost", 0.0))  # type: ignore[arg-type]

    def state(self) -> dict[str, object]:
        return {"day": self.day, "tokens": self.tokens, "cost": self.cost}

    def _roll(self) -> None:
        today = self._today()
        if today != self.day:
            self.day, self.tokens, self.cost = today, 0, 0.0

    def add(self, r: ProbeResult, cost: float | None) -> None:
        self._roll()
        self.tokens += (r.input_tokens or 0) + (r.output_tokens or 0)
        self.cost += cost or 0.0

    def exhausted(self) -> str | None:
        """The name of the spent budget ('tokens' or 'cost'), or None."""
        self._roll()
        spent = None
        if self.budgets.daily_tokens is not None and self.tokens >= self.budgets.daily_tokens:
            spent = "tokens"
        elif self.budgets.daily_cost_usd is not None and self.cost >= self.budgets.daily_cost_usd:
            spent = "cost"
        for name in ("tokens", "cost"):
            paused = spent == name
            self._metrics.budget_paused.labels(name).set(1 if paused else 0)
            if paused and name not in self._paused:
                log.warning("budget_exhausted_probing_paused", budget=name, tokens=self.tokens,
                            cost_usd=round(self.cost, 4), day=self.day)
                self._paused.add(name)
            elif not paused and name in self._paused:
                log.info("budget_reset_probing_resumed", budget=name, day=self.day)
                self._paused.discard(name)
        return spent
