"""What a run really used: cgroup and process-tree readers and the run tags they become.

Pure functions over paths and plain data; no Dagster and no Kubernetes client (the recorder that writes
the tags through a DagsterInstance is ``floe_platform.dagster.usage_recorder``).
"""

from floe_platform.usage.cgroup import CgroupSample, container_cgroup, read_cgroup
from floe_platform.usage.tags import RunUsage, usage_tags

__all__ = ["CgroupSample", "RunUsage", "container_cgroup", "read_cgroup", "usage_tags"]
