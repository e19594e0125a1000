"""The demo code location: a small real platform of Python and dbt assets."""
