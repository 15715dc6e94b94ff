"""Helpers shared by the backup and restore tests: a project, real rows, what a database holds,
and a second server that asks for passwords (the session server trusts its socket)."""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conftest import FIXTURES, base_env, run_cli
from dbkit.pg import catalog
from dbkit.pg.embedded import EmbeddedServer
from dbkit.pg.server import Server
from dbkit.project.chain import AlembicProject
from dbkit.settings import load_settings

APP = FIXTURES / "backup_app"
FAKES = Path(__file__).resolve().parent / "fakes"
NO_FILE = Path("/nonexistent/.env")


class TtyInput(io.StringIO):
    """Typed answers, on what claims to be a terminal."""

    def isatty(self) -> bool:
        return True


def make_project(project_dir: Path, pgdata: Path, dbname: str, **extra: str) -> dict[str, str]:
    """A private copy of the fixture app in ``project_dir/app`` and the env that points at it."""
    shutil.copytree(APP, project_dir / "app", ignore=shutil.ignore_patterns("__pycache__"))
    return base_env(pgdata, dbname, project_dir, BACKEND_DIR=str(project_dir / "app"), **extra)


def backup(env: dict[str, str], cwd: Path, *argv: str) -> Path:
    """``backup-full`` (with ``argv``) that must succeed: the folder it made."""
    folder = Path(env["BACKUP_DIR"])
    before = set(folder.iterdir()) if folder.exists() else set()
    result = run_cli(["backup-full", *argv], env, cwd=cwd)
    assert result.code == 0, result.err
    (made,) = set(folder.iterdir()) - before
    return made


def versions_dir(project_dir: Path) -> Path:
    return project_dir / "app" / "alembic" / "versions"


def upgrade(env: dict[str, str], server: Server, dbname: str) -> None:
    settings = load_settings(Path(env["BACKEND_DIR"]).parent, env, env_file=NO_FILE)
    AlembicProject(settings, server).upgrade(dbname, "head")


def fill(server: Server, dbname: str, *, genes: int = 300, prefix: str = "G") -> None:
    """Real rows: enums, JSONB, arrays, long text, a FK table, and audit rows via the trigger."""
    conn = server.connect(dbname)
    try:
        with conn.cursor() as cur:
            cur.execute(
                """
                INSERT INTO genes (symbol, aliases, details, status, notes)
                SELECT %s || i, ARRAY['a' || i, 'b,"' || i, NULL],
                       jsonb_build_object('n', i, 'tags', jsonb_build_array('x', i, NULL),
                                          'nested', jsonb_build_object('k', md5(i::text)),
                                          'text', E'quote '' and \\\\ and \u00e9'),
                       (ARRAY['active', 'retired', 'candidate']::gene_status[])[1 + i %% 3],
                       CASE WHEN i %% 60 = 0 THEN repeat(md5(i::text), 4000) END
                FROM generate_series(1, %s) i""",
                (prefix, genes),
            )
            cur.execute(
                """
                INSERT INTO evidence (gene_id, source, score, payload)
                SELECT g.id, 'source-' || (g.id %% 7), (g.id %% 1000) / 7.0,
                       jsonb_build_object('gene', g.symbol, 'ids', jsonb_build_array(g.id, 2))
                FROM genes g, generate_series(1, 3) WHERE g.symbol LIKE %s""",
                (prefix + "%",),
            )
            cur.execute("UPDATE genes SET status = 'active' WHERE id % 10 = 0")
    finally:
        conn.close()


def change(server: Server, dbname: str) -> None:
    """What happens to a development database after a backup: rows and schema change."""
    execute(server, dbname,
            "UPDATE genes SET details = details || '{\"changed\": true}'",
            "DELETE FROM evidence WHERE id % 3 = 0",
            "INSERT INTO genes (symbol) VALUES ('AFTER1'), ('AFTER2')",
            "ALTER TABLE genes ADD COLUMN added_later integer",
            "DROP VIEW gene_summary")


def execute(server: Server, dbname: str, *statements: str) -> None:
    conn = server.connect(dbname)
    try:
        with conn.cursor() as cur:
            for statement in statements:
                cur.execute(statement)
    finally:
        conn.close()


