"""Rule kinds end to end through the engine (injected clock): default rules, anomaly
verdicts from any object with the detector's attributes, baselines in the message,
latency and availability SLO burn rates (page and ticket), content mismatches, error
rates, maintenance windows in a time zone, and config validation of `alerts:`."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from alerts.config import AlertsConfig
from alerts.routing import in_maintenance
from core.result import Outcome
from detector.verdict import AnomalyVerdict
from tests.alerts.factories import Clock, config, drain, engine, step
from tests.factories import result


def Verdict(target: str, metric: str, anomalous: bool, score: float, p_value: float, effect: float,
            baseline: float, recent: float, since: float | None) -> AnomalyVerdict:
    return AnomalyVerdict(target, metric, anomalous, score, p_value, p_value, effect, baseline, recent,
                          100, 5, since)


def test_default_rules_apply_only_without_configured_rules(tmp_path: Path) -> None:
    clock = Clock()
    e, _ = engine(tmp_path, AlertsConfig(), clock)
    names = {r.name for r in e.rules}
    assert {"target-down", "error-rate-high", "ttft-anomaly", "no-data"} <= names
    e2, _ = engine(tmp_path / "b", AlertsConfig(use_default_rules=False), clock)
    assert e2.rules == []
    e3, _ = engine(tmp_path / "c", config(), clock)
    assert [r.name for r in e3.rules] == ["down"]


async def test_anomaly_rule_takes_any_verdict_object_and_reports_the_baseline(tmp_path: Path) -> None:
    clock = Clock()
    cfg = config(rules=[{"name": "ttft-anomaly", "kind": "anomaly", "metric": "ttft", "resolve_after": 2}])
    e, rec = engine(tmp_path, cfg, clock)
    key = "p/m/short"
    await step(e, clock, True)
    e.set_verdicts({(key, "ttft"): Verdict(key, "ttft", True, 4.2, 0.0001, 2.5, 0.4, 1.4, clock.t)})
    await step(e, clock, True)
    text = rec["pager"].sent[0].text()
    assert "ttft anomalous" in text and "400 ms" in text and "1.40 s" in text and "baseline" in text
    e.set_verdicts({(key, "ttft"): Verdict(key, "ttft", False, 0.3, 0.4, 0.0, 0.4, 0.41, None)})
    for _ in range(4):  # resolve_after 2 evaluations, then the group's 60 s group_interval
        await step(e, clock, True)
    assert [n.status for n in rec["pager"].sent] == ["firing", "resolved"]
    assert "after 30s" in rec["pager"].sent[1].text()


async def test_threshold_message_has_value_limit_and_baseline(tmp_path: Path) -> None:
    clock = Clock()
    cfg = config(rules=[{"name": "ttft-p95-high", "kind": "threshold", "metric": "ttft", "stat": "p95",
                         "window": "5m", "value": 2.0, "min_probes": 3, "for": "30s"}])
    e, rec = engine(tmp_path, cfg, clock)
    e.set_verdicts({("p/m/short", "ttft"): Verdict("p/m/short", "ttft", True, 3, 0.001, 6.0, 0.45, 3.0, None)})
    for i in range(6):
        clock.t += 15
        r = result(3.0)
        e.observe(r)
        e.stats.observe(r)
        await e.evaluate()
        await drain(e)
        if i < 4:  # `for: 30s` after the 3rd probe made it pending
            assert not rec["pager"].sent
    text = rec["pager"].sent[0].text()
    assert "ttft p95 over 300s = 3.00 s > 2.00 s" in text and "baseline 450 ms" in text


async def test_latency_objective_burn_rate_pages(tmp_path: Path) -> None:
    clock = Clock()
    cfg = config(rules=[{"name": "fast-enough", "kind": "burn_rate",
                         "objective": {"type": "latency", "target": 0.95, "metric": "ttft", "threshold": "2s"}}])
    e, _ = engine(tmp_path, cfg, clock)
    for i in range(60):  # one probe a minute, every other one slower than 2 s: 10x the 5% budget
        clock.t += 60
        e.observe(result(2.5 if i % 2 else 0.5))
        await e.evaluate()
    await drain(e)
    firing = e.firing()
    assert [(a["rule"], a["severity"]) for a in firing] == [("fast-enough", "page")]
    assert "latency error budget" in firing[0]["summary"]


async def test_slow_burn_over_days_is_a_ticket_not_a_page(tmp_path: Path) -> None:
    clock = Clock()
    cfg = config(rules=[{"name": "availability", "kind": "burn_rate", "objective": {"target": 0.99}}])
    e, _ = engine(tmp_path, cfg, clock)
    for i in range(3 * 24 * 60):  # 3 days, 1 probe a minute, 2% failures: 2x the budget
        clock.t += 60
        e.observe(result(0.3, outcome=Outcome.HTTP_ERROR if i % 50 == 0 else Outcome.OK))
    await e.evaluate()
    assert [(a["rule"], a["severity"], a["state"]) for a in e.firing()] == [("availability", "ticket", "firing")]


async def test_content_mismatch_and_error_rate_min_probes(tmp_path: Path) -> None:
    clock = Clock()
    cfg = config(rules=[{"name": "wrong", "kind": "content_mismatch", "count": 2},
                        {"name": "errors", "kind": "error_rate", "value": 0.5, "window": "10m", "min_probes": 4}])
    e, _ = engine(tmp_path, cfg, clock)
    for _ in range(3):
        clock.t += 15
        e.observe(result(0.3, outcome=Outcome.CONTENT_MISMATCH))
        await e.evaluate()
    assert {a["rule"] for a in e.firing()} == {"wrong"}  # 3 of 3 failed, but fewer than 4 probes
    clock.t += 15
    e.observe(result(0.3, outcome=Outcome.CONTENT_MISMATCH))
    await e.evaluate()
    assert {a["rule"] for a in e.firing()} == {"wrong", "errors"}
    assert "100% over 600s (4/4 probes failed)" in next(a for a in e.firing() if a["rule"] == "errors")["summary"]


def test_maintenance_window_follows_its_time_zone() -> None:
    cfg = AlertsConfig(maintenance=[{"match": {"provider": "openai"}, "cron": "0 3 * * SUN", "duration": "1h",
                                     "timezone": "Europe/Paris"}])
    paris = ZoneInfo("Europe/Paris")
    labels = {"provider": "openai", "model": "m"}

    def at(year: int, month: int, day: int, hour: int, minute: int = 0) -> float:
        return datetime(year, month, day, hour, minute, tzinfo=paris).timestamp()

    w = list(cfg.maintenance)
    assert in_maintenance(w, labels, at(2026, 7, 5, 3, 30))  # a Sunday, summer time
    assert in_maintenance(w, labels, at(2026, 1, 4, 3, 0))  # a Sunday, winter time
    assert not in_maintenance(w, labels, at(2026, 7, 5, 4, 0))
    assert not in_maintenance(w, labels, at(2026, 7, 6, 3, 30))  # Monday
    assert not in_maintenance(w, {"provider": "anthropic"}, at(2026, 7, 5, 3, 30))


@pytest.mark.parametrize("bad", [
    {"maintenance": [{"cron": "0 3 * * SUN", "duration": "1h", "timezone": "Mars/Olympus"}]},
    {"maintenance": [{"cron": "61 3 * * *", "duration": "1h"}]},
    {"rules": [{"name": "x", "kind": "threshold", "metric": "error", "value": 1}]},
    {"rules": [{"name": "x", "kind": "burn_rate"}]},
    {"rules": [{"name": "x", "kind": "error_rate"}]},
    {"rules": [{"name": "x", "kind": "no_data", "sparkle": 1}]},
    {"receivers": [{"name": "r"}]},
    {"receivers": [{"name": "r", "webhook": {"url": "http://x"}}, {"name": "r", "webhook": {"url": "http://y"}}]},
    {"receivers": [{"name": "r", "webhook": {"url": "http://x"}}],
     "route": {"receiver": "r", "escalate": {"after": "30m", "receiver": "nobody"}}},
])
def test_broken_alert_configs_are_rejected_at_load(bad: dict) -> None:  # type: ignore[type-arg]
    with pytest.raises(ValidationError):
        AlertsConfig(**bad)


def test_config_silence_without_offset_is_utc() -> None:
    cfg = AlertsConfig(silences=[{"match": {"provider": "x"}, "ends_at": "2030-01-01T00:00:00"}])
    assert cfg.silences[0].ends_at.utcoffset() is not None
    assert cfg.silences[0].ends_at.timestamp() == 1893456000


def detector_verdicts(latencies: list[float], t0: float) -> dict:  # type: ignore[type-arg]
    """The real detector fed one probe a minute, judged after the last one."""
    from detector.config import DetectorConfig
    from detector.service import Detector

    det = Detector(DetectorConfig())
    for i, v in enumerate(latencies):
        det.observe(result(v, started_at=datetime.fromtimestamp(t0 + 60 * i, ZoneInfo("UTC"))))
    return det.evaluate(t0 + 60 * len(latencies))  # type: ignore[return-value]


async def threshold_text(tmp_path: Path, verdicts: dict) -> str:  # type: ignore[type-arg]
    clock = Clock()
    cfg = config(rules=[{"name": "slow", "kind": "threshold", "metric": "ttft", "stat": "p50", "window": "5m",
                         "value": 2.0, "min_probes": 3}])
    e, rec = engine(tmp_path, cfg, clock)
    e.set_verdicts(verdicts)
    for _ in range(3):
        clock.t += 15
        r = result(3.0)
        e.observe(r)
        e.stats.observe(r)
        await e.evaluate()
        await drain(e)
    return rec["pager"].sent[0].text()


async def test_threshold_message_quotes_no_baseline_while_the_detector_warms_up(tmp_path: Path) -> None:
    warming = detector_verdicts([3.0] * 10, Clock().t - 3600)  # 10 probes: far from a learnt baseline
    text = await threshold_text(tmp_path, warming)
    assert "ttft p50 over 300s = 3.00 s > 2.00 s" in text
    assert "baseline 3.00 s" not in text and "no baseline yet" in text
    learnt = detector_verdicts([0.38 + 0.01 * (i % 5) for i in range(120)] + [3.0] * 5, Clock().t - 9000)
    text = await threshold_text(tmp_path / "b", learnt)
    assert "baseline 400 ms" in text and "no baseline yet" not in text
