"""What Alembic really loaded and ran in the child, and the check against what dbkit expects.

The child (``runner.Witness``) reports, for every upgrade and downgrade, the folders env.py
chose and each step that ran: revision, file (symlinks resolved), its sha256 and the file
the code of its upgrade()/downgrade() is in. dbkit hands the child the files it expects
(``Expected.allow``: path and sha256, hashed here, in dbkit's own process); the child refuses
any other before a step runs, and ``Expected.check`` reads the report afterwards. A proof, a
catch-up or a chain check therefore never runs other files than the ones it names.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dbkit.errors import ChainBuildFailed
from dbkit.files import file_digest


class WrongFiles(ChainBuildFailed):
    """Alembic ran (or would have run) other files than the ones dbkit expected."""


@dataclass(frozen=True)
class Step:
    revision: str
    path: Path
    sha256: str
    upgrade: bool
    code: str | None  # the file upgrade()/downgrade() is defined in


@dataclass
class Ran:
    """One operation's report from the child."""

    given: list[str] = field(default_factory=list)  # the folders dbkit's config named
    env: list[str] | None = None  # set: the folders env.py chose instead
    used: list[str] | None = None  # the folders Alembic then loaded
    env_error: str | None = None  # env.py could not be run offline to see its choice
    steps: list[Step] = field(default_factory=list)

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Ran:
        data = data or {}
        return cls(given=list(data.get("given") or []), env=data.get("env"),
                   used=data.get("used"), env_error=data.get("env_error"),
                   steps=[Step(s["revision"], Path(s["path"]), s["sha256"], s["upgrade"],
                               s.get("code"))
                          for s in data.get("steps") or [] if not s.get("stamp")])

    @property
    def revisions(self) -> list[str]:
        return [s.revision for s in self.steps]


def hashes_of(paths: Iterable[Path]) -> dict[Path, str]:
    """``{resolved path: sha256}`` of each file, read here in dbkit's process."""
    return {Path(p).resolve(): file_digest(Path(p))["sha256"] for p in paths}


def folder_files(folder: Path, rel_hashes: dict[str, str]) -> dict[Path, str]:
    """``rel_hashes`` (``{path relative to folder: sha256}``) as resolved paths."""
    root = folder.resolve()
    return {(root / rel).resolve(): digest for rel, digest in rel_hashes.items()}


@dataclass(frozen=True)
class Expected:
    """The only files an operation may run, and (optionally) exactly which revisions."""

    files: dict[Path, str]  # resolved path: sha256
    what: str  # "the staged squashed revision", "the archive …": said when it does not hold
    revisions: tuple[str, ...] | None = None  # exactly these, each once (None: any subset)
    code_in_file: bool = False  # upgrade()/downgrade() must be defined in the file itself

    def allow(self) -> dict[str, str]:
        return {str(path): digest for path, digest in self.files.items()}

    def check(self, ran: Ran, *, op: str) -> None:
        """WrongFiles unless every step ran one of ``files``, unchanged (and, when asked,
        exactly ``revisions``)."""
        for step in ran.steps:
            want = self.files.get(step.path)
            if want is None:
                raise WrongFiles(f"{op} ran revision {step.revision} from {step.path}, not "
                                 f"from {self.what}" + _chose(ran))
            if step.sha256 != want:
                raise WrongFiles(f"{op} ran revision {step.revision} from {step.path}, whose "
                                 f"content is not that of {self.what} (sha256 differs)")
            if self.code_in_file and step.code is not None and \
                    Path(step.code).resolve() != step.path:
                raise WrongFiles(f"{op} ran revision {step.revision}, whose "
                                 f"{'upgrade' if step.upgrade else 'downgrade'}() is defined "
                                 f"in {step.code}, not in {self.what}")
        if self.revisions is not None and sorted(ran.revisions) != sorted(self.revisions):
            ran_ = ", ".join(ran.revisions) or "none"
            raise WrongFiles(f"{op} ran {len(ran.revisions)} revisions ({_short(ran_)}), not "
                             f"the {len(self.revisions)} of {self.what} "
                             f"({_short(', '.join(self.revisions))})" + _chose(ran))


def _chose(ran: Ran) -> str:
    return (f" (env.py chose the folders {', '.join(ran.env)})" if ran.env else "")


def _short(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[:limit] + " …"
