"""Waiting for a condition with a deadline: the one poll loop of the tests and the benchmarks."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(probe: Callable[[], T], timeout: float, interval: float = 0.1) -> T:
    """Poll ``probe`` until it returns something truthy or ``timeout`` passes; returns its last answer."""
    deadline = time.monotonic() + timeout
    while True:
        answer = probe()
        if answer or time.monotonic() >= deadline:
            return answer
        time.sleep(interval)


def wait_until(condition: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """Whether ``condition`` became true within ``timeout`` seconds."""
    return bool(wait_for(condition, timeout, interval))


def eventually(probe: Callable[[], T | None], timeout: float = 15.0, what: str = "condition") -> T:
    """The first truthy answer of ``probe``; fails naming ``what`` after ``timeout`` seconds."""
    answer = wait_for(probe, timeout)
    if not answer:
        raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {answer!r}")
    return answer
