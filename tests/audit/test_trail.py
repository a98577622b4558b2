"""The audit trail: one record shape, sinks (stdout, a rotated file, a capped Redis stream),
a bounded buffer that never blocks a decision and never drops a record silently."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient

from groupgate.api.app import STATE
from groupgate.audit.record import Decision, Record, as_dict, decision_ids, json_lines, stamp
from groupgate.audit.sinks import FileSink, RedisSink
from groupgate.audit.trail import AuditTrail
from groupgate.config import AuditSettings, ConfigError, load_config
from groupgate.store import keys
from tests.api.conftest import API_KEY, POLICIES, MakeClient

PEP = {"Authorization": f"Bearer {API_KEY}"}
CHECK = {"subject": {"id": "emp-de"}, "action": "read", "resource": {"type": "orders"}}


def record(n: int = 0, subject: str = "emp-1", micro: int = 0) -> Record:
    moment = datetime.fromtimestamp(1_800_000_000 + n, UTC).replace(microsecond=micro)
    return Record(
        "d-1", moment, "check", "t", "pep", subject, "read", "orders",
        f"o-{n}", True, "granted", 7, 0.05, f"req-{n}",
    )  # fmt: skip


def decision(n: int = 0, number: int = 1) -> Decision:
    """What the request path hands the trail for `record(n)`'s decision, numbered `number`."""
    return (
        number, 1_800_000_000.0 + n, "check", "t", "pep", "emp-1", "read", "orders", f"o-{n}",
        True, "granted", 7, 0.05, f"req-{n}", None,
    )  # fmt: skip


def add(trail: AuditTrail, n: int) -> None:
    """What the request path does: `record(n)`'s decision, numbered by the trail."""
    trail.add(decision(n, next(trail.numbers)))


class Blocked:
    """A sink that never finishes writing until released (a stalled destination)."""

    name = "blocked"

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.got: list[Record] = []

    async def write(self, batch: Sequence[Record]) -> None:
        await self.release.wait()
        self.got += batch

    async def close(self) -> None:
        return None


class Failing:
    name = "failing"

    async def write(self, batch: Sequence[Record]) -> None:
        raise OSError("disk on fire")

    async def close(self) -> None:
        return None


class Collect:
    name = "collect"

    def __init__(self) -> None:
        self.got: list[Record] = []

    async def write(self, batch: Sequence[Record]) -> None:
        self.got += batch

    async def close(self) -> None:
        return None


def test_the_record_shape_and_masking() -> None:
    fields = as_dict(record(3), mask=("subject", "caller"))
    assert list(fields) == [
        "decision_id", "time", "surface", "tenant", "caller", "subject", "action", "type",
        "id", "allow", "reason", "revision", "latency_ms", "request_id",
    ]  # fmt: skip
    assert fields["time"] == "2027-01-15T08:00:03Z"  # RFC 3339: no fraction when it is zero
    assert as_dict(record(3, micro=250))["time"] == "2027-01-15T08:00:03.000250Z"
    assert fields["subject"].startswith("sha256:") and "emp-1" not in json.dumps(fields)
    assert fields["caller"] == as_dict(record(4), mask=("caller",))["caller"]  # correlatable
    assert decision_ids("3f9a0c12d4e1", (9, 10, 26)) == [
        "3f9a0c12d4e1-9", "3f9a0c12d4e1-a", "3f9a0c12d4e1-1a",
    ]  # fmt: skip


def test_the_writer_stamps_decisions_into_records_in_order() -> None:
    later = (17, 1_800_000_004.00025, *decision(4)[2:-1], {"method": "GET"})
    first, second = stamp([decision(3, number=16), later], "ab12")
    assert first == msgspec.structs.replace(record(3), decision_id="ab12-10")
    # every field where the request path put it, the id from the prefix and the number
    assert as_dict(second)["time"] == "2027-01-15T08:00:04.000250Z"
    assert as_dict(second)["method"] == "GET" and second.extra == {"method": "GET"}
    assert second.decision_id == "ab12-11"


