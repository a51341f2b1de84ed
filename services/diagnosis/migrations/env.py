"""Alembic environment of diagnosis; run through shared.db.migrate()."""

from sqlalchemy import MetaData

from services.diagnosis.models import TABLES
from shared.db import run_migrations_online

target_metadata = MetaData()
for _table in TABLES:
    _table.to_metadata(target_metadata)

run_migrations_online(target_metadata, {t.name for t in TABLES})
