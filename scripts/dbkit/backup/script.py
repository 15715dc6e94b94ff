"""A plain dump (or pg_restore's script of an archive) as psql gets it: without the SETs an
older server does not know, without pg_dump's own ``\\restrict`` key lines (the loader's key
stands instead), without the lines the superuser runs apart (``asrole``)."""

from __future__ import annotations

import re
import shutil
from typing import BinaryIO

from dbkit.errors import ToolError
from dbkit.pg import tools
from dbkit.pg.server import Server

# Settings a plain dump may SET that older servers reject, and the version that knows them:
# pg_dump 17+ writes "SET transaction_timeout = 0;" whatever the server it dumps. The loader
# leaves these lines out for an older server (they only reset a timeout for the session).
_NEW_SETTINGS = {"transaction_timeout": 17}
_HEADER_LINES = 100  # pg_dump's SET lines open the file; nothing below them is touched


def unknown_settings(server_major: int) -> tuple[str, ...]:
    """The settings a plain dump may SET that this server major does not know."""
    return tuple(name for name, since in _NEW_SETTINGS.items() if server_major < since)


def copy_without_settings(src: BinaryIO, out: BinaryIO, server_major: int,
                          dump_key: bytes | None = None,
                          skip: set[int] | frozenset[int] = frozenset()) -> None:
    """Copy a plain dump, leaving out its header's SETs of settings the server lacks,
    pg_dump's own ``\\restrict``/``\\unrestrict`` lines (dbkit's key stands instead) and
    the lines (numbered from 1) in ``skip``."""
    names = "|".join(re.escape(n) for n in unknown_settings(server_major))
    pattern = re.compile(rf"^SET ({names}) = ".encode()) if names else None
    number = 0
    for _ in range(_HEADER_LINES):
        line = src.readline()
        number += 1
        if not line:
            return
        own = re.match(rb"^\\(un)?restrict ([A-Za-z0-9]+)\s*$", line)
        if own and dump_key in (None, own.group(2)):  # pg_restore -f writes one of its own
            dump_key = own.group(2)
            continue  # a short dump ends inside these lines: its \unrestrict goes too
        if number in skip:
            continue
        if pattern is None or not pattern.match(line):
            out.write(line)
    if dump_key is None and not skip:
        shutil.copyfileobj(src, out, 1024 * 1024)
        return
    closing = b"\\unrestrict " + dump_key if dump_key is not None else None
    for line in src:  # the closing line is the last one; data lines pass as they are
        number += 1
        if number not in skip and (closing is None or line.rstrip() != closing):
            out.write(line)


# psql's restricted mode (\restrict, CVE-2025-8714) came in these minor releases.
_RESTRICT_SINCE = {13: 22, 14: 19, 15: 14, 16: 10, 17: 6}


def psql_restricts(server: Server) -> bool:
    """Whether the psql that loads here knows ``\\restrict``; asked once per server (a
    verify or restore loads several scripts)."""
    known = server.__dict__.get("_psql_restricts")
    if known is None:
        known = server.__dict__["_psql_restricts"] = _psql_restricts(server)
    return known


def _psql_restricts(server: Server) -> bool:
    try:
        text = tools.run(server.tool("psql", ["--version"]), what="psql --version").stdout
    except ToolError:
        return False
    match = re.search(rb"(\d+)(?:\.(\d+))?", text)
    if not match:
        return False
    major, minor = int(match.group(1)), int(match.group(2) or 0)
    return major >= 18 or minor >= _RESTRICT_SINCE.get(major, 10**6)
