"""Every generated file of the repository and its content, computed from the models.

The repository root is found from this file's place in the source tree: code generation runs from a
checkout (``make schemas``), never from an installed wheel.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType

import yaml

from floe_platform.codegen.crd import dump_crd_yaml
from floe_platform.codegen.platform_schema import compute_log_defaults, dump_json, platform_json_schema
from floe_platform.codegen.platform_schema import reference_table as platform_reference_table

ROOT = Path(__file__).resolve().parents[3]
CHART = ROOT / "charts" / "floe-platform"
CRD_FILE = CHART / "crds" / "floeplatforms.floe.dev.yaml"
VALUES_SCHEMA_FILE = CHART / "values.schema.json"
COMPUTE_LOG_DEFAULTS_FILE = CHART / "files" / "compute-log-defaults.json"
CHART_README = CHART / "README.md"
PLATFORM_SCHEMA_FILE = ROOT / "platform-config" / "platform.schema.json"
PLATFORM_REFERENCE = ROOT / "docs" / "platform-yaml.md"


def chart_values_module() -> ModuleType:
    """The chart's values models (``charts/floe-platform/schema/chart_values.py``), a development file."""
    if "floe_chart_values" in sys.modules:
        return sys.modules["floe_chart_values"]
    path = CHART / "schema" / "chart_values.py"
    spec = importlib.util.spec_from_file_location("floe_chart_values", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # pydantic resolves the models' annotations through sys.modules
    spec.loader.exec_module(module)
    return module


def _between_markers(text: str, marker: str, table: str) -> str:
    """``text`` with the part between ``<!-- marker:start -->`` and ``<!-- marker:end -->`` replaced."""
    pattern = re.compile(rf"(<!-- {marker}:start -->\n).*?(<!-- {marker}:end -->)", re.DOTALL)
    if not pattern.search(text):
        raise ValueError(f"no <!-- {marker}:start/end --> markers")
    return pattern.sub(lambda match: match.group(1) + table + match.group(2), text)


def generated_files() -> dict[Path, str]:
    """Each generated file and what it must contain."""
    chart_values = chart_values_module()
    defaults = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
    values_table = chart_values.values_reference(defaults)
    return {
        PLATFORM_SCHEMA_FILE: dump_json(platform_json_schema()),
        CRD_FILE: dump_crd_yaml(),
        VALUES_SCHEMA_FILE: dump_json(chart_values.chart_values_schema()),
        COMPUTE_LOG_DEFAULTS_FILE: json.dumps(compute_log_defaults(), indent=2, sort_keys=True) + "\n",
        CHART_README: _between_markers(
            CHART_README.read_text(encoding="utf-8"), "values-reference", values_table
        ),
        PLATFORM_REFERENCE: _between_markers(
            PLATFORM_REFERENCE.read_text(encoding="utf-8"), "reference", platform_reference_table()
        ),
    }
