"""`python -m shared.events.snapshots [--check]` on a scratch directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared.events import registry, snapshots
from shared.events.ingest import MetricsIngestedV1, StoreRegisteredV1


def test_check_passes_on_the_repository(capsys: pytest.CaptureFixture[str]) -> None:
    assert snapshots.main(["--check"]) == 0
    assert "OK" in capsys.readouterr().out


@pytest.fixture
def contracts(tmp_path: Path) -> Path:
    assert snapshots.main(["--dir", str(tmp_path)]) == 0
    return tmp_path


def test_write_creates_a_schema_and_an_example_per_class(contracts: Path) -> None:
    names = sorted(path.name for path in contracts.iterdir())
    assert len(names) == 2 * len(registry())
    assert "ingest.store_registered.v1.schema.json" in names
    assert "ingest.store_registered.v1.example.json" in names
    text = (contracts / "ingest.store_registered.v1.schema.json").read_text(encoding="utf-8")
    assert text == json.dumps(json.loads(text), sort_keys=True, indent=2, ensure_ascii=False) + "\n"
    assert snapshots.main(["--check", "--dir", str(contracts)]) == 0


def test_check_fails_on_a_missing_snapshot(
    contracts: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    snapshots.schema_path(StoreRegisteredV1, contracts).unlink()
    snapshots.example_path(MetricsIngestedV1, contracts).unlink()
    capsys.readouterr()
    assert snapshots.main(["--check", "--dir", str(contracts)]) == 1
    out = capsys.readouterr().out
    assert "ingest.store_registered.v1: no schema snapshot" in out
    assert "ingest.metrics_ingested.v1: no example snapshot" in out


def _narrow_platform(contracts: Path) -> Path:
    # The snapshot accepted fewer platforms than the class now does: the class widened the enum.
    path = snapshots.schema_path(StoreRegisteredV1, contracts)
    schema = json.loads(path.read_text(encoding="utf-8"))
    schema["properties"]["platform"]["enum"].remove("jd")
    schema["properties"]["name"]["type"] = "integer"
    path.write_text(snapshots.render(schema), encoding="utf-8")
    return path


def test_check_fails_listing_breaking_changes(
    contracts: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _narrow_platform(contracts)
    capsys.readouterr()
    assert snapshots.main(["--check", "--dir", str(contracts)]) == 1
    out = capsys.readouterr().out
    assert 'ingest.store_registered.v1: platform: enum widened: ["jd"] added' in out
    assert "ingest.store_registered.v1: name: type changed from integer to string" in out


def test_write_refuses_a_breaking_change_unless_forced(contracts: Path) -> None:
    path = _narrow_platform(contracts)
    before = path.read_text(encoding="utf-8")
    assert snapshots.main(["--dir", str(contracts)]) == 1
    assert path.read_text(encoding="utf-8") == before
    assert snapshots.main(["--dir", str(contracts), "--force"]) == 0
    assert path.read_text(encoding="utf-8") == snapshots.render(
        StoreRegisteredV1.model_json_schema()
    )


def test_a_compatible_change_passes_the_check_and_is_refreshed(
    contracts: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = snapshots.schema_path(StoreRegisteredV1, contracts)
    schema = json.loads(path.read_text(encoding="utf-8"))
    del schema["properties"]["status"]["default"]
    schema["description"] = "an older wording"
    path.write_text(snapshots.render(schema), encoding="utf-8")
    capsys.readouterr()
    assert snapshots.main(["--check", "--dir", str(contracts)]) == 0
    assert "out of date" in capsys.readouterr().out
    assert snapshots.main(["--dir", str(contracts)]) == 0
    assert snapshots.stale(contracts) == []


def test_check_fails_on_a_removed_contract(
    contracts: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (contracts / "ingest.store_exploded.v1.schema.json").write_text("{}\n", encoding="utf-8")
    capsys.readouterr()
    assert snapshots.main(["--check", "--dir", str(contracts)]) == 1
    assert "ingest.store_exploded.v1: snapshot without a class" in capsys.readouterr().out


def test_check_fails_when_a_stored_example_no_longer_decodes(
    contracts: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = snapshots.example_path(StoreRegisteredV1, contracts)
    example = json.loads(path.read_text(encoding="utf-8"))
    example["platform"] = "myspace"
    path.write_text(snapshots.render(example), encoding="utf-8")
    capsys.readouterr()
    assert snapshots.main(["--check", "--dir", str(contracts)]) == 1
    assert "the stored example no longer decodes" in capsys.readouterr().out
