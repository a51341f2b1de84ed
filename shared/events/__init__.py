"""THE cross-service contract: the envelope and one module per producer."""

from shared.events.envelope import (
    MAX_EVENT_BYTES,
    Event,
    UndecodableEvent,
    decode,
    dlq_topic,
    registry,
    topic_for,
)

__all__ = [
    "MAX_EVENT_BYTES",
    "Event",
    "UndecodableEvent",
    "decode",
    "dlq_topic",
    "registry",
    "topic_for",
]
