"""Targets split across replicas: each target in exactly one shard, stable as N grows."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import httpx
import pytest

from daemon.config import ConfigError, load_settings
from daemon.sharding import ordinal_of, shard_of

KEYS = [f"p{i % 10}/model-{i}/short" for i in range(3000)]


def test_every_target_has_one_shard_and_shards_are_balanced() -> None:
    for n in (1, 2, 3, 7):
        counts = [0] * n
        for k in KEYS:
            s = shard_of(k, n)
            assert 0 <= s < n and shard_of(k, n) == s  # deterministic
            counts[s] += 1
        assert max(counts) - min(counts) < 0.15 * len(KEYS) / n, counts


@pytest.mark.parametrize("n", [1, 2, 3, 5, 9])
def test_adding_a_shard_moves_about_one_in_n_plus_one(n: int) -> None:
    moved = sum(shard_of(k, n) != shard_of(k, n + 1) for k in KEYS)
    # only targets the new shard wins move, and they are ~1/(n+1) of all
    assert all(shard_of(k, n + 1) in (shard_of(k, n), n) for k in KEYS)
    assert moved / len(KEYS) < 1.15 / (n + 1), (moved, len(KEYS))


def test_auto_takes_the_host_names_ordinal() -> None:
    assert ordinal_of("llm-vitals-2") == 2
    assert ordinal_of("llm-vitals-eu-west-1-11.llm-vitals.svc") == 11
    with pytest.raises(ValueError, match="ending in -N"):
        ordinal_of("laptop")


@pytest.mark.parametrize(("block", "reason"), [
    ("{shards: 3, shard: 3}", "shard 3 is not in 0..2"),
    ("{shards: 0}", "greater than or equal to 1"),
    ("{shards: 2, shard: first}", "sharding.shard"),
])
def test_bad_sharding_is_rejected_with_key_and_reason(tmp_path: Path, block: str, reason: str) -> None:
    f = tmp_path / "c.yaml"
    f.write_text(f"sharding: {block}\n")
    with pytest.raises(ConfigError) as err:
        load_settings(f)
    assert str(f) in str(err.value) and "sharding" in str(err.value) and reason in str(err.value)


CONFIG = """
region: test-shards
http: {listen: "127.0.0.1:{port}"}
storage: {path: "{tmp}/state-SHARD.db", retention: 1d}
simulator: {enabled: true}
defaults: {interval: 1s, timeout: 10s, jitter: 0%, probe: short}
alerts: {enabled: false}
sharding: {shards: 3, shard: SHARD}
providers:
  - name: sim-openai
    kind: openai_compatible
    base_url: "{simulator}/v1"
    models: [m0, m1, m2, m3, m4, m5, m6, m7, m8, m9, m10, m11]
"""


def test_three_shards_probe_every_target_exactly_once_between_them(daemon_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ds = [daemon_factory(CONFIG.replace("SHARD", str(i)), name=f"shard{i}") for i in range(3)]
    for d in ds:
        d.wait_ready()
    time.sleep(2)
    owned = []
    for i, d in enumerate(ds):
        st = httpx.get(d.url + "/api/v1/status", timeout=5).json()
        assert st["shard"] == {"shard": i, "shards": 3}
        owned.append({t["target"] for t in st["targets"]})
    every = {f"sim-openai/m{i}/short" for i in range(12)}
    assert set().union(*owned) == every and sum(len(o) for o in owned) == 12  # a partition
    assert all(owned), owned  # 12 targets: each shard gets some
    for d in ds:
        d.stop()
    probed = []
    for i in range(3):
        con = sqlite3.connect(tmp_path / f"state-{i}.db")
        probed.append({r[0] for r in con.execute("SELECT DISTINCT target FROM results")})
        con.close()
    assert probed == owned  # each process probed exactly its own targets, nothing else
