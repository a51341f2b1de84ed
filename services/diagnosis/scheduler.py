"""Automatic diagnosis: every round, each active store's local yesterday becomes due once the
cut-off hour has passed in the store's timezone, and a day whose data changed after its last
diagnosis is due again (late data, up to `late_data_days` back; never-diagnosed days up to
`backfill_days` back), once no new data came for `debounce_seconds`.

Work is claimed in the database (a lease on the store-day rows, taken by a conditional update),
so any number of pods can run this loop and a store-day is diagnosed by one of them. A worker
takes all the due days of one store and does them oldest first, each in its own transaction:
the findings' lifecycle across days then sees the days in order.
"""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import structlog

from services.diagnosis import metrics, service
from services.diagnosis import repository as repo
from shared.bus import is_transient
from shared.config import DiagnosisSettings
from shared.errors import DomainError

log = structlog.get_logger("diagnosis.scheduler")


class Scheduler:
    def __init__(self, state: Any, settings: DiagnosisSettings) -> None:
        self.state = state
        self.settings = settings
        self.worker = f"{socket.gethostname()[:40]}-{uuid.uuid4().hex[:8]}"
        self._ensured: dict[tuple[str, str], date] = {}

    def _cutoff_passed(self, timezone: str, day: date, now: datetime) -> bool:
        local = now.astimezone(ZoneInfo(timezone))
        due = datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(timezone)) + timedelta(
            days=1, hours=self.settings.cutoff_hour
        )
        return local >= due

    def _yesterday(self, timezone: str, now: datetime) -> date:
        """The newest local day whose cut-off has passed."""
        local = now.astimezone(ZoneInfo(timezone))
        back = 1 if local.hour >= self.settings.cutoff_hour else 2
        return local.date() - timedelta(days=back)

    async def ensure_due_days(self, now: datetime) -> None:
        """A store whose feed is live gets its yesterday scheduled even with no row for it: a
        day without data is a data problem to report, not a day to skip."""
        s = self.settings
        async with self.state.db.session(readonly=True) as session:
            stores = await repo.active_stores(session)
            live = await repo.recent_store_days(
                session, now.date() - timedelta(days=s.late_data_days + 2)
            )
        keys = []
        for st in stores:
            k = (st.tenant_id, st.store_id)
            if k not in live:
                continue
            y = self._yesterday(st.timezone, now)
            if self._ensured.get(k) == y:
                continue
            keys.append((st.tenant_id, st.store_id, y))
            self._ensured[k] = y
        if keys:
            async with self.state.db.session() as session:
                await repo.ensure_days(session, keys, datetime.now(UTC))
                await session.commit()

    async def claim(self, now: datetime) -> list[tuple[str, str, list[date]]]:
        """`now` decides which days are due (cut-offs, windows); the debounce and the leases
        run on the wall clock, like the data's timestamps."""
        s = self.settings
        wall = datetime.now(UTC)
        since = now.date() - timedelta(days=max(s.backfill_days, s.late_data_days) + 2)
        async with self.state.db.session(readonly=True) as session:
            rows = await repo.pending_days(
                session,
                since,
                now.date() + timedelta(days=1),
                wall,
                timedelta(seconds=s.debounce_seconds),
                s.max_claims_per_round * 10,
            )
        per_store: dict[tuple[str, str], list[date]] = defaultdict(list)
        for r in rows:
            if not self._cutoff_passed(r.timezone, r.date, now):
                continue
            today = now.astimezone(ZoneInfo(r.timezone)).date()
            window = s.late_data_days if r.diagnosed_version else s.backfill_days
            if r.date < today - timedelta(days=window + 1):
                continue
            per_store[(r.tenant_id, r.store_id)].append(r.date)
        metrics.PENDING.set(sum(len(v) for v in per_store.values()))
        claimed = []
        lease = wall + timedelta(seconds=s.claim_lease_seconds)
        budget = s.max_claims_per_round
        # One transaction for the round's claims: each is still a conditional update per
        # store-day, so a row another pod holds is simply not taken.
        async with self.state.db.session() as session:
            for (tenant, store), days in per_store.items():
                if budget <= 0:
                    break
                taken = await repo.claim_days(
                    session, tenant, store, sorted(days), self.worker, wall, lease
                )
                if taken:
                    claimed.append((tenant, store, taken))
                    budget -= len(taken)
            await session.commit()
        return claimed

    async def diagnose_day(self, tenant: str, store_id: str, day: date) -> bool:
        s = self.settings
        started = time.perf_counter()
        async with self.state.db.session(readonly=True) as session:
            store = await repo.get_store(session, tenant, store_id)
            state = await repo.get_day(session, tenant, store_id, day)
            if store is None or state is None:
                return False
            loaded = await service.load_store_day(session, store, day, None, s.history_days)
        data_version = state.data_version
        trigger = "late_data" if state.diagnosed_version else "scheduled"
        async with self.state.db.session() as session:
            if loaded.rows:
                rep = await service.run_engine(loaded)
                await service.persist_diagnosis(session, loaded, rep, trigger=trigger)
            # Records the data version this diagnosis read: data that arrived meanwhile makes
            # the day due again.
            await repo.finish_day(session, tenant, store_id, day, data_version, self.worker)
            await session.commit()
        metrics.DURATION.labels(trigger).observe(time.perf_counter() - started)
        return bool(loaded.rows)

    async def _store_worker(self, tenant: str, store_id: str, days: list[date]) -> int:
        done = 0
        for day in sorted(days):
            try:
                done += await self.diagnose_day(tenant, store_id, day)
            except Exception as exc:  # one store-day's failure never stops the others
                metrics.FAILURES.labels(type(exc).__name__).inc()
                log.warning(
                    "diagnosis_failed",
                    tenant_id=tenant,
                    store_id=store_id,
                    date=day.isoformat(),
                    error=str(exc),
                    transient=is_transient(exc),
                    domain=isinstance(exc, DomainError),
                )
                async with self.state.db.session() as session:
                    await repo.release_day(session, tenant, store_id, day, self.worker)
                    await session.commit()
        # Once per store rather than per day: the relay publishes the store's events together.
        self.state.relay.wake()
        return done

    async def run_once(self, now: datetime | None = None) -> int:
        """One round: schedule, claim, diagnose (up to `workers` stores at once). Returns the
        number of reports produced."""
        now = now or datetime.now(UTC)
        await self.ensure_due_days(now)
        async with self.state.db.session() as session:
            if await service.wake_snoozed(session, now):
                await session.commit()
                self.state.relay.wake()
        claimed = await self.claim(now)
        sem = asyncio.Semaphore(self.settings.workers)

        async def one(t: str, st: str, ds: list[date]) -> int:
            async with sem:
                return await self._store_worker(t, st, ds)

        results = await asyncio.gather(*(one(t, st, ds) for t, st, ds in claimed))
        async with self.state.db.session(readonly=True) as session:
            await service.refresh_open_gauge(session)
        return sum(results)

    async def run_until_idle(self, now: datetime | None = None, rounds: int = 100) -> int:
        total = 0
        for _ in range(rounds):
            n = await self.run_once(now)
            total += n
            if n == 0:
                break
        return total


async def run_scheduler(state: Any) -> None:
    """The background loop (ServiceSpec.background)."""
    settings: DiagnosisSettings = state.settings
    scheduler = Scheduler(state, settings)
    state.scheduler = scheduler
    if not settings.auto_diagnose:
        return
    while True:
        try:
            await scheduler.run_once()
        except Exception as exc:  # a failed round is retried at the next tick
            log.warning("diagnosis_round_failed", error=str(exc), transient=is_transient(exc))
        await asyncio.sleep(settings.schedule_interval_seconds)
