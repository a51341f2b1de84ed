"""The embedded mode's webhook inbox: a SQLite file of its own beside ingest's database
(`var/ingest-inbox.db` next to `var/ingest.db`) where the receive path stores deliveries.

Why a second file: SQLite has one writer per file. In ingest.db the receive path would queue behind
the processor's transactions (facts, daily rows, outbox), the outbox relay's and the API's; in its
own file it queues behind nobody. The processor moves inbox rows into ingest.db's
`webhook_deliveries` (pending, as before) and processes them there, unchanged.

Everything here runs on one dedicated thread with plain sqlite3 connections: a batch of deliveries
costs one hop to that thread (check, insert, commit), and the thread is the inbox's only writer
(receive batches and the removal of moved rows take turns on it), so its write lock is never
contended and no busy handler ever sleeps.

Exactness:
* Deduplication: a delivery is new if neither the inbox nor ingest.db's `webhook_deliveries` holds
  its identity. The check runs inside the inbox's write transaction; a row leaves the inbox only
  after its copy in ingest.db has committed, and on this same thread, so whenever the check runs
  a received delivery is in one of the two places (reads of ingest.db see every committed write:
  each read is its own transaction in autocommit mode).
* Nothing lost: a delivery is answered 2xx after the inbox commit; it is removed from the inbox
  only after ingest.db committed it. A crash between those two leaves it in both, and the next
  move skips it (insert-or-ignore on the identity), so it is processed once.
* Durability is the same as ingest.db's: WAL with synchronous=NORMAL, i.e. a committed delivery
  survives the process being killed; an operating-system crash may lose the last commits.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy.engine import make_url

T = TypeVar("T")

# The identity a delivery is deduplicated on, and every column the receive path writes.
IDENTITY = ("tenant_id", "store_id", "platform", "delivery_id")
COLUMNS = (*IDENTITY, "topic", "status", "payload", "received_at")

# AUTOINCREMENT: ids are never reused, so arrival order holds across removals.
SCHEMA = """
CREATE TABLE IF NOT EXISTS inbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id TEXT NOT NULL,
    store_id TEXT NOT NULL,
    platform TEXT NOT NULL,
    delivery_id TEXT NOT NULL,
    topic TEXT NOT NULL,
    status TEXT NOT NULL,
    payload TEXT NOT NULL,
    received_at TEXT NOT NULL,
    UNIQUE (tenant_id, store_id, platform, delivery_id)
)
"""


# Lists travel as one JSON parameter (json_each), so every statement is a constant.
_INBOX_IDS = (
    "SELECT delivery_id FROM inbox WHERE tenant_id = ? AND store_id = ? AND platform = ? "
    "AND delivery_id IN (SELECT value FROM json_each(?))"
)
_MAIN_IDS = (
    "SELECT delivery_id FROM webhook_deliveries WHERE tenant_id = ? AND store_id = ? "
    "AND platform = ? AND delivery_id IN (SELECT value FROM json_each(?))"
)
_INSERT = (
    "INSERT INTO inbox (tenant_id, store_id, platform, delivery_id, topic, status, payload, "
    "received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_TAKE = (
    "SELECT id, tenant_id, store_id, platform, delivery_id, topic, status, payload, received_at "
    "FROM inbox ORDER BY id LIMIT ?"
)
_REMOVE = "DELETE FROM inbox WHERE id IN (SELECT value FROM json_each(?))"


def inbox_path(database_url: str) -> Path | None:
    """The inbox beside a SQLite database file; None for PostgreSQL or an in-memory SQLite
    (there the receive path writes to the service's database, as one writer among many is
    what PostgreSQL is made for)."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    main = Path(url.database)
    return main.with_name(f"{main.stem}-inbox{main.suffix or '.db'}")


