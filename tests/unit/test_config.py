"""Configuration precedence: default < TOML file < RINGBACK_* environment < flag."""

from __future__ import annotations

from pathlib import Path

import pytest

from ringback import config
from ringback.config import ConfigError


def test_defaults() -> None:
    settings = config.load({}, environ={})
    assert settings.port == 8080 and settings.embedded_kafka and settings.embedded_clickhouse
    assert settings.effective_clickhouse_dsn.startswith("chdb://") and settings.effective_clickhouse_dsn.endswith(
        "/data/clickhouse"
    )


def test_precedence(tmp_path: Path) -> None:
    toml = tmp_path / "ringback.toml"
    toml.write_text('[ringback]\nport = 9000\nsink_batch_rows = 5\nlog_level = "debug"\n')
    settings = config.load(
        {"port": "9002"}, environ={"RINGBACK_PORT": "9001", "RINGBACK_SINK_BATCH_ROWS": "7"}, config_file=toml
    )
    assert settings.port == 9002  # flag beats env and file
    assert settings.sink_batch_rows == 7  # env beats file
    assert settings.log_level == "debug"  # file beats default


def test_config_file_from_environment(tmp_path: Path) -> None:
    toml = tmp_path / "r.toml"
    toml.write_text("kafka_partitions = 12\n")
    assert config.load({}, environ={"RINGBACK_CONFIG": str(toml)}).kafka_partitions == 12


@pytest.mark.parametrize(
    ("flags", "environ"),
    [
        ({"port": "eighty"}, {}),
        ({}, {"RINGBACK_KAFKA_CREATE_TOPICS": "maybe"}),
        ({"log_format": "xml"}, {}),
        ({"max_body_bytes": "0"}, {}),
    ],
)
def test_bad_values_are_clear_errors(flags: dict, environ: dict) -> None:
    with pytest.raises(ConfigError):
        config.load(flags, environ=environ)


def test_unknown_setting_in_file_is_an_error(tmp_path: Path) -> None:
    toml = tmp_path / "r.toml"
    toml.write_text("prot = 1\n")
    with pytest.raises(ConfigError, match="prot"):
        config.load({}, environ={}, config_file=toml)


def test_settings_survive_the_trip_to_a_child_process_environment() -> None:
    settings = config.load({"port": "1234", "kafka_create_topics": "false", "publish_timeout_s": "2.5"}, environ={})
    assert config.load({}, environ=settings.as_env()) == settings


def test_gc_threshold_is_applied_and_never_turns_collection_off() -> None:
    import gc

    from ringback.runtime.lifecycle import tune_gc

    before = gc.get_threshold()
    try:
        tune_gc(config.load({"gc_gen0_threshold": 12_345}).gc_gen0_threshold)
        assert gc.get_threshold() == (12_345, *before[1:]) and gc.isenabled()
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()
    with pytest.raises(config.ConfigError):
        config.load({"gc_gen0_threshold": 0})
