"""Drive the real operator (``floe operator`` in its own process) against the emulator, and judge the result.

Shared by the P1/P2 benchmarks and the fault tests. The expected PodTemplates come from the renderer itself
(``render_pod_templates``), so "right" means: every profile of every FloePlatform has a template whose
``template`` and profile hash are what the renderer makes, and no other template carries our labels.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from floe_platform.api import GROUP, VERSION
from floe_platform.config import parse_platform
from floe_platform.render import HASH_ANNOTATION, render_pod_templates
from floe_platform.render.podtemplate import PLATFORM_LABEL

CRD_API_VERSION = f"{GROUP}/{VERSION}"
WATCH_IDLE_SECONDS = 5


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
    return {
        "apiVersion": CRD_API_VERSION,
        "kind": "FloePlatform",
        "metadata": {"name": name},
        "spec": dict(spec),
    }


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


def judge(live: Iterable[Mapping[str, Any]], expected: Mapping[str, Mapping[str, Any]]) -> Verdict:
    """Compare live PodTemplates carrying our platform label with ``expected``."""
    ours = [item for item in live if PLATFORM_LABEL in ((item.get("metadata") or {}).get("labels") or {})]
    counts = Counter(item["metadata"]["name"] for item in ours)
    by_name = {item["metadata"]["name"]: item for item in ours}
    wrong = [
        name
        for name, item in by_name.items()
        if name in expected and not _same_template(item, expected[name])
    ]
    return Verdict(
        missing=sorted(set(expected) - set(by_name)),
        extra=sorted(set(by_name) - set(expected)),
        duplicated=sorted(name for name, count in counts.items() if count > 1),
        wrong=sorted(wrong),
    )


def _same_template(live: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    live_hash = (live["metadata"].get("annotations") or {}).get(HASH_ANNOTATION)
    return bool(live_hash == wanted["metadata"]["annotations"][HASH_ANNOTATION]) and bool(
        live.get("template") == wanted["template"]
    )


def list_templates(api_client: Any, namespace: str) -> list[dict[str, Any]]:
    """Every PodTemplate in ``namespace`` as plain JSON (one request)."""
    import kubernetes  # type: ignore[import-untyped]

    core = kubernetes.client.CoreV1Api(api_client)
    response = core.list_namespaced_pod_template(namespace, _preload_content=False)
    items: list[dict[str, Any]] = json.loads(response.data).get("items") or []
    return items


class TemplateWatch(threading.Thread):
    """Follows a namespace's PodTemplates over one raw watch stream and notes when they match ``expected``.

    Cheaper than polling lists (which would load the emulator with megabytes per poll) and exact to the
    event: ``converged_at`` is the ``perf_counter`` time of the event that completed the set.
    """

    def __init__(self, url: str, namespace: str, expected: Mapping[str, Mapping[str, Any]]) -> None:
        super().__init__(daemon=True)
        self.url = f"{url}/api/v1/namespaces/{namespace}/podtemplates?watch=true"
        self.expected = expected
        self.live: dict[str, dict[str, Any]] = {}
        self.right: set[str] = set()
        self.converged = threading.Event()
        self.converged_at = 0.0
        self._stop = threading.Event()

    def run(self) -> None:
        while not self._stop.is_set():
            self.live, self.right = {}, set()  # a new watch replays every object as ADDED
            request = urllib.request.Request(self.url, headers={"Authorization": "Bearer emulator-token"})
            try:
                with urllib.request.urlopen(request, timeout=WATCH_IDLE_SECONDS) as response:
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
        if name in self.expected and event["type"] != "DELETED" and _same_template(item, self.expected[name]):
            self.right.add(name)
        else:
            self.right.discard(name)
        if len(self.right) == len(self.expected) and not self.converged.is_set():
            self.converged_at = time.perf_counter()
            self.converged.set()

    def close(self) -> None:
        """Stop following; the thread ends at its next line or idle timeout (it is a daemon either way)."""
        self._stop.set()


def wait_until(condition: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


class OperatorProcess:
    """``floe operator --namespace NS`` in a child process with the emulator's kubeconfig; stopped by pid."""

    def __init__(self, kubeconfig: Path, namespace: str, log_path: Path, resync_seconds: float = 20) -> None:
        self.liveness_port = free_port()
        self.kubeconfig = kubeconfig
        self.namespace = namespace
        self.log_path = log_path
        self.resync_seconds = resync_seconds
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None, "the operator is not running"
        return self.process.pid

    def start(self) -> OperatorProcess:
        env = dict(os.environ) | {"KUBECONFIG": str(self.kubeconfig), "PYTHONUNBUFFERED": "1"}
        command = [
            sys.executable,
            "-m",
            "floe_platform.cli",
            "operator",
            "--namespace",
            self.namespace,
            "--liveness-port",
            str(self.liveness_port),
            "--resync-seconds",
            str(self.resync_seconds),
        ]
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(command, env=env, stdout=self._log, stderr=subprocess.STDOUT)
        return self

    def wait_ready(self, timeout: float = 60) -> None:
        """Wait for kopf's liveness endpoint, which answers once the operator has started."""
        url = f"http://127.0.0.1:{self.liveness_port}/healthz"
        if not wait_until(lambda: _answers(url) or self._exited(), timeout, interval=0.1) or self._exited():
            raise RuntimeError(f"the operator did not become ready:\n{self.log_tail()}")

    def _exited(self) -> bool:
        return self.process is None or self.process.poll() is not None

    def kill(self) -> None:
        """SIGKILL: no cleanup, as when a node dies or the OOM killer strikes mid-reconcile."""
        self._end(signal.SIGKILL)

    def stop(self) -> None:
        self._end(signal.SIGTERM)

    def _end(self, how: signal.Signals) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(how)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, lines: int = 30) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])
