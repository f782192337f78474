"""ringback: ingestion pipeline for telecom vendor callbacks."""

__version__ = "0.1.0"
