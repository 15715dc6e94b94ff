"""Print the Makefile's targets and their ``## one line`` help (the default goal)."""

from __future__ import annotations

import re
import sys

TARGET = re.compile(r"^([a-zA-Z][a-zA-Z0-9_-]*):[^=]*?##\s*(.+)$")


def main(paths: list[str]) -> None:
    print("Usage: make TARGET [VAR=value ...]\n")
    for path in paths:
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                match = TARGET.match(line)
                if match:
                    print(f"  {match.group(1):<24} {match.group(2)}")
    print("\nSettings come from the environment and .env (see .env.example).")


if __name__ == "__main__":
    main(sys.argv[1:])
