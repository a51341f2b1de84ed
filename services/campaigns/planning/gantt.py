"""The Gantt chart as SVG: weeks across the top, a lane per owner, a bar per task at its dates,
the critical path in red, milestones as diamonds, off-days shaded, a today line; pure."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape

DAY = 22  # px per day
LABEL = 250  # px of the label column
ROW = 24
HEADER = 64
LANE_HEADER = 20


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


def x_of(day: dt.date, origin: dt.date) -> int:
    return LABEL + (day - origin).days * DAY


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
) -> str:
    origin = start - dt.timedelta(days=start.weekday())  # a Monday: weeks line up
    last = end + dt.timedelta(days=6 - end.weekday())
    days = (last - origin).days + 1
    lanes: dict[str, list[Bar]] = {}
    for b in sorted(bars, key=lambda b: (b.start, b.due, b.id)):
        lanes.setdefault(b.owner_role, []).append(b)
    height = HEADER + sum(LANE_HEADER + ROW * len(v) for v in lanes.values()) + 30
    width = LABEL + days * DAY + 20
    out: list[str] = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="DejaVu Sans, Arial, sans-serif" '
        f'font-size="11" data-origin="{origin.isoformat()}" data-day-width="{DAY}">',
        "<style>.bar{fill:#4a7fc1}.bar.critical{fill:#d9453b}.bar.done{opacity:.45}"
        ".ms{fill:#333}.ms.critical{fill:#d9453b}.off{fill:#eceff3}.holiday{fill:#f7dede}"
        ".today{stroke:#1a9a4a;stroke-width:2}.week{stroke:#c8ccd2}"
        ".phase{fill:#fff1c9;stroke:#e0c46c}.lane-bg{fill:#f3f5f8}.sep{stroke:#9aa3ad}"
        "text{fill:#222}</style>",
        f'<rect width="{width}" height="{height}" fill="#fff"/>',
        f'<text x="10" y="18" font-size="14" font-weight="bold">{escape(title)}</text>',
    ]
    # Legend, in the label column above the lanes.
    legend = [
        ('<rect class="bar critical" x="{x}" y="{y}" width="14" height="8" rx="2"/>', "critical"),
        ('<rect class="bar" x="{x}" y="{y}" width="14" height="8" rx="2"/>', "task"),
        ('<polygon class="ms" points="{cx},{top} {r},{cy} {cx},{bot} {x},{cy}"/>', "milestone"),
        ('<rect class="holiday" x="{x}" y="{y}" width="14" height="8"/>', "holiday"),
        ('<rect class="off" x="{x}" y="{y}" width="14" height="8"/>', "off-day"),
        ('<line class="today" x1="{cx}" y1="{top}" x2="{cx}" y2="{bot}"/>', "today"),
    ]
    for i, (shape, label) in enumerate(legend):
        lx, ly = 10 + (i % 3) * 80, 30 + (i // 3) * 16
        out.append(
            shape.format(x=lx, y=ly, cx=lx + 7, cy=ly + 4, r=lx + 14, top=ly - 2, bot=ly + 10)
            + f'<text x="{lx + 18}" y="{ly + 8}" font-size="10">{label}</text>'
        )
    body_top = HEADER
    hol = dict(holidays)
    for d in off_days:
        if origin <= d <= last:
            cls = "holiday" if d in hol else "off"
            label = f"<title>{escape(hol[d])}</title>" if d in hol else ""
            out.append(
                f'<rect class="{cls}" data-date="{d.isoformat()}" x="{x_of(d, origin)}" '
                f'y="{body_top}" width="{DAY}" height="{height - body_top - 20}">{label}</rect>'
            )
    for name, p_start, p_end in phases:
        x = x_of(max(p_start, origin), origin)
        w = max(DAY, (min(p_end, last) - max(p_start, origin)).days * DAY + DAY)
        out.append(
            f'<rect class="phase" data-phase="{escape(name)}" x="{x}" y="40" width="{w}" '
            f'height="14"/><text x="{x + 3}" y="51" font-size="10">{escape(name)}</text>'
        )
    week = origin
    while week <= last:
        x = x_of(week, origin)
        iso = week.isocalendar()
        out.append(
            f'<line class="week" data-week="{iso.year}-W{iso.week:02d}" x1="{x}" y1="24" '
            f'x2="{x}" y2="{height - 20}"/><text x="{x + 3}" y="34">W{iso.week:02d} '
            f"{week.strftime('%b %d')}</text>"
        )
        week += dt.timedelta(days=7)
    y = body_top
    for owner, lane_bars in lanes.items():
        lane_h = LANE_HEADER + ROW * len(lane_bars)
        out.append(
            f'<g class="lane" data-owner="{escape(owner)}">'
            f'<rect class="lane-bg" x="0" y="{y}" width="{LABEL - 4}" height="{lane_h}"/>'
            f'<line class="sep" x1="0" y1="{y}" x2="{width}" y2="{y}"/>'
            f'<text x="6" y="{y + 14}" font-weight="bold">{escape(owner)}</text>'
        )
        row_y = y + LANE_HEADER
        for b in lane_bars:
            cls = " critical" if b.critical else ""
            cls += " done" if b.status == "done" else ""
            label = b.name if len(b.name) <= 34 else b.name[:33] + "\u2026"
            out.append(f'<text x="14" y="{row_y + 16}">{escape(label)}</text>')
            common = (
                f'data-task-id="{escape(b.id)}" data-start="{b.start.isoformat()}" '
                f'data-due="{b.due.isoformat()}" data-slack="{b.slack}"'
            )
            tip = f"<title>{escape(b.name)}: {b.start} - {b.due}, slack {b.slack}</title>"
            if b.milestone:
                cx = x_of(b.start, origin) + DAY // 2
                cy = row_y + ROW // 2
                out.append(
                    f'<polygon class="ms{cls}" {common} points="{cx},{cy - 8} {cx + 8},{cy} '
                    f'{cx},{cy + 8} {cx - 8},{cy}">{tip}</polygon>'
                )
            else:
                x = x_of(b.start, origin)
                w = ((b.due - b.start).days + 1) * DAY
                out.append(
                    f'<rect class="bar{cls}" {common} x="{x}" y="{row_y + 4}" width="{w}" '
                    f'height="{ROW - 8}" rx="3">{tip}</rect>'
                )
            row_y += ROW
        out.append("</g>")
        y += lane_h
    if origin <= today <= last:
        tx = x_of(today, origin) + DAY // 2
        out.append(
            f'<line class="today" data-date="{today.isoformat()}" x1="{tx}" y1="24" x2="{tx}" '
            f'y2="{height - 20}"/><text x="{tx + 3}" y="{height - 6}" fill="#1a9a4a">today</text>'
        )
    out.append("</svg>")
    return "\n".join(out)
