"""``make bench``: every benchmark in one run, its results as JSON, Markdown and a chart.

``python -m bench [--quick] [--repeat N] [NAMES...]`` with NAMES among squash (long chains
and big schemas: squash and fresh install), validate and backup (>= 1 GB: only in a full
run, or when named). Writes ``bench/results/<date>[-quick].json``, ``.md`` and ``.png``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

from bench import bench_backup, bench_squash, bench_validate, publish
from bench.common import machine, say

RESULTS = Path(__file__).parent / "results"
NAMES = ("squash", "validate", "backup")


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="bench", description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help=f"some of {', '.join(NAMES)} (default: all; "
                        "with --quick, all but backup)")
    parser.add_argument("--quick", action="store_true", help="the smallest sizes only")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of each (min, median)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where the results go")
    args = parser.parse_args(argv)
    names = args.names or [n for n in NAMES if not (args.quick and n == "backup")]
    unknown = [n for n in names if n not in NAMES]
    if unknown:
        sys.exit(f"bench: unknown benchmark {', '.join(unknown)} (have: {', '.join(NAMES)})")
    started = time.perf_counter()
    results: dict[str, Any] = {"date": date.today().isoformat(), "quick": args.quick,
                               "repeat": args.repeat, "machine": machine()}
    for name in names:
        say(f"== bench {name}")
        if name == "squash":
            results["squash"] = bench_squash.run(quick=args.quick, repeat=args.repeat)
        elif name == "validate":
            results["validate"] = bench_validate.run(quick=args.quick, repeat=args.repeat)
        else:
            results["backup"] = bench_backup.run()
    results["postgresql"] = _major(results)
    results["took_s"] = round(time.perf_counter() - started, 1)
    results["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    stem = args.out / (results["date"] + ("-quick" if args.quick else ""))
    text, drawn = publish.write(results, stem)
    say("\n" + text)
    say(f"Results: {stem}.json, .md" + (", .png" if drawn else
                                       " (no chart: matplotlib is not installed)"))


def _major(results: dict[str, Any]) -> str:
    for section in ("squash", "backup"):
        num = results.get(section, {}).get("server_version")
        if num:
            return str(num // 10000)
    return "?"


if __name__ == "__main__":
    main(sys.argv[1:])