def state(server: Server, dbname: str) -> dict[str, Any]:
    """The schema fingerprint and a digest of every table's rows: equal means identical."""
    conn = server.connect(dbname)
    try:
        tables = catalog.table_row_counts(conn)
        digests = {}
        with conn.cursor() as cur:
            for table in tables:
                schema, name = table.split(".")
                cur.execute(
                    f'SELECT count(*), md5(coalesce(string_agg(t::text, E\'\\n\' '
                    f'ORDER BY t::text), \'\')) FROM "{schema}"."{name}" t')
                digests[table] = list(cur.fetchone())
        return {"fingerprint": catalog.fingerprint(conn), "tables": digests}
    finally:
        conn.close()


def databases(server: Server) -> set[str]:
    conn = server.connect(server.maintenance_db)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT datname FROM pg_database")
            return {r[0] for r in cur.fetchall()}
    finally:
        conn.close()


def folder_state(path: Path) -> dict[str, bytes]:
    """Every file under a folder and its bytes (caches aside): equal means untouched."""
    if not path.exists():
        return {}
    return {p.relative_to(path).as_posix(): p.read_bytes() for p in sorted(path.rglob("*"))
            if p.is_file() and "__pycache__" not in p.parts}


def manifest(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "manifest.json").read_text())


def one_line_error(err: str) -> str:
    """The error line, asserting there is exactly one and no traceback."""
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert lines, "no error message"
    assert "Traceback" not in err, err
    assert lines[0].startswith("dbkit "), err
    return lines[0]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class PasswordServer:
    """A second embedded server with scram passwords on TCP 127.0.0.1 and its socket.

    It stands in for the Docker container (and for a url-mode server): the session server
    trusts its socket, so it would accept any password and prove nothing.
    """

    root: Path
    password: str = "Pw-s3cret-7f3a9e"
    user: str = "kidney_user"

    def __post_init__(self) -> None:
        self.port = free_port()
        self.pgdata = self.root / "pgdata"
        self.socket_dir = self.root / "sock"
        settings = load_settings(self.root, {"DB_MODE": "embedded",
                                             "PGDATA_DIR": str(self.pgdata)}, env_file=NO_FILE)
        self.embedded = EmbeddedServer(settings)
        self.bin_dir = self.embedded.bin_dir

    def _as_owner(self, argv: list[str], what: str) -> str:
        return self.embedded._run(argv, what=what)

    def init(self) -> None:
        self.embedded._prepare_dirs()
        self.socket_dir.mkdir(mode=0o700)
        pwfile = self.root / "pwfile"
        pwfile.write_text(self.password + "\n")
        owner = self.embedded.run_as
        if owner is not None:
            os.chown(self.socket_dir, owner.pw_uid, owner.pw_gid)
            os.chown(pwfile, owner.pw_uid, owner.pw_gid)
        self._as_owner([str(self.bin_dir / "initdb"), "-D", str(self.pgdata), "-U", "postgres",
                        "--auth=scram-sha-256", f"--pwfile={pwfile}", "--encoding=UTF8",
                        "--locale=C.UTF-8", "--no-instructions"], "initdb")
        pwfile.unlink()
        self.start()
        self.psql("postgres", f"CREATE ROLE {self.user} LOGIN SUPERUSER PASSWORD "
                              f"'{self.password}'", user="postgres")

    def start(self) -> None:
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.socket_dir}"
        self._as_owner([str(self.bin_dir / "pg_ctl"), "-D", str(self.pgdata), "-l",
                        str(self.pgdata / "server.log"), "-w", "-o", options, "start"],
                       "pg_ctl start")

    def stop(self, mode: str = "fast") -> None:
        self._as_owner([str(self.bin_dir / "pg_ctl"), "-D", str(self.pgdata), "-m", mode,
                        "-w", "stop"], "pg_ctl stop")

    def psql(self, dbname: str, query: str, *, user: str | None = None) -> str:
        env = {"PATH": os.environ["PATH"], "PGPASSWORD": self.password,
               "PGHOST": str(self.socket_dir), "PGPORT": str(self.port),
               "PGUSER": user or self.user}
        # The query goes in on stdin: a CREATE ROLE ... PASSWORD must not sit in any argv.
        proc = subprocess.run([str(self.bin_dir / "psql"), "-X", "-q", "-At", "-v",
                               "ON_ERROR_STOP=1", "-d", dbname], input=query,
                              env=env, capture_output=True, text=True, check=True)
        return proc.stdout.strip()

    def url(self, dbname: str, password: str | None = None) -> str:
        return (f"postgresql://{self.user}:{password or self.password}@127.0.0.1:{self.port}"
                f"/{dbname}")
