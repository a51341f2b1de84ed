#!/usr/bin/env python3
"""Smoke check of a Kafka broker with the project's Python client (aiokafka).

Proves that the broker started by scripts/services.sh works with aiokafka the way the services
use it: topics made by the admin client (the broker has auto.create.topics.enable=false), an
idempotent producer with acks='all', a consumer group with manual commits, and (unless
--no-transactions) a transactional producer read back with isolation_level='read_committed'.

Usage (needs aiokafka installed, e.g. in the project's venv or a throwaway one):
    python scripts/kafka_smoke.py 127.0.0.1:59092
        full round trip on a fresh topic, which is deleted afterwards
    python scripts/kafka_smoke.py 127.0.0.1:59092 --topic smoke-keep --keep
        same on a fixed topic (created if missing) that is kept, with group "<topic>-group"
    python scripts/kafka_smoke.py 127.0.0.1:59092 --topic smoke-keep --verify-only
        after a broker restart: creates and produces nothing; checks that the topic is still
        there, that every message written by the earlier runs can still be read, and that the
        group's committed offsets survived
Exits 0 and prints "kafka smoke OK ..." on success, non-zero with the reason otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
import time
import uuid

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

PARTITIONS = 3
MARKER = b"storeops-smoke"


class SmokeError(Exception):
    pass


logging.basicConfig(level=logging.WARNING, format="[aiokafka] %(levelname)s %(message)s")


def log(msg: str) -> None:
    print(f"[kafka_smoke] {msg}", flush=True)


async def ensure_topic(bootstrap: str, topic: str, must_exist: bool) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000)
    await admin.start()
    try:
        cluster = await admin.describe_cluster()
        log(f"cluster: {cluster}")
        existing = set(await admin.list_topics())
        if topic in existing:
            log(f"topic {topic!r} exists")
            return
        if must_exist:
            raise SmokeError(f"topic {topic!r} is missing (topics: {sorted(existing)})")
        with contextlib.suppress(TopicAlreadyExistsError):
            await admin.create_topics(
                [NewTopic(name=topic, num_partitions=PARTITIONS, replication_factor=1)]
            )
        # Topic creation is asynchronous on the broker: wait until its metadata shows it.
        deadline = time.monotonic() + 20
        while topic not in set(await admin.list_topics()):
            if time.monotonic() > deadline:
                raise SmokeError(f"topic {topic!r} did not appear after create_topics")
            await asyncio.sleep(0.2)
        log(f"created topic {topic!r} with {PARTITIONS} partitions")
    finally:
        await admin.close()


async def delete_topic(bootstrap: str, topic: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.delete_topics([topic])
        log(f"deleted topic {topic!r}")
    finally:
        await admin.close()


async def produce(bootstrap: str, topic: str, run_id: str, count: int) -> list[bytes]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    values = []
    try:
        for i in range(count):
            value = b"%s run=%s n=%d" % (MARKER, run_id.encode(), i)
            md = await producer.send_and_wait(topic, value, key=b"k%d" % i)
            values.append(value)
            log(f"produced to {md.topic}[{md.partition}]@{md.offset}: {value.decode()}")
    finally:
        await producer.stop()
    return values


async def produce_transactional(bootstrap: str, topic: str, run_id: str) -> tuple[bytes, bytes]:
    """One committed and one aborted message through a transactional producer."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", transactional_id=f"smoke-tx-{run_id}"
    )
    await producer.start()
    committed = b"%s run=%s tx=committed" % (MARKER, run_id.encode())
    aborted = b"%s run=%s tx=aborted" % (MARKER, run_id.encode())
    try:
        async with producer.transaction():
            await producer.send_and_wait(topic, committed, key=b"tx")
        await producer.begin_transaction()
        await producer.send_and_wait(topic, aborted, key=b"tx")
        await producer.abort_transaction()
        log("transactional producer: one transaction committed, one aborted")
    finally:
        await producer.stop()
    return committed, aborted


