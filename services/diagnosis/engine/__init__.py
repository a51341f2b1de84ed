"""The diagnosis engine: pure functions, no I/O (docs/diagnosis.md has the map of modules).

Nothing is imported here on purpose: the command-line tools import only the module they need
(`rootcause`, `anomaly`), so they start without loading the event contracts.
"""
