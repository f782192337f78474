"""Normalizer: raw vendor callbacks in, one Avro event per vendor report out, bad input to the DLQ."""
