"""The versions directory: list, hash, stage, swap, recover. The one implementation that squash,
restore-full and migration-restore share.

A new directory is always built beside the old one (``.<name>.dbkit-new-<pid>``) and put in
place in one step: ``renameat2(RENAME_EXCHANGE)`` where the kernel and filesystem have it,
else two renames with Ctrl-C held between them. A run killed between those two renames leaves
``.<name>.dbkit-old-<pid>`` and no versions directory; ``recover`` puts it back.

A versions directory that is a symbolic link is worked on through its target (staged and
swapped beside the target), so the link stays a link. ``require_swappable`` says before
anything changes whether a rename can replace the directory at all.

A run that must finish a swap it has started even if it is killed (restore-full: after the
database swap; squash: after its swap) first writes an *intent*, ``.<name>.dbkit-intent-
<pid>.json`` beside the directory, and removes it when done. ``recover`` hands the intents of
dead runs to a ``finish`` function that knows what they meant (project/recovery.py).
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import re
import shutil
import stat
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from dbkit.errors import ConfigError
from dbkit.files import file_digest, fsync_dir
from dbkit.pg.tools import pid_alive
from dbkit.retry import no_interrupt

_SIBLING_RE = re.compile(r"^\.(.+)\.dbkit-(new|old)-(\d+)$")
_INTENT_RE = re.compile(r"^\.(.+)\.dbkit-intent-(\d+)\.json$")
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


def real_dir(versions_dir: Path) -> Path:
    """The directory itself: a symbolic link's target (the link must stay a link)."""
    return versions_dir.resolve() if versions_dir.is_symlink() else versions_dir


def sibling(versions_dir: Path, role: str, pid: int | None = None) -> Path:
    """``.<name>.dbkit-<role>-<pid>`` beside the versions directory (beside its target)."""
    real = real_dir(versions_dir)
    return real.with_name(f".{real.name}.dbkit-{role}-{pid or os.getpid()}")


def require_swappable(versions_dir: Path) -> None:
    """ConfigError unless a staged copy can replace the directory by rename: it is a
    directory, writable, not a mount point, and its parent is writable on the same device."""
    real = real_dir(versions_dir)
    shown = f"{versions_dir} (a link to {real})" if real != versions_dir else str(versions_dir)
    if not real.is_dir():
        raise ConfigError(f"the versions directory {shown} does not exist")
    if _is_mount(real):
        raise ConfigError(f"the versions directory {shown} is a mount point: a rename cannot "
                          "replace it (mount its parent instead); nothing was changed")
    if real.stat().st_dev != real.parent.stat().st_dev:
        raise ConfigError(f"the versions directory {shown} is on another device than "
                          f"{real.parent}; nothing was changed")
    for folder in (real, real.parent):
        if not os.access(folder, os.W_OK | os.X_OK):
            raise ConfigError(f"{folder} is not writable (read-only mount or permissions): the "
                              "versions directory cannot be replaced; nothing was changed")


def _is_mount(path: Path) -> bool:
    """A mount point, bind mounts of the same filesystem included (os.path.ismount misses
    those: they keep the device number)."""
    if os.path.ismount(path):
        return True
    try:
        with open("/proc/self/mountinfo", encoding="utf-8") as fh:
            points = {line.split()[4] for line in fh if len(line.split()) > 4}
    except OSError:
        return False
    # mountinfo escapes spaces, tabs, newlines and backslashes as octal
    shown = str(path.resolve())
    for char in "\\ \t\n":
        shown = shown.replace(char, f"\\{ord(char):03o}")
    return shown in points


# -- intents: a swap a killed run must have finished -----------------------------------------
def intent_path(versions_dir: Path, pid: int | None = None) -> Path:
    real = real_dir(versions_dir)
    return real.with_name(f".{real.name}.dbkit-intent-{pid or os.getpid()}.json")


def write_intent(versions_dir: Path, data: dict[str, Any]) -> Path:
    """Record, durably, what a run is about to do to the versions directory."""
    path = intent_path(versions_dir)
    tmp = path.with_name(path.name + ".tmp")
    payload = {**data, "versions_dir": str(real_dir(versions_dir)), "pid": os.getpid()}
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)
    fsync_dir(path.parent)
    return path


