"""billing_timezone: an IANA zone, checked before it is quoted into the views' DDL."""

from __future__ import annotations

import pytest

from ringback import config
from ringback.config import ConfigError, Settings
from ringback.runtime import clickhouse
from tests.conftest import REPO_ROOT

SCHEMAS = REPO_ROOT / "schemas"


def test_the_views_use_the_billing_timezone_quoted() -> None:
    statements = clickhouse.ddl_statements(SCHEMAS, billing_timezone="Europe/Berlin")
    daily = next(s for s in statements if "ringback.daily_usage" in s)
    assert "toDate(started_at, 'Europe/Berlin')" in daily
    assert not any(clickhouse.BILLING_TIMEZONE_PLACEHOLDER in s for s in statements)
    assert Settings().billing_timezone == "Asia/Shanghai"


@pytest.mark.parametrize("zone", ["UTC'); DROP TABLE ringback.events; --", "Mars/Olympus_Mons", "", "Asia/Shanghai "])
def test_a_zone_that_is_not_an_iana_name_is_refused(zone: str) -> None:
    with pytest.raises(ConfigError):
        clickhouse.ddl_statements(SCHEMAS, billing_timezone=zone)


def test_the_setting_is_checked_at_load() -> None:
    assert config.load(environ={"RINGBACK_BILLING_TIMEZONE": "UTC"}).billing_timezone == "UTC"
    with pytest.raises(ConfigError, match="time zone"):
        config.load(environ={"RINGBACK_BILLING_TIMEZONE": "Asia/Atlantis"})
