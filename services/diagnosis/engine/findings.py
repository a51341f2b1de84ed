"""Findings from a rule table: a detected pattern -> {code, severity, owner, title, action,
evidence}, and the lifecycle of a finding across days.

The rules are data (`RULES`): each names the facts it needs and the bounds they must meet. The
facts are plain numbers computed from the store-day (see diagnose.facts_for_day), keyed like
"rel.cvr.all" (cvr's change net of the market, whole store) or "chg.visitors.paid" (raw change
of paid traffic); "{scope}" in a rule is filled with each channel (and "paid", "free", "all") in
turn, so one rule covers every channel. The first condition of a rule is its primary one: its
fact sizes the severity and decides, with hysteresis, when an open finding has recovered.

A rule whose scope_kind is "metric" fills "{scope}" with metric names instead (the market's
own moves: one rule, a finding per metric). A rule that yields_to other codes is dropped when
one of them fired on the same metric (the general reading gives way to the specific one).
Every rule, its owner and its bounds are described in docs/diagnosis.md.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Literal

from shared.events.common import Owner, Severity

Op = Literal["<=", ">=", "abs<=", "abs>="]


@dataclass(frozen=True)
class Cond:
    fact: str
    op: Op
    bound: float
    # a significance test that could not be computed (no history to measure the scope's own
    # spread against, facts from elsewhere) does not hold the finding back
    optional: bool = False

    def holds(self, facts: Mapping[str, float | None], scope: str, scale: float = 1.0) -> bool:
        v = facts.get(self.fact.format(scope=scope))
        if v is None:
            return self.optional
        b = self.bound * scale
        if self.op == "<=":
            return v <= b
        if self.op == ">=":
            return v >= b
        if self.op == "abs<=":
            return abs(v) <= b
        return abs(v) >= b


@dataclass(frozen=True)
class Rule:
    code: str
    owner: Owner
    metric: str
    when: tuple[Cond, ...]
    unless: tuple[Cond, ...]
    severity: tuple[tuple[float, Severity], ...]  # |primary fact| >= x -> severity, ascending
    title: str
    action: str
    scopes: tuple[str, ...] = ("all",)  # "channel" expands to every channel with facts
    scope_kind: Literal["channel", "metric"] = "channel"
    yields_to: tuple[str, ...] = ()  # codes that, fired on the same metric, replace this one


# A rate's move in units over its Poisson spread must pass this (a leaf of a few buyers a day
# moves its rate by 20-50% with one buyer more or less).
Z_MIN = -2.0
# The per-channel rate rules' bound. -2.5 cut false findings on the bench's small channels but
# lost real drops on small stores (the demo's search channel, z -2.3): kept at Z_MIN.
Z_CHANNEL = Z_MIN
# A channel's traffic against the market's traffic (or the rest of the store's where the market
# posts none), over its own day-to-day wobble: a drop must also pass this. The drops themselves
# are 20-30%, so this only holds back a channel whose traffic swings that much anyway.
Z_TRAFFIC = -3.0

STEPS_20: tuple[tuple[float, Severity], ...] = ((0.0, "medium"), (0.35, "high"), (0.6, "critical"))
STEPS_10: tuple[tuple[float, Severity], ...] = ((0.0, "low"), (0.2, "medium"), (0.4, "high"))
# A market-relative decline: medium from the bound, high past 25%, critical past 40%.
STEPS_REL: tuple[tuple[float, Severity], ...] = (
    (0.0, "medium"),
    (0.25, "high"),
    (0.4, "critical"),
)
# A channel below this share of the store's traffic (on the baseline's days) raises no
# traffic finding: its swings are noise for the store.
MIN_SHARE = 0.05

RULES: tuple[Rule, ...] = (
    Rule(
        "data_incomplete",
        "operations",
        "rows",
        (Cond("data.missing_share", ">=", 0.02),),
        (),
        ((0.0, "high"), (0.5, "critical")),
        "Data incomplete for {date}: {missing} of {expected} expected rows missing{scope_text}",
        "Check the data feed and integration; the day is not diagnosed until it is complete.",
    ),
    Rule(
        "paid_traffic_drop",
        "promotion",
        "visitors",
        # net of the market's traffic where the market posts it: a market-wide lull (the week
        # after Double 11) is no paid-traffic problem
        (
            Cond("rel.visitors.{scope}", "<=", -0.2),
            Cond("paid.{scope}", ">=", 1.0),
            Cond("z.visitors.{scope}", "<=", Z_TRAFFIC, optional=True),
        ),
        (),
        STEPS_20,
        "Paid traffic on {scope} down {pct}",
        "Check budgets, bids, campaign status and ad disapprovals on {scope}.",
        ("channel", "paid"),
    ),
    Rule(
        "free_traffic_drop",
        "operations",
        "visitors",
        (
            Cond("rel.visitors.{scope}", "<=", -0.25),
            Cond("share.visitors.{scope}", ">=", MIN_SHARE),
            Cond("z.visitors.{scope}", "<=", Z_TRAFFIC, optional=True),
        ),
        # click-through fell on the channel: the main image's problem (ctr_drop, designer)
        (Cond("rel.ctr.{scope}", "<=", -0.15),),
        STEPS_20,
        "Free traffic on {scope} down {pct}",
        "Check search ranking and recommendation placement on {scope}: titles, keywords, "
        "listing quality, stock-outs and any listing penalty.",
        ("search", "recommendation"),
    ),
    Rule(
        "live_traffic_drop",
        "operations",
        "visitors",
        (
            Cond("rel.visitors.{scope}", "<=", -0.3),
            Cond("share.visitors.{scope}", ">=", MIN_SHARE),
            Cond("z.visitors.{scope}", "<=", Z_TRAFFIC, optional=True),
        ),
        # click-through fell on the channel: the creative's problem (ctr_drop, designer)
        (Cond("rel.ctr.{scope}", "<=", -0.15),),
        STEPS_20,
        "Live-stream traffic down {pct}",
        "Check the live-stream schedule, the host, the stream's length and its promotion slots.",
        ("live",),
    ),
    Rule(
        "social_traffic_drop",
        "promotion",
        "visitors",
        (
            Cond("rel.visitors.{scope}", "<=", -0.3),
            Cond("share.visitors.{scope}", ">=", MIN_SHARE),
            Cond("z.visitors.{scope}", "<=", Z_TRAFFIC, optional=True),
        ),
        # click-through fell on the channel: the creative's problem (ctr_drop, designer)
        (Cond("rel.ctr.{scope}", "<=", -0.15),),
        STEPS_20,
        "Social traffic down {pct}",
        "Check social posts, influencer (KOL) placements and their links; review the content "
        "calendar.",
        ("social",),
    ),
    Rule(
        "ctr_drop",
        "designer",
        "ctr",
        (
            Cond("rel.ctr.{scope}", "<=", -0.15),
            # exposure steady net of the market's traffic
            Cond("relt.impressions.{scope}", ">=", -0.1),
            Cond("z.ctr.{scope}", "<=", Z_CHANNEL),
            # and against the rest of the store's click-through: the channel's own problem
            Cond("zr.ctr.{scope}", "<=", Z_CHANNEL, optional=True),
        ),
        (),
        STEPS_20,
        "Click-through on {scope} down {pct} with impressions steady",
        "Review the main image and the listing (title, price) on {scope}; A/B test a new one.",
        ("channel",),
    ),
    Rule(
        "cvr_drop_traffic_mix",
        "promotion",
        "cvr",
        (
            Cond("rel.cvr.all", "<=", -0.1),
            Cond("mix.cvr", ">=", 0.5),
            Cond("z.cvr.all", "<=", Z_MIN),
        ),
        (),
        STEPS_20,
        "Conversion down {pct}: traffic moved to channels that convert worse",
        "Check traffic precision: targeting, keywords and audiences of the channels that grew.",
    ),
    Rule(
        "cvr_drop",
        "merchandising",
        "cvr",
        (
            Cond("rel.cvr.{scope}", "<=", -0.15),
            # traffic steady net of the market's (the weekend after Black Friday is busy
            # everywhere)
            Cond("rel.visitors.{scope}", "abs<=", 0.15),
            Cond("z.cvr.{scope}", "<=", Z_CHANNEL),
            # and against the rest of the store's conversion: a channel that moved with the
            # store (the market's rise the store missed) is the store's move, not the channel's
            Cond("zr.cvr.{scope}", "<=", Z_CHANNEL, optional=True),
        ),
        (
            Cond("chg.inquiry_cvr.all", "<=", -0.2),
            Cond("mix.cvr", ">=", 0.5),
            # the store's own conversion rose: a decline net of the market only
            # (cvr_below_market), no drop
            Cond("chg.cvr.{scope}", ">=", 0.02),
            # a channel that moved with the whole store is the store's move, not the channel's
            Cond("vs.cvr.{scope}", ">=", -0.1),
            Cond("share.visitors.{scope}", "<=", MIN_SHARE),
        ),
        STEPS_20,
        "Conversion on {scope} down {pct} on stable traffic",
        "Check stock, price and the detail page of the top products on {scope}; promotion to "
        "check traffic precision.",
        ("channel", "all"),
    ),
    Rule(
        "cvr_below_market",
        "merchandising",
        "cvr",
        (
            Cond("mrel.cvr.all", "<=", -0.1),
            Cond("z.cvr.all", "<=", Z_MIN),
        ),
        (Cond("chg.inquiry_cvr.all", "<=", -0.2), Cond("mix.cvr", ">=", 0.5)),
        STEPS_REL,
        "Conversion {pct} below the market's move (store {own}, market {market})",
        "Check price, promotions and the detail page against the category's leaders; promotion "
        "to check traffic precision (keywords, audiences).",
        yields_to=("cvr_drop",),
    ),
    Rule(
        "ctr_below_market",
        "designer",
        "ctr",
        (
            Cond("mrel.ctr.all", "<=", -0.1),
            Cond("z.ctr.all", "<=", Z_MIN),
            Cond("relt.impressions.all", ">=", -0.1),
        ),
        (),
        STEPS_REL,
        "Click-through {pct} below the market's move (store {own}, market {market})",
        "Compare the main image, title and price shown in results with the category's leaders; "
        "A/B test a new main image.",
        yields_to=("ctr_drop",),
    ),
    Rule(
        "inquiry_cvr_drop",
        "customer_service",
        "inquiry_cvr",
        (
            Cond("chg.inquiry_cvr.all", "<=", -0.2),
            Cond("chg.inquiries.all", ">=", -0.2),
            Cond("z.inquiry_cvr.all", "<=", Z_MIN),
        ),
        (),
        STEPS_20,
        "Inquiry conversion down {pct} with inquiries steady",
        "Check customer-service staffing, response times and scripts.",
    ),
    Rule(
        "dsr_logistics_drop",
        "logistics",
        "dsr_logistics",
        (Cond("chg.dsr_logistics.all", "<=", -0.04),),
        (),
        ((0.0, "medium"), (0.08, "high"), (0.15, "critical")),
        "Logistics rating down {pct}",
        "Check the courier and the warehouse (delays, damage); keep QC informed.",
    ),
    Rule(
        "dsr_service_drop",
        "logistics",
        "dsr_service",
        (Cond("chg.dsr_service.all", "<=", -0.04),),
        (),
        ((0.0, "medium"), (0.08, "high"), (0.15, "critical")),
        "Service rating down {pct}",
        "Check after-sales handling, packaging and QC.",
    ),
    Rule(
        "refund_rate_up",
        "logistics",
        "refund_rate",
        (Cond("chg.refund_rate.all", ">=", 0.3),),
        (),
        ((0.0, "medium"), (0.6, "high"), (1.0, "critical")),
        "Refund rate up {pct}",
        "Check product quality (QC), damage in transit and the accuracy of the listing.",
    ),
    Rule(
        "market_decline",
        "operations",
        "cvr",
        (Cond("mkt.cvr", "<=", -0.1), Cond("rel.cvr.all", "abs<=", 0.05)),
        (),
        ((0.0, "low"),),
        "The whole market's conversion is down {pct}: not the store's own fault",
        "No action on the store; watch the market and hold spend if it persists.",
    ),
    Rule(
        "market_moved",
        "operations",
        "visitors",
        (Cond("mkt.{scope}", "abs>=", 0.1),),
        (),
        ((0.0, "low"),),
        "The market's {metric} is {dir} {pct}: read today's findings against it",
        "No action on the store by itself; changes net of the market are in the KPIs.",
        ("visitors", "cvr", "ctr", "aov"),
        scope_kind="metric",
        yields_to=("market_decline",),
    ),
    Rule(
        "competitor_price_cut",
        "merchandising",
        "aov",
        (Cond("comp.aov.min", "<=", -0.1),),
        (),
        STEPS_10,
        "A competitor's order value down {pct}: a price move",
        "Compare prices and promotions with the competitor; decide whether to match.",
    ),
    Rule(
        "competitor_traffic_surge",
        "merchandising",
        "visitors",
        (Cond("comp.visitors.max", ">=", 0.3), Cond("rel.visitors.all", "<=", -0.05)),
        (),
        STEPS_10,
        "A competitor's traffic up {pct} while the store's is not",
        "Check the competitor's campaigns and prices; consider a counter-offer.",
    ),
)


@dataclass(frozen=True)
class Finding:
    code: str
    severity: Severity
    metric: str
    dimensions: dict[str, str]
    owner: Owner
    title: str
    action: str
    evidence: dict[str, float | None]
    primary: float  # the primary fact's value
    # GMV the day lost (negative) or gained against the baseline in the finding's scope, in the
    # store's currency: the contract's expected_gmv_impact; None when not computable
    expected_gmv_impact: float | None = None

    @property
    def key(self) -> tuple[str, str, tuple[tuple[str, str], ...]]:
        return self.code, self.metric, tuple(sorted(self.dimensions.items()))


class _Text(dict[str, str]):
    """Template values; a value the caller did not pass reads as empty, never a KeyError."""

    def __missing__(self, key: str) -> str:
        return ""


def _severity(rule: Rule, v: float) -> Severity:
    sev = rule.severity[0][1]
    for bound, s in rule.severity:
        if abs(v) >= bound:
            sev = s
    return sev


def _signed(v: float | None) -> str:
    return "n/a" if v is None else f"{v:+.1%}"


def _scopes(rule: Rule, channels: Sequence[str]) -> list[str]:
    out: list[str] = []
    for s in rule.scopes:
        out.extend(channels if s == "channel" else [s])
    return out


def evaluate_rules(
    facts: Mapping[str, float | None],
    *,
    channels: Sequence[str] = (),
    rules: Sequence[Rule] = RULES,
    text: Mapping[str, str] | None = None,
) -> list[Finding]:
    """Every rule that holds, on every scope; a store-wide finding is dropped when a channel's
    finding of the same code explains it."""
    out: list[Finding] = []
    extra = dict(text or {})
    for rule in rules:
        hits = []
        for scope in _scopes(rule, channels):
            if all(c.holds(facts, scope) for c in rule.when) and not any(
                c.holds(facts, scope) for c in rule.unless
            ):
                hits.append(scope)
        for general in ("all", "paid"):
            if general in hits and len(hits) > 1 and rule.scope_kind == "channel":
                hits.remove(general)
        for scope in hits:
            primary_key = rule.when[0].fact.format(scope=scope)
            v = float(facts[primary_key] or 0.0)
            evidence = {
                c.fact.format(scope=scope): facts.get(c.fact.format(scope=scope)) for c in rule.when
            }
            by_metric = rule.scope_kind == "metric"
            metric = scope if by_metric else rule.metric
            dims = {} if by_metric or scope in ("all", "paid", "free") else {"channel": scope}
            fmt = _Text(
                {
                    "scope": scope.replace("_", " "),
                    "pct": f"{abs(v):.1%}",
                    "dir": "up" if v >= 0 else "down",
                    "metric": metric.replace("_", " "),
                    "own": _signed(facts.get(f"chg.{metric}.all")),
                    "market": _signed(facts.get(f"mkt.{metric}")),
                    **extra,
                }
            )
            out.append(
                Finding(
                    rule.code,
                    _severity(rule, v),
                    metric,
                    dims,
                    rule.owner,
                    rule.title.format_map(fmt).strip(),
                    rule.action.format_map(fmt).strip(),
                    evidence,
                    v,
                    None if by_metric else facts.get(f"delta.gmv.{scope}"),
                )
            )
    yields = {r.code: r.yields_to for r in rules if r.yields_to}
    if yields:
        fired = {(f.code, f.metric) for f in out}
        out = [f for f in out if not any((c, f.metric) in fired for c in yields.get(f.code, ()))]
    return out


def rule_scope(rule: Rule | None, finding: Finding) -> str:
    """The scope a finding was raised on (what its rule's "{scope}" was filled with)."""
    if rule is not None and rule.scope_kind == "metric":
        return finding.metric
    return finding.dimensions.get("channel", "all")


# --- lifecycle -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class OpenFinding:
    finding_id: uuid.UUID
    finding: Finding
    opened: date
    last_seen: date


@dataclass(frozen=True)
class Transitions:
    opened: list[OpenFinding] = field(default_factory=list)
    updated: list[OpenFinding] = field(default_factory=list)
    closed: list[OpenFinding] = field(default_factory=list)
    kept: list[OpenFinding] = field(default_factory=list)  # open, not seen today, not recovered


RECOVERY = 0.5  # a finding closes when its primary fact is back within half the rule's bound


def advance(
    open_findings: Sequence[OpenFinding],
    detected: Sequence[Finding],
    day: date,
    facts: Mapping[str, float | None],
    *,
    rules: Sequence[Rule] = RULES,
    namespace: uuid.UUID = uuid.NAMESPACE_URL,
) -> Transitions:
    """Match today's findings with the open ones on (code, metric, dimensions): an ongoing
    problem updates its finding; a new one opens; an open finding not raised today closes when
    its metric has recovered, and stays open (kept) while it is still past half its bound."""
    by_code = {r.code: r for r in rules}
    current = {f.key: f for f in detected}
    t = Transitions()
    seen: set[tuple[str, str, tuple[tuple[str, str], ...]]] = set()
    for of in open_findings:
        k = of.finding.key
        if k in current:
            t.updated.append(replace(of, finding=current[k], last_seen=day))
            seen.add(k)
            continue
        rule = by_code.get(of.finding.code)
        scope = rule_scope(rule, of.finding)
        still = rule is not None and rule.when[0].holds(facts, scope, RECOVERY)
        (t.kept if still else t.closed).append(of)
    for k, f in current.items():
        if k not in seen:
            # deterministic: re-running a day (late data) opens the same finding id
            fid = uuid.uuid5(namespace, f"{k}|{day.isoformat()}")
            t.opened.append(OpenFinding(fid, f, day, day))
    return t
