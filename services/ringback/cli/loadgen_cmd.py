"""`ringback loadgen`: the vendors simulated, realistic traffic against an edge."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ringback import config
from ringback.cli.common import MAX_CONNECTIONS, MAX_COUNT, MAX_SECONDS, Command, SubParsers, number, whole_number
from ringback.config import Settings


def add_parser(commands: SubParsers) -> None:
    load = commands.add_parser(
        "loadgen", help="Simulate the vendors: realistic traffic on every route against an edge URL."
    )
    load.add_argument(
        "--url",
        default=None,
        help="Edge base URL (default: the running `ringback run` of --data-dir, else http://127.0.0.1:8080).",
    )
    load.add_argument(
        "--duration", type=number(0, MAX_SECONDS), default=10.0, help="Seconds to send for (ignored with --requests)."
    )
    load.add_argument("--requests", type=whole_number(0, MAX_COUNT), default=0, help="Send exactly this many requests.")
    load.add_argument(
        "--rate",
        type=number(0, MAX_COUNT),
        default=0.0,
        help="Requests per second (0 = as fast as the connections allow).",
    )
    load.add_argument(
        "--connections", type=whole_number(1, MAX_CONNECTIONS), default=32, help="Concurrent connections."
    )
    load.add_argument(
        "--resend-share", type=number(0, 1), default=0.05, help="Share of requests that resend an earlier body."
    )
    load.add_argument(
        "--malformed-share", type=number(0, 1), default=0.01, help="Share of requests with a truncated body."
    )
    load.add_argument(
        "--mix",
        default=None,
        help="route=weight,... (default: the realistic mix, SMS receipts first: ringback.tools.loadgen.DEFAULT_MIX)",
    )
    load.add_argument("--seed", type=int, default=7, help="Seed of the traffic generator.")
    load.add_argument(
        "--tenant",
        dest="tenant_ids",
        action="append",
        default=[],
        metavar="ID",
        help="Send as this tenant, to /t/ID/SECRET/callbacks/...; repeat (each with its --secret) for several. "
        "Default: every tenant of --tenants-file that has a plain secret, else the tenant-less routes.",
    )
    load.add_argument(
        "--secret",
        dest="tenant_secrets",
        action="append",
        default=[],
        metavar="SECRET",
        help="The secret of the --tenant at the same position.",
    )
    load.add_argument(
        "--apps",
        type=whole_number(1, MAX_CONNECTIONS),
        default=None,
        help="Customer applications sharing the traffic, spread over the tenants (default 5).",
    )
    load.add_argument("--json", dest="as_json", action="store_true", help="Print the summary as JSON.")
    load.add_argument(
        "--drop-cdrs",
        type=number(0, 100),
        default=0.0,
        metavar="PCT",
        help="Percent of answered CDR-platform calls whose CDR is never sent (leakage for `ringback audit`).",
    )
    load.add_argument(
        "--stuck-receipts",
        type=number(0, 100),
        default=0.0,
        metavar="PCT",
        help="Percent of SMS first reported ENROUTE whose final receipt is never sent.",
    )
    load.add_argument(
        "--statement-out",
        default=None,
        metavar="FILE.csv",
        help="Write the statement the CDR platform would send for this run's two-way calls.",
    )
    config.add_flags(load)


def handle(args: argparse.Namespace, settings: Settings) -> int:
    import asyncio

    import orjson

    from ringback.runtime import runfiles
    from ringback.tools import loadgen

    running = runfiles.read_live(settings.run_dir, "edge")
    url = args.url or (running["url"] if running else "http://127.0.0.1:8080")
    try:
        mix = loadgen.parse_mix(args.mix) if args.mix else dict(loadgen.DEFAULT_MIX)
    except ValueError as exc:
        print(f"ringback loadgen: {exc}", file=sys.stderr)
        return 2
    try:
        tenants, skipped = loadgen.tenants_for(args.tenant_ids, args.tenant_secrets, settings.tenants_file)
    except ValueError as exc:
        print(f"ringback loadgen: {exc}", file=sys.stderr)
        return 2
    if skipped:
        print(
            f"ringback loadgen: no plain secret for tenants {', '.join(skipped)}: not sending as them", file=sys.stderr
        )
    try:
        leakage = loadgen.Leakage(args.drop_cdrs, args.stuck_receipts, keep_statement=bool(args.statement_out))
    except ValueError as exc:
        print(f"ringback loadgen: {exc}", file=sys.stderr)
        return 2
    plan = loadgen.LoadPlan(
        url=url.rstrip("/"),
        requests=args.requests,
        duration_s=args.duration,
        rate=args.rate,
        connections=args.connections,
        resend_share=args.resend_share,
        malformed_share=args.malformed_share,
        mix=mix,
        seed=args.seed,
        tenants=tenants,
        apps=args.apps or loadgen.DEFAULT_APPS,
        leakage=leakage,
    )
    summary = asyncio.run(loadgen.run(plan, show_progress=sys.stderr.isatty() and not args.as_json))
    print(orjson.dumps(summary.as_dict()).decode() if args.as_json else summary.render())
    if args.statement_out:
        lines = leakage.write_statement(Path(args.statement_out))
        print(f"ringback loadgen: statement of {lines} calls written to {args.statement_out}", file=sys.stderr)
    return 0 if summary.accepted else 1


COMMANDS = (Command("loadgen", add_parser, handle),)
