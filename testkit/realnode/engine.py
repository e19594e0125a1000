"""containerd and dockerd from Debian's packages, as background processes with their own directories.

containerd serves the kubelet (CRI, namespace ``k8s.io``) and dockerd (namespace ``moby``); dockerd only
builds images. Their image stores live in a cache directory outside the clone, so a second run finds the
images already built and imported; sockets, pids and logs live in a per-run directory. Nothing here
uses the host's systemd: ``stop`` ends exactly the recorded processes, by pid.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from testkit.controlplane.build import cache_root
from testkit.controlplane.cluster import _is_ours, _read_pids, _spawn, _stop, _write_pids
from testkit.controlplane.kubeapi import wait_for

# Debian's packages (bookworm: containerd 1.6, runc 1.1, CNI plugins 1.1, docker.io 20.10), each with a
# file it installs: a host that already has that program (say, another build of Docker) keeps its own.
PACKAGES = {
    "containerd": "/usr/bin/containerd",
    "runc": "/usr/sbin/runc",
    "containernetworking-plugins": "/usr/lib/cni/bridge",
    "docker.io": "/usr/bin/dockerd",
    "debootstrap": "/usr/sbin/debootstrap",
    "iptables": "/usr/sbin/iptables",
    # debootstrap checks Debian's release signatures; Debian hosts have the keyring already.
    "debian-archive-keyring": "/usr/share/keyrings/debian-archive-keyring.gpg",
}
CNI_BIN_DIR = Path("/usr/lib/cni")
DOCKER = "/usr/bin/docker"  # Debian's client: it builds with BuildKit without the buildx plugin
# The pause image the CRI plugin runs as each pod's sandbox; built by testkit.realnode.images.
PAUSE_IMAGE = "floe-platform/pause:local"
STOP_ORDER = ("dockerd", "containerd")
CNI_BRIDGE = "floe-cni0"
POD_SUBNET = "10.89.0.0/24"  # the node's pods, on the CNI bridge


class EngineUnavailableError(RuntimeError):
    """This machine cannot run containers (with the reason and, where there is one, the fix)."""


def store_dir() -> Path:
    """Image stores kept between runs: containerd's root and dockerd's data root."""
    return cache_root().parent / "realnode"


def unavailable_reason() -> str | None:
    """Why containers cannot run here, or None. Only what no package can fix: root and the memory cgroup."""
    if os.geteuid() != 0:
        return "real pods need root (containerd, runc and the kubelet manage cgroups and mounts)"
    if not (Path("/sys/fs/cgroup/memory").is_dir() or _cgroup2_has_memory()):
        return "real pods need the cgroup memory controller, which this kernel does not offer"
    return None


def _cgroup2_has_memory() -> bool:
    controllers = Path("/sys/fs/cgroup/cgroup.controllers")
    return controllers.is_file() and "memory" in controllers.read_text().split()


def missing_packages() -> list[str]:
    """The packages of PACKAGES whose program is not on this host."""
    found = {
        name: shutil.which(Path(path).name) or (path if Path(path).exists() else None)
        for name, path in PACKAGES.items()
    }
    return [name for name, where in found.items() if where is None]


def install_packages() -> None:
    """apt-get install whatever of PACKAGES is missing (Debian's daemons are not started: no systemd)."""
    missing = missing_packages()
    if not missing:
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing], check=True, env=env
    )


@dataclass(frozen=True)
class Engine:
    """Running containerd and dockerd: how to reach each of them."""

    run_dir: Path
    store: Path

    @property
    def containerd_socket(self) -> Path:
        return self.run_dir / "containerd.sock"

    @property
    def docker_socket(self) -> Path:
        return self.run_dir / "docker.sock"

    def docker(self, *args: str) -> list[str]:
        return [DOCKER, "-H", f"unix://{self.docker_socket}", *args]

    def ctr(self, *args: str) -> list[str]:
        """ctr in the kubelet's namespace."""
        return ["ctr", "--address", str(self.containerd_socket), "--namespace", "k8s.io", *args]

    @property
    def docker_env(self) -> dict[str, str]:
        return {**os.environ, "DOCKER_BUILDKIT": "1", "DOCKER_HOST": f"unix://{self.docker_socket}"}


def containerd_config(run_dir: Path, store: Path) -> str:
    """containerd 1.6's config (version 2): its own root, state and socket; CRI on cgroupfs with our CNI."""
    return f"""version = 2
root = "{store / "containerd"}"
state = "{run_dir / "containerd-state"}"

[grpc]
  address = "{run_dir / "containerd.sock"}"

[ttrpc]
  address = "{run_dir / "containerd.sock.ttrpc"}"

[plugins."io.containerd.internal.v1.opt"]
  path = "{store / "containerd-opt"}"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  enable_selinux = false
  # The machines' root lacks CAP_SYS_RESOURCE, so no process may lower its oom_score_adj below
  # containerd's: the kubelet's -998 (sandbox) and -997 (Guaranteed pods) are raised to that bound.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "{run_dir / "runc"}"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{CNI_BIN_DIR}"
    conf_dir = "{run_dir / "cni"}"
"""


