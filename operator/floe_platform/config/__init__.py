"""The platform.yaml contract: models, quantities and the loader. Imports no Kubernetes client or Dagster."""

from floe_platform.config.loader import ConfigError, load_platform, load_platform_text, parse_platform
from floe_platform.config.models import (
    ComputeLogs,
    PlatformConfig,
    ResourceProfile,
    Resources,
    S3Storage,
    SecretRef,
    Toleration,
)

__all__ = [
    "ComputeLogs",
    "ConfigError",
    "PlatformConfig",
    "ResourceProfile",
    "Resources",
    "S3Storage",
    "SecretRef",
    "Toleration",
    "load_platform",
    "load_platform_text",
    "parse_platform",
]
