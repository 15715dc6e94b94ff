"""make db-squash-migrations."""

from __future__ import annotations

from dbkit.console import Console
from dbkit.settings import Settings
from dbkit.squash import flow


def squash(
    settings: Settings,
    out: Console,
    *,
    confirm: str | None = None,
    dry_run: bool = False,
    new_revision: bool = False,
    archive: bool = True,
    reset: bool = False,
    until: str = "",
) -> int:
    """Squash the migration chain into one revision proven identical to it (asks; CONFIRM=squash).

    DRY_RUN=1 builds, renders and proves into a folder of its own and touches nothing in the
    project. NEW_REVISION=1 gives the squashed revision a fresh id (every existing database
    then needs an `alembic stamp --purge`); by default it keeps the old head's id. ARCHIVE=0
    skips the copy of the old files in versions_archived/ (the backup always has them).
    RESET=1 rebuilds the development database from the squashed revision afterwards.
    UNTIL=<rev> squashes base..rev into one revision keeping rev's id and leaves the revisions
    after it as they are (rev must be a point every path from base to head passes through).
    """
    return flow.run(settings, out, confirm=confirm, dry_run=dry_run, new_revision=new_revision,
                    archive=archive, reset=reset, until=until)
