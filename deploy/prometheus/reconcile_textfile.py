#!/usr/bin/env python3
"""Export `ringback reconcile --json` as Prometheus metrics, for the alert on a reconcile gap.

Nothing inside ringback's roles can see a gap: it is the difference between what the edge acknowledged
and what ClickHouse stored, hours apart. This script asks the ledger and writes its verdict as metrics,
either into node_exporter's textfile collector directory (atomically) or to a Pushgateway:

    */10 * * * *  ringback  RINGBACK_CLICKHOUSE_DSN=http://... python3 reconcile_textfile.py \\
                      --textfile /var/lib/node_exporter/textfile/ringback_reconcile.prom
    python3 reconcile_textfile.py --pushgateway http://pushgateway:9091

It needs only the ringback package (for `ringback reconcile` and prometheus_client); every setting of
`ringback reconcile` comes from the environment (RINGBACK_CLICKHOUSE_DSN, ...) as usual.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Gauge, push_to_gateway, write_to_textfile

#: `ringback reconcile` exits 0 (no gap in a closed hour) or 1 (a gap) with the lines printed; anything
#: else means the ledger could not be read.
ANSWERED = (0, 1)
#: The verdicts `ringback reconcile --json` gives a line.
CHECKS = ("ok", "in_flight", "gap")
JOB = "ringback_reconcile"


def build(registry: CollectorRegistry) -> dict[str, Gauge]:
    """The metrics this script exports (listed in deploy/metrics.md)."""
    return {
        "up": Gauge(
            "ringback_reconcile_up",
            "1 when the last `ringback reconcile` read the ledger, 0 when it could not.",
            registry=registry,
        ),
        "last_run": Gauge(
            "ringback_reconcile_last_run_timestamp_seconds",
            "Unix time of the last `ringback reconcile` that read the ledger.",
            registry=registry,
        ),
        "lines": Gauge(
            "ringback_reconcile_lines",
            (
                "Ledger lines (tenant, route, hour) of the window by route and verdict: ok, in_flight (a gap in the "
                "current hour), gap (a gap in a closed hour)."
            ),
            ["route", "check"],
            registry=registry,
        ),
        "missing": Gauge(
            "ringback_reconcile_missing_requests",
            (
                "Acknowledged requests with nothing stored, in closed hours, by route (the identity check of "
                "`ringback reconcile`)."
            ),
            ["route"],
            registry=registry,
        ),
    }


def record(gauges: dict[str, Gauge], lines: list[dict[str, object]] | None, now: float) -> None:
    """Set the gauges from the lines of `ringback reconcile --json`, or mark the run failed (None)."""
    if lines is None:
        gauges["up"].set(0)
        return
    gauges["up"].set(1)
    gauges["last_run"].set(now)
    routes = sorted({str(line["route"]) for line in lines})
    for route in routes:
        mine = [line for line in lines if line["route"] == route]
        for check in CHECKS:
            gauges["lines"].labels(route, check).set(sum(1 for line in mine if line["check"] == check))
        closed = [line for line in mine if line["check"] == "gap"]
        gauges["missing"].labels(route).set(
            sum(max(0, int(str(line["accepted"])) - int(str(line["stored_requests"]))) for line in closed)
        )


def reconcile(command: Sequence[str], hours: int) -> list[dict[str, object]] | None:
    done = subprocess.run(
        [*command, "reconcile", "--json", "--hours", str(hours)], capture_output=True, text=True, check=False
    )
    if done.returncode not in ANSWERED:
        print(
            f"reconcile_textfile: `ringback reconcile` failed ({done.returncode}): {done.stderr.strip()}",
            file=sys.stderr,
        )
        return None
    return json.loads(done.stdout)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument(
        "--textfile",
        help="Write the metrics to this file (node_exporter's textfile collector; the name must end in .prom).",
    )
    target.add_argument("--pushgateway", help="Push the metrics to this Pushgateway (job ringback_reconcile).")
    parser.add_argument("--hours", type=int, default=24, help="Hours of ledger to look at (default 24).")
    parser.add_argument("--ringback", default="ringback", help="The ringback command (default: ringback on PATH).")
    args = parser.parse_args(argv)
    registry = CollectorRegistry()
    lines = reconcile(args.ringback.split(), args.hours)
    record(build(registry), lines, time.time())
    if args.textfile:
        write_to_textfile(args.textfile, registry)
    else:
        push_to_gateway(args.pushgateway, job=JOB, registry=registry)
    return 0 if lines is not None else 1


if __name__ == "__main__":
    sys.exit(main())
