"""The Dagster side of floe-platform: profile-aware run launcher, DuckDB resource, dbt translator.

Imports Dagster; ``config`` and ``render`` never import this package.
"""
