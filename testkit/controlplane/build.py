"""Build etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubelet and kwok from Go modules.

The binaries go to a cache outside the clone, keyed by the pinned versions (a hash of the wrapper
modules' go.mod and go.sum files, the build flags and the Go version), so a second clone on the same
machine reuses them and a new pin builds once:

    ${XDG_CACHE_HOME:-~/.cache}/floe-platform/controlplane/<key>/bin/

``python -m testkit.controlplane build`` builds when needed and prints the bin directory.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

GO_DIR = Path(__file__).resolve().parent / "go"


@dataclass(frozen=True)
class Target:
    """One binary: the wrapper module it is built in and the package path of its main package."""

    module: str
    package: str
    binary: str


TARGETS = (
    Target("etcd", "go.etcd.io/etcd/server/v3", "etcd"),
    Target("kube", "k8s.io/kubernetes/cmd/kube-apiserver", "kube-apiserver"),
    Target("kube", "k8s.io/kubernetes/cmd/kube-controller-manager", "kube-controller-manager"),
    Target("kube", "k8s.io/kubernetes/cmd/kube-scheduler", "kube-scheduler"),
    # The kubelet of the real node (testkit.realnode): the same release as the control plane, no skew.
    Target("kube", "k8s.io/kubernetes/cmd/kubelet", "kubelet"),
    Target("kwok", "sigs.k8s.io/kwok/cmd/kwok", "kwok"),
)
# What the real node (testkit.realnode) adds to a cluster's network: Services through kube-proxy (the
# control plane's release) and cluster DNS through CoreDNS. Built only when real pods are asked for.
NODE_SERVICES = (
    Target("kube", "k8s.io/kubernetes/cmd/kube-proxy", "kube-proxy"),
    Target("coredns", ".", "coredns"),
)
# -s -w drops the symbol tables: the binaries are half the size and nobody debugs them here.
BASE_LDFLAGS = "-s -w"
# Bump when the way binaries are built changes, so old caches are not reused.
RECIPE = "1"


class GoMissingError(RuntimeError):
    """Go is not installed, so the control plane cannot be built."""


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "floe-platform" / "controlplane"


def go_binary() -> str:
    go = shutil.which("go")
    if go is None:
        raise GoMissingError("Go is not on PATH; the control plane is built from Go modules (go 1.26+)")
    return go


def go_version(go: str) -> str:
    return subprocess.run([go, "env", "GOVERSION"], check=True, capture_output=True, text=True).stdout.strip()


def required_version(module: str, path: str) -> str:
    """The version of ``path`` that the wrapper module ``module`` requires (read from its go.mod)."""
    text = (GO_DIR / module / "go.mod").read_text()
    match = re.search(rf"^\s*(?:require\s+)?{re.escape(path)}\s+(v\S+)", text, re.MULTILINE)
    if match is None:
        raise ValueError(f"{GO_DIR / module / 'go.mod'} does not require {path}")
    return match.group(1)


def kubernetes_version() -> str:
    return required_version("kube", "k8s.io/kubernetes")


def cache_key(go: str, targets: tuple[Target, ...] = TARGETS) -> str:
    """Kubernetes version plus a hash of everything that decides the bytes of the binaries."""
    digest = hashlib.sha256()
    for module in sorted({target.module for target in targets}):
        for name in ("go.mod", "go.sum"):
            digest.update(f"{module}/{name}\n".encode())
            digest.update((GO_DIR / module / name).read_bytes())
    digest.update(f"{go_version(go)}\n{RECIPE}\n{BASE_LDFLAGS}\n".encode())
    return f"{kubernetes_version()}-{digest.hexdigest()[:16]}"


def bin_dir(go: str | None = None, targets: tuple[Target, ...] = TARGETS) -> Path:
    """Where the binaries for the current pins live (whether or not they are built yet).

    The control plane's are in ``<cache>/<key>/bin``; the node services' in ``<cache>/node/<key>/bin``.
    """
    root = cache_root() if targets == TARGETS else cache_root() / "node"
    return root / cache_key(go or go_binary(), targets) / "bin"


def is_built(directory: Path, targets: tuple[Target, ...] = TARGETS) -> bool:
    return all((directory / target.binary).is_file() for target in targets)


def module_time(go: str, module: str, path: str) -> str:
    """The release time the module proxy records for ``path``: a reproducible build date."""
    out = subprocess.run(
        [go, "list", "-m", "-json", path], cwd=GO_DIR / module, check=True, capture_output=True, text=True
    ).stdout
    return str(json.loads(out)["Time"]).replace("+00:00", "Z")


def kube_ldflags(go: str) -> str:
    """What hack/lib/version.sh stamps, so `kubectl version` and helm see the real release.

    The module proxy does not record the git commit a tag points at, so gitCommit is all zeros
    and gitTreeState is "archive" (the value upstream uses for builds from a source archive).
    """
    version = kubernetes_version()
    major, minor = version.removeprefix("v").split(".")[:2]
    values = {
        "gitVersion": version,
        "gitMajor": major,
        "gitMinor": minor,
        "gitCommit": "0" * 40,
        "gitTreeState": "archive",
        "buildDate": module_time(go, "kube", "k8s.io/kubernetes"),
    }
    flags = [BASE_LDFLAGS]
    for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [f"-X {package}.{name}={value}" for name, value in values.items()]
    return " ".join(flags)


def build_module(go: str, module: str, out_dir: Path, targets: tuple[Target, ...] = TARGETS) -> None:
    targets = tuple(target for target in targets if target.module == module)
    # One `go build` for the three kube binaries shares their compile work. A single package gets an
    # explicit file name: go would name etcd's main package "server" (its path ends in /server/v3).
    output = f"{out_dir}/" if len(targets) > 1 else str(out_dir / targets[0].binary)
    ldflags = kube_ldflags(go) if module == "kube" else BASE_LDFLAGS
    env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-mod=readonly -buildvcs=false"}
    command = [go, "build", "-p", "2", "-trimpath", "-ldflags", ldflags, "-o", output]
    print(f"building {', '.join(t.binary for t in targets)} in go/{module}", file=sys.stderr)
    subprocess.run([*command, *(t.package for t in targets)], cwd=GO_DIR / module, env=env, check=True)


@contextmanager
def build_lock(root: Path) -> Iterator[None]:
    """One build at a time per machine: `make cluster` and pytest may start together."""
    root.mkdir(parents=True, exist_ok=True)
    with (root / ".build.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_built(targets: tuple[Target, ...] = TARGETS) -> Path:
    """Build the binaries unless the cache already has them; return their directory."""
    go = go_binary()
    target = bin_dir(go, targets)
    if is_built(target, targets):
        return target
    with build_lock(cache_root()):
        if is_built(target, targets):  # another process finished it while we waited for the lock
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        # Build into a scratch directory and rename, so an interrupted build never looks complete.
        scratch = Path(tempfile.mkdtemp(prefix="bin-", dir=target.parent))
        start = time.monotonic()
        for module in dict.fromkeys(t.module for t in targets):
            build_module(go, module, scratch, targets)
        scratch.chmod(0o755)  # mkdtemp makes it private; the cache is shared by every clone
        shutil.rmtree(target, ignore_errors=True)
        scratch.rename(target)
        print(
            f"built {', '.join(t.binary for t in targets)} in {time.monotonic() - start:.0f} s: {target}",
            file=sys.stderr,
        )
    return target
