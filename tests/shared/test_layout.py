"""The house rules that a machine can check: services never import each other, and models and
migrations agree."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from support import assert_models_match_migrations

from services.ingest.main import MIGRATIONS as INGEST_MIGRATIONS
from services.ingest.models import TABLES as INGEST_TABLES

REPO = Path(__file__).resolve().parents[2]


def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    lint = Path(sys.executable).parent / "lint-imports"
    return subprocess.run(
        [str(lint), "--config", str(root / "pyproject.toml"), "--no-cache"],
        cwd=root,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
    )


def test_import_linter_passes_on_the_repository() -> None:
    result = _lint_imports(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Services never import each other KEPT" in result.stdout


def test_import_linter_fails_when_a_service_imports_another(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    shutil.copy(REPO / "pyproject.toml", root / "pyproject.toml")
    (root / "shared").mkdir()
    (root / "shared" / "__init__.py").write_text("")
    for name in ("ingest", "diagnosis", "campaigns", "content"):
        pkg = root / "services" / name
        pkg.mkdir(parents=True)
        (pkg / "__init__.py").write_text("")
    (root / "services" / "__init__.py").write_text("")
    (root / "services" / "content" / "service.py").write_text(
        "from services.ingest import models  # the violation\n"
    )
    result = _lint_imports(root)
    assert result.returncode != 0
    assert "Services never import each other BROKEN" in result.stdout


async def test_ingest_models_and_migrations_agree_on_sqlite(tmp_path: Path) -> None:
    await assert_models_match_migrations(
        f"sqlite+aiosqlite:///{tmp_path}/i.db", INGEST_TABLES, INGEST_MIGRATIONS
    )
