"""Shared runtime pieces used by every role: Kafka, the embedded broker, Avro, ClickHouse, lifecycle."""
