"""Every image the real node runs, built here from packages: no registry is ever asked.

- A Python base made by ``debootstrap`` from Debian's archive (bookworm: Python 3.11), imported into
  dockerd. It mimics the layout of the public ``python:3.11-slim`` image the Dockerfiles default to:
  ``/usr/local/bin/python3.11`` and a ``pip`` that may install (Debian's externally-managed marker is
  dropped, as it is absent from the public image). It holds no CA bundle of its own.
- The product's images from their own Dockerfiles with ``--build-arg BASE_IMAGE=<that base>``. Python
  packages come from PyPI during the build, which trusts the host's CA bundle through the build secret
  ``ca-bundle``: mounted for the downloading steps only, never written into a layer.
- The pod sandbox's pause image: a static Go binary in a ``FROM scratch`` image.

Images are built by dockerd and copied into containerd's ``k8s.io`` namespace with ``docker save | ctr
images import``. A marker per image records the image id that was imported, so a warm run imports nothing.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from testkit.realnode.engine import DOCKER, PAUSE_IMAGE, Engine

ROOT = Path(__file__).resolve().parents[2]
PAUSE_SOURCE = Path(__file__).resolve().parent / "pause"
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
# Debian suites and their Python: bookworm's 3.11 for the product images, trixie's 3.13 for LocalStack.
BASE_SUITE = "bookworm"
LOCALSTACK_SUITE = "trixie"


def base_image(suite: str) -> str:
    return f"floe-platform/debian-python:{suite}"


BASE_IMAGE = base_image(BASE_SUITE)
BASE_PACKAGES = ("python3", "python3-venv", "python3-pip")
VERSION = "0.1.0"
OPERATOR_IMAGE = f"floe-platform/operator:{VERSION}"
USER_CODE_IMAGE = f"floe-platform/user-code:{VERSION}"
E2E_IMAGE = f"floe-platform/user-code-e2e:{VERSION}"
# The chart's built-in PostgreSQL and LocalStack, built the same way (tests/realnode/images).
POSTGRESQL_IMAGE = "floe-platform/postgresql:15-local"
LOCALSTACK_IMAGE = "floe-platform/localstack:local"
SERVICE_IMAGES_DIR = ROOT / "tests/realnode/images"


@dataclass(frozen=True)
class Build:
    """One image from one of the repository's Dockerfiles."""

    tag: str
    dockerfile: Path
    context: Path
    build_args: tuple[tuple[str, str], ...]


PRODUCT_BUILDS = (
    Build(OPERATOR_IMAGE, ROOT / "images/operator/Dockerfile", ROOT, (("BASE_IMAGE", BASE_IMAGE),)),
    Build(USER_CODE_IMAGE, ROOT / "images/user-code/Dockerfile", ROOT, (("BASE_IMAGE", BASE_IMAGE),)),
    Build(
        E2E_IMAGE,
        ROOT / "tests/e2e/image/Dockerfile",
        ROOT / "tests/e2e/image",
        (("USER_CODE_IMAGE", USER_CODE_IMAGE),),
    ),
)
SERVICE_BUILDS = (
    Build(
        POSTGRESQL_IMAGE,
        SERVICE_IMAGES_DIR / "postgresql/Dockerfile",
        SERVICE_IMAGES_DIR / "postgresql",
        (("BASE_IMAGE", BASE_IMAGE),),
    ),
    Build(
        LOCALSTACK_IMAGE,
        SERVICE_IMAGES_DIR / "localstack/Dockerfile",
        ROOT,
        (("BASE_IMAGE", base_image(LOCALSTACK_SUITE)),),
    ),
)


def _log(message: str) -> None:
    print(f"[realnode] {message}", file=sys.stderr, flush=True)


def image_id(engine: Engine, tag: str) -> str | None:
    done = subprocess.run(
        engine.docker("image", "inspect", "--format", "{{.Id}}", tag),
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() if done.returncode == 0 else None


def debian_mirror() -> str:
    """The Debian archive this host's apt uses when the host is Debian (the development machines reach no
    other), else Debian's own."""
    if "ID=debian" not in Path("/etc/os-release").read_text():
        return "http://deb.debian.org/debian"
    for source in sorted(Path("/etc/apt").glob("sources.list.d/*.sources")):
        for line in source.read_text().splitlines():
            if line.startswith("URIs:") and "security" not in line:
                return line.split()[1]
    return "http://deb.debian.org/debian"


def ensure_base(engine: Engine, suite: str = BASE_SUITE) -> str:
    """The debootstrap'd Python base of ``suite``, imported into dockerd unless it is there already."""
    tag = base_image(suite)
    if image_id(engine, tag):
        return tag
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="debootstrap-", dir=engine.store) as scratch:
        rootfs = Path(scratch) / "rootfs"
        include = ",".join(BASE_PACKAGES)
        _log(f"debootstrap {suite} with {include}")
        subprocess.run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={include}",
                suite,
                str(rootfs),
                debian_mirror(),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        _shape_like_python_image(rootfs)
        tar = subprocess.Popen(
            ["tar", "-C", str(rootfs), "--numeric-owner", "-c", "."], stdout=subprocess.PIPE
        )
        changes = ["ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", 'CMD ["python3"]']
        argv = engine.docker("import", *(part for c in changes for part in ("--change", c)), "-", tag)
        subprocess.run(argv, stdin=tar.stdout, check=True, stdout=subprocess.DEVNULL)
        if tar.wait() != 0:
            raise RuntimeError(f"tar of {rootfs} failed")
    _log(f"{tag} made in {time.monotonic() - start:.0f} s")
    return tag


