"""Daily token and cost budgets: probing pauses (logged, metered) once a day's budget is spent.

Two kinds: the global budget pauses every target; each provider's own budget
(`budgets.per_provider`, or the provider's `budget`) pauses that provider's targets only,
so one provider's spending (or its inflated usage reports) never stops the others.
"""

from __future__ import annotations

from datetime import UTC, datetime

import structlog

from core.result import ProbeResult
from daemon.config import Budgets, ProviderBudget, Settings
from daemon.metrics import Metrics

log = structlog.get_logger("llm_vitals.budget")

_KINDS = ("tokens", "cost")


def probe_cost(settings: Settings, r: ProbeResult) -> float | None:
    price = settings.price_for(r.provider, r.model)
    if price is None:
        return None
    return ((r.input_tokens or 0) * price.input_per_mtok + (r.output_tokens or 0) * price.output_per_mtok) / 1e6


def _spent(limit: Budgets | ProviderBudget, tokens: int, cost: float) -> str | None:
    if limit.daily_tokens is not None and tokens >= limit.daily_tokens:
        return "tokens"
    if limit.daily_cost_usd is not None and cost >= limit.daily_cost_usd:
        return "cost"
    return None


class BudgetTracker:
    def __init__(self, budgets: Budgets, metrics: Metrics,
                 provider_budgets: dict[str, ProviderBudget] | None = None) -> None:
        self.budgets = budgets
        self.provider_budgets = dict(provider_budgets or {})
        self._metrics = metrics
        self.day = self._today()
        self.tokens = 0
        self.cost = 0.0
        self.by_provider: dict[str, list[float]] = {}  # provider -> [tokens, cost] today
        self._paused: set[str] = set()
        self._provider_paused: set[tuple[str, str]] = set()

    @staticmethod
    def _today() -> str:
        return datetime.now(UTC).strftime("%Y-%m-%d")

    def configure(self, budgets: Budgets, provider_budgets: dict[str, ProviderBudget]) -> None:
        """A reload's budgets (today's spending is kept)."""
        self.budgets = budgets
        self.provider_budgets = dict(provider_budgets)

    def restore(self, state: dict[str, object] | None) -> None:
        if state and state.get("day") == self._today():
            self.tokens = int(state.get("tokens", 0))  # type: ignore[call-overload]
            self.cost = float(state.get("cost", 0.0))  # type: ignore[arg-type]
            saved = state.get("providers")
            if isinstance(saved, dict):
                for name, spent in saved.items():
                    if isinstance(spent, list) and len(spent) == 2:
                        self.by_provider[str(name)] = [int(spent[0]), float(spent[1])]

    def state(self) -> dict[str, object]:
        return {"day": self.day, "tokens": self.tokens, "cost": self.cost,
                "providers": {k: [int(v[0]), v[1]] for k, v in self.by_provider.items()}}

    def _roll(self) -> None:
        today = self._today()
        if today != self.day:
            self.day, self.tokens, self.cost = today, 0, 0.0
            self.by_provider.clear()

    def add(self, r: ProbeResult, cost: float | None) -> None:
        self._roll()
        tokens = (r.input_tokens or 0) + (r.output_tokens or 0)
        self.tokens += tokens
        self.cost += cost or 0.0
        spent = self.by_provider.setdefault(r.provider, [0, 0.0])
        spent[0] += tokens
        spent[1] += cost or 0.0

    def exhausted(self, provider: str | None = None) -> str | None:
        """The name of the spent budget, or None: 'tokens' or 'cost' (the global budget),
        'provider_tokens' or 'provider_cost' (`provider`'s own)."""
        self._roll()
        spent = _spent(self.budgets, self.tokens, self.cost)
        for name in _KINDS:
            paused = spent == name
            self._metrics.budget_paused.labels(name).set(1 if paused else 0)
            if paused and name not in self._paused:
                log.warning("budget_exhausted_probing_paused", budget=name, tokens=self.tokens,
                            cost_usd=round(self.cost, 4), day=self.day)
                self._paused.add(name)
            elif not paused and name in self._paused:
                log.info("budget_reset_probing_resumed", budget=name, day=self.day)
                self._paused.discard(name)
        if spent is not None or provider is None:
            return spent
        own = self._provider_spent(provider)
        return None if own is None else f"provider_{own}"

    def _provider_spent(self, provider: str) -> str | None:
        limit = self.provider_budgets.get(provider)
        tokens, cost = self.by_provider.get(provider, (0, 0.0))
        spent = None if limit is None else _spent(limit, int(tokens), cost)
        gauge = self._metrics.provider_budget_paused
        for name in _KINDS:
            paused = spent == name
            key = (provider, name)
            if paused or key in self._provider_paused:
                gauge.labels(provider, name).set(1 if paused else 0)
            if paused and key not in self._provider_paused:
                log.warning("provider_budget_exhausted_probing_paused", provider=provider, budget=name,
                            tokens=int(tokens), cost_usd=round(cost, 4), day=self.day)
                self._provider_paused.add(key)
            elif not paused and key in self._provider_paused:
                log.info("provider_budget_reset_probing_resumed", provider=provider, budget=name, day=self.day)
                self._provider_paused.discard(key)
        return spent
