"""JSON Schema snapshots and examples of every event contract, under tests/contracts.

    uv run python -m shared.events.snapshots           # write (refuses a breaking change)
    uv run python -m shared.events.snapshots --check   # CI: exit 1 on breaking/missing

A snapshot is the contract as published. --check compares the current classes with it and fails
on a breaking change (shared.events.compat), a missing snapshot, a snapshot whose class is gone
(a removed contract), or a stored example that no longer decodes. A compatible change (an added
optional field, a new description) only makes the snapshot stale: --check says so and passes.
Writing refuses to overwrite a snapshot with a breaking change: publish a new version beside it
(FooV2 next to FooV1); --force exists for contracts that were never released.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from shared.events.compat import breaking_changes
from shared.events.envelope import Event, UndecodableEvent, decode, registry

CONTRACTS_DIR = Path(__file__).resolve().parents[2] / "tests" / "contracts"


def stem(cls: type[Event]) -> str:
    return f"{cls.TYPE}.v{cls.VERSION}"


def schema_path(cls: type[Event], directory: Path = CONTRACTS_DIR) -> Path:
    return directory / f"{stem(cls)}.schema.json"


def example_path(cls: type[Event], directory: Path = CONTRACTS_DIR) -> Path:
    return directory / f"{stem(cls)}.example.json"


def render(data: Any) -> str:
    """The stored form: sorted keys, 2-space indent, UTF-8 text, trailing newline."""
    return json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def current_schema(cls: type[Event]) -> dict[str, Any]:
    return cls.model_json_schema()


def current_example(cls: type[Event]) -> dict[str, Any]:
    example: Event = cls.example()  # type: ignore[attr-defined]
    return example.model_dump(mode="json")


def _classes() -> list[type[Event]]:
    return [cls for _, cls in sorted(registry().items())]


def _read(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def check(directory: Path = CONTRACTS_DIR) -> list[str]:
    """Problems that fail the check: breaking changes, missing snapshots, removed contracts."""
    problems: list[str] = []
    classes = _classes()
    for cls in classes:
        name = stem(cls)
        path = schema_path(cls, directory)
        if not path.exists():
            problems.append(f"{name}: no schema snapshot ({path.name})")
        else:
            problems.extend(
                f"{name}: {change}" for change in breaking_changes(_read(path), current_schema(cls))
            )
        path = example_path(cls, directory)
        if not path.exists():
            problems.append(f"{name}: no example snapshot ({path.name})")
            continue
        try:
            decoded = decode(path.read_bytes())
        except UndecodableEvent as exc:
            problems.append(f"{name}: the stored example no longer decodes: {exc}")
        else:
            if type(decoded) is not cls:
                problems.append(f"{name}: the stored example decodes as {type(decoded).__name__}")
    known = {stem(cls) for cls in classes}
    for path in sorted(directory.glob("*.schema.json")):
        name = path.name.removesuffix(".schema.json")
        if name not in known:
            problems.append(f"{name}: snapshot without a class (a published contract was removed)")
    return problems


def stale(directory: Path = CONTRACTS_DIR) -> list[str]:
    """Snapshots that differ from the current classes (compatibly, if check() passes)."""
    out: list[str] = []
    for cls in _classes():
        for path, data in (
            (schema_path(cls, directory), current_schema(cls)),
            (example_path(cls, directory), current_example(cls)),
        ):
            if path.exists() and path.read_text(encoding="utf-8") != render(data):
                out.append(path.name)
    return out


def write(directory: Path = CONTRACTS_DIR, *, force: bool = False) -> tuple[list[str], list[str]]:
    """Write every snapshot that changed; return (written file names, refusals)."""
    directory.mkdir(parents=True, exist_ok=True)
    written: list[str] = []
    refused: list[str] = []
    for cls in _classes():
        schema = current_schema(cls)
        path = schema_path(cls, directory)
        if path.exists() and not force:
            changes = breaking_changes(_read(path), schema)
            if changes:
                refused.extend(f"{stem(cls)}: {change}" for change in changes)
                continue
        for target, data in ((path, schema), (example_path(cls, directory), current_example(cls))):
            text = render(data)
            if not target.exists() or target.read_text(encoding="utf-8") != text:
                target.write_text(text, encoding="utf-8")
                written.append(target.name)
    return written, refused


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m shared.events.snapshots", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument("--check", action="store_true", help="compare, write nothing")
    parser.add_argument(
        "--force", action="store_true", help="overwrite snapshots even with breaking changes"
    )
    parser.add_argument("--dir", type=Path, default=CONTRACTS_DIR, help="snapshot directory")
    args = parser.parse_args(argv)
    directory: Path = args.dir

    if args.check:
        problems = check(directory)
        if problems:
            print("Event contracts: breaking changes or missing snapshots:")
            for problem in problems:
                print(f"  {problem}")
            print(
                "Publish a breaking change as a new version (FooV2 beside FooV1); write missing "
                "snapshots with `python -m shared.events.snapshots`."
            )
            return 1
        for name in stale(directory):
            print(f"note: {name} is out of date (compatible change); refresh it by running "
                  "`python -m shared.events.snapshots`")  # fmt: skip
        print(f"Event contracts OK: {len(_classes())} classes match their snapshots.")
        return 0

    written, refused = write(directory, force=args.force)
    for name in written:
        print(f"wrote {name}")
    if refused:
        print("Refused to overwrite snapshots with breaking changes:", file=sys.stderr)
        for problem in refused:
            print(f"  {problem}", file=sys.stderr)
        print(
            "Publish a new version beside the old one, or pass --force for an unreleased contract.",
            file=sys.stderr,
        )
        return 1
    orphans = [problem for problem in check(directory) if "snapshot without a class" in problem]
    for problem in orphans:
        print(f"warning: {problem}", file=sys.stderr)
    if not written:
        print("Snapshots already up to date.")
    return 1 if orphans else 0


if __name__ == "__main__":
    raise SystemExit(main())
