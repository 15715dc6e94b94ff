"""Big seed tables: their rows in a data file beside the revision, loaded with COPY.

A table with more seed rows (or bytes of them) than ``SEED_DATA_FILE_ROWS`` /
``SEED_DATA_FILE_BYTES`` would make the revision a file of megabytes of literals. Its rows
go instead to ``<revision>_data/<schema>.<table>.csv.gz`` in the versions directory (CSV in
PostgreSQL's own text form, read with the session settings of ``seed.SESSION``), and the
revision calls ``_load_data_file`` with the file's sha256: the revision checks it, then
COPYs the rows in through the migration's own connection (psycopg2 or psycopg 3).

Alembic loads only ``*.py`` files of the versions directory, so the folder is never taken
for a revision; the squash stages, proves, swaps, backs up and archives it with its file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

from dbkit.files import inside, safe_name
from dbkit.settings import Settings
from dbkit.squash.depend import Node
from dbkit.squash.seed import SeedRows


def limits(settings: Settings) -> tuple[int, int]:
    """(rows, bytes): a seeded table with more goes to a data file."""
    return settings.seed_data_file_rows, settings.seed_data_file_bytes


def with_data(revisions: list[Any]) -> list[Path]:
    """The revisions' files, each followed by the files of its data folder (if it has one)."""
    files: list[Path] = []
    for rev in revisions:
        folder = rev.path.parent / folder_name(rev.revision)
        files.append(rev.path)
        if folder.is_dir() and folder.resolve().is_relative_to(rev.path.parent.resolve()):
            files += sorted(p for p in folder.rglob("*") if p.is_file())
    return files


def folder_name(revision: str) -> str:
    """``<revision>_data``, the id made one plain name first (files.safe_name)."""
    return f"{safe_name(revision)}_data"


def file_name(seed: SeedRows) -> str:
    """``<schema>.<table>.csv.gz``, any character but letters, digits, ``_`` and ``-``
    %-escaped (a dot too: the one dot between schema and table stays unambiguous)."""
    def part(name: str) -> str:
        return quote(name, safe="").replace(".", "%2E")
    return f"{part(seed.schema)}.{part(seed.name)}.csv.gz"


def write(staged: Path, revision: str, nodes: list[Node]) -> int:
    """The data files of the seed rows among ``nodes`` into ``staged``; their bytes."""
    size = 0
    for seed in (n.seed for n in nodes):
        if seed is None or seed.data is None:
            continue
        folder = inside(staged, folder_name(revision))
        folder.mkdir(mode=0o755, exist_ok=True)
        inside(folder, file_name(seed)).write_bytes(seed.data)
        size += len(seed.data)
    return size


def call(seed: SeedRows, indent: str) -> list[str]:
    """The lines of ``upgrade()`` that load one table's data file."""
    columns = ", ".join(c.qname for c in seed.columns)
    return [
        f"{indent}_load_data_file(",
        f"{indent}    {file_name(seed)!r}, {seed.count},",
        f"{indent}    {f'COPY {seed.table} ({columns}) FROM STDIN'!r},",
        f"{indent}    sha256={seed.sha256!r},",
        f"{indent})",
    ]


IMPORTS = ["import gzip", "import hashlib", "import io", "from pathlib import Path"]

# The revision's own loader: it runs in the user's project, with its driver, dbkit absent.
HELPER = '''

def _load_data_file(name: str, rows: int, copy: str, *, sha256: str) -> None:
    """COPY one table's rows from this revision's data folder, once its sha256 is checked.

    The file is CSV in PostgreSQL's text form, written by dbkit's squash; it must travel with
    this file (the folder {folder!r} beside it in the versions directory).
    """
    path = Path(__file__).resolve().parent / {folder!r} / name
    if op.get_context().as_sql:
        raise RuntimeError(f"{{path}}: a data file cannot be loaded in offline (--sql) mode")
    try:
        data = path.read_bytes()
    except OSError as err:
        raise RuntimeError(f"the data file of revision {{revision}} cannot be read: {{err}}; "
                           f"the folder {folder!r} must travel with the revision file") from None
    found = hashlib.sha256(data).hexdigest()
    if found != sha256:
        raise RuntimeError(
            f"the data file {{path}} was changed or damaged: its sha256 is {{found}}, revision "
            f"{{revision}} recorded {{sha256}}; nothing was loaded. Put back the file the "
            "squash wrote (the backup taken before the squash, or version control)")
    text = gzip.decompress(data)
    statement = copy + " WITH (FORMAT csv, ENCODING 'UTF8')"
    bind = op.get_bind()
    # The text form dbkit read the rows in: ISO dates, postgres-style intervals.
    session = {{"DateStyle": "ISO, YMD", "IntervalStyle": "postgres"}}
    before = {{key: bind.execute(sa.text("SELECT current_setting(:k)"), {{"k": key}}).scalar()
              for key in session}}
    for key, value in session.items():
        bind.execute(sa.text("SELECT set_config(:k, :v, true)"), {{"k": key, "v": value}})
    fairy = bind.connection
    dbapi = getattr(fairy, "dbapi_connection", None) or fairy.connection
    cursor = dbapi.cursor()
    try:
        if hasattr(cursor, "copy_expert"):  # psycopg2
            cursor.copy_expert(statement, io.BytesIO(text))
        elif hasattr(cursor, "copy"):  # psycopg 3
            with cursor.copy(statement) as copy_in:
                for start in range(0, len(text), 1 << 20):
                    copy_in.write(text[start:start + (1 << 20)])
        else:
            raise RuntimeError(
                f"{{path}}: the database driver {{type(dbapi).__module__}} cannot COPY; "
                "this revision loads its data files with psycopg2 or psycopg 3")
        loaded = cursor.rowcount
    finally:
        cursor.close()
    for key, value in before.items():
        bind.execute(sa.text("SELECT set_config(:k, :v, true)"), {{"k": key, "v": value}})
    if loaded not in (-1, rows):
        raise RuntimeError(f"{{path}}: {{loaded}} rows loaded, {{rows}} expected")
'''


def helper(revision: str) -> list[str]:
    """The loader's source, for the end of the revision file."""
    return HELPER.format(folder=folder_name(revision)).splitlines()
