"""Which targets one replica owns when a region's targets are split across N processes.

Rendezvous (highest-random-weight) hashing: a target belongs to the shard whose hash of
(shard, target) is highest. Every replica computes the same answer from the config alone,
with no coordination, and going from N to N+1 shards moves only the targets the new shard
wins: 1/(N+1) of them on average (tests/daemon/test_sharding.py measures it). The way Prometheus
splits scrape targets with `hashmod`, but stable across a change of N.
"""

from __future__ import annotations

import hashlib
import re
import socket

_ORDINAL = re.compile(r"-(\d+)$")


def _weight(shard: int, key: str) -> int:
    digest = hashlib.blake2b(f"{shard}\0{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def shard_of(key: str, shards: int) -> int:
    """The shard (0..shards-1) that owns target `key` ("provider/model/probe")."""
    if shards <= 1:
        return 0
    return max(range(shards), key=lambda s: _weight(s, key))


def ordinal_of(hostname: str | None = None) -> int:
    """The trailing ordinal of a host name (`llm-vitals-2` → 2), as a StatefulSet names pods."""
    name = (hostname if hostname is not None else socket.gethostname()).split(".", 1)[0]
    m = _ORDINAL.search(name)
    if m is None:
        raise ValueError(f"shard: auto needs a host name ending in -N (a StatefulSet pod), got {name!r}")
    return int(m.group(1))
