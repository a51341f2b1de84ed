"""Finding precision and recall on generated store-days (bench/diagnosis_scenarios.py): heavy-
tailed day and channel shocks, Poisson counts, a festival of the store's market (Double 11 or
Black Friday) with its pre-sale and aftermath, mixed levels of detail; an incident injected on
about half the store-days. Today's rules and default baseline (comparable days) beside the
rules table as it was before issue 15 with its default (same weekday last week), in one run.

A finding counts when it is medium or worse (low ones are context: the market moving). It is
right when it is the incident's (code, owner, channel), or the same owner on the same metric as
the incident's finding (the store-wide reading of a channel's problem, e.g. cvr_below_market
beside cvr_drop on search). Recall: incidents whose finding was raised. Quiet store-days: the
share with any high or critical finding. Parameters in docs/diagnosis.md.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np

from bench.diagnosis_old_rules import OLD_RULES
from bench.diagnosis_scenarios import INCIDENTS, Generated, generate, incident, matches, spec
from services.diagnosis.context import context_for
from services.diagnosis.engine.diagnose import Report

CASES = 240
HELD_OUT = 1000
# kind -> magnitude range (a fraction; dsr: rating points)
MAGNITUDES = {
    "free_search_traffic_drop": (-0.55, -0.35),
    "cvr_below_market": (0.25, 0.45),  # the market's rise; the store rises 35% of it
    "search_cvr_drop": (-0.5, -0.3),
    "paid_traffic_collapse": (-0.8, -0.4),
    "main_image_ctr_drop": (-0.5, -0.3),
    "inquiry_cvr_drop": (-0.55, -0.35),
    "dsr_logistics_drop": (-0.6, -0.3),
}
FESTIVAL_MAIN = {"CN": lambda y: date(y, 11, 11), "US": lambda y: _black_friday(y)}


def _black_friday(y: int) -> date:
    nov1 = date(y, 11, 1)
    return nov1 + timedelta(days=(3 - nov1.weekday()) % 7 + 22)


@dataclass
class Tally:
    right: int = 0
    acting: int = 0
    found: int = 0
    incidents: int = 0
    quiet: int = 0
    quiet_severe: int = 0
    seconds: float = 0.0

    @property
    def precision(self) -> float:
        return self.right / self.acting if self.acting else 1.0

    @property
    def recall(self) -> float:
        return self.found / self.incidents if self.incidents else 1.0

    @property
    def false_severe(self) -> float:
        return self.quiet_severe / self.quiet if self.quiet else 0.0


def _day(rng: np.random.Generator, market: str) -> date:
    """Ordinary days (55%), the week after the festival (30%), its run-up (15%); never a
    context day (a festival's peak, a public holiday), where moves are expected."""
    while True:
        year = int(rng.choice([2024, 2025]))
        main = FESTIVAL_MAIN[market](year)
        u = rng.random()
        if u < 0.55:
            d = date(year, 2, 20) + timedelta(days=int(rng.integers(0, 200)))
        elif u < 0.85:
            d = main + timedelta(days=int(rng.integers(1, 11)))
        else:
            d = main - timedelta(days=int(rng.integers(8, 30)))
        if d not in context_for(market, d - timedelta(days=1), d).days:
            return d


def make_case(seed: int) -> Generated:
    rng = np.random.default_rng(seed)
    kind = "taobao" if rng.random() < 0.5 else "shopify"
    s = spec(
        kind,
        seed,
        visitors=float(rng.uniform(15_000, 80_000)),
        market_posts_traffic=bool(rng.random() < 0.7),
    )
    day = _day(rng, s.market)
    inc = None
    if rng.random() < 0.5:
        k = str(rng.choice(sorted(INCIDENTS)))
        lo, hi = MAGNITUDES[k]
        inc = incident(k, float(rng.uniform(lo, hi)))
    return generate(s, day, days=90, incident=inc, seed=seed)


def score(t: Tally, g: Generated, rep: Report) -> None:
    acting = [f for f in rep.findings if f.severity != "low"]
    t.acting += len(acting)
    inc = g.incident
    if inc is None:
        t.quiet += 1
        t.quiet_severe += any(f.severity in ("high", "critical") for f in acting)
        return
    t.incidents += 1
    t.found += matches(rep, inc)
    want_metric = {
        "free_traffic_drop": "visitors",
        "paid_traffic_drop": "visitors",
        "cvr_drop": "cvr",
        "cvr_below_market": "cvr",
        "ctr_drop": "ctr",
        "inquiry_cvr_drop": "inquiry_cvr",
        "dsr_logistics_drop": "dsr_logistics",
    }[inc.code]
    for f in acting:
        exact = (f.code, f.owner, f.dimensions.get("channel", "")) == (
            inc.code,
            inc.owner,
            inc.channel,
        )
        t.right += exact or (f.owner == inc.owner and f.metric == want_metric)


def run(seed0: int, n: int) -> tuple[Tally, Tally, list[str]]:
    from bench.diagnosis_scenarios import store_day
    from services.diagnosis.engine.diagnose import diagnose_store_day

    ours, base = Tally(), Tally()
    misses: list[str] = []
    for i in range(n):
        g = make_case(seed0 + i)
        t0 = time.perf_counter()
        rep = diagnose_store_day(store_day(g))
        ours.seconds += time.perf_counter() - t0
        score(ours, g, rep)
        t0 = time.perf_counter()
        old = diagnose_store_day(store_day(g, old=True, rules=OLD_RULES))
        base.seconds += time.perf_counter() - t0
        score(base, g, old)
        wrong = [
            (f.code, f.severity, f.dimensions.get("channel", ""))
            for f in rep.findings
            if f.severity != "low"
        ]
        if (g.incident and not matches(rep, g.incident)) or (not g.incident and wrong):
            misses.append(
                f"seed {seed0 + i} {g.spec.platform} {g.day} "
                f"{g.incident.kind if g.incident else 'quiet'}: {wrong}"
            )
    return ours, base, misses


def main(seed0: int = HELD_OUT, n: int = CASES) -> int:
    ours, base, misses = run(seed0, n)
    if os.environ.get("BENCH_VERBOSE"):
        print("\n".join(misses))
    note = f"{n} store-days, {ours.incidents} with an incident, {ours.quiet} quiet"
    results = [
        (
            "finding precision (medium or worse)",
            ">= 0.9",
            f"{ours.precision:.3f}",
            ours.precision >= 0.9,
            f"rules before issue 15 {base.precision:.3f}",
        ),
        (
            "finding recall (incident's code, owner, channel)",
            ">= 0.9",
            f"{ours.recall:.3f}",
            ours.recall >= 0.9,
            f"rules before issue 15 {base.recall:.3f}",
        ),
        (
            "quiet store-days with a high/critical finding",
            "<= 0.01",
            f"{ours.false_severe:.3f}",
            ours.false_severe <= 0.01,
            f"rules before issue 15 {base.false_severe:.3f}",
        ),
        (
            "diagnosis time per store-day (90 days x ~130 rows)",
            "< 0.5 s",
            f"{ours.seconds / n * 1000:.0f} ms",
            ours.seconds / n < 0.5,
            f"before {base.seconds / n * 1000:.0f} ms",
        ),
    ]
    ok = True
    lines = []
    for name, target, measured, passed, nb in results:
        ok &= passed
        res = "pass" if passed else "MISS"
        print(f"{name}: target {target}, measured {measured}, {res} ({nb}; {note})")
        lines.append(f"| {name} | {target} | {measured} | {res} | {nb} |")
    out = Path(os.environ.get("BENCH_OUT", "var/bench/bench_diagnosis_findings.md"))
    out.parent.mkdir(parents=True, exist_ok=True)
    header = [
        "## Diagnosis: findings",
        "",
        f"Generated store-days from seed {seed0} ({note}); generator and scoring in "
        "docs/diagnosis.md. Baseline: the rules table and default baseline before issue 15, "
        "same cases, same run.",
        "",
        "| benchmark | target | measured | result | baseline / note |",
        "|---|---|---|---|---|",
    ]
    out.write_text("\n".join(header + lines) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(int(os.environ.get("BENCH_SEED", HELD_OUT))))