class Inbox:
    """The inbox file and a read-only view of ingest.db's deliveries, on one thread."""

    def __init__(self, path: Path, main_path: Path) -> None:
        self.path = path
        self.main_path = main_path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="webhook-inbox")
        self._inbox: sqlite3.Connection | None = None
        self._main: sqlite3.Connection | None = None

    @classmethod
    def for_database(cls, database_url: str) -> Inbox | None:
        path = inbox_path(database_url)
        if path is None:
            return None
        return cls(path, Path(make_url(database_url).database or ""))

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    # ---- on the inbox thread -------------------------------------------------------------

    def _connections(self) -> tuple[sqlite3.Connection, sqlite3.Connection]:
        if self._inbox is None or self._main is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            inbox = sqlite3.connect(self.path, isolation_level=None, timeout=30)
            inbox.execute("PRAGMA journal_mode=WAL")
            inbox.execute("PRAGMA synchronous=NORMAL")
            inbox.execute("PRAGMA busy_timeout=30000")
            inbox.execute(SCHEMA)
            main = sqlite3.connect(self.main_path, isolation_level=None, timeout=30)
            main.execute("PRAGMA busy_timeout=30000")
            main.execute("PRAGMA query_only=ON")  # ingest.db is only read from here
            self._inbox, self._main = inbox, main
        return self._inbox, self._main

    @staticmethod
    def _existing(
        con: sqlite3.Connection, query: str, rows: Sequence[dict[str, Any]]
    ) -> set[tuple[str, ...]]:
        by_store: dict[tuple[str, str, str], set[str]] = {}
        for r in rows:
            by_store.setdefault((r["tenant_id"], r["store_id"], r["platform"]), set()).add(
                r["delivery_id"]
            )
        found: set[tuple[str, ...]] = set()
        for (tenant, store, platform), ids in by_store.items():
            for (d,) in con.execute(query, (tenant, store, platform, json.dumps(sorted(ids)))):
                found.add((tenant, store, platform, d))
        return found

    def _insert(self, rows: Sequence[dict[str, Any]]) -> list[bool]:
        inbox, main = self._connections()
        inbox.execute("BEGIN IMMEDIATE")
        try:
            # Under the inbox's write lock, so no move can slip a delivery out of the inbox
            # between the two reads (see the module docstring).
            seen = self._existing(inbox, _INBOX_IDS, rows) | self._existing(main, _MAIN_IDS, rows)
            fresh: list[tuple[Any, ...]] = []
            out: list[bool] = []
            for r in rows:
                key = tuple(r[k] for k in IDENTITY)
                if key in seen:
                    out.append(False)
                    continue
                seen.add(key)
                out.append(True)
                fresh.append(
                    (
                        *key,
                        r["topic"],
                        r["status"],
                        r["payload"],
                        r["received_at"].astimezone(UTC).isoformat(),
                    )
                )
            if fresh:
                inbox.executemany(_INSERT, fresh)
            inbox.execute("COMMIT")
        except BaseException:
            inbox.execute("ROLLBACK")
            raise
        return out

    def _take(self, limit: int) -> list[dict[str, Any]]:
        inbox, _ = self._connections()
        cur = inbox.execute(_TAKE, (limit,))
        out = []
        for row in cur.fetchall():
            values = dict(zip(("id", *COLUMNS), row, strict=True))
            values["received_at"] = datetime.fromisoformat(values["received_at"])
            out.append(values)
        return out

    def _remove(self, ids: Sequence[int]) -> None:
        inbox, _ = self._connections()
        inbox.execute("BEGIN IMMEDIATE")
        try:
            inbox.execute(_REMOVE, (json.dumps(list(ids)),))
            inbox.execute("COMMIT")
        except BaseException:
            inbox.execute("ROLLBACK")
            raise

    def _count(self) -> int:
        inbox, _ = self._connections()
        return int(inbox.execute("SELECT count(*) FROM inbox").fetchone()[0])

    def _close(self) -> None:
        for con in (self._inbox, self._main):
            if con is not None:
                con.close()
        self._inbox = self._main = None

    # ---- from the event loop -------------------------------------------------------------

    async def insert(self, rows: Sequence[dict[str, Any]]) -> list[bool]:
        """Store deliveries (values as for `webhook_deliveries`) in one transaction; per row,
        True if new, False if the inbox or ingest.db already holds its identity or an earlier
        row of the batch repeats it."""
        if not rows:
            return []
        return await self._run(self._insert, list(rows))

    async def take(self, limit: int) -> list[dict[str, Any]]:
        """The oldest deliveries (arrival order), with their inbox `id`; they stay in the inbox
        until `remove`."""
        return await self._run(self._take, limit)

    async def remove(self, ids: Sequence[int]) -> None:
        """Drop moved deliveries; call only once their copies in ingest.db have committed."""
        if ids:
            await self._run(self._remove, list(ids))

    async def count(self) -> int:
        return await self._run(self._count)

    async def close(self) -> None:
        await self._run(self._close)
        self._executor.shutdown(wait=False)
