"""Shop-platform webhooks of ingest: Shopify, WooCommerce and Standard Webhooks (generic).

Same file roles as a service: routes (HTTP), service (use cases), repository (queries),
platforms (pure: signature checks and payload parsing)."""