def clear_intent(versions_dir: Path) -> None:
    intent_path(versions_dir).unlink(missing_ok=True)


def stage(versions_dir: Path, files: Iterable[tuple[str, Path]], *,
          into: Path | None = None) -> Path:
    """Copy ``(relative path, source)`` pairs into a new folder beside the versions directory
    (or ``into``), ready for ``swap_in``. Files get the user's usual mode (copyfile)."""
    staged = into or sibling(versions_dir, "new")
    shutil.rmtree(staged, ignore_errors=True)
    staged.mkdir(parents=True)
    if versions_dir.is_dir():
        staged.chmod(stat.S_IMODE(versions_dir.stat().st_mode))
    inside = staged.resolve()
    for rel, source in files:
        target = staged / rel
        # Callers pass checked names; this is the last line of defence against a name that
        # would write outside the new directory.
        if not target.resolve().is_relative_to(inside) or target.resolve() == inside:
            shutil.rmtree(staged, ignore_errors=True)
            raise ConfigError(f"refusing to write {rel!r}: it is not inside the versions "
                              "directory; nothing was changed")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    return staged


def swap_in(staged: Path, versions_dir: Path) -> Path:
    """Put ``staged`` in the place of ``versions_dir``; returns where the old contents now are.

    Nobody ever sees a half-copied directory. The caller removes (or archives) what is
    returned, or swaps it back with another ``swap_in``. A symbolic link is swapped through:
    its target's contents change, the link stays.
    """
    versions_dir = real_dir(versions_dir)
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


def _roots(root: Path) -> list[Path]:
    """``root``, and the parents of directories that links under it point to."""
    roots = [root]
    for depth in ("", "*/", "*/*/"):
        for link in root.glob(f"{depth}*"):
            if link.is_symlink() and link.is_dir() and link.resolve().parent not in roots:
                roots.append(link.resolve().parent)
    return roots


Finish = Callable[[dict[str, Any]], tuple[list[str], bool]]


def recover(root: Path, finish: Finish | None = None) -> list[str]:
    """Repair what a killed swap left under ``root`` (a few levels deep); what was done.

    Looks at the folders rather than asking Alembic, which cannot read a project whose
    versions directory is missing. Folders of a live dbkit run are left alone. The intent of
    a dead run goes to ``finish``: what it says, and whether it is done (if not, the intent
    and the run's folders stay for the next time); without ``finish`` intents stay.
    """
    done: list[str] = []
    for folder in _roots(root):
        found = sorted(p for depth in ("", "*/", "*/*/")
                       for p in folder.glob(f"{depth}.*.dbkit-*"))
        dead = {path: int(m.group(2)) for path in found if (m := _INTENT_RE.match(path.name))
                and not _alive(int(m.group(2)))}
        # Killed between the two renames: the old directory goes back first, whatever the
        # intent; finishing starts again from a directory that is there.
        for path in found:
            match = _SIBLING_RE.match(path.name)
            if match and match.group(2) == "old" and path.is_dir() \
                    and not _alive(int(match.group(3))) \
                    and not path.with_name(match.group(1)).exists():
                os.rename(path, path.with_name(match.group(1)))
                done.append(f"Put back {path.with_name(match.group(1))} from a run that was "
                            "killed while swapping it")
        kept: set[int] = set()
        for path, pid in dead.items():
            try:
                data = json.loads(path.read_text())
            except (OSError, ValueError):
                data = None
            lines, finished = (finish(data) if finish is not None and isinstance(data, dict)
                               else ([], False))
            done += lines
            if not finished:
                kept.add(pid)
                continue
            path.unlink(missing_ok=True)
        for path in found:
            match = _SIBLING_RE.match(path.name)
            if not match or not path.is_dir() or not path.exists():
                continue
            pid = int(match.group(3))
            if pid in kept or _alive(pid):
                continue
            shutil.rmtree(path, ignore_errors=True)
    return done


def _alive(pid: int) -> bool:
    return pid == os.getpid() or pid_alive(pid)
