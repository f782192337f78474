"""The containers backend stands in for the embedded broker: what it cannot offer skips a test, a
misspelt name fails it."""

from __future__ import annotations

import dataclasses

import pytest

from ringback.runtime.broker import EmbeddedBroker
from tests import containers


def test_a_cluster_skips_for_what_only_the_embedded_broker_has_and_fails_for_a_typo() -> None:
    cluster = containers.KafkaCluster("k1:9092,k2:9092,k3:9092", [])
    assert cluster.bootstrap == "k1:9092,k2:9092,k3:9092"
    for name in sorted(containers.EMBEDDED_BROKER_ONLY):
        with pytest.raises(pytest.skip.Exception, match=name):
            getattr(cluster, name)
    with pytest.raises(AttributeError, match="bootstrp"):
        cluster.bootstrp  # noqa: B018


def test_the_list_of_what_only_the_embedded_broker_has_is_complete() -> None:
    own = {f.name for f in dataclasses.fields(EmbeddedBroker) if not f.name.startswith("_")} | {
        name for name, value in vars(EmbeddedBroker).items() if callable(value) and not name.startswith("_")
    }
    assert own == containers.EMBEDDED_BROKER_ONLY