@pytest.mark.parametrize(
    "extra",
    [None, {"amount": "12.50", "currency": "EUR"}, {"nested": [{"decision_id": "x"}, {}]}],
)
def test_a_batch_is_one_json_line_per_record_whatever_its_strings_hold(
    extra: dict[str, Any] | None,
) -> None:
    # Strings that look like the separator between two records, quotes, escapes, newlines:
    # every line still parses to its own record, in order.
    hostile = ['},{"decision_id":"forged"', '"},{"decision_id":', "a\nb\\", "\u2028", ""]
    batch = [
        msgspec.structs.replace(
            record(n, subject=hostile[n % len(hostile)]),
            reason=hostile[(n + 1) % len(hostile)],
            extra=extra,
        )
        for n in range(12)
    ]
    for mask in ((), ("caller",)):
        lines = json_lines(batch, mask)
        assert lines.endswith(b"\n") and lines.count(b"\n") == len(batch)
        assert [json.loads(line) for line in lines.splitlines()] == [
            as_dict(r, mask) for r in batch
        ]
    assert json_lines([]) == b""


def test_a_batch_without_extra_is_written_as_the_records_are() -> None:
    batch = [record(n) for n in range(3)]
    mixed = [*batch, msgspec.structs.replace(record(3), extra={})]  # an empty `extra` too
    assert [json.loads(x) for x in json_lines(mixed).splitlines()] == [as_dict(r) for r in mixed]
    assert "extra" not in json_lines(mixed).decode()


async def test_a_full_buffer_drops_counts_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    blocked = Blocked()
    trail = AuditTrail(AuditSettings(buffer=10, batch=5, flush_ms=10), [blocked])
    trail.start()
    for n in range(5):
        add(trail, n)
    await asyncio.sleep(0.05)  # the writer took the first batch and is stuck in the sink
    for n in range(5, 100):
        add(trail, n)  # never waits: the newest 10 are kept, the older ones dropped
    assert trail.waiting == 10 and trail.dropped == 85
    blocked.release.set()
    await trail.close()
    assert len(blocked.got) == 15 and trail.written == 15 and trail.dropped == 85
    assert [r.id for r in blocked.got] == [f"o-{n}" for n in (*range(5), *range(90, 100))]
    assert "dropped 85 records" in caplog.text


async def test_drops_are_counted_whenever_they_happen(caplog: pytest.LogCaptureFixture) -> None:
    collect = Collect()
    trail = AuditTrail(AuditSettings(buffer=4, batch=3, flush_ms=10_000), [collect])
    for n in range(10):  # 6 dropped before the first write
        add(trail, n)
    assert trail.dropped == 6
    await trail.flush()  # batches of 3 and 1
    for n in range(10, 13):  # none dropped
        add(trail, n)
    await trail.flush()
    for n in range(13, 20):  # 3 more dropped
        add(trail, n)
    assert trail.dropped == 9
    await trail.close()
    assert [r.id for r in collect.got] == [
        f"o-{n}" for n in (6, 7, 8, 9, 10, 11, 12, 16, 17, 18, 19)
    ]
    assert trail.written == 11 and trail.dropped == 9
    assert len({r.decision_id for r in collect.got}) == 11
    assert "dropped 6 records" in caplog.text and "dropped 3 records" in caplog.text


async def test_a_failing_sink_is_counted_and_the_others_still_write(
    caplog: pytest.LogCaptureFixture,
) -> None:
    collect = Collect()
    trail = AuditTrail(AuditSettings(batch=4, flush_ms=10), [Failing(), collect])
    trail.start()
    for n in range(10):
        add(trail, n)
    await trail.close()
    assert len(collect.got) == 10 and trail.failed == 10
    assert "the failing sink failed to write" in caplog.text


