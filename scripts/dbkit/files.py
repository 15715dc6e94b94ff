"""Files dbkit writes and trusts: content hashes, directory entries made durable, and names
made from what a project holds (revision ids) that stay one name inside their folder."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Any

from dbkit.errors import ConfigError

_CHUNK = 1 << 20
# A name kept as it is: what revision ids usually are (hex, slugs, 1.0). Anything else (a
# separator, "..", a leading dot or dash, NUL, spaces, other letters) gets the safe form.
_PLAIN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,99}")
_UNSAFE_RUN = re.compile(r"[^A-Za-z0-9_-]+")


def file_digest(path: Path) -> dict[str, Any]:
    """Size and sha256 of one file, read in chunks (dumps can be large)."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return {"size": size, "sha256": digest.hexdigest()}


def fsync_dir(path: Path) -> None:
    """Make a rename or a new entry in ``path`` survive a crash."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def safe_name(text: str) -> str:
    """``text`` as one path component: itself when plain, else its letters, digits, ``_``
    and ``-`` with a short hash of the whole (``../../pwnrev`` → ``pwnrev-<8 hex>``), so
    two ids never share a name and the same id always gets the same one."""
    if _PLAIN.fullmatch(text) and ".." not in text:
        return text
    kept = _UNSAFE_RUN.sub("_", text).strip("_-")[:40] or "revision"
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{kept}-{digest}"


def inside(folder: Path, rel: str) -> Path:
    """``folder / rel``, once it is certain to be inside ``folder`` (links and ``..``
    resolved): the last check before dbkit writes a file whose name it did not choose."""
    target = folder / rel
    root = folder.resolve()
    where = target.resolve()
    if where == root or not where.is_relative_to(root):
        raise ConfigError(f"refusing to write {rel!r}: it is not inside {folder}; nothing "
                          "was changed")
    return target
