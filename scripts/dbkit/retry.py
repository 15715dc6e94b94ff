"""Two process-level habits every part of dbkit shares: retrying what the server may refuse
for a moment, and holding Ctrl-C while a pair of steps must happen both or neither."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

T = TypeVar("T")


def retry(
    fn: Callable[[], T], *, attempts: int, wait: Callable[[int], float] | float,
    on: type[BaseException] | tuple[type[BaseException], ...],
    give_up: Callable[[BaseException], BaseException | None] | None = None,
) -> T:
    """``fn()``, again after ``wait`` seconds while it raises ``on``, at most ``attempts`` times.

    ``wait`` may be a function of the attempt number (0, 1, ...) for a growing pause. After
    the last attempt, ``give_up(err)`` (when given) names the error to raise instead.
    """
    for attempt in range(attempts):
        try:
            return fn()
        except on as err:
            if attempt == attempts - 1:
                replacement = give_up(err) if give_up else None
                if replacement is not None:
                    raise replacement from None
                raise
            time.sleep(wait(attempt) if callable(wait) else wait)
    raise AssertionError("unreachable")  # attempts >= 1


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, a CI runner's timeout, ``docker stop``): handled as Ctrl-C is, with
    the same clean-up, and exit 143."""


def _terminate(signum: int, frame: object) -> None:
    raise Terminated


def terminate_like_interrupt() -> None:
    """SIGTERM raises ``Terminated`` in the main thread, so every ``finally`` of a verb runs
    (scratch databases dropped, unfinished backups removed, tools killed)."""
    signal.signal(signal.SIGTERM, _terminate)


@contextmanager
def no_interrupt() -> Iterator[None]:
    """Hold Ctrl-C and SIGTERM for the steps inside; delivered once they end."""
    caught: list[int] = []
    previous: dict[int, object] = {}
    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, lambda signum, frame: caught.append(signum))
    except ValueError:  # not the main thread: signals only reach the main thread anyway
        pass
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]
    if caught:
        raise Terminated if signal.SIGTERM in caught else KeyboardInterrupt
