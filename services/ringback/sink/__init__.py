"""Sink: normalized events and dead letters into ClickHouse, offsets committed after the insert."""
