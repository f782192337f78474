"""Tools beside the pipeline: they drive or measure it (load generator, benchmarks), none runs in a service."""
