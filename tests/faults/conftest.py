"""Fault tests import the benchmarks' operator driver (``bench.operator_driver``), so put the repository
root on ``sys.path`` as ``python -m bench`` does."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parents[2])
if ROOT not in sys.path:
    sys.path.append(ROOT)
