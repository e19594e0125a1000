"""Fixtures of the chart tests: one `helm template` per ci/ values file per session."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from chart_render import CI_DIR, CI_NAMES, Rendered, release_name, render


@pytest.fixture(scope="session")
def rendered_matrix() -> dict[str, Rendered]:
    """Every ci/*-values.yaml rendered by the real helm v4, in parallel, once per test session."""
    with ThreadPoolExecutor(max_workers=len(CI_NAMES)) as pool:
        paths = [CI_DIR / f"{name}-values.yaml" for name in CI_NAMES]
        renders = pool.map(lambda path: render([path], release=release_name(path)), paths)
        return dict(zip(CI_NAMES, renders, strict=True))


@pytest.fixture(params=CI_NAMES)
def release(request: pytest.FixtureRequest, rendered_matrix: dict[str, Rendered]) -> Rendered:
    """One rendered ci/ case; tests using it run once per values file."""
    rendered: Rendered = rendered_matrix[request.param]
    return rendered


@pytest.fixture(scope="session")
def default_release(rendered_matrix: dict[str, Rendered]) -> Rendered:
    return rendered_matrix["default"]
