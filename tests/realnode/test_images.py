"""The Dockerfiles of the images that only the real node runs: hadolint-clean (the real hadolint binary),
and the LocalStack build context holds exactly its lock. They are built and run by ``make e2e``.
"""

from __future__ import annotations

import pytest

from testkit.hadolint import hadolint_problems
from testkit.realnode.images import PAUSE_SOURCE, SERVICE_BUILDS

DOCKERFILES = {
    "pause": PAUSE_SOURCE / "Dockerfile",
    **{build.tag.split("/")[1].split(":")[0]: build.dockerfile for build in SERVICE_BUILDS},
}


@pytest.mark.parametrize("image", sorted(DOCKERFILES))
def test_dockerfile_is_hadolint_clean(image: str) -> None:
    assert hadolint_problems(DOCKERFILES[image]) is None


def test_localstack_installs_exactly_the_python_3_13_lock_the_host_tests_use() -> None:
    """The image's build context (the repository root, narrowed by its own ignore file) lets in the lock
    that scripts/localstack.sh installs on the host, and the Dockerfile installs it without resolving."""
    dockerfile = DOCKERFILES["localstack"]
    ignore = dockerfile.with_name("Dockerfile.dockerignore").read_text().split()
    assert ignore[-2:] == ["*", "!scripts/localstack-requirements.lock"]
    text = dockerfile.read_text()
    assert "COPY scripts/localstack-requirements.lock /tmp/requirements.lock" in text
    assert "pip install --no-cache-dir --no-deps --requirement /tmp/requirements.lock" in text
