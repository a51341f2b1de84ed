"""Scheduling on working days and the critical path method (CPM); pure functions.

Positions are integers over the market's working days (shared.calendar.WorkDays). A task with
duration d > 0 occupies positions [es, es + d); a milestone (d = 0) sits at es. Dependencies:
finish-to-start (FS): successor.es >= predecessor.ef + lag; start-to-start (SS):
successor.es >= predecessor.es + lag.

Backward pass from the deadline (the event) gives each task its latest start/finish; the plan
starts at the earliest latest-start (the schedule is computed backwards from the event); the
forward pass from there gives the early dates the plan shows. slack = ls - es; the critical path
is the chain of tasks with the least slack. A pinned task (the main day, the start of the
pre-sale) cannot move; a `not_before` constraint is what moving a task sets.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

DepType = Literal["FS", "SS"]


class CycleError(ValueError):
    def __init__(self, cycle: list[str]) -> None:
        super().__init__("dependency cycle: " + " -> ".join(cycle))
        self.cycle = cycle


class UnknownDependency(ValueError):
    def __init__(self, task_id: str, missing: str) -> None:
        super().__init__(f"task {task_id!r} depends on {missing!r}, which is not in the plan")
        self.task_id = task_id
        self.missing = missing


@dataclass(frozen=True)
class Dep:
    task_id: str
    type: DepType = "FS"
    lag: int = 0


@dataclass
class Task:
    id: str
    duration: int
    deps: Sequence[Dep] = ()
    pin: int | None = None  # fixed start position
    not_before: int | None = None  # earliest start position (set by a move)
    deadline: int | None = None  # latest finish position (exclusive), when not the plan's


@dataclass
class Slot:
    es: int
    ef: int
    ls: int
    lf: int

    @property
    def slack(self) -> int:
        return self.ls - self.es


@dataclass
class Schedule:
    slots: dict[str, Slot]
    order: list[str]
    start: int
    critical: set[str] = field(default_factory=set)
    critical_path: list[str] = field(default_factory=list)
    late: list[str] = field(default_factory=list)  # tasks finishing after their latest finish


def topological_order(tasks: Sequence[Task]) -> list[str]:
    """Kahn's order, stable on input order; a cycle raises CycleError naming it."""
    ids = {t.id: i for i, t in enumerate(tasks)}
    indeg = {t.id: 0 for t in tasks}
    succ: dict[str, list[str]] = {t.id: [] for t in tasks}
    for t in tasks:
        for d in t.deps:
            if d.task_id not in ids:
                raise UnknownDependency(t.id, d.task_id)
            succ[d.task_id].append(t.id)
            indeg[t.id] += 1
    heap = [(ids[k], k) for k, v in indeg.items() if v == 0]
    heapq.heapify(heap)
    order: list[str] = []
    while heap:
        _, k = heapq.heappop(heap)
        order.append(k)
        for s in succ[k]:
            indeg[s] -= 1
            if indeg[s] == 0:
                heapq.heappush(heap, (ids[s], s))
    if len(order) != len(tasks):
        raise CycleError(find_cycle(tasks, {k for k, v in indeg.items() if v > 0}))
    return order


def find_cycle(tasks: Sequence[Task], within: set[str]) -> list[str]:
    preds = {t.id: [d.task_id for d in t.deps if d.task_id in within] for t in tasks}
    start = next(t.id for t in tasks if t.id in within)
    # Walk predecessors inside the cyclic remainder until a node repeats.
    path: list[str] = []
    seen: dict[str, int] = {}
    node = start
    while node not in seen:
        seen[node] = len(path)
        path.append(node)
        node = preds[node][0]
    cycle = path[seen[node] :]
    cycle.reverse()  # predecessor order -> dependency order
    return [*cycle, cycle[0]]


