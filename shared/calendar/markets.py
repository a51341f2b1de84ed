"""Markets (ISO 3166-1 alpha-2 countries) and the regions festivals are defined for."""

from __future__ import annotations

from functools import cache

EU = frozenset(
    [
        "AT",
        "BE",
        "BG",
        "CH",
        "CY",
        "CZ",
        "DE",
        "DK",
        "EE",
        "ES",
        "FI",
        "FR",
        "GB",
        "GR",
        "HR",
        "HU",
        "IE",
        "IS",
        "IT",
        "LT",
        "LU",
        "LV",
        "MT",
        "NL",
        "NO",
        "PL",
        "PT",
        "RO",
        "SE",
        "SI",
        "SK",
    ]
)
SEA = frozenset(["SG", "MY", "TH", "ID", "PH", "VN", "BN", "KH", "LA", "MM"])
REGIONS: dict[str, frozenset[str]] = {
    "CN": frozenset({"CN"}),
    "US": frozenset({"US"}),
    "EU": EU,
    "SEA": SEA,
    "JP": frozenset({"JP"}),
}


def regions_of(market: str) -> set[str]:
    """The region codes a market belongs to, plus the market itself."""
    market = market.upper()
    return {market} | {name for name, members in REGIONS.items() if market in members}


def is_market(value: str) -> bool:
    return len(value) == 2 and value.isalpha() and value.isupper()


@cache
def _holiday_countries() -> frozenset[str]:
    import holidays

    return frozenset(holidays.list_supported_countries())


def has_public_holidays(market: str) -> bool:
    """Whether the `holidays` package knows the country's public holidays."""
    return market.upper() in _holiday_countries()
