"""The alert state machine, grouping, silences, maintenance, inhibition, reminders,
escalation and persistence, with an injected clock and a recording notifier."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

import alerts.engine as engine_mod
from alerts.config import AlertsConfig
from core.result import Outcome
from core.store import Store
from tests.alerts.factories import Clock, Recorder, config, engine, step
from tests.factories import LoopTicker, result


async def test_fires_once_resolves_after_hysteresis_and_says_how_long(tmp_path: Path) -> None:
    clock = Clock()
    e, rec = engine(tmp_path, config(), clock)
    for ok in (True, False, False, False, True, False, True, True, True):
        await step(e, clock, ok)
    sent = rec["pager"].sent
    assert [n.status for n in sent] == ["firing", "resolved"]
    assert "down on p/m/short" in sent[0].text() and "since" in sent[0].text()
    assert "http_error" in sent[0].text()  # the failure reason
    assert "RESOLVED" in sent[1].text() and "after" in sent[1].text()


async def test_ten_models_of_one_provider_make_one_message(tmp_path: Path) -> None:
    clock = Clock()
    e, rec = engine(tmp_path, config(), clock)
    models = tuple(f"m{i}" for i in range(10))
    for ok in (False, False, False):
        await step(e, clock, ok, models)
    assert len(rec["pager"].sent) == 1
    assert len(rec["pager"].sent[0].events) == 10
    assert rec["pager"].sent[0].group == {"provider": "p"}


async def test_silence_and_maintenance_suppress(tmp_path: Path) -> None:
    clock = Clock()
    e, rec = engine(tmp_path, config(), clock)
    sid = e.add_silence({"provider": "p"}, 3600, "planned")
    for ok in (False, False, False, True, True, True):
        await step(e, clock, ok)
    assert rec["pager"].sent == []  # neither the firing nor its resolve
    assert e.expire_silence(sid)
    # maintenance every day at the current hour, for one hour
    hour = datetime.fromtimestamp(clock.t, UTC).hour
    e2, rec2 = engine(tmp_path / "b", config(maintenance=[{"match": {"provider": "p"}, "cron": f"0 {hour} * * *",
                                                            "duration": "1h", "timezone": "UTC"}]), Clock())
    for ok in (False, False, False):
        await step(e2, e2.clock, ok)  # type: ignore[arg-type]
    assert rec2["pager"].sent == []


async def test_inhibition_provider_outage_suppresses_per_model(tmp_path: Path) -> None:
    clock = Clock()
    cfg = config(rules=[
        {"name": "provider-down", "kind": "consecutive_failures", "count": 2, "labels": {"severity": "page", "scope": "provider"},
         "match": {"model": "canary"}},
        {"name": "model-down", "kind": "consecutive_failures", "count": 3, "labels": {"severity": "page"}},
    ], inhibit=[{"source_match": {"scope": "provider"}, "target_match": {"severity": "page"}, "equal": ["provider"]}],
        route={"receiver": "pager", "group_by": ["provider", "model"], "group_wait": 0})
    e, rec = engine(tmp_path, cfg, clock)
    for ok in (False, False, False, False):
        await step(e, clock, ok, ("canary", "a", "b"))
    rules = [ev.alert.rule for n in rec["pager"].sent for ev in n.events]
    assert rules == ["provider-down"], rules


async def test_reminders_with_cap_and_escalation(tmp_path: Path) -> None:
    clock = Clock()
    cfg = config(route={"receiver": "pager", "group_by": ["provider"], "group_wait": 0, "group_interval": 10,
                        "repeat_interval": 60, "repeat_max": 2, "escalate": {"after": 120, "receiver": "boss"}})
    e, rec = engine(tmp_path, cfg, clock)
    for _ in range(20):
        await step(e, clock, False)  # 20 x 15 s = 5 min of outage
    kinds = [ev.kind for n in rec["pager"].sent for ev in n.events]
    assert kinds.count("firing") == 1 and kinds.count("reminder") == 2
    assert len(rec["boss"].sent) == 1


async def test_restart_neither_repages_nor_loses_the_resolve(tmp_path: Path) -> None:
    clock = Clock()
    store = Store(tmp_path / "s.db")
    e, rec = engine(tmp_path, config(), clock, store)
    for ok in (False, False, False):
        await step(e, clock, ok)
    assert [n.status for n in rec["pager"].sent] == ["firing"]
    await e.stop(1)
    e2, rec2 = engine(tmp_path, config(), clock, Store(tmp_path / "s.db"))
    await step(e2, clock, False)  # still down after the restart: no new page
    assert rec2["pager"].sent == []
    for ok in (True, True, True):
        await step(e2, clock, ok)
    assert [n.status for n in rec2["pager"].sent] == ["resolved"]


async def test_flapping_pages_once(tmp_path: Path) -> None:
    clock = Clock()
    cfg = config(rules=[{"name": "down", "kind": "consecutive_failures", "count": 1, "resolve_after": 3}])
    e, rec = engine(tmp_path, cfg, clock)
    for ok in (False, True, False, True, False, True, True, True):
        await step(e, clock, ok)
    assert [n.status for n in rec["pager"].sent] == ["firing", "resolved"]


async def test_threshold_and_error_rate_and_no_data(tmp_path: Path) -> None:
    clock = Clock()
    cfg = config(rules=[
        {"name": "slow", "kind": "threshold", "metric": "ttft", "stat": "p50", "window": "5m", "op": ">", "value": 1.0,
         "min_probes": 2},
        {"name": "errors", "kind": "error_rate", "value": 0.5, "window": "5m", "min_probes": 4},
        {"name": "silent", "kind": "no_data", "window": "2m"},
    ])
    e, _ = engine(tmp_path, cfg, clock)
    for _ in range(3):
        clock.t += 10
        r = result(2.0)
        e.observe(r)
        e.stats.observe(r)  # the daemon feeds the aggregator; here the test does
        await e.evaluate()
    assert {a["rule"] for a in e.firing()} == {"slow"}
    for _ in range(4):
        clock.t += 10
        e.observe(result(0.2, outcome=Outcome.TIMEOUT))
        await e.evaluate()
    assert "errors" in {a["rule"] for a in e.firing()}
    clock.t += 200
    await e.evaluate()
    assert "silent" in {a["rule"] for a in e.firing()}


async def test_burn_rate_pages_fast(tmp_path: Path) -> None:
    clock = Clock()
    cfg = config(rules=[{"name": "slo", "kind": "burn_rate", "objective": {"type": "availability", "target": 0.99}}])
    e, _ = engine(tmp_path, cfg, clock)
    for i in range(60):
        await step(e, clock, i % 4 != 0, dt=60)  # 25% errors vs a 1% budget: 25x burn
    firing = e.firing()
    assert firing and firing[0]["rule"] == "slo" and firing[0]["severity"] == "page"


@pytest.mark.parametrize("bad", [{"rules": [{"name": "x", "kind": "threshold"}]},
                                 {"route": {"receiver": "nobody"}, "receivers": []}])
def test_bad_alert_config_is_rejected(bad: dict) -> None:  # type: ignore[type-arg]
    with pytest.raises(ValueError):
        AlertsConfig(**bad)


async def test_evaluation_hands_the_loop_back_between_targets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # 1,000 targets take ~0.1 s to judge: probes must keep reading their sockets meanwhile

    monkeypatch.setattr(engine_mod, "EVAL_SLICE", 0.0)
    clock = Clock()
    e, _ = engine(tmp_path, config(), clock)
    models = tuple(f"m{i}" for i in range(50))
    for _ in range(2):
        await step(e, clock, ok=False, models=models)
    for m in models:
        e.observe(result(0.3, model=m, outcome=Outcome.HTTP_ERROR, started_at=datetime.fromtimestamp(clock.t, UTC)))
    ticker = LoopTicker()
    seen: dict[str, int] = {}  # target -> loop steps taken before it was judged
    judge = engine_mod.rule_eval.evaluate

    def spy(rule, key, *args):  # type: ignore[no-untyped-def]
        seen.setdefault(key, ticker.ticks)
        return judge(rule, key, *args)

    monkeypatch.setattr(engine_mod.rule_eval, "evaluate", spy)
    async with ticker:
        await e.evaluate()
    assert len(seen) == len(models)
    assert len(set(seen.values())) == len(models)  # the loop ran between any two targets
    firing = [a for a in e.alerts.values() if a.state == "firing"]
    assert len(firing) == len(models)  # the same judgement, only spread over loop steps


async def test_every_notification_carries_the_runbook_link(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """alerts.runbook_url (with {rule}) goes out with the alert: in the text (Slack, email),
    the webhook payload and the Alertmanager annotation, not only on the status page."""
    import json

    import alerts.notifiers.alertmanager as am
    from alerts.notifiers.webhook import payload

    clock = Clock()
    e, rec = engine(tmp_path, config(runbook_url="https://wiki.example.com/runbook#{rule}"), clock)
    for _ in range(3):
        await step(e, clock, ok=False)
    (n,) = rec["pager"].sent
    assert "runbook: https://wiki.example.com/runbook#down" in n.text()
    assert payload(n)["alerts"][0]["runbook_url"] == "https://wiki.example.com/runbook#down"

    sent: list[bytes] = []

    async def capture(url: str, body: bytes, headers: dict[str, str], timeout: float) -> None:
        sent.append(body)

    monkeypatch.setattr(am, "post_json", capture)
    am_cfg = AlertsConfig(receivers=[{"name": "am", "alertmanager": {"urls": ["http://127.0.0.1:9"]}}]).receivers[0].alertmanager
    await am.AlertmanagerNotifier("am", am_cfg).send(n)
    assert json.loads(sent[0])[0]["annotations"]["runbook_url"] == "https://wiki.example.com/runbook#down"


async def test_resends_hold_back_neither_a_new_page_nor_a_resolve_of_the_same_group(tmp_path: Path) -> None:
    """A group keeps being resent every minute while one alert fires; another alert of the
    group that starts or ends meanwhile is told within group_interval, as without resends."""

    class Resending(Recorder):
        resends_while_firing = True

        @property
        def resend_interval(self) -> float:
            return 60.0

    clock = Clock()
    cfg = config(route={"receiver": "pager", "group_by": ["provider"], "group_wait": 0, "group_interval": 300,
                        "repeat_interval": 3600})
    e, _ = engine(tmp_path, cfg, clock)
    rec = e.notifiers["pager"] = Resending(e.notifiers["pager"].cfg)
    told: dict[tuple[str, str], float] = {}  # (model, status) -> first time told
    b_fails = (clock.t + 150, clock.t + 600)  # m1 fails throughout, m2 for a while in between
    for _ in range(80):
        await step(e, clock, False, models=("m1",), dt=0)
        await step(e, clock, not b_fails[0] <= clock.t < b_fails[1], models=("m2",), dt=15)
        for n in rec.sent:
            for ev in n.events:
                told.setdefault((ev.alert.labels["model"], ev.kind), clock.t)
    assert sum(1 for n in rec.sent if n.status == "firing") > 10  # resent all along
    # m2 fires on its 2nd failure (at b_fails[0] + 15) and resolves after 2 good probes
    assert told[("m2", "firing")] - (b_fails[0] + 15) <= 300 + 15
    assert told[("m2", "resolved")] - (b_fails[1] + 15) <= 300 + 15



async def test_a_silence_and_its_end_show_wherever_the_alert_does(tmp_path: Path) -> None:
    clock = Clock()
    e, _rec = engine(tmp_path, config(), clock)
    for _ in range(3):
        await step(e, clock, ok=False)
    (a,) = e.firing()
    assert a["state"] == "firing" and a["silenced_by"] == [] and a["since_at"].endswith("Z")
    sid = e.add_silence({"provider": "p"}, 7200, "known incident")
    await step(e, clock, ok=False)
    (a,) = e.firing()
    assert a["muted"] == "silenced"
    (s,) = a["silenced_by"]
    assert s["id"] == sid and s["comment"] == "known incident" and s["ends_at"].endswith("Z")
    (listed,) = e.silences()
    assert listed["ends"] == s["ends_at"]


async def test_a_notifier_that_resends_while_firing_is_told_again_each_resend_interval(tmp_path: Path) -> None:
    """The Notifier contract (resends_while_firing, resend_interval), as Alertmanager uses
    it: a channel that forgets a firing alert is told it again while it fires; any other
    channel hears the page once (reminders aside) and the resolve."""
    from alerts.notifiers.alertmanager import AlertmanagerNotifier

    class Resending(Recorder):
        resends_while_firing = True

        @property
        def resend_interval(self) -> float:
            return 60.0

    statuses = {}
    for cls in (Recorder, Resending):
        clock = Clock()
        e, _ = engine(tmp_path / cls.__name__, config(), clock)
        rec = e.notifiers["pager"] = cls(e.notifiers["pager"].cfg)
        # fires at the 2nd step, 180 s of firing, then resolves (told within group_interval)
        for ok in [False] * 14 + [True] * 6:
            await step(e, clock, ok)
        statuses[cls.__name__] = [n.status for n in rec.sent]
    assert statuses["Recorder"] == ["firing", "resolved"]
    assert statuses["Resending"] == ["firing"] * 4 + ["resolved"]
    am_cfg = AlertsConfig(receivers=[{"name": "am", "alertmanager": {"urls": ["http://127.0.0.1:9"],
                                                                     "resend_interval": "2m"}}]).receivers[0].alertmanager
    am = AlertmanagerNotifier("am", am_cfg)
    assert am.resends_while_firing and am.resend_interval == 120
    assert not Recorder(None).resends_while_firing
