"""FloePlatforms for tests and benchmarks, and how to judge the PodTemplates an operator made for them.

The expected PodTemplates come from the renderer itself (``render_pod_templates``), so "right" means: every
profile of every FloePlatform has a template whose ``template`` and profile hash are what the renderer
makes, and no other template carries our labels.
"""

from __future__ import annotations

import copy
import json
import ssl
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from floe_platform.api import API_VERSION, GROUP, KIND, PLURAL, VERSION, platform_resource
from floe_platform.config import load_platform, parse_platform
from floe_platform.config.quantity import QuantityError, parse_quantity
from floe_platform.controller.kubeapi import KubeClient
from floe_platform.render import HASH_ANNOTATION, render_pod_templates
from floe_platform.render.podtemplate import PLATFORM_LABEL

ROOT = Path(__file__).resolve().parent.parent
PRODUCTION = ROOT / "platform-config/platform/production/platform.yaml"
NAMESPACE = "floe"
CR = (GROUP, VERSION, NAMESPACE, PLURAL)
WATCH_IDLE_SECONDS = 5
# Fields of a pod spec that hold quantities (resources' cpu and memory, an emptyDir's sizeLimit).
QUANTITY_KEYS = frozenset({"cpu", "memory", "ephemeral-storage", "sizeLimit"})


def acme_platform(**infrastructure: Any) -> dict[str, Any]:
    """platform.yaml "acme" with the two profiles the launcher's and the step executor's real-server tests
    launch on: ``small`` (2Gi) and ``transform`` (4Gi, DUCKDB_THREADS set); ``infrastructure`` adds keys."""
    profiles = {
        "small": {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"cpu": "1", "memory": "2Gi"}},
        "transform": {
            "requests": {"cpu": "1", "memory": "2Gi"},
            "limits": {"cpu": "2", "memory": "4Gi"},
            "env": {"DUCKDB_THREADS": "2"},
        },
    }
    return {"platform": {"name": "acme"}, "infrastructure": {"resource_profiles": profiles, **infrastructure}}


def production_cr(name: str, namespace: str = NAMESPACE) -> dict[str, Any]:
    """`floe cr` of the production example: profiles default, transform, ingest and small."""
    return platform_resource(load_platform(PRODUCTION), name, namespace)


def with_profile(resource: dict[str, Any], profile: str, **changes: Any) -> dict[str, Any]:
    changed = copy.deepcopy(resource)
    changed["spec"]["infrastructure"]["resource_profiles"][profile].update(changes)
    return changed


def profile_spec(index: int, memory_mib: int = 1024) -> dict[str, Any]:
    """A resource profile; ``memory_mib`` varies it so that patches change the rendered template."""
    return {
        "requests": {"cpu": "250m", "memory": f"{memory_mib // 2}Mi"},
        "limits": {"cpu": str(1 + index % 4), "memory": f"{memory_mib}Mi"},
        "env": {"FLOE_PROFILE_INDEX": str(index)},
    }


def platform_spec(profiles: int) -> dict[str, Any]:
    """A FloePlatform spec (platform.yaml keys verbatim) with ``profiles`` profiles named p0, p1, ..."""
    return {
        "infrastructure": {
            "resource_profiles": {f"p{index}": profile_spec(index) for index in range(profiles)}
        },
        "observability": {"compute_logs": {"manager_type": "noop"}},
    }


def floe_platform(name: str, spec: Mapping[str, Any]) -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": name}, "spec": dict(spec)}


def expected_templates(
    platforms: Mapping[str, Mapping[str, Any]], namespace: str
) -> dict[str, dict[str, Any]]:
    """Template name -> rendered PodTemplate, for every profile of every platform."""
    expected: dict[str, dict[str, Any]] = {}
    for name, spec in platforms.items():
        config = parse_platform(dict(spec))
        for template in render_pod_templates(config, platform_name=name, namespace=namespace):
            expected[template["metadata"]["name"]] = template
    return expected


@dataclass(frozen=True)
class Verdict:
    """How the live PodTemplates differ from the expected ones (empty lists: converged)."""

    missing: list[str]
    extra: list[str]
    duplicated: list[str]
    wrong: list[str]

    @property
    def converged(self) -> bool:
        return not (self.missing or self.extra or self.duplicated or self.wrong)


