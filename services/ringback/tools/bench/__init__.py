"""`ringback bench` (`make bench`): each stage measured against a baseline that bounds it, in one run.

Stages: edge (vs a bare aiohttp handler giving the same reply), normalizer (vs a pass-through
consumer→producer), sink (vs a direct columnar clickhouse-connect insert), end to end (sustained
callbacks/s, reply-to-queryable latency, zero-loss check), and peak memory of each role. Results are
ratios measured side by side on the same machine, never wall-clock assertions.
"""
