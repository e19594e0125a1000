"""Where the operator benchmarks run: kmock's emulator and the real control plane, behind one interface.

A benchmark asks an environment for a *side*: a namespace of its own with a kubeconfig for the operator, a
client for the bare writer, a client for the user who applies FloePlatforms, a PodTemplate watch, and a
count of the requests the API server served. On the emulator each side gets a fresh emulator (neither side
pays for the other's objects). On the real control plane (etcd, kube-apiserver, kube-controller-manager,
kube-scheduler, kwok; ``testkit.controlplane``) all sides share one server and each gets a fresh namespace
with the chart's operator ServiceAccount, Role and RoleBinding: the operator and the bare client write with
that ServiceAccount's token; FloePlatforms are applied by the admin, as a user would.
"""

from __future__ import annotations

import itertools
import os
import ssl
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import kubernetes  # type: ignore[import-untyped]
import yaml

from bench.core import Unavailable
from testkit.controlplane.metrics import RequestKey, request_totals
from testkit.emulator import emulated_cluster
from testkit.platforms import TemplateWatch

EMULATOR = "emulator"
APISERVER = "kube-apiserver"
ENVIRONMENTS_VARIABLE = "FLOE_BENCH_ENVIRONMENTS"
# How kmock names an action, as kube-apiserver's metrics name the verb (the operator patches, never PUTs).
_VERBS = {"CREATE": "POST", "UPDATE": "PATCH", "FETCH": "GET", "LIST": "LIST", "WATCH": "WATCH"}


def wanted_environments() -> list[str]:
    """``FLOE_BENCH_ENVIRONMENTS`` (comma-separated), by default both."""
    value = os.environ.get(ENVIRONMENTS_VARIABLE, f"{EMULATOR},{APISERVER}")
    return [name.strip() for name in value.split(",") if name.strip()]


class Side(Protocol):
    namespace: str
    operator_kubeconfig: Path
    exact: bool
    """Whether live templates must equal the rendered ones (the emulator) or contain them (a real server)."""

    def writer(self) -> Any:
        """An ApiClient that may create and patch PodTemplates in the namespace (the bare client)."""

    def user(self) -> Any:
        """An ApiClient that may create and patch FloePlatforms (who applies them)."""

    def watch(self, expected: Mapping[str, Mapping[str, Any]]) -> TemplateWatch:
        """A started-to-be PodTemplate watch of the namespace (call ``start()``)."""

    def requests(self) -> Counter[RequestKey]:
        """What the server has served so far (subtract two readings)."""


class Environment(Protocol):
    name: str

    def side(self, label: str) -> Any:
        """A context manager yielding a fresh ``Side``."""


# --- the emulator ---------------------------------------------------------------------------------------


@dataclass
class _RequestCounter:
    """The emulator's fault hook used only to count: every request is served normally."""

    seen: Counter[RequestKey] = field(default_factory=Counter)

    async def __call__(self, request: Any) -> None:
        resource = request.resource
        action = str(getattr(request.action, "value", "") or request.method)
        plural = resource.plural if resource is not None else ""
        self.seen[(_VERBS.get(action, action), plural, request.subresource or "")] += 1


@dataclass
class EmulatorSide:
    cluster: Any
    namespace: str
    counter: _RequestCounter
    exact: bool = True

    @property
    def operator_kubeconfig(self) -> Path:
        path: Path = self.cluster.kubeconfig_path
        return path

    def writer(self) -> Any:
        return self.cluster.api_client()

    def user(self) -> Any:
        return self.cluster.api_client()

    def watch(self, expected: Mapping[str, Mapping[str, Any]]) -> TemplateWatch:
        return TemplateWatch(self.cluster.url, self.namespace, expected)

    def requests(self) -> Counter[RequestKey]:
        return Counter(self.counter.seen)


