"""Settings: one pydantic-settings base, a subclass per service, read from the environment.

Defaults give the embedded mode: SQLite files under var/ and the in-process bus. Setting
DATABASE_URL and KAFKA_BOOTSTRAP_SERVERS switches a service to PostgreSQL and Kafka.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

VAR_DIR = Path("var")


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_file=None, extra="ignore", frozen=True)

    service_name: str = "service"
    environment: Literal["dev", "test", "prod"] = "dev"
    var_dir: Path = VAR_DIR

    # Empty means the embedded default: sqlite+aiosqlite:///var/<service>.db
    database_url: str = ""
    database_pool_size: int = 10
    database_echo: bool = False

    # Empty means the in-process bus (LocalBus, a durable log in var/bus.db).
    kafka_bootstrap_servers: str = ""
    # Prepended to every physical topic name (tests isolate themselves with it).
    kafka_topic_prefix: str = ""
    kafka_topic_partitions: int = 3
    kafka_replication_factor: int = 1
    kafka_session_timeout_ms: int = 10_000
    kafka_heartbeat_interval_ms: int = 1_000
    local_bus_path: str = ""

    # Delivery: transient failures are retried forever; a handler bug only this many times.
    consumer_max_attempts: int = 5
    consumer_retry_base_seconds: float = 0.2
    consumer_retry_max_seconds: float = 10.0
    outbox_poll_seconds: float = 0.5
    outbox_batch_size: int = 500

    # When set, this admin key is created for tenant `default` at start-up (idempotent).
    ops_bootstrap_api_key: SecretStr | None = None

    max_body_bytes: int = 16 * 1024 * 1024
    max_upload_bytes: int = 4 * 1024 * 1024 * 1024
    rate_limit_per_second: float = 50.0
    rate_limit_burst: int = 200
    idempotency_ttl_hours: int = 24

    log_level: str = "INFO"
    log_json: bool = True

    @property
    def embedded(self) -> bool:
        return not self.kafka_bootstrap_servers

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.var_dir / (self.service_name + '.db')}"

    def resolved_local_bus_path(self) -> Path:
        return Path(self.local_bus_path) if self.local_bus_path else self.var_dir / "bus.db"


class IngestSettings(ServiceSettings):
    service_name: str = "ingest"
    max_rows_per_request: int = Field(default=50_000, ge=1)
    # Rows dated later than the store's local today plus this many days are refused.
    max_future_days: int = 1
    # File imports: rows per committed batch (the resume granularity) and problems kept per job.
    import_batch_rows: int = 5000
    import_max_problems: int = 1000
    # Standard Webhooks: a webhook-timestamp further than this from now is refused (replays).
    webhook_timestamp_tolerance_seconds: int = Field(default=300, ge=1)
    # The delivery processor: woken by each delivery, else polling; a delivery that keeps
    # failing is marked failed after this many attempts.
    webhook_poll_seconds: float = Field(default=0.5, gt=0)
    webhook_max_attempts: int = Field(default=5, ge=1)
    webhook_batch_size: int = Field(default=1000, ge=1)


class DiagnosisSettings(ServiceSettings):
    service_name: str = "diagnosis"
    # Automatic diagnosis (docs/diagnosis.md, "The service"): a store's local yesterday is
    # diagnosed once this local hour has passed; a day whose data changes is redone (a new
    # report version) up to late_data_days back, after debounce_seconds without new data.
    auto_diagnose: bool = True
    cutoff_hour: int = Field(default=2, ge=0, le=23)
    late_data_days: int = Field(default=7, ge=0, le=60)
    # Days never diagnosed are diagnosed up to this far back (a store that arrives with history,
    # the demo): the triage list is populated at once.
    backfill_days: int = Field(default=30, ge=0, le=400)
    debounce_seconds: float = Field(default=5.0, ge=0)
    schedule_interval_seconds: float = Field(default=2.0, gt=0)
    claim_lease_seconds: float = Field(default=300.0, gt=0)
    # Store-days diagnosed at once by one pod (each in its own transaction).
    workers: int = Field(default=1, ge=1, le=64)
    max_claims_per_round: int = Field(default=100, ge=1)
    # Days of rows read before the day: the baseline (up to 8 weeks back on festival days needs
    # more than the 28 days of completeness history; 35 covers same_weekday_last_week x 5).
    history_days: int = Field(default=35, ge=1, le=400)


class CampaignsSettings(ServiceSettings):
    service_name: str = "campaigns"
    # campaigns.task_due is published once a task's due day has reached this local hour.
    task_due_hour: int = Field(default=9, ge=0, le=23)
    task_due_interval_seconds: float = Field(default=60.0, gt=0)


class ContentSettings(ServiceSettings):
    service_name: str = "content"
