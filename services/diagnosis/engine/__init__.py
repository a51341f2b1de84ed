"""The diagnosis engine: pure functions, no I/O (docs/diagnosis.md).

The service (a later issue) reads its tables and events, calls these, and stores and publishes
what they return; the command-line tools (services.diagnosis.rca, .anomaly) call them on files.
"""

from services.diagnosis.engine.anomaly import AnomalyConfig, AnomalyPoint, score_series
from services.diagnosis.engine.baselines import BaselineValue, PhaseWindow, compute_baseline
from services.diagnosis.engine.completeness import Completeness, assess_completeness
from services.diagnosis.engine.decomposition import (
    Decomposition,
    MixRate,
    decompose_gmv,
    decompose_product,
    funnel_factors,
    mix_rate,
)
from services.diagnosis.engine.diagnose import Report, StoreDay, diagnose_store_day
from services.diagnosis.engine.errors import InputError
from services.diagnosis.engine.findings import RULES, Finding, OpenFinding, advance, evaluate_rules
from services.diagnosis.engine.market import MarketComparison, compare, kpi
from services.diagnosis.engine.rootcause import RcaConfig, RcaResult, leaves_from_rows, localize
from services.diagnosis.engine.summary import SummaryFacts, summarize

__all__ = [
    "RULES",
    "AnomalyConfig",
    "AnomalyPoint",
    "BaselineValue",
    "Completeness",
    "Decomposition",
    "Finding",
    "InputError",
    "MarketComparison",
    "MixRate",
    "OpenFinding",
    "PhaseWindow",
    "RcaConfig",
    "RcaResult",
    "Report",
    "StoreDay",
    "SummaryFacts",
    "advance",
    "assess_completeness",
    "compare",
    "compute_baseline",
    "decompose_gmv",
    "decompose_product",
    "diagnose_store_day",
    "evaluate_rules",
    "funnel_factors",
    "kpi",
    "leaves_from_rows",
    "localize",
    "mix_rate",
    "score_series",
    "summarize",
]