async def test_the_file_sink_rotates(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    sink = FileSink(str(path), max_bytes=2000, backups=2, mask=())
    trail = AuditTrail(AuditSettings(batch=3, flush_ms=10), [sink])
    trail.start()
    for n in range(40):
        add(trail, n)
        await asyncio.sleep(0)
    await trail.close()
    files = sorted(tmp_path.iterdir())  # noqa: ASYNC240
    assert [f.name for f in files] == ["audit.jsonl", "audit.jsonl.1", "audit.jsonl.2"]
    for f in files:
        assert f.stat().st_size <= 2000
        for line in f.read_text().splitlines():
            assert json.loads(line)["surface"] == "check"
    kept = [json.loads(x)["id"] for f in files for x in f.read_text().splitlines()]
    assert "o-39" in kept and len(set(kept)) == len(kept)


async def test_the_redis_sink_writes_a_capped_stream(real_redis_db: str) -> None:
    client = aioredis.Redis.from_url(real_redis_db)
    try:
        sink = RedisSink(client, 100, ())
        trail = AuditTrail(AuditSettings(batch=10, flush_ms=10), [sink])
        trail.start()
        for n in range(1000):
            add(trail, n)
        await trail.close()
        entries = await client.xrange(keys.AUDIT)
        kept = [json.loads(line) for _, e in entries for line in e[b"records"].splitlines()]
        assert 100 <= len(kept) < 1000  # MAXLEN ~ trims whole nodes
        assert all(len(e[b"records"].splitlines()) == 10 for _, e in entries)  # a batch each
        assert kept[-1]["id"] == "o-999" and kept[-1]["surface"] == "check"
        ids = [int(x["id"][2:]) for x in kept]
        assert ids == sorted(ids)  # in order
    finally:
        await client.aclose()


async def test_the_stream_keeps_max_len_records_whatever_the_batches(real_redis_db: str) -> None:
    # A quiet server writes small batches: the stream still keeps about `max_len` records,
    # not `max_len / settings.batch` entries of them.
    client = aioredis.Redis.from_url(real_redis_db)
    try:
        sink = RedisSink(client, 10_000, ())
        small = stamp([decision(n, number=n + 1) for n in range(10)], "ab")
        for _ in range(2_000):
            await sink.write(small)
        kept = sum(len(e[b"records"].splitlines()) for _, e in await client.xrange(keys.AUDIT))
        assert 10_000 <= kept <= 12_000  # MAXLEN ~ trims whole nodes of 100 entries
    finally:
        await client.aclose()


def test_settings_are_checked() -> None:
    env: dict[str, str] = {}
    with pytest.raises(ConfigError, match="audit_sinks: unknown sink"):
        load_config(env, overrides={"policies": str(POLICIES), "audit_sinks": "kafka"})
    with pytest.raises(ConfigError, match="audit_file"):
        load_config(env, overrides={"policies": str(POLICIES), "audit_sinks": "file"})
    with pytest.raises(ConfigError, match="needs a Redis"):
        load_config(env, overrides={"policies": str(POLICIES), "audit_sinks": "redis"})
    with pytest.raises(ConfigError, match="audit_mask"):
        load_config(env, overrides={"policies": str(POLICIES), "audit_mask": "password"})
    config = load_config(env, overrides={"policies": str(POLICIES), "decision_log": True})
    assert config.audit.sinks == ("stdout",)


async def test_a_stalled_sink_never_blocks_decisions(make_client: MakeClient) -> None:
    client: TestClient[Any, Any] = await make_client(
        api_keys=API_KEY, decision_log=True, audit_buffer=5, audit_batch=2
    )
    trail = client.app[STATE].audit
    assert trail is not None
    blocked = Blocked()
    trail.sinks = [blocked]
    for _ in range(30):
        response = await client.post("/v1/check", json=CHECK, headers=PEP)
        assert response.status == 200
    assert trail.dropped > 0
    metrics = await (await client.get("/metrics")).text()
    assert f'groupgate_audit_records_total{{result="dropped"}} {float(trail.dropped)}' in metrics
    blocked.release.set()


async def test_every_record_reaches_the_file_in_order(
    make_client: MakeClient, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "trail.jsonl"
    client = await make_client(
        api_keys=API_KEY, audit_sinks="file", audit_file=str(path), audit_mask="caller"
    )
    for n in range(20):
        headers = {**PEP, "X-Request-ID": f"r-{n}"}
        assert (await client.post("/v1/check", json=CHECK, headers=headers)).status == 200
    with caplog.at_level(logging.INFO, logger="groupgate.decisions"):
        await client.app[STATE].audit.flush()  # type: ignore[union-attr]
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert len(lines) == 20
    assert [x["subject"] for x in lines] == ["emp-de"] * 20
    assert all(x["caller"].startswith("sha256:") for x in lines)
    assert len({x["decision_id"] for x in lines}) == 20
    assert not [r for r in caplog.records if r.name == "groupgate.decisions"]  # file only


async def test_the_request_id_is_recorded(make_client: MakeClient, tmp_path: Path) -> None:
    path = tmp_path / "trail.jsonl"
    client = await make_client(api_keys=API_KEY, audit_sinks="file", audit_file=str(path))
    headers = {**PEP, "X-Request-ID": "req-42"}
    evaluation = {
        "subject": {"type": "user", "id": "emp-de"},
        "action": {"name": "read"},
        "resource": {"type": "orders", "id": "o-1"},
    }
    assert (await client.post("/access/v1/evaluation", json=evaluation, headers=headers)).ok
    batch = {"checks": [CHECK]}
    assert (await client.post("/v1/checks", json=batch, headers=headers)).ok
    await client.app[STATE].audit.flush()  # type: ignore[union-attr]
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    assert [(x["surface"], x["request_id"]) for x in lines] == [
        ("authzen", "req-42"),
        ("checks", "req-42"),
    ]
