"""Fixed identities the `example()` of every event shares, so the examples tell one story.

The demo tenant runs a US Shopify store, prepares Black Friday 2025 and sees a click-through drop
on paid search. Consumer tests can rely on these values, e.g. authenticate with
EXAMPLE_API_TOKEN after handling `ApiKeyCreatedV1.example()`, or find the campaign of
`CampaignCreatedV1.example()` again in `TaskDueV1.example()`.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, date, datetime

EXAMPLE_TENANT = "demo"
EXAMPLE_STORE = "demo-shopify"
EXAMPLE_MARKET = "US"
EXAMPLE_CURRENCY = "USD"
EXAMPLE_TIMEZONE = "America/New_York"
EXAMPLE_CATEGORY = "apparel"

# The token behind ApiKeyCreatedV1.example(): public test data, valid only where a test handled
# that example event.
EXAMPLE_API_TOKEN = "sk_demo_4f9c2a7e1b6d8035c9e2f17a4b0d6e93"  # noqa: S105
EXAMPLE_API_TOKEN_SHA256 = hashlib.sha256(EXAMPLE_API_TOKEN.encode()).hexdigest()
EXAMPLE_API_KEY_ID = uuid.UUID("6b0e3571-abaf-49fb-99ca-9f208e6b6a92")
EXAMPLE_USER_ID = uuid.UUID("50dff1ec-55c2-4231-b708-c1a2a86d70f8")

EXAMPLE_METRICS_BATCH_ID = uuid.UUID("e4b36c2a-476d-44aa-be1c-7da5d28b5ede")
EXAMPLE_BENCHMARK_BATCH_ID = uuid.UUID("b89cae17-0500-4990-a661-dc6ed9d7a98e")
EXAMPLE_COMPETITOR_BATCH_ID = uuid.UUID("911d6639-40e4-47ad-b766-0a554fa434e3")
EXAMPLE_FX_BATCH_ID = uuid.UUID("0c6f1d54-8a3e-4b27-9d1f-52a7e6c3b918")
EXAMPLE_COMPETITOR_ID = "northwind-apparel"

EXAMPLE_METRICS_DATE = date(2025, 11, 3)
EXAMPLE_REPORT_ID = uuid.UUID("7b234cac-e49d-4044-9bf2-8d08db305d43")
EXAMPLE_FINDING_ID = uuid.UUID("937bd028-69f2-49bd-a7f6-b782ae10ae66")
EXAMPLE_SECOND_FINDING_ID = uuid.UUID("9fa89049-df33-45b7-9754-c4f67c57b610")

EXAMPLE_CAMPAIGN_ID = uuid.UUID("c45c30e0-3a22-4dba-aaaf-9e0b92ae578c")
EXAMPLE_COPY_TASK_ID = "banner-copy"

EXAMPLE_COPY_ID = uuid.UUID("f2800a1c-d1b2-456f-bfaf-0a4ff68fe6ec")
EXAMPLE_COPY_VARIANT_ID = uuid.UUID("4982015f-f189-4987-9187-ec9f680b45c1")
EXAMPLE_EXPERIMENT_ID = uuid.UUID("7ee37ef4-7f5b-4914-85ab-e74e1d1fdd07")


def example_event_id(n: int) -> uuid.UUID:
    """A fixed, distinct event_id per example (n is unique across all examples)."""
    return uuid.UUID(f"d975cdd2-401b-450d-b00b-{n:012x}")


def example_time(day: int, hour: int, minute: int = 0) -> datetime:
    """A fixed UTC instant in November 2025."""
    return datetime(2025, 11, day, hour, minute, tzinfo=UTC)