def _shape_like_python_image(rootfs: Path) -> None:
    """Where the Dockerfiles expect the interpreter, a pip allowed to install, no apt lists, no CA bundle."""
    (interpreter,) = (rootfs / "usr/bin").glob("python3.[0-9]*[0-9]")  # the suite's one python3.X
    local_python = rootfs / "usr/local/bin" / interpreter.name
    local_python.parent.mkdir(parents=True, exist_ok=True)
    local_python.symlink_to(f"/usr/bin/{interpreter.name}")
    for marker in (rootfs / "usr/lib").glob("python3*/EXTERNALLY-MANAGED"):
        marker.unlink()
    for cache in ("var/lib/apt/lists", "var/cache/apt"):
        shutil.rmtree(rootfs / cache, ignore_errors=True)
        (rootfs / cache).mkdir(parents=True)
    # The CA bundle comes from the build secret when a build needs one; the base ships none.
    (rootfs / "etc/ssl/certs/ca-certificates.crt").unlink(missing_ok=True)


def build(engine: Engine, item: Build) -> None:
    """``docker build`` (BuildKit) on the host network, the host's CA bundle as the ``ca-bundle`` secret."""
    argv = engine.docker(
        "build",
        "--network=host",
        f"--secret=id=ca-bundle,src={HOST_CA_BUNDLE}",
        f"--file={item.dockerfile}",
        f"--tag={item.tag}",
        *(f"--build-arg={name}={value}" for name, value in item.build_args),
        str(item.context),
    )
    start = time.monotonic()
    subprocess.run(argv, check=True, env=engine.docker_env)
    _log(f"{item.tag} built in {time.monotonic() - start:.0f} s")


def build_pause(engine: Engine) -> None:
    """The pause binary (Go, static) in a scratch image."""
    with tempfile.TemporaryDirectory(prefix="pause-") as scratch:
        subprocess.run(
            ["go", "build", "-trimpath", "-ldflags=-s -w", "-o", f"{scratch}/pause", "."],
            cwd=PAUSE_SOURCE,
            env={**engine.docker_env, "CGO_ENABLED": "0"},
            check=True,
        )
        shutil.copy(PAUSE_SOURCE / "Dockerfile", f"{scratch}/Dockerfile")
        build(engine, Build(PAUSE_IMAGE, Path(scratch) / "Dockerfile", Path(scratch), ()))


def import_into_node(engine: Engine, tags: list[str]) -> None:
    """Copy images from dockerd into containerd's ``k8s.io`` namespace, skipping those already there."""
    markers = engine.store / "imported.json"
    imported: dict[str, str] = json.loads(markers.read_text()) if markers.exists() else {}
    listed = subprocess.run(
        engine.ctr("images", "ls", "-q"), capture_output=True, text=True, check=True
    ).stdout
    present = set(listed.split())
    for tag in tags:
        current = image_id(engine, tag)
        if current is None:
            raise LookupError(f"{tag} is not built")
        if imported.get(tag) == current and f"docker.io/{tag}" in present:
            continue
        start = time.monotonic()
        save = subprocess.Popen(engine.docker("save", tag), stdout=subprocess.PIPE)
        subprocess.run(
            engine.ctr("images", "import", "-"), stdin=save.stdout, check=True, stdout=subprocess.DEVNULL
        )
        if save.wait() != 0:
            raise RuntimeError(f"docker save {tag} failed")
        imported[tag] = current
        markers.write_text(json.dumps(imported, indent=2) + "\n")
        _log(f"{tag} imported into the node in {time.monotonic() - start:.0f} s")


def ensure_images(engine: Engine, builds: tuple[Build, ...] = PRODUCT_BUILDS) -> list[str]:
    """Bases, pause and ``builds``; then every one of them in the node. Docker's layer cache makes a
    rebuild of unchanged sources a matter of seconds."""
    for suite in dict.fromkeys(filter(None, map(_suite_of, builds))):
        ensure_base(engine, suite)
    if image_id(engine, PAUSE_IMAGE) is None:
        build_pause(engine)
    for item in builds:
        build(engine, item)
    tags = [PAUSE_IMAGE, *(item.tag for item in builds)]
    import_into_node(engine, tags)
    return tags


def _suite_of(item: Build) -> str | None:
    """The debootstrap'd base a build starts from (none for one that starts from another of ours)."""
    base = dict(item.build_args).get("BASE_IMAGE", "")
    prefix = base_image("")
    return base.removeprefix(prefix) if base.startswith(prefix) else None


__all__ = [
    "DOCKER",
    "E2E_IMAGE",
    "LOCALSTACK_IMAGE",
    "OPERATOR_IMAGE",
    "POSTGRESQL_IMAGE",
    "USER_CODE_IMAGE",
    "ensure_images",
]
