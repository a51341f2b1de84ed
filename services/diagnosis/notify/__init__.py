"""Diagnosis notifications: per-owner immediate alerts and daily digests of findings, delivered
as signed outgoing webhooks (Standard Webhooks) or as Slack, Feishu/Lark and DingTalk messages.

Self-contained inside diagnosis: it consumes the diagnosis.v1 finding events with its own consumer
group, keeps its own projection of the findings, and owns its tables (migration 0002). The
diagnosis app wires in `router`, `SUBSCRIPTION` and the `run_notifier` background worker.
See docs/notifications.md.
"""

from services.diagnosis.notify.consumers import SUBSCRIPTION
from services.diagnosis.notify.delivery import run_notifier
from services.diagnosis.notify.routes import router

__all__ = ["SUBSCRIPTION", "router", "run_notifier"]
