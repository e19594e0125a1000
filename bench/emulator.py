"""The tests' Kubernetes API emulator (``tests/support/kube_emulator.py``), made importable from ``bench``.

The benchmarks use the very harness the tests use, so a figure and a test speak about the same emulator.
"""

from __future__ import annotations

import sys
from pathlib import Path

_TESTS = str(Path(__file__).resolve().parent.parent / "tests")
if _TESTS not in sys.path:
    sys.path.append(_TESTS)

from support.kube_emulator import EmulatedCluster, emulated_cluster  # noqa: E402

__all__ = ["EmulatedCluster", "emulated_cluster"]
