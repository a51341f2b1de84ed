"""The pinned tools of scripts/k8s_tools.sh, installed if missing: a tool that cannot be had
fails the run loudly (it never skips)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from deploy.k8s_support import REPO


@pytest.fixture(scope="session")
def tools() -> Path:
    done = subprocess.run(
        [str(REPO / "scripts" / "k8s_tools.sh")], capture_output=True, text=True, timeout=1800
    )
    assert done.returncode == 0, f"scripts/k8s_tools.sh failed:\n{done.stderr[-4000:]}"
    where = subprocess.run(
        [str(REPO / "scripts" / "k8s_tools.sh"), "dir"], capture_output=True, text=True, check=True
    )
    path = Path(where.stdout.strip())
    for needed in ("promtool", "venv/bin/kubernetes-validate", "crds"):
        assert (path / needed).exists(), f"{needed} missing from {path}"
    return path
