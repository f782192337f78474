"""Draw the cookbook's chart (docs/analysts.md): calls per app by outcome, with each app's answer-seizure ratio,
from one query over ``ringback.calls`` (through ``ringback sql``, so it works against the embedded
store of a running ``ringback run`` and against a server alike).

    .venv/bin/python examples/call_outcomes_chart.py --data-dir ./data --out call-outcomes.png
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # after matplotlib.use: the backend is chosen first

QUERY = """
SELECT app_id, status, count() AS calls
FROM ringback.calls
WHERE app_id IS NOT NULL AND app_id != ''
GROUP BY app_id, status
ORDER BY app_id, status
FORMAT JSONEachRow
"""
#: Outcomes drawn in this order, answered first; any other status is drawn after them.
OUTCOMES = (
    "answered",
    "no_answer",
    "busy",
    "rejected",
    "unreachable",
    "invalid_number",
    "failed",
    "network_error",
    "unknown",
)


def rows(data_dir: str) -> list[dict[str, object]]:
    done = subprocess.run(
        [sys.executable, "-m", "ringback", "sql", "--data-dir", data_dir, QUERY],
        capture_output=True,
        check=True,
        timeout=300,
    )
    return [json.loads(line) for line in done.stdout.decode().splitlines() if line.strip()]


def draw(found: list[dict[str, object]], out: Path) -> None:
    by_app: dict[str, dict[str, int]] = defaultdict(dict)
    for row in found:
        by_app[str(row["app_id"])][str(row["status"])] = int(str(row["calls"]))
    apps = sorted(by_app, key=lambda app: sum(by_app[app].values()))
    statuses = [s for s in OUTCOMES if any(s in counts for counts in by_app.values())]
    statuses += sorted({s for counts in by_app.values() for s in counts} - set(statuses))
    figure, axes = plt.subplots(figsize=(10, 0.6 * len(apps) + 1.8))
    left = [0] * len(apps)
    palette = plt.get_cmap("tab20").colors  # one color per outcome: the default cycle repeats after 10
    for index, status in enumerate(statuses):
        widths = [by_app[app].get(status, 0) for app in apps]
        axes.barh(apps, widths, left=left, label=status, color=palette[index % len(palette)])
        left = [a + b for a, b in zip(left, widths, strict=True)]
    for y, app in enumerate(apps):
        total = sum(by_app[app].values())
        asr = by_app[app].get("answered", 0) / total if total else 0.0
        axes.text(total, y, f"  {total} calls, ASR {asr:.0%}", va="center")
    axes.set_xlabel("calls")
    axes.set_ylabel("app_id")
    axes.set_title("Calls per app by outcome (ringback.calls)")
    axes.set_xlim(0, max(left) * 1.3 if left else 1)
    axes.legend(loc="lower right", fontsize="small")
    figure.tight_layout()
    figure.savefig(out, dpi=100)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default="data", help="The data directory of the `ringback run` to query.")
    parser.add_argument("--out", default="call-outcomes.png", help="Where to write the PNG.")
    args = parser.parse_args()
    draw(rows(args.data_dir), Path(args.out))
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
