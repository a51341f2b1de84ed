"""Real clocks, as the NAB files have them: every row scored in file order, a warning, no
refusal (the fixtures: nab_clocks.py)."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from pathlib import Path

import pytest
from nab_clocks import dst_like, exchange_like, traffic_like, travel_time_like

from services.diagnosis import anomaly as cli
from services.diagnosis.engine.timeline import build_timeline, period_for

ROOT = Path(__file__).resolve().parents[3]


def _epochs(rows: list[tuple[str, str]]) -> list[float]:
    return [cli._epoch(t, 0) for t, _ in rows]


def test_repeated_timestamp_is_read_in_file_order_with_a_warning() -> None:
    rows = exchange_like()
    tl = build_timeline(_epochs(rows), [t for t, _ in rows])
    assert tl.index == list(range(len(rows))) and not tl.regular
    assert tl.step == 3600 and period_for(tl.step, tl.length) == 24
    (warning,) = tl.warnings
    assert "1 repeated timestamp(s)" in warning and "line 603" in warning


def test_irregular_steps_take_the_season_from_the_median_step() -> None:
    rows = travel_time_like()
    tl = build_timeline(_epochs(rows), [t for t, _ in rows])
    assert not tl.regular and tl.step == 600 and period_for(tl.step, tl.length) == 144
    assert any("irregular steps" in w and "median step, 600 s" in w for w in tl.warnings)


def test_clock_set_back_and_repeated_dst_hour() -> None:
    rows = dst_like()
    stamps = [t for t, _ in rows]
    assert stamps.count("2015-03-29 03:00:00") == 5
    tl = build_timeline(_epochs(rows), stamps)
    text = " ".join(tl.warnings)
    assert "4 repeated timestamp(s)" in text
    assert "earlier than the row before" in text and "'2015-03-30 02:00:00' after" in text
    assert tl.index == list(range(len(rows))) and tl.step == 300


def test_regular_grid_with_gaps_is_still_placed_on_its_grid() -> None:
    times = [0.0, 300.0, 600.0, 1500.0, 1800.0]
    tl = build_timeline(times)
    assert tl.regular and tl.index == [0, 1, 2, 5, 6] and tl.length == 7
    assert "1 gap(s)" in tl.warnings[0] and "2 missing timestamp(s)" in tl.warnings[0]


@pytest.mark.parametrize("make", [exchange_like, traffic_like, travel_time_like, dst_like])
@pytest.mark.parametrize("mode", ["auto", "seasonal", "stream"])
def test_every_row_scored_in_file_order(make, mode: cli.Mode) -> None:  # type: ignore[no-untyped-def]
    rows = make()
    scored, warnings = cli.score_rows(rows, mode=mode)
    assert [(t, v) for t, v, _, _ in scored] == rows
    assert all(0 <= s <= 1 and lb in (0, 1) for _, _, s, lb in scored)
    assert warnings and all(w.startswith("warning: ") for w in warnings)


def test_a_spike_after_the_repeat_is_still_found() -> None:
    rows = traffic_like()
    rows[1000] = (rows[1000][0], "400")
    scored, _ = cli.score_rows(rows)
    assert scored[1000][3] == 1
    assert max(range(len(scored)), key=lambda i: scored[i][2]) == 1000


def test_cli_takes_the_nab_oddities_and_warns_on_stderr(tmp_path: Path) -> None:
    rows = traffic_like()
    p = tmp_path / "occupancy.csv"
    p.write_text("timestamp,value\n" + "".join(f"{t},{v}\n" for t, v in rows))
    r = subprocess.run(
        [sys.executable, "-m", "services.diagnosis.anomaly", str(p)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    out = list(csv.DictReader(io.StringIO(r.stdout)))
    assert [(x["timestamp"], x["value"]) for x in out] == rows
    assert "repeated timestamp" in r.stderr and "irregular steps" in r.stderr


def test_unparseable_timestamp_is_the_only_refusal() -> None:
    rows = exchange_like()[:50]
    rows[20] = ("2011-07-01 24:61:00", rows[20][1])
    with pytest.raises(cli.InputError, match="line 22: timestamp is not ISO 8601"):
        cli.score_rows(rows)
