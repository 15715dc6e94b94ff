"""Create .venv and install dbkit with its dev tools: uv when present, else venv + pip.

Standard library only (it runs before anything is installed). Idempotent: a stamp holding
the hash of pyproject.toml makes a second run with nothing changed a no-op.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
STAMP = VENV / ".dbkit-installed"


def main() -> int:
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.is_file() and STAMP.read_text().strip() == wanted:
        return 0
    python = VENV / "bin" / "python"
    uv = shutil.which("uv")
    try:
        if uv:
            if not python.exists():
                subprocess.run([uv, "venv", "--python", sys.executable, str(VENV)], check=True)
            subprocess.run([uv, "pip", "install", "--python", str(python), "-e", ".[dev]"],
                           check=True, cwd=ROOT)
        else:
            if not python.exists():
                subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
            subprocess.run([str(python), "-m", "pip", "install", "--quiet",
                            "--disable-pip-version-check", "-e", ".[dev]"],
                           check=True, cwd=ROOT)
    except subprocess.CalledProcessError as err:
        print(f"setup: installing dependencies failed (exit {err.returncode})", file=sys.stderr)
        return 1
    STAMP.write_text(wanted + "\n")
    print(f"setup: {VENV} ready")
    return 0


if __name__ == "__main__":
    sys.exit(main())
