"""Create .venv and install dbkit with its dev tools: uv when present, else venv + pip.

Standard library only (it runs before anything is installed). Idempotent: a stamp holding
the hash of pyproject.toml and constraints.txt makes a second run with nothing changed a
no-op. pyproject.toml declares ranges (for projects installing dbkit beside their own
packages); constraints.txt holds the exact versions this repository installs.

``--extra NAME`` also installs that optional group (``make bench`` asks for ``bench``:
matplotlib for the chart), with a stamp of its own, so ``make test``'s install stays lean.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
CONSTRAINTS = ROOT / "constraints.txt"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="setup_venv")
    parser.add_argument("--extra", action="append", default=[],
                        help="an optional dependency group to install as well (bench)")
    extras = ["dev", *parser.parse_args(argv).extra]
    stamp = VENV / (".dbkit-installed" if extras == ["dev"] else
                    f".dbkit-installed-{'-'.join(extras[1:])}")
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()
                            + CONSTRAINTS.read_bytes()).hexdigest()
    if stamp.is_file() and stamp.read_text().strip() == wanted:
        return 0
    python = VENV / "bin" / "python"
    target = f".[{','.join(extras)}]"
    uv = shutil.which("uv")
    try:
        if uv:
            if not python.exists():
                subprocess.run([uv, "venv", "--python", sys.executable, str(VENV)], check=True)
            subprocess.run([uv, "pip", "install", "--python", str(python), "-c",
                            str(CONSTRAINTS), "-e", target], check=True, cwd=ROOT)
        else:
            if not python.exists():
                subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
            subprocess.run([str(python), "-m", "pip", "install", "--quiet",
                            "--disable-pip-version-check", "-c", str(CONSTRAINTS), "-e",
                            target],
                           check=True, cwd=ROOT)
    except subprocess.CalledProcessError as err:
        print(f"setup: installing dependencies failed (exit {err.returncode})", file=sys.stderr)
        return 1
    stamp.write_text(wanted + "\n")
    print(f"setup: {VENV} ready" + (f" (with {', '.join(extras[1:])})" if extras[1:] else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
