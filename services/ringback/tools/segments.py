"""Work out every Chinese mobile segment's carrier and region once, for the phonenumbers release installed.

``python -m ringback.tools.segments`` (run by ``make venv`` and the container build) writes the table
:mod:`ringback.normalizer.phones` reads at start-up, beside it. Without one each normalizer looks a
segment up the first time it meets it (see ``phones.SEGMENT_TABLE``). ``--check`` exits 1 when the
table is missing or would not be taken.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from ringback.normalizer import phones


def build() -> None:
    started = time.process_time()
    data = phones.SegmentAnswers().table()
    aside = phones.SEGMENT_TABLE.with_name(f".{phones.SEGMENT_TABLE.name}.tmp")
    aside.write_bytes(data)
    os.replace(aside, phones.SEGMENT_TABLE)
    print(
        f"ringback: {phones.CN_SEGMENT_COUNT} mobile segments' carriers and regions worked out "
        f"({time.process_time() - started:.0f} s) into {phones.SEGMENT_TABLE}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ringback.tools.segments", description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="Exit 1 when the table is missing or not taken.")
    args = parser.parse_args(argv)
    if args.check:
        refused = phones.load_table(phones.SegmentAnswers())
        if refused:
            print(f"ringback: the segment table is not taken: {refused}", file=sys.stderr)
            return 1
        return 0
    build()
    return 0


if __name__ == "__main__":
    sys.exit(main())
