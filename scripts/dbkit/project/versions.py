"""The versions directory: list, hash, stage, swap, recover. The one implementation that squash,
restore-full and migration-restore share.

A new directory is always built beside the old one (``.<name>.dbkit-new-<pid>``) and put in
place in one step: ``renameat2(RENAME_EXCHANGE)`` where the kernel and filesystem have it,
else two renames with Ctrl-C held between them. A run killed between those two renames leaves
``.<name>.dbkit-old-<pid>`` and no versions directory; ``recover`` puts it back.
"""

from __future__ import annotations

import ctypes
import errno
import os
import re
import shutil
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path

from dbkit.files import file_digest
from dbkit.pg.tools import pid_alive
from dbkit.retry import no_interrupt

_SIBLING_RE = re.compile(r"^\.(.+)\.dbkit-(new|old)-(\d+)$")
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def file_paths(versions_dir: Path) -> Iterator[tuple[str, Path]]:
    """``(relative path, path)`` of every file in the versions directory, caches skipped."""
    for path in sorted(versions_dir.rglob("*")):
        rel = path.relative_to(versions_dir)
        if path.is_file() and "__pycache__" not in rel.parts and path.suffix != ".pyc":
            yield rel.as_posix(), path


def file_hashes(versions_dir: Path) -> dict[str, str]:
    """``{relative path: sha256}`` of every file ``file_paths`` lists."""
    return {rel: file_digest(path)["sha256"] for rel, path in file_paths(versions_dir)}


def sibling(versions_dir: Path, role: str, pid: int | None = None) -> Path:
    """``.<name>.dbkit-<role>-<pid>`` beside the versions directory."""
    return versions_dir.with_name(f".{versions_dir.name}.dbkit-{role}-{pid or os.getpid()}")


def stage(versions_dir: Path, files: Iterable[tuple[str, Path]], *,
          into: Path | None = None) -> Path:
    """Copy ``(relative path, source)`` pairs into a new folder beside the versions directory
    (or ``into``), ready for ``swap_in``. Files get the user's usual mode (copyfile)."""
    staged = into or sibling(versions_dir, "new")
    shutil.rmtree(staged, ignore_errors=True)
    staged.mkdir(parents=True)
    if versions_dir.is_dir():
        staged.chmod(stat.S_IMODE(versions_dir.stat().st_mode))
    for rel, source in files:
        target = staged / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    return staged


def swap_in(staged: Path, versions_dir: Path) -> Path:
    """Put ``staged`` in the place of ``versions_dir``; returns where the old contents now are.

    Nobody ever sees a half-copied directory. The caller removes (or archives) what is
    returned, or swaps it back with another ``swap_in``.
    """
    if _exchange(staged, versions_dir):
        return staged  # the staged path now holds the old contents
    old = sibling(versions_dir, "old")
    with no_interrupt():
        os.rename(versions_dir, old)
        try:
            os.rename(staged, versions_dir)
        except BaseException:
            os.rename(old, versions_dir)
            raise
    return old


def _exchange(a: Path, b: Path) -> bool:
    """renameat2(RENAME_EXCHANGE): swap two directories in one step; False if unsupported."""
    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if renameat2 is None:
        return False
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def recover(root: Path) -> list[str]:
    """Repair what a killed swap left under ``root`` (a few levels deep); what was done.

    Looks at the folders rather than asking Alembic, which cannot read a project whose
    versions directory is missing. Folders of a live dbkit run are left alone.
    """
    done = []
    found = [p for depth in ("", "*/", "*/*/") for p in root.glob(f"{depth}.*.dbkit-*")]
    for path in sorted(found):
        match = _SIBLING_RE.match(path.name)
        if not match or not path.is_dir():
            continue
        name, role, pid = match.group(1), match.group(2), int(match.group(3))
        if pid == os.getpid() or pid_alive(pid):
            continue
        versions_dir = path.with_name(name)
        if role == "old" and not versions_dir.exists():
            os.rename(path, versions_dir)  # killed between the two renames: put it back
            done.append(f"Put back {versions_dir} from a run that was killed while swapping it")
        else:
            shutil.rmtree(path, ignore_errors=True)
    return done
