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


@contextmanager
def no_interrupt() -> Iterator[None]:
    """Hold Ctrl-C for the steps inside; it is delivered (KeyboardInterrupt) once they end."""
    caught: list[int] = []
    try:
        previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    except ValueError:  # not the main thread: signals only reach the main thread anyway
        previous = None
    try:
        yield
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    if caught:
        raise KeyboardInterrupt