def judge(
    live: Iterable[Mapping[str, Any]], expected: Mapping[str, Mapping[str, Any]], exact: bool = True
) -> Verdict:
    """Compare live PodTemplates carrying our platform label with ``expected`` (``exact``: equal templates;
    otherwise contained, for what a real API server stores)."""
    ours = [item for item in live if PLATFORM_LABEL in ((item.get("metadata") or {}).get("labels") or {})]
    counts = Counter(item["metadata"]["name"] for item in ours)
    by_name = {item["metadata"]["name"]: item for item in ours}
    wrong = [
        name
        for name, item in by_name.items()
        if name in expected and not _same_template(item, expected[name], exact)
    ]
    return Verdict(
        missing=sorted(set(expected) - set(by_name)),
        extra=sorted(set(by_name) - set(expected)),
        duplicated=sorted(name for name, count in counts.items() if count > 1),
        wrong=sorted(wrong),
    )


def _same_template(live: Mapping[str, Any], wanted: Mapping[str, Any], exact: bool = True) -> bool:
    """The profile hash, and the template: equal (``exact``, the emulator) or contained (a real server)."""
    live_hash = (live["metadata"].get("annotations") or {}).get(HASH_ANNOTATION)
    if live_hash != wanted["metadata"]["annotations"][HASH_ANNOTATION]:
        return False
    if exact:
        return bool(live.get("template") == wanted["template"])
    return contains(live.get("template"), wanted["template"])


def contains(live: Any, rendered: Any, key: str | None = None) -> bool:
    """Whether ``live`` (as a server stored it) holds everything ``rendered`` says: each rendered field with
    an equal value, lists item for item, quantities by value. A real API server adds defaults
    (``terminationMessagePolicy``, ...) and makes quantities canonical (``1024Mi`` -> ``1Gi``); the emulator
    stores what it got, where this is plain equality."""
    if isinstance(rendered, Mapping):
        return isinstance(live, Mapping) and all(
            name in live and contains(live[name], value, name) for name, value in rendered.items()
        )
    if isinstance(rendered, list):
        return (
            isinstance(live, list)
            and len(live) == len(rendered)
            and all(contains(a, w) for a, w in zip(live, rendered, strict=True))
        )
    if live != rendered and key in QUANTITY_KEYS:
        try:
            return parse_quantity(str(live)) == parse_quantity(str(rendered))
        except QuantityError:
            return False
    return bool(live == rendered)


def list_templates(api_client: Any, namespace: str) -> list[dict[str, Any]]:
    """Every PodTemplate in ``namespace`` as plain JSON (one request)."""
    import kubernetes  # type: ignore[import-untyped]

    core = kubernetes.client.CoreV1Api(api_client)
    response = core.list_namespaced_pod_template(namespace, _preload_content=False)
    items: list[dict[str, Any]] = json.loads(response.data).get("items") or []
    return items


def platform_templates(
    api_client: Any, platform: str, namespace: str = NAMESPACE
) -> dict[str, dict[str, Any]]:
    """One platform's PodTemplates in ``namespace``, by name, as plain dicts."""
    return {
        item["metadata"]["name"]: item
        for item in list_templates(api_client, namespace)
        if (item["metadata"].get("labels") or {}).get(PLATFORM_LABEL) == platform
    }


