"""Content: lint throughput and experiment evaluation, each beside its baseline in the same run.

1. Lint throughput (texts per second) on 1,000-character texts with every rule pack loaded and
   channel limits, SMS, links and placeholders checked, beside a naive baseline that runs one
   regular expression per term of every pack (term matching only, no exceptions or channels).
2. Experiment evaluation for 20 variants (rates, intervals, Holm-corrected z-tests, posterior
   probability to be best and expected loss, SRM), and its statistics checked against SciPy on the
   same numbers (z-test vs chi2_contingency, SRM vs chisquare, Wilson vs binomtest, posterior vs a
   Monte Carlo of scipy.stats.beta draws).

Prints "name: target X, measured Y, pass|MISS" lines, writes a "## Content" markdown section to
$BENCH_OUT and exits non-zero on a miss.
"""

from __future__ import annotations

import os
import random
import re
import sys
import time
from pathlib import Path

import numpy as np
from scipy import stats

from services.content.lint import LintInput, lint, pack_names
from services.content.lint.rules import load_packs, lowered
from services.content.stats import (
    DecisionRule,
    Variant,
    evaluate,
    srm_test,
    two_proportion_z,
    wilson_interval,
)

EN_WORDS = [
    "coats",
    "knitwear",
    "warm",
    "winter",
    "sale",
    "shop",
    "now",
    "free",
    "shipping",
    "on",
    "orders",
    "over",
    "$50",
    "best",
    "seller",
    "limited",
    "time",
    "only",
    "new",
    "season",
    "styles",
    "for",
    "the",
    "whole",
    "family",
    "soft",
    "wool",
    "blend",
    "easy",
    "returns",
    "hurry",
    "while",
    "stocks",
    "last",
    "doctor",
    "recommended",
    "made",
    "in",
    "usa",
    "verified",
    "reviews",
    "clinically",
    "proven",
    "visit",
    "https://shop.example/sale?utm_source=sms",
    "today",
    "only",
    "30%",
    "off",
    "{first_name}",
]
ZH = "双十一大促开始全场五折起最近上新第一天特惠顶级面料国家级品质本店最畅销最高可减两百元回T退订治疗原价"


def make_texts(n: int, seed: int = 7) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        if i % 2 == 0:
            words: list[str] = []
            while sum(len(w) + 1 for w in words) < 1000:
                words.append(rng.choice(EN_WORDS))
            out.append(("en", " ".join(words)[:1000]))
        else:
            chars = []
            while len(chars) < 1000:
                start = rng.randrange(len(ZH) - 6)
                chars.extend(ZH[start : start + rng.randint(2, 6)])
                if rng.random() < 0.1:
                    chars.extend(" sale ")
            out.append(("zh-CN", "".join(chars[:1000])))
    return out


def naive_rules() -> list[tuple[str, list[re.Pattern[str]]]]:
    """The baseline: one regular expression per term (whole words for ASCII terms, as ours)."""
    out = []
    for pack in load_packs().values():
        for rule in pack.rules:
            pats = []
            for t in rule.terms:
                body = re.escape(t)
                if t.isascii():
                    body = rf"(?<![A-Za-z0-9]){body}(?![A-Za-z0-9])"
                pats.append(re.compile(body, re.IGNORECASE))
            out.append((rule.id, pats))
    return out


def bench_lint() -> list[tuple[str, str, str, bool, str]]:
    texts = make_texts(1000)
    packs = pack_names()
    rules = [r for p in load_packs().values() for r in p.rules]
    lint(LintInput(body="x", packs=packs))  # profiles and packs load and compile once
    # 1. The whole lint: every pack, the SMS channel (segments), links, placeholders, opt-out.
    t0 = time.perf_counter()
    issues = 0
    for locale, text in texts:
        issues += len(
            lint(LintInput(body=text, locale=locale, copy_type="sms", packs=packs)).issues
        )
    full = time.perf_counter() - t0
    full_tps = len(texts) / full
    # 2. Term matching alone, ours (one trie regex per rule, lower-cased text) against the naive
    # regex per term, on the same texts; both must find the same term occurrences.
    t0 = time.perf_counter()
    ours_hits = 0
    for _locale, text in texts:
        low = lowered(text)
        for rule in rules:
            ours_hits += sum(1 for m in rule.regex.finditer(low) if m.group())
    ours = time.perf_counter() - t0
    naive = naive_rules()
    t0 = time.perf_counter()
    naive_hits = 0
    for _locale, text in texts:
        for _rid, pats in naive:
            naive_hits += sum(1 for p in pats for _ in p.finditer(text))
    base = time.perf_counter() - t0
    n_terms = sum(len(p) for _r, p in naive)
    speedup = base / ours
    return [
        (
            "lint 1,000-char texts, every pack, SMS channel",
            ">= 300 texts/s",
            f"{full_tps:.0f} texts/s",
            full_tps >= 300,
            f"{issues / len(texts):.1f} issues per text; naive matching alone "
            f"{len(texts) / base:.0f} texts/s",
        ),
        (
            "term matching: trie regex per rule vs regex per term",
            ">= 2x",
            f"{speedup:.1f}x",
            speedup >= 2,
            f"{len(rules)} regexes vs {n_terms}; occurrences {ours_hits} vs {naive_hits} "
            "(the naive one also counts overlaps)",
        ),
    ]


