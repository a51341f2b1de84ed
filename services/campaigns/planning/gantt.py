"""The Gantt chart as SVG, for a person to read: weeks across the top, festival phases as bands
(stacked so their labels never collide), a lane per owner, a bar per task at its dates, the
critical path in red, late tasks (negative slack) hatched and conflicting ones outlined, both in
the legend; dependency arrows from each predecessor to its successor; full task names wrapped in
the label column, with a <title> tooltip on every bar. Pure: dates in, SVG text out."""

from __future__ import annotations

import datetime as dt
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

DAY = 22  # px per day
LABEL = 320  # px of the label column
LINE = 13  # px per line of a wrapped name
ROW_PAD = 10
LANE_HEADER = 20
PHASE_ROW = 16
CHAR = 6.2  # px per character at font-size 10-11, a generous estimate for layout
WRAP = 46  # characters per line of a task name in the label column


@dataclass(frozen=True)
class Bar:
    id: str
    name: str
    owner_role: str
    start: dt.date
    due: dt.date
    milestone: bool
    critical: bool
    slack: int
    status: str
    late: bool = False
    conflicts: tuple[str, ...] = ()  # the conflict types the task is in
    depends_on: tuple[tuple[str, str], ...] = ()  # (predecessor id, FS|SS)
    pinned: bool = False
    baseline: tuple[dt.date, dt.date] | None = None  # first planned dates, when they differ


@dataclass
class _Placed:
    bar: Bar
    y: int  # top of the row
    h: int  # row height
    lines: list[str] = field(default_factory=list)

    @property
    def mid(self) -> int:
        return self.y + self.h // 2


def x_of(day: dt.date, origin: dt.date) -> int:
    return LABEL + (day - origin).days * DAY


def _tracks(
    phases: Sequence[tuple[str, dt.date, dt.date]], origin: dt.date, last: dt.date
) -> list[tuple[int, str, int, int]]:
    """Phase bands placed on rows so that no two (band or label) overlap: (row, name, x, w)."""
    ends: list[float] = []  # right edge of what each row holds so far
    out = []
    for name, p_start, p_end in sorted(phases, key=lambda p: (p[1], p[2])):
        s, e = max(p_start, origin), min(p_end, last)
        if e < s:
            continue
        x = x_of(s, origin)
        w = ((e - s).days + 1) * DAY
        right = max(x + w, x + 3 + len(name) * CHAR) + 4
        row = next((i for i, end in enumerate(ends) if end <= x), None)
        if row is None:
            ends.append(right)
            row = len(ends) - 1
        else:
            ends[row] = right
        out.append((row, name, x, w))
    return out


LEGEND = [
    ('<rect class="bar critical" x="{x}" y="{y}" width="14" height="8" rx="2"/>', "critical path"),
    ('<rect class="bar" x="{x}" y="{y}" width="14" height="8" rx="2"/>', "task"),
    ('<polygon class="ms" points="{cx},{top} {r},{cy} {cx},{bot} {x},{cy}"/>', "milestone"),
    (
        '<rect class="bar late" x="{x}" y="{y}" width="14" height="8" rx="2"/>',
        "late (negative slack)",
    ),
    (
        '<rect class="bar conflict" x="{x}" y="{y}" width="14" height="8" rx="2"/>',
        "conflict (capacity, dependency)",
    ),
    ('<path class="dep" d="M{x} {cy} H{r}" marker-end="url(#arrow)"/>', "dependency"),
    (
        '<rect class="baseline" x="{x}" y="{cy}" width="14" height="4"/>',
        "baseline (as first planned)",
    ),
    ('<rect class="holiday" x="{x}" y="{y}" width="14" height="8"/>', "holiday"),
    ('<rect class="off" x="{x}" y="{y}" width="14" height="8"/>', "off-day"),
    ('<line class="today" x1="{cx}" y1="{top}" x2="{cx}" y2="{bot}"/>', "today"),
]
STYLE = (
    "<style>.bar{fill:#4a7fc1}.bar.critical{fill:#d9453b}.bar.done{opacity:.45}"
    ".bar.late{fill:url(#hatch);stroke:#8a1c14;stroke-width:1.5}"
    ".bar.conflict,.ms.conflict{stroke:#e08a00;stroke-width:2.5;stroke-dasharray:4 2}"
    ".ms{fill:#333}.ms.critical{fill:#d9453b}.ms.late{fill:#8a1c14}"
    ".off{fill:#eceff3}.holiday{fill:#f7dede}"
    ".today{stroke:#1a9a4a;stroke-width:2}.week{stroke:#c8ccd2}"
    ".phase{fill:#fff1c9;stroke:#e0c46c}.phase.pause{fill:#e3e7ee;stroke:#a8b0bb}"
    ".lane-bg{fill:#f3f5f8}.sep{stroke:#9aa3ad}.baseline{fill:#8d96a0;opacity:.8}"
    ".dep{fill:none;stroke:#55606b;stroke-width:1.2}.dep.critical{stroke:#d9453b}"
    ".late-label{fill:#8a1c14;font-weight:bold}text{fill:#222}</style>"
)
DEFS = (
    '<defs><marker id="arrow" viewBox="0 0 8 8" refX="7" refY="4" markerWidth="7" '
    'markerHeight="7" orient="auto-start-reverse"><path d="M0 0 L8 4 L0 8 z" fill="#55606b"/>'
    '</marker><pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" '
    'patternTransform="rotate(45)"><rect width="6" height="6" fill="#f0a39c"/>'
    '<line x1="0" y1="0" x2="0" y2="6" stroke="#8a1c14" stroke-width="2"/></pattern></defs>'
)


