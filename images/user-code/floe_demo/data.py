"""Deterministic demo data. ``scale`` is the one size parameter: 1 for the demo, larger for benchmarks."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd  # type: ignore[import-untyped]

REGIONS = ("US", "EU", "APAC")
EVENT_TYPES = ("view", "click", "cart", "purchase")
START = dt.date(2024, 1, 1)
CUSTOMERS_PER_SCALE = 500
ORDERS_PER_SCALE = 5_000
EVENTS_PER_SCALE = 20_000


def _rng(*seed: int) -> np.random.Generator:
    return np.random.default_rng(list(seed))


def customers(scale: int) -> pd.DataFrame:
    count = CUSTOMERS_PER_SCALE * scale
    rng = _rng(1, scale)
    ids = np.arange(1, count + 1)
    return pd.DataFrame(
        {
            "customer_id": ids,
            "customer_name": [f"Customer {i:07d}" for i in ids],
            "region": rng.choice(REGIONS, size=count),
            "signup_date": pd.Timestamp(START) + pd.to_timedelta(rng.integers(0, 365, size=count), unit="D"),
        }
    )


def orders(scale: int) -> pd.DataFrame:
    count = ORDERS_PER_SCALE * scale
    rng = _rng(2, scale)
    return pd.DataFrame(
        {
            "order_id": np.arange(1, count + 1),
            "customer_id": rng.integers(1, CUSTOMERS_PER_SCALE * scale + 1, size=count),
            "order_date": pd.Timestamp(START) + pd.to_timedelta(rng.integers(0, 90, size=count), unit="D"),
            "amount": np.round(rng.gamma(2.0, 40.0, size=count), 2),
        }
    )


def events(scale: int) -> pd.DataFrame:
    count = EVENTS_PER_SCALE * scale
    rng = _rng(3, scale)
    return pd.DataFrame(
        {
            "event_id": np.arange(1, count + 1),
            "customer_id": rng.integers(1, CUSTOMERS_PER_SCALE * scale + 1, size=count),
            "event_type": rng.choice(EVENT_TYPES, size=count),
            "event_time": pd.Timestamp(START)
            + pd.to_timedelta(rng.integers(0, 90 * 86_400, size=count), unit="s"),
        }
    )


def regional_sales(scale: int, region: str) -> pd.DataFrame:
    """One region's daily sales (a static partition)."""
    rng = _rng(4, scale, REGIONS.index(region))
    days = pd.date_range(START, periods=30 * scale, freq="D")
    return pd.DataFrame(
        {"region": region, "sale_date": days, "amount": np.round(rng.gamma(3.0, 100.0, len(days)), 2)}
    )


def day_of_events(scale: int, day: dt.date, region: str | None = None) -> pd.DataFrame:
    """Events of one day (a daily partition), optionally of one region (a multi-partition)."""
    count = 1_000 * scale
    rng = _rng(5, scale, day.toordinal(), REGIONS.index(region) if region else 9)
    seconds = pd.to_timedelta(rng.integers(0, 86_400, size=count), unit="s")
    frame = pd.DataFrame(
        {
            "event_date": pd.Timestamp(day) + seconds,
            "event_type": rng.choice(EVENT_TYPES, size=count),
            "customer_id": rng.integers(1, CUSTOMERS_PER_SCALE * scale + 1, size=count),
        }
    )
    if region is not None:
        frame["region"] = region
    return frame
