"""Diagnosis: the engine (`engine/`, pure functions) and two command-line tools (`rca`,
`anomaly`); docs/diagnosis.md. The service itself (main.py: HTTP, consumers, database) is a later
issue; the all-in-one app mounts it once its main.py exists.
"""
