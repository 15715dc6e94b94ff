"""Status lines, confirmations and secret masking: everything dbkit says goes through here."""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO
from urllib.parse import quote

from dbkit.errors import Refused

_COLOURS = {"green": "32", "red": "31", "yellow": "33", "bold": "1", "dim": "2"}


class Console:
    """Writes to one stream, masks secrets, colours only on a terminal and never with NO_COLOR."""

    def __init__(
        self,
        out: TextIO | None = None,
        *,
        err: TextIO | None = None,
        quiet: bool = False,
        secrets: list[str] | None = None,
        colour: bool | None = None,
        stdin: TextIO | None = None,
    ) -> None:
        self.out = out or sys.stdout
        # Questions go to stderr, so `dbkit reset > log` still shows what it waits for.
        self.err = err or sys.stderr
        self.stdin = stdin or sys.stdin
        self.quiet = quiet
        self.secrets = [s for s in (secrets or []) if s]
        if colour is None:
            colour = _isatty(self.out) and "NO_COLOR" not in os.environ
        self.colour = colour
        self._said: set[str] = set()
        self._open_step: str | None = None  # a "Title ... " waiting for its "done"
        # Advice names make targets; run as plain `dbkit` (no make around it), the verbs
        # instead (``as_commands``): the map (target → verb), read when a line needs it.
        self.targets: Callable[[], dict[str, str]] | None = None

    def mask(self, text: str) -> str:
        if self.targets is not None and "make db-" in text:
            text = as_commands(text, self.targets())
        return mask(text, self.secrets)

    def paint(self, text: str, colour: str) -> str:
        if not self.colour:
            return text
        return f"\033[{_COLOURS[colour]}m{text}\033[0m"

    def say(self, text: str = "", *, force: bool = False) -> None:
        """A line for people; dropped with --quiet unless ``force`` (results, not progress)."""
        if self.quiet and not force:
            return
        if self._open_step is not None:
            # A line said while a step runs gets a line of its own; the step's title is
            # repeated after it, so "done" still stands beside what it is for.
            self.out.write("\n" + self.mask(text) + "\n" + self.mask(f"{self._open_step} ... "))
        else:
            self.out.write(self.mask(text) + "\n")
        self.out.flush()

    def result(self, text: str = "") -> None:
        self.say(text, force=True)

    def once(self, text: str) -> None:
        """``say`` a line only the first time (each child of a run greets with the same)."""
        if text not in self._said:
            self._said.add(text)
            self.say(text)

    @contextmanager
    def step(self, title: str) -> Iterator[None]:
        """``Backing up migrations ... done (0.4 s)`` or ``... FAILED``."""
        started = time.perf_counter()
        if not self.quiet:
            self.out.write(self.mask(f"{title} ... "))
            self.out.flush()
        outer, self._open_step = self._open_step, None if self.quiet else title
        try:
            yield
        except BaseException:
            self._open_step = outer
            if not self.quiet:
                self.out.write(self.paint("FAILED", "red") + "\n")
                self.out.flush()
            raise
        self._open_step = outer
        if not self.quiet:
            took = time.perf_counter() - started
            self.out.write(f"{self.paint('done', 'green')} ({took:.1f} s)\n")
            self.out.flush()

    def confirm(self, *, word: str, given: str | None, what: str) -> None:
        """Ask for ``word`` (or take it from CONFIRM / --yes); refuse without a terminal."""
        if given is not None:
            if given.strip() == word:
                return
            raise Refused(f"CONFIRM={given!r} does not match; type CONFIRM={word} to {what}")
        if not _isatty(self.stdin):
            raise Refused(f"not a terminal: set CONFIRM={word} (or pass --yes) to {what}")
        self.err.write(f"Type '{word}' to {what}: ")
        self.err.flush()
        answer = self.stdin.readline().strip()
        if answer != word:
            raise Refused("cancelled: nothing was changed")

    @property
    def interactive(self) -> bool:
        """Someone is at a terminal to answer."""
        return _isatty(self.stdin)

    def ask(self, prompt: str) -> str:
        """One line typed at the terminal (prompts go to stderr, like every other question)."""
        self.err.write(prompt)
        self.err.flush()
        return self.stdin.readline().strip()

    def pause(self, prompt: str) -> None:
        """Wait for Enter on a terminal (review before a change); Ctrl-C aborts."""
        if not _isatty(self.stdin):
            return
        self.err.write(prompt)
        self.err.flush()
        self.stdin.readline()


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def mask(text: str, secrets: tuple[str, ...] | list[str]) -> str:
    """Replace each secret, as written or URL-encoded, where it stands as a whole token.

    A password "postgres" must not turn "postgresql://" into "***ql://", and a password "a"
    must not eat every letter a; inside a URL or a message a password is set off by
    punctuation, which is what the look-arounds ask for.
    """
    for secret in secrets:
        if not secret:
            continue
        for form in {secret, quote(secret, safe="")}:
            text = re.sub(rf"(?<![A-Za-z0-9]){re.escape(form)}(?![A-Za-z0-9])", "***", text)
    return text


_MAKE = re.compile(r"make (db-[a-z-]+)((?: [A-Z_]+=(?:\"[^\"]*\"|'[^']*'|[^\s;,)`]+))*)")


def as_commands(text: str, targets: dict[str, str]) -> str:
    """``make db-backup-verify BACKUP=x`` as ``BACKUP=x dbkit backup-verify``: what the same
    advice is for someone who runs dbkit itself (``targets``: make target → verb)."""
    def verb(match: re.Match[str]) -> str:
        name = targets.get(match.group(1))
        if name is None:
            return match.group(0)
        given = match.group(2).strip()
        return f"{given} dbkit {name}" if given else f"dbkit {name}"
    return _MAKE.sub(verb, text)
