"""Helpers of the deploy/ checks: paths, rendering overlays with `kubectl kustomize`."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
OVERLAYS = ("dev", "prod")


def kubectl() -> str:
    found = shutil.which("kubectl") or "/usr/bin/kubectl"
    assert Path(found).exists(), "kubectl (with kustomize) is required: /usr/bin/kubectl"
    return found


def render(target: Path) -> list[dict[str, Any]]:
    done = subprocess.run(
        [kubectl(), "kustomize", str(target)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, f"kubectl kustomize {target} failed:\n{done.stderr}"
    return [d for d in yaml.safe_load_all(done.stdout) if d]


_rendered: dict[str, list[dict[str, Any]]] = {}


def overlay(name: str) -> list[dict[str, Any]]:
    if name not in _rendered:
        _rendered[name] = render(K8S / "overlays" / name)
    return _rendered[name]


def find(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> list[dict[str, Any]]:
    return [
        d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)
    ]