async def consume(
    bootstrap: str,
    topic: str,
    group: str,
    expected: set[bytes],
    timeout_s: float,
    isolation_level: str = "read_uncommitted",
    commit: bool = True,
    linger_s: float = 0.0,
) -> set[bytes]:
    """Read the topic from the committed offsets (or the beginning) until every expected value is
    seen and at least linger_s seconds have passed; commit; return the smoke values seen."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level=isolation_level,
        session_timeout_ms=10000,
        heartbeat_interval_ms=1000,
    )
    await consumer.start()
    seen: set[bytes] = set()
    try:
        t0 = time.monotonic()
        deadline = t0 + timeout_s
        while not expected <= seen or time.monotonic() - t0 < linger_s:
            if time.monotonic() > deadline:
                raise SmokeError(
                    f"group {group!r} did not read {len(expected - seen)} of {len(expected)} "
                    f"expected messages within {timeout_s}s (got {len(seen)})"
                )
            batches = await consumer.getmany(timeout_ms=500)
            for _tp, records in batches.items():
                for rec in records:
                    if rec.value and rec.value.startswith(MARKER):
                        seen.add(rec.value)
        if commit:
            await consumer.commit()
            committed = {}
            for tp in consumer.assignment():
                committed[tp.partition] = await consumer.committed(tp)
            log(f"group {group!r} committed offsets {dict(sorted(committed.items()))}")
            if sum(v or 0 for v in committed.values()) <= 0:
                raise SmokeError(f"group {group!r} committed nothing")
    finally:
        await consumer.stop()
    return seen


async def committed_offsets(bootstrap: str, topic: str, group: str) -> dict[int, int | None]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        return {p: await consumer.committed(TopicPartition(topic, p)) for p in range(PARTITIONS)}
    finally:
        await consumer.stop()


async def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("bootstrap", help="bootstrap address, e.g. 127.0.0.1:59092")
    ap.add_argument("--topic", help="fixed topic name (default: a fresh smoke-<uuid> topic)")
    ap.add_argument("--keep", action="store_true", help="keep the topic afterwards")
    ap.add_argument(
        "--verify-only",
        action="store_true",
        help="produce nothing: check that the topic, its messages and the group's "
        "committed offsets are still there (use after a broker restart)",
    )
    ap.add_argument("--messages", type=int, default=5)
    ap.add_argument(
        "--no-transactions", action="store_true", help="skip the transactional-producer check"
    )
    ap.add_argument("--timeout", type=float, default=30.0, help="seconds per consume step")
    args = ap.parse_args()

    started = time.monotonic()
    run_id = uuid.uuid4().hex[:12]
    topic = args.topic or f"smoke-{run_id}"
    group = f"{topic}-group"
    bootstrap = args.bootstrap

    if args.verify_only:
        if not args.topic:
            raise SmokeError("--verify-only needs --topic")
        await ensure_topic(bootstrap, topic, must_exist=True)
        offsets = await committed_offsets(bootstrap, topic, group)
        log(f"group {group!r} committed offsets after restart: {offsets}")
        if not any(offsets.values()):
            raise SmokeError(f"group {group!r} has no committed offsets any more")
        # Read everything from the beginning (no group): must find earlier runs' messages.
        seen: set[bytes] = set()
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        try:
            tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
            end = await consumer.end_offsets(tps)
            deadline = time.monotonic() + args.timeout
            # Positions, not record counts: transaction markers take offsets too.
            while any([await consumer.position(tp) < end[tp] for tp in tps]):
                if time.monotonic() > deadline:
                    raise SmokeError(f"could not read {topic!r} up to its end offsets {end}")
                for _tp, recs in (await consumer.getmany(timeout_ms=500)).items():
                    for rec in recs:
                        if rec.value and rec.value.startswith(MARKER):
                            seen.add(rec.value)
        finally:
            await consumer.stop()
        if not seen:
            raise SmokeError(f"no smoke messages left in {topic!r} (end offsets {end})")
        log(f"read back {len(seen)} smoke messages written before the restart")
        print(
            f"kafka smoke OK (verify-only): topic {topic!r} kept {len(seen)} messages, "
            f"group offsets {offsets}, {time.monotonic() - started:.1f}s",
            flush=True,
        )
        return 0

    await ensure_topic(bootstrap, topic, must_exist=False)
    values = await produce(bootstrap, topic, run_id, args.messages)
    seen = await consume(bootstrap, topic, group, set(values), timeout_s=args.timeout)
    missing = set(values) - seen
    if missing:
        raise SmokeError(f"messages did not round-trip: {missing}")
    log(f"all {len(values)} messages round-tripped through group {group!r}")

    # The group resumes from its committed offsets: a second pass must not see them again.
    again = await consume(bootstrap, topic, group, set(), timeout_s=10, commit=False, linger_s=2.0)
    if set(values) & again:
        raise SmokeError("committed messages were delivered again to the same group")

    tx_note = "transactions skipped"
    if not args.no_transactions:
        committed, aborted = await produce_transactional(bootstrap, topic, run_id)
        rc_seen = await consume(
            bootstrap,
            topic,
            f"{group}-rc-{run_id}",
            {committed},
            timeout_s=args.timeout,
            isolation_level="read_committed",
            commit=False,
        )
        if aborted in rc_seen:
            raise SmokeError("read_committed consumer saw an aborted transactional message")
        tx_note = "transactions OK"
        log("read_committed consumer saw the committed and not the aborted transaction")

    if not args.keep:
        await delete_topic(bootstrap, topic)
    print(
        f"kafka smoke OK: {len(values)} messages round-tripped on {topic!r}, {tx_note}, "
        f"{time.monotonic() - started:.1f}s",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    try:
        sys.exit(asyncio.run(main()))
    except SmokeError as exc:
        print(f"kafka smoke FAILED: {exc}", file=sys.stderr, flush=True)
        sys.exit(1)