def cni_config(run_dir: Path, subnet: str) -> str:
    """One bridge network for the node's pods; addresses from host-local, kept in the run directory."""
    return f"""{{
  "cniVersion": "0.4.0",
  "name": "floe-realnode",
  "plugins": [
    {{
      "type": "bridge",
      "bridge": "{CNI_BRIDGE}",
      "isGateway": true,
      "ipMasq": true,
      "hairpinMode": true,
      "ipam": {{
        "type": "host-local",
        "dataDir": "{run_dir / "cni-ipam"}",
        "ranges": [[{{"subnet": "{subnet}"}}]],
        "routes": [{{"dst": "0.0.0.0/0"}}]
      }}
    }},
    {{"type": "portmap", "capabilities": {{"portMappings": true}}}}
  ]
}}
"""


@contextmanager
def store_lock(store: Path) -> Iterator[None]:
    """One engine per image store: two containerds on one root would corrupt it."""
    store.mkdir(parents=True, exist_ok=True)
    with (store / ".lock").open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as error:
            raise EngineUnavailableError(f"another run is using the image store {store}") from error
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def start(run_dir: Path, store: Path | None = None, subnet: str = POD_SUBNET) -> Engine:
    """Start containerd, then dockerd on that containerd; wait until both answer."""
    store = store or store_dir()
    engine = Engine(run_dir, store)
    (run_dir / "logs").mkdir(parents=True, exist_ok=True)
    (run_dir / "cni").mkdir(exist_ok=True)
    (run_dir / "cni" / "10-floe-realnode.conflist").write_text(cni_config(run_dir, subnet))
    config = run_dir / "containerd.toml"
    config.write_text(containerd_config(run_dir, store))
    pids: dict[str, dict[str, Any]] = {}
    try:
        pids["containerd"] = _spawn("containerd", ["containerd", "--config", str(config)], run_dir)
        _write_pids(run_dir, pids)
        wait_for("containerd", _answers(engine.ctr("version"), run_dir, pids), 60)
        pids["dockerd"] = _spawn("dockerd", _dockerd_argv(engine), run_dir)
        _write_pids(run_dir, pids)
        wait_for("dockerd", _answers(engine.docker("version"), run_dir, pids), 60)
    except BaseException:
        stop(run_dir)
        raise
    return engine


def _dockerd_argv(engine: Engine) -> list[str]:
    run_dir = engine.run_dir
    # No bridge and no iptables rules: builds use the host's network (`docker build --network host`),
    # so dockerd changes nothing on the host but its own directories.
    return [
        "dockerd",
        f"--data-root={engine.store / 'docker'}",
        f"--exec-root={run_dir / 'docker-exec'}",
        f"--pidfile={run_dir / 'docker.pid'}",
        f"--host=unix://{engine.docker_socket}",
        f"--containerd={engine.containerd_socket}",
        "--bridge=none",
        "--iptables=false",
        "--ip-masq=false",
    ]


def _answers(argv: list[str], run_dir: Path, pids: dict[str, dict[str, Any]]) -> Any:
    def probe() -> bool | None:
        for name, record in pids.items():
            if not _is_ours(record):
                log = (run_dir / "logs" / f"{name}.log").read_text(errors="replace")
                raise EngineUnavailableError(f"{name} exited; the end of its log:\n{log[-3000:]}")
        done = subprocess.run(argv, capture_output=True, check=False, timeout=30)
        return True if done.returncode == 0 else None

    return probe


def stop(run_dir: Path) -> None:
    """Stop dockerd, then every task containerd still runs in the kubelet's namespace, then containerd."""
    pids = _read_pids(run_dir)
    if "dockerd" in pids:
        _stop(pids["dockerd"])
    if "containerd" in pids and _is_ours(pids["containerd"]):
        kill_k8s_tasks(Engine(run_dir, store_dir()))
        _stop(pids["containerd"])
    # The CNI bridge outlives its last pod; it is ours (its name is in our CNI config).
    subprocess.run(["ip", "link", "delete", CNI_BRIDGE], capture_output=True, check=False)
    for leftover in ("containerd-state", "docker-exec"):
        unmount_below(run_dir / leftover)
        shutil.rmtree(run_dir / leftover, ignore_errors=True)


def kill_k8s_tasks(engine: Engine) -> None:
    """Kill and delete what the kubelet left running: a stopped containerd would leave its shims behind."""
    listed = subprocess.run(engine.ctr("tasks", "ls", "-q"), capture_output=True, text=True, check=False)
    for task in listed.stdout.split():
        subprocess.run(engine.ctr("tasks", "kill", "-s", "SIGKILL", task), capture_output=True, check=False)
    deadline = time.monotonic() + 20
    for task in listed.stdout.split():
        while time.monotonic() < deadline:
            deleted = subprocess.run(engine.ctr("tasks", "rm", task), capture_output=True, check=False)
            if deleted.returncode == 0:
                break
            time.sleep(0.2)
    containers = subprocess.run(
        engine.ctr("containers", "ls", "-q"), capture_output=True, text=True, check=False
    )
    for container in containers.stdout.split():
        subprocess.run(engine.ctr("containers", "rm", container), capture_output=True, check=False)


def unmount_below(directory: Path) -> None:
    """Unmount what the runtimes or the kubelet mounted under ``directory`` (deepest first), so that it
    can be removed."""
    prefix = f"{directory}/"
    mounts = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
    for mount in sorted((m for m in mounts if m.startswith(prefix)), key=len, reverse=True):
        subprocess.run(["umount", "-l", mount], capture_output=True, check=False)
