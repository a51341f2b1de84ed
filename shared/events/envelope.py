"""The event envelope shared by every producer.

Every event is one flat pydantic model: the envelope fields below plus the event's own fields.
`type` and `version` are fixed per class (a Literal), so a payload validates against exactly one
contract. Topics are per producer and major version ("ingest.v1"), keyed by store_id, so that a
store's events from one producer stay in order (DESIGN.md, "Events").
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

# Kafka's default max.message.bytes is 1 MiB; producers chunk well under it.
MAX_EVENT_BYTES = 512 * 1024


def utcnow() -> datetime:
    return datetime.now(UTC)


class Event(BaseModel):
    """Envelope: consumers dedupe on event_id; type is "<producer>.<entity>_<past verb>"."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    TYPE: ClassVar[str] = ""
    VERSION: ClassVar[int] = 1

    event_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    type: str
    version: int
    occurred_at: AwareDatetime = Field(default_factory=utcnow)
    tenant_id: str
    store_id: str | None = None

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        if cls.TYPE:
            _REGISTRY[(cls.TYPE, cls.VERSION)] = cls

    @classmethod
    def producer(cls) -> str:
        return cls.TYPE.split(".", 1)[0]

    @classmethod
    def topic_name(cls) -> str:
        return topic_for(cls.producer(), cls.VERSION)

    @property
    def topic(self) -> str:
        return topic_for(self.type.split(".", 1)[0], self.version)

    @property
    def key(self) -> str:
        """Partition key: the store (a store's events stay in order), else the tenant."""
        return self.store_id or self.tenant_id

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()


_REGISTRY: dict[tuple[str, int], type[Event]] = {}


def topic_for(producer: str, version: int = 1) -> str:
    return f"{producer}.v{version}"


def dlq_topic(topic: str) -> str:
    return f"{topic}.dlq"


class UndecodableEvent(Exception):
    """A message that can never succeed: not JSON, no known type, or invalid against its schema."""


def registry() -> dict[tuple[str, int], type[Event]]:
    # Importing the producer modules registers their classes.
    from shared.events import campaigns, content, diagnosis, ingest  # noqa: F401

    return dict(_REGISTRY)


def decode(raw: bytes | str) -> Event:
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise UndecodableEvent(f"not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise UndecodableEvent("an event is a JSON object")
    key = (data.get("type"), data.get("version"))
    cls = registry().get(key)  # type: ignore[arg-type]
    if cls is None:
        raise UndecodableEvent(f"unknown event type/version {key!r}")
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        raise UndecodableEvent(f"invalid {key[0]} v{key[1]}: {exc}") from exc
