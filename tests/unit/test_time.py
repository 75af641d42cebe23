"""UTC is the only time ordtool keeps or prints (ordtool/domain/clock.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from ordtool.domain.clock import as_utc, iso_z, utc_now

TOKYO = timezone(timedelta(hours=9))
LOS_ANGELES = timezone(timedelta(hours=-8))


def test_now_is_aware_utc() -> None:
    now = utc_now()
    assert now.tzinfo is not None and now.utcoffset() == timedelta(0)


@pytest.mark.parametrize("zone", [TOKYO, LOS_ANGELES, UTC])
def test_one_instant_in_any_zone_prints_the_same_with_z(zone: timezone) -> None:
    instant = datetime(2026, 12, 3, 12, 30, 15, 123456, tzinfo=UTC)
    local = instant.astimezone(zone)
    assert iso_z(local) == "2026-12-03T12:30:15.123456Z"
    assert as_utc(local) == instant and as_utc(local).tzinfo == UTC


def test_a_naive_time_is_refused_because_its_zone_is_a_guess() -> None:
    with pytest.raises(ValueError, match="needs a time zone"):
        as_utc(datetime(2026, 12, 3, 12, 0))
    with pytest.raises(ValueError, match="needs a time zone"):
        iso_z(datetime(2026, 12, 3, 12, 0))