def schedule(tasks: Sequence[Task], deadline: int, *, floor: int | None = None) -> Schedule:
    """Full CPM: backward pass from `deadline` (exclusive finish position), plan start = the
    earliest latest-start (not before `floor`), forward pass from there."""
    order = topological_order(tasks)
    by_id = {t.id: t for t in tasks}
    succs: dict[str, list[tuple[str, Dep]]] = {t.id: [] for t in tasks}
    for t in tasks:
        for d in t.deps:
            succs[d.task_id].append((t.id, d))
    late: dict[str, tuple[int, int]] = {}
    for tid in reversed(order):
        t = by_id[tid]
        if t.pin is not None:
            ls = t.pin
            lf = ls + t.duration
        else:
            lf = t.deadline if t.deadline is not None else deadline
            for sid, d in succs[tid]:
                s_ls = late[sid][0]
                lf = min(lf, s_ls - d.lag if d.type == "FS" else s_ls - d.lag + t.duration)
            ls = lf - t.duration
        late[tid] = (ls, lf)
    start = min((v[0] for v in late.values()), default=deadline)
    if floor is not None:
        start = max(start, floor)
    slots: dict[str, Slot] = {}
    forward(order, by_id, late, slots, start)
    return finish(order, by_id, slots, start)


def forward(
    order: Sequence[str],
    by_id: dict[str, Task],
    late: dict[str, tuple[int, int]],
    slots: dict[str, Slot],
    start: int,
) -> None:
    for tid in order:
        t = by_id[tid]
        es = _early_start(t, slots, start)
        ls, lf = late[tid]
        slots[tid] = Slot(es, es + t.duration, ls, lf)


def _early_start(t: Task, slots: dict[str, Slot], start: int) -> int:
    if t.pin is not None:
        return t.pin
    es = t.not_before if t.not_before is not None else start
    for d in t.deps:
        p = slots[d.task_id]
        es = max(es, p.ef + d.lag if d.type == "FS" else p.es + d.lag)
    return es


def finish(
    order: Sequence[str], by_id: dict[str, Task], slots: dict[str, Slot], start: int
) -> Schedule:
    sched = Schedule(slots=slots, order=list(order), start=start)
    if not slots:
        return sched
    # The critical path is what has no float: the least slack when everything has some, and
    # once a slip makes tasks late, every task at zero or below, so the pinned milestones the
    # late chain runs into stay on it.
    least = min(s.slack for s in slots.values())
    threshold = max(least, 0) if least < 0 else least
    sched.critical = {k for k, s in slots.items() if s.slack <= threshold}
    sched.critical_path = [k for k in order if k in sched.critical]
    sched.late = [k for k in order if slots[k].ef > slots[k].lf or slots[k].es > slots[k].ls]
    return sched


class Planner:
    """A plan kept in memory for repeated moves: a move re-runs the forward pass over the moved
    task's descendants only (its latest dates do not change: nothing downstream moved), where
    the naive way recomputes everything."""

    def __init__(self, tasks: Sequence[Task], deadline: int) -> None:
        self.by_id = {t.id: t for t in tasks}
        self.deadline = deadline
        self.sched = schedule(tasks, deadline)
        self.pos = {k: i for i, k in enumerate(self.sched.order)}
        self.succs: dict[str, list[str]] = {t.id: [] for t in tasks}
        for t in tasks:
            for d in t.deps:
                self.succs[d.task_id].append(t.id)

    def move(self, task_id: str, not_before: int) -> list[str]:
        """Move a task to start no earlier than a position; returns the tasks whose dates
        changed, in topological order."""
        self.by_id[task_id].not_before = not_before
        slots = self.sched.slots
        changed: list[str] = []
        heap = [(self.pos[task_id], task_id)]
        queued = {task_id}
        while heap:
            _, tid = heapq.heappop(heap)
            t = self.by_id[tid]
            es = _early_start(t, slots, self.sched.start)
            old = slots[tid]
            if es == old.es and tid != task_id:
                continue
            if es != old.es:
                slots[tid] = Slot(es, es + t.duration, old.ls, old.lf)
                changed.append(tid)
            for s in self.succs[tid]:
                if s not in queued:
                    queued.add(s)
                    heapq.heappush(heap, (self.pos[s], s))
        fin = finish(self.sched.order, self.by_id, slots, self.sched.start)
        self.sched = fin
        return changed


def over_capacity(
    spans: Sequence[tuple[str, str, int, int]], capacity: dict[str, int], default: int
) -> list[tuple[str, int, list[str]]]:
    """(owner, position, task ids) where an owner has more tasks running than its capacity.
    spans: (task id, owner, es, ef); milestones (es == ef) take no capacity."""
    load: dict[tuple[str, int], list[str]] = {}
    for tid, owner, es, ef in spans:
        for p in range(es, ef):
            load.setdefault((owner, p), []).append(tid)
    return sorted(
        (owner, p, ids)
        for (owner, p), ids in load.items()
        if len(ids) > capacity.get(owner, default)
    )
