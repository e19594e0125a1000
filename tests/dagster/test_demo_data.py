"""The demo's data generators (pure pandas/numpy): one size parameter, the same data on every run."""

from __future__ import annotations

import datetime as dt

import pytest

from floe_demo import data


@pytest.mark.parametrize("scale", [1, 3])
def test_scale_multiplies_every_table_and_keeps_keys_consistent(scale: int) -> None:
    customers, orders, events = data.customers(scale), data.orders(scale), data.events(scale)
    assert len(customers) == data.CUSTOMERS_PER_SCALE * scale
    assert len(orders) == data.ORDERS_PER_SCALE * scale
    assert len(events) == data.EVENTS_PER_SCALE * scale
    assert orders["customer_id"].isin(customers["customer_id"]).all()
    assert events["customer_id"].isin(customers["customer_id"]).all()


def test_generated_data_is_identical_on_every_run() -> None:
    assert data.orders(2).equals(data.orders(2))
    day = dt.date(2024, 1, 2)
    assert data.day_of_events(1, day, "EU").equals(data.day_of_events(1, day, "EU"))
    assert not data.day_of_events(1, day, "EU").equals(data.day_of_events(1, day, "US"))


def test_a_day_partition_holds_only_that_day() -> None:
    day = dt.date(2024, 1, 3)
    frame = data.day_of_events(1, day)
    assert set(frame["event_date"].dt.date) == {day}
