"""Pure rendering: a platform config becomes Kubernetes objects (plain dicts). No API client here."""

from floe_platform.render.duckdb_env import duckdb_env
from floe_platform.render.guardrails import render_guardrails
from floe_platform.render.podtemplate import (
    CONTAINER_NAME,
    HASH_ANNOTATION,
    PROFILE_LABEL,
    render_pod_template,
    render_pod_templates,
    template_name,
)

__all__ = [
    "CONTAINER_NAME",
    "HASH_ANNOTATION",
    "PROFILE_LABEL",
    "duckdb_env",
    "render_guardrails",
    "render_pod_template",
    "render_pod_templates",
    "template_name",
]
