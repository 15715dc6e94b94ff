"""Run every benchmark (or those named: ``make bench BENCH="backup squash"``)."""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path


def main(argv: list[str]) -> None:
    here = Path(__file__).parent
    names = sorted(m.name[len("bench_"):] for m in pkgutil.iter_modules([str(here)])
                   if m.name.startswith("bench_"))
    wanted = argv or names
    unknown = [w for w in wanted if w not in names]
    if unknown:
        sys.exit(f"bench: unknown benchmark {', '.join(unknown)} (have: {', '.join(names)})")
    for name in wanted:
        print(f"== bench {name}", flush=True)
        importlib.import_module(f"bench.bench_{name}").main([])


if __name__ == "__main__":
    main(sys.argv[1:])
