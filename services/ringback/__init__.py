"""ringback: ingestion pipeline for telecom vendor callbacks."""

from ringback import compiled as _compiled

__version__ = "0.1.0"

_compiled.choose()  # before any hot module is imported: compiled where built and current, else source