class EmulatorEnvironment:
    """A fresh kmock emulator per side, filtering lists by labelSelector as a real API server does."""

    name = EMULATOR

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self._count = itertools.count()

    @contextmanager
    def side(self, label: str) -> Iterator[EmulatorSide]:
        workdir = self.workdir / f"{label}-{next(self._count)}"
        workdir.mkdir(parents=True)
        with emulated_cluster(workdir, "bench", honour_label_selectors=True) as cluster:
            counter = _RequestCounter()
            cluster.emulator.fault_hook = counter
            yield EmulatorSide(cluster, "bench", counter)


# --- the real control plane -------------------------------------------------------------------------------


@dataclass
class ApiServerSide:
    plane: Any
    namespace: str
    operator_kubeconfig: Path
    exact: bool = False

    def writer(self) -> Any:
        return kubernetes.config.new_client_from_config(config_file=str(self.operator_kubeconfig))

    def user(self) -> Any:
        return kubernetes.config.new_client_from_config(config_file=str(self.plane.kubeconfig))

    def watch(self, expected: Mapping[str, Mapping[str, Any]]) -> TemplateWatch:
        config = yaml.safe_load(self.operator_kubeconfig.read_text())
        token = config["users"][0]["user"]["token"]
        context = ssl.create_default_context(cafile=str(self.plane.ca_file))
        return TemplateWatch(
            self.plane.server, self.namespace, expected, token=token, context=context, exact=False
        )

    def requests(self) -> Counter[RequestKey]:
        return request_totals(self.plane.admin_api())


class ApiServerEnvironment:
    """One real control plane for the whole benchmark; a fresh namespace (with the chart's operator RBAC)
    per side."""

    name = APISERVER

    def __init__(self, plane: Any, workdir: Path) -> None:
        self.plane = plane
        self.workdir = workdir
        self._count = itertools.count()

    @contextmanager
    def side(self, label: str) -> Iterator[ApiServerSide]:
        from testkit.controlplane.chart import operator_namespace

        namespace = f"bench-{label}-{next(self._count)}"
        kubeconfig = operator_namespace(self.plane, namespace, self.workdir / f"{namespace}.kubeconfig")
        # Left in place: the whole control plane (and its etcd) goes away with the benchmark.
        yield ApiServerSide(self.plane, namespace, kubeconfig)


@contextmanager
def real_control_plane(workdir: Path) -> Iterator[ApiServerEnvironment]:
    """Start a control plane from the cached binaries (building them needs Go) with the chart's CRD."""
    from testkit.controlplane import build, cluster
    from testkit.controlplane.chart import install_crd

    try:
        build.go_binary()
    except build.GoMissingError as error:
        raise Unavailable(f"no real control plane: {error}") from error
    state_dir = workdir / "controlplane"
    plane = cluster.up(state_dir)
    try:
        install_crd(plane)
        yield ApiServerEnvironment(plane, workdir)
    finally:
        cluster.down(state_dir)


# The resources a FloePlatform's reconcile touches. Other traffic on the real server (kwok's node
# heartbeats, leases) is not the operator's; watches are long-running and counted once when they start.
OPERATOR_RESOURCES = frozenset({"floeplatforms", "podtemplates", "limitranges", "resourcequotas", "events"})


def operator_requests(requests: Counter[RequestKey], user_creates: int) -> Counter[RequestKey]:
    """The requests of a converge that were not the user's ``user_creates`` FloePlatform creates."""
    kept = Counter(
        {
            key: count
            for key, count in requests.items()
            if key[1] in OPERATOR_RESOURCES and key[0] not in ("WATCH", "WATCHLIST")
        }
    )
    kept[("POST", "floeplatforms", "")] -= user_creates
    return +kept  # drops the zero left by subtracting the user's creates


def total(requests: Counter[RequestKey]) -> int:
    return sum(requests.values())


def per_platform(requests: Counter[RequestKey], platforms: int) -> str:
    """The counts as ``POST podtemplates 5.00, PATCH floeplatforms/status 1.00, ...`` per FloePlatform."""
    parts = []
    for (verb, resource, subresource), count in sorted(requests.items(), key=lambda kv: (-kv[1], kv[0])):
        name = f"{resource}/{subresource}" if subresource else resource
        parts.append(f"{verb} {name or '-'} {count / platforms:.2f}")
    return ", ".join(parts)