def render(
    *,
    title: str,
    bars: Sequence[Bar],
    start: dt.date,
    end: dt.date,
    today: dt.date,
    off_days: Sequence[dt.date],
    holidays: Sequence[tuple[dt.date, str]],
    phases: Sequence[tuple[str, dt.date, dt.date]],
    pauses: Sequence[str] = (),
) -> str:
    origin = start - dt.timedelta(days=start.weekday())  # a Monday: weeks line up
    last = end + dt.timedelta(days=6 - end.weekday())
    days = (last - origin).days + 1
    tracks = _tracks(phases, origin, last)
    n_tracks = max([t[0] for t in tracks], default=-1) + 1
    legend_rows = (len(LEGEND) + 2) // 3
    phase_top = 30 + legend_rows * 16 + 6
    week_top = phase_top + n_tracks * PHASE_ROW + 4
    body_top = week_top + 16
    lanes: dict[str, list[_Placed]] = {}
    for b in sorted(bars, key=lambda b: (b.start, b.due, b.id)):
        lines = textwrap.wrap(b.name, WRAP) or [b.name]
        h = max(24, len(lines) * LINE + ROW_PAD)
        lanes.setdefault(b.owner_role, []).append(_Placed(b, 0, h, lines))
    y = body_top
    for placed in lanes.values():
        y += LANE_HEADER
        for p in placed:
            p.y = y
            y += p.h
    height = y + 30
    width = LABEL + days * DAY + 20
    out: list[str] = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="DejaVu Sans, Arial, sans-serif" '
        f'font-size="11" data-origin="{origin.isoformat()}" data-day-width="{DAY}">',
        STYLE,
        DEFS,
        f'<rect width="{width}" height="{height}" fill="#fff"/>',
        f'<text x="10" y="18" font-size="14" font-weight="bold">{escape(title)}</text>',
    ]
    out.append('<g class="legend">')
    for i, (shape, label) in enumerate(LEGEND):
        lx, ly = 10 + (i % 3) * 200, 30 + (i // 3) * 16
        out.append(
            shape.format(x=lx, y=ly, cx=lx + 7, cy=ly + 4, r=lx + 14, top=ly - 2, bot=ly + 10)
            + f'<text x="{lx + 18}" y="{ly + 8}" font-size="10">{escape(label)}</text>'
        )
    out.append("</g>")
    hol = dict(holidays)
    for d in off_days:
        if origin <= d <= last:
            cls = "holiday" if d in hol else "off"
            label = f"<title>{escape(hol[d])}</title>" if d in hol else ""
            out.append(
                f'<rect class="{cls}" data-date="{d.isoformat()}" x="{x_of(d, origin)}" '
                f'y="{body_top}" width="{DAY}" height="{height - body_top - 20}">{label}</rect>'
            )
    for row, name, x, w in tracks:
        py = phase_top + row * PHASE_ROW
        cls = "phase pause" if name in pauses else "phase"
        out.append(
            f'<rect class="{cls}" data-phase="{escape(name)}" x="{x}" y="{py}" width="{w}" '
            f'height="14"><title>{escape(name)}</title></rect>'
            f'<text class="phase-label" x="{x + 3}" y="{py + 11}" font-size="10">'
            f"{escape(name)}</text>"
        )
    week = origin
    while week <= last:
        x = x_of(week, origin)
        iso = week.isocalendar()
        out.append(
            f'<line class="week" data-week="{iso.year}-W{iso.week:02d}" x1="{x}" '
            f'y1="{week_top}" x2="{x}" y2="{height - 20}"/>'
            f'<text class="week-label" x="{x + 3}" y="{week_top + 11}" font-size="10">'
            f"W{iso.week:02d} {week.strftime('%b %d')}</text>"
        )
        week += dt.timedelta(days=7)
    placed_by_id: dict[str, _Placed] = {}
    y = body_top
    for owner, lane in lanes.items():
        lane_h = LANE_HEADER + sum(p.h for p in lane)
        out.append(
            f'<g class="lane" data-owner="{escape(owner)}">'
            f'<rect class="lane-bg" x="0" y="{y}" width="{LABEL - 4}" height="{lane_h}"/>'
            f'<line class="sep" x1="0" y1="{y}" x2="{width}" y2="{y}"/>'
            f'<text x="6" y="{y + 14}" font-weight="bold">{escape(owner)}</text>'
        )
        for p in lane:
            out.append(_row(p, origin))
            placed_by_id[p.bar.id] = p
        out.append("</g>")
        y += lane_h
    out.append('<g class="dependencies">')
    for p in placed_by_id.values():
        for pred_id, kind in p.bar.depends_on:
            pred = placed_by_id.get(pred_id)
            if pred is not None:
                out.append(_arrow(pred, p, kind, origin))
    out.append("</g>")
    if origin <= today <= last:
        tx = x_of(today, origin) + DAY // 2
        out.append(
            f'<line class="today" data-date="{today.isoformat()}" x1="{tx}" y1="{week_top}" '
            f'x2="{tx}" y2="{height - 20}"/><text x="{tx + 3}" y="{height - 6}" '
            f'fill="#1a9a4a">today</text>'
        )
    out.append("</svg>")
    return "\n".join(out)


def _row(p: _Placed, origin: dt.date) -> str:
    b = p.bar
    cls = " critical" if b.critical else ""
    cls += " done" if b.status == "done" else ""
    cls += " late" if b.late else ""
    cls += " conflict" if b.conflicts else ""
    first = p.y + (p.h - len(p.lines) * LINE) // 2 + LINE - 2
    spans = "".join(
        f'<tspan x="14" y="{first + i * LINE}">{escape(line)}</tspan>'
        for i, line in enumerate(p.lines)
    )
    flags = []
    if b.late:
        flags.append(f"late by {-b.slack} working days")
    if b.conflicts:
        flags.append("conflict: " + ", ".join(b.conflicts))
    if b.pinned:
        flags.append("pinned to the festival")
    if b.baseline is not None:
        flags.append(f"first planned {b.baseline[0]} - {b.baseline[1]}")
    extra = ("; " + "; ".join(flags)) if flags else ""
    tip = (
        f"<title>{escape(b.name)} ({escape(b.owner_role)}): {b.start} - {b.due}, "
        f"slack {b.slack}, {escape(b.status)}{escape(extra)}</title>"
    )
    label_cls = "task-label late-label" if b.late else "task-label"
    text = f'<text class="{label_cls}" data-task-id="{escape(b.id)}">{tip}{spans}</text>'
    common = (
        f'data-task-id="{escape(b.id)}" data-start="{b.start.isoformat()}" '
        f'data-due="{b.due.isoformat()}" data-slack="{b.slack}"'
    )
    if b.milestone:
        cx = x_of(b.start, origin) + DAY // 2
        cy = p.mid
        return text + (
            f'<polygon class="ms{cls}" {common} points="{cx},{cy - 8} {cx + 8},{cy} '
            f'{cx},{cy + 8} {cx - 8},{cy}">{tip}</polygon>'
        )
    x = x_of(b.start, origin)
    w = ((b.due - b.start).days + 1) * DAY
    if b.baseline is not None:
        bs, bd = b.baseline
        text += (
            f'<rect class="baseline" data-task-id="{escape(b.id)}" '
            f'data-start="{bs.isoformat()}" data-due="{bd.isoformat()}" x="{x_of(bs, origin)}" '
            f'y="{p.mid + 8}" width="{((bd - bs).days + 1) * DAY}" height="3">'
            f"<title>{escape(b.name)}: first planned {bs} - {bd}</title></rect>"
        )
    return text + (
        f'<rect class="bar{cls}" {common} x="{x}" y="{p.mid - 7}" width="{w}" height="14" '
        f'rx="3">{tip}</rect>'
    )


def _edges(p: _Placed, origin: dt.date) -> tuple[int, int]:
    """(left, right) x of a task's shape."""
    b = p.bar
    if b.milestone:
        cx = x_of(b.start, origin) + DAY // 2
        return cx - 8, cx + 8
    return x_of(b.start, origin), x_of(b.due, origin) + DAY


def _arrow(pred: _Placed, succ: _Placed, kind: str, origin: dt.date) -> str:
    """An elbow from the predecessor's end (its start for SS) to the successor's start."""
    p_left, p_right = _edges(pred, origin)
    s_left, _ = _edges(succ, origin)
    x1 = p_left if kind == "SS" else p_right
    y1, y2 = pred.mid, succ.mid
    x2 = s_left - 1
    if x2 - 8 >= x1:
        elbow = x1 + max(4, min(10, (x2 - x1) // 2))
        d = f"M{x1} {y1} H{elbow} V{y2} H{x2}"
    else:  # the successor starts before the predecessor's edge: go round below it
        turn = pred.y + pred.h - 2 if y2 > y1 else pred.y + 2
        d = f"M{x1} {y1} h6 V{turn} H{x2 - 8} V{y2} H{x2}"
    cls = "dep critical" if pred.bar.critical and succ.bar.critical else "dep"
    return (
        f'<path class="{cls}" data-from="{escape(pred.bar.id)}" data-to="{escape(succ.bar.id)}" '
        f'data-type="{kind}" d="{d}" marker-end="url(#arrow)"/>'
    )
