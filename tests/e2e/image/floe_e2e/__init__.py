"""The e2e code location: the demo's definitions plus the OOM probe (tests/e2e only, never shipped)."""
