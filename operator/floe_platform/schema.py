"""JSON schemas generated from the platform.yaml models (the one source of truth)."""

from __future__ import annotations

import json
from typing import Any

from floe_platform.config.models import PlatformConfig

SCHEMA_ID = "https://floe.dev/schemas/platform.schema.json"


def platform_json_schema() -> dict[str, Any]:
    """The JSON schema of platform.yaml, for editors and for ``platform-config/platform.schema.json``."""
    schema = PlatformConfig.model_json_schema(mode="validation")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID, **schema}


def dump_json(document: dict[str, Any]) -> str:
    """Stable text form of a generated schema, so that staleness tests compare exactly."""
    return json.dumps(document, indent=2, sort_keys=False) + "\n"
