"""Diagnosis: the engine (`engine/`, pure functions), two command-line tools (`rca`, `anomaly`)
and the service (main.py: its own copy of the series from ingest's events, automatic daily
diagnosis per store timezone and on late data, versioned reports, findings with a lifecycle,
portfolio triage; `notify/`: notifications). docs/diagnosis.md.
"""