class TemplateWatch(threading.Thread):
    """Follows a namespace's PodTemplates over one raw watch stream and notes when they match ``expected``.

    Cheaper than polling lists (which would load the emulator with megabytes per poll) and exact to the
    event: ``converged_at`` is the ``perf_counter`` time of the event that completed the set.
    """

    def __init__(
        self,
        url: str,
        namespace: str,
        expected: Mapping[str, Mapping[str, Any]],
        *,
        token: str = "emulator-token",
        context: ssl.SSLContext | None = None,
        exact: bool = True,
    ) -> None:
        """``token``, ``context`` (the server's CA) and ``exact=False`` (see ``judge``) for a real API
        server; the defaults suit the emulator."""
        super().__init__(daemon=True)
        self.url = f"{url}/api/v1/namespaces/{namespace}/podtemplates?watch=true"
        self.token = token
        self.context = context
        self.exact = exact
        self.expected = expected
        self.live: dict[str, dict[str, Any]] = {}
        self.right: set[str] = set()
        self.converged = threading.Event()
        self.converged_at = 0.0
        self._stop = threading.Event()

    def run(self) -> None:
        while not self._stop.is_set():
            self.live, self.right = {}, set()  # a new watch replays every object as ADDED
            request = urllib.request.Request(self.url, headers={"Authorization": f"Bearer {self.token}"})
            try:
                with urllib.request.urlopen(
                    request, timeout=WATCH_IDLE_SECONDS, context=self.context
                ) as response:
                    for line in response:
                        if self._stop.is_set():
                            return
                        if line.strip():
                            self._apply(json.loads(line))
            except (TimeoutError, OSError):
                continue  # idle for a while (or closed): watch again unless stopped

    def _apply(self, event: Mapping[str, Any]) -> None:
        item = event.get("object") or {}
        name = (item.get("metadata") or {}).get("name")
        if name is None or event.get("type") == "ERROR":
            return
        if event["type"] == "DELETED":
            self.live.pop(name, None)
        else:
            self.live[name] = dict(item)
        if (
            name in self.expected
            and event["type"] != "DELETED"
            and _same_template(item, self.expected[name], self.exact)
        ):
            self.right.add(name)
        else:
            self.right.discard(name)
        if len(self.right) == len(self.expected) and not self.converged.is_set():
            self.converged_at = time.perf_counter()
            self.converged.set()

    def close(self) -> None:
        """Stop following; the thread ends at its next line or idle timeout (it is a daemon either way)."""
        self._stop.set()


def templates(core: Any, platform: str, namespace: str = NAMESPACE) -> dict[str, dict[str, Any]]:
    """One platform's PodTemplates, read with a ``CoreV1Api``, by name, as plain dicts."""
    return platform_templates(core.api_client, platform, namespace)


def custom_objects(cluster: Any) -> Any:
    import kubernetes

    return kubernetes.client.CustomObjectsApi(cluster.api_client())


def operator_api(cluster: Any) -> KubeClient:
    """The operator's own API client, logged in with the cluster's kubeconfig (as ``floe operator`` would)."""
    return KubeClient.from_kubeconfig(cluster.kubeconfig_path)


def core_api(cluster: Any) -> Any:
    import kubernetes

    return kubernetes.client.CoreV1Api(cluster.api_client())


def pod_shape_profile() -> dict[str, Any]:
    """A profile that uses every pod-shape field beyond CPU and memory: extended resources, ephemeral
    storage, affinity, priority class, topology spread, env from a Secret and a ConfigMap, pod annotations
    and labels, and extra volumes of each kind."""
    return {
        "requests": {"cpu": "1", "memory": "2Gi", "ephemeral_storage": "5Gi"},
        "limits": {"cpu": "2", "memory": "4Gi", "ephemeral_storage": "10Gi"},
        "extended_resources": {"nvidia.com/gpu": 1},
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {"matchExpressions": [{"key": "accelerator", "operator": "In", "values": ["a100"]}]}
                    ]
                }
            }
        },
        "priority_class_name": "batch-high",
        "topology_spread_constraints": [
            {
                "maxSkew": 1,
                "topologyKey": "topology.kubernetes.io/zone",
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": {"floe.dev/profile": "gpu"}},
            }
        ],
        "env_from": [{"secret": "warehouse", "prefix": "WH_"}, {"config_map": "settings", "optional": True}],
        "annotations": {"example.com/owner": "ml-team"},
        "labels": {"team": "ml"},
        "volumes": [
            {
                "name": "dbt-profiles",
                "mount_path": "/opt/dbt",
                "config_map": "dbt-profiles",
                "read_only": True,
            },
            {"name": "certs", "mount_path": "/etc/certs", "secret": "warehouse-ca"},
            {"name": "models", "mount_path": "/models", "persistent_volume_claim": "models"},
            {"name": "scratch", "mount_path": "/scratch", "empty_dir_size": "1Gi"},
        ],
    }