def bench_experiment() -> list[tuple[str, str, str, bool, str]]:
    rng = np.random.default_rng(11)
    k = 20
    n = rng.integers(49_000, 51_000, size=k)
    rates = 0.02 + 0.0004 * np.arange(k)
    x = rng.binomial(n, rates)
    variants = [Variant(str(i), int(n[i]), int(x[i])) for i in range(k)]
    rule = DecisionRule(min_sample=10_000)
    evaluate(variants, rule)  # warm-up
    runs = 20
    t0 = time.perf_counter()
    for _ in range(runs):
        e = evaluate(variants, rule)
    per_eval = (time.perf_counter() - t0) / runs

    # Checks against SciPy on the same numbers.
    leader = int(e.leader or 0)
    z_err = 0.0
    for i in range(k):
        if i == leader:
            continue
        _, p = two_proportion_z(int(x[leader]), int(n[leader]), int(x[i]), int(n[i]))
        table = [[x[leader], n[leader] - x[leader]], [x[i], n[i] - x[i]]]
        p_ref = stats.chi2_contingency(table, correction=False)[1]
        z_err = max(z_err, abs(p - p_ref))
    chi, p_srm = srm_test([int(v) for v in n], [1.0] * k)
    ref = stats.chisquare(n)
    srm_err = abs(p_srm - ref.pvalue) + abs(chi - ref.statistic)
    w_err = 0.0
    for i in range(k):
        lo, hi = wilson_interval(int(x[i]), int(n[i]))
        ci = stats.binomtest(int(x[i]), int(n[i])).proportion_ci(method="wilson")
        w_err = max(w_err, abs(lo - ci.low), abs(hi - ci.high))
    draws = np.array(
        [
            stats.beta.rvs(1 + x[i], 1 + n[i] - x[i], size=200_000, random_state=rng)
            for i in range(k)
        ]
    )
    mc_best = np.bincount(draws.argmax(axis=0), minlength=k) / draws.shape[1]
    pb_err = max(abs(v["probability_best"] - mc_best[i]) for i, v in enumerate(e.variants))
    mc_max = draws.max(axis=0)
    loss_err = max(
        abs(v["expected_loss"] - float((mc_max - draws[i]).mean()))
        for i, v in enumerate(e.variants)
    )
    exact_ok = z_err < 1e-9 and srm_err < 1e-9 and w_err < 1e-9
    return [
        (
            "experiment evaluation, 20 variants",
            "<= 100 ms",
            f"{per_eval * 1000:.1f} ms",
            per_eval <= 0.1,
            f"decision {e.decision}, leader {e.leader}, Holm p {e.p_value:.3g}",
        ),
        (
            "z-test, SRM chi-square, Wilson vs SciPy (max abs error)",
            "<= 1e-9",
            f"{max(z_err, srm_err, w_err):.1e}",
            exact_ok,
            "scipy.stats chi2_contingency, chisquare, binomtest",
        ),
        (
            "P(best) vs Monte Carlo of scipy.stats.beta (200k draws)",
            "<= 0.01",
            f"{pb_err:.4f}",
            pb_err <= 0.01,
            f"expected loss max abs error {loss_err:.2e}",
        ),
    ]


def main() -> int:
    results = bench_lint() + bench_experiment()
    lines = [
        "## Content",
        "",
        "| benchmark | target | measured | result | baseline / note |",
        "|---|---|---|---|---|",
    ]
    ok = True
    for name, target, measured, passed, note in results:
        verdict = "pass" if passed else "MISS"
        ok = ok and passed
        print(f"{name}: target {target}, measured {measured}, {verdict}  ({note})")
        lines.append(f"| {name} | {target} | {measured} | {verdict} | {note} |")
    out = Path(os.environ.get("BENCH_OUT", "var/bench/bench_content.md"))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
