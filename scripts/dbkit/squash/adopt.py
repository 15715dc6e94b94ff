"""Step 8, adopt: what the development database needs after the squash (architecture, §3).

The squashed revision keeps the old head's id (or UNTIL's), so a database at it needs
nothing; one at an older revision catches up through the archived chain with plain
``make db-upgrade`` (project/archive.py), unless ARCHIVE=0 kept no archive. The advice is
exact in every mode: a dry run says what the real squash will leave.
"""

from __future__ import annotations

import sys

from dbkit.backup import manifest
from dbkit.console import Console
from dbkit.errors import ConfigError, ServerUnreachable
from dbkit.pg import catalog, scratch
from dbkit.pg.server import Server
from dbkit.project import archive as archives
from dbkit.project.chain import AlembicProject
from dbkit.safety import destructive_lock
from dbkit.settings import Settings
from dbkit.squash.state import Outcome, Plan


def reset_dev(settings: Settings, server: Server, out: Console) -> None:
    """RESET=1: the development database rebuilt from the squashed revision (the squash's
    confirmation and production guard cover it)."""
    project = AlembicProject(settings, server)
    with destructive_lock(settings, server, "reset"):
        scratch.sweep_stale(server)
        scratch.rebuild(server, server.dev_db, lambda db: project.upgrade(db, "head"), out)


def _lagging(settings: Settings, server: Server, plan: Plan, outcome: Outcome, *,
             dry_run: bool, archive: bool) -> list[str]:
    dev, at = server.dev_db, ", ".join(plan.dev_current or ())
    head = f"{plan.top} (the squashed revision)"
    stamp = (f", stamped {outcome.revision} (the squashed revision's new id)"
             if outcome.new_revision else "")
    if archive and outcome.archived is not None:
        return [f"{dev} is at {at}, older than {head}: `make db-upgrade` catches it up, its "
                f"rows kept: the archived chain in {outcome.archived} to {plan.top}{stamp}, "
                "then the versions directory to head"]
    if archive and dry_run:
        where = archives.folder(plan.versions_dir)
        return [f"{dev} is at {at}, older than {head}: after the real squash, `make "
                f"db-upgrade` catches it up, its rows kept, through the archived chain the "
                f"squash keeps in {where}/<timestamp>/{stamp}; or upgrade it to head before "
                "the squash: make db-upgrade"]
    if dry_run:
        return [f"{dev} is at {at}, older than {head}: a squash with ARCHIVE=0 keeps no "
                "archive to catch it up through: upgrade it before the squash (make "
                "db-upgrade), or rebuild it afterwards (RESET=1; its rows are lost)"]
    old = outcome.backup / manifest.MIGRATIONS if outcome.backup else None
    ini = settings.alembic_config
    url = f"$(cd {settings.project_dir} && {sys.executable} -m dbkit -q url --show-password)"
    lines = [f"{dev} is at {at}, older than {head}, and ARCHIVE=0 kept no archive to catch it "
             "up through. Either rebuild it (its rows are lost): `make db-reset "
             "CONFIRM=reset`, or keep its rows by upgrading it with the old chain of the "
             "backup first:",
             f"  cd {ini.parent} && DATABASE_URL=\"{url}\" {sys.executable} -c \"import os; "
             "from alembic import command; from alembic.config import Config; "
             f"c = Config('{ini.name}'); c.set_main_option('sqlalchemy.url', "
             "os.environ['DATABASE_URL'].replace('%', '%%')); "
             f"c.set_main_option('version_locations', {str(old)!r}); "
             f"command.upgrade(c, '{plan.top}')\""]
    if outcome.new_revision:
        lines.append(f"  then: alembic -c {ini} stamp --purge {outcome.revision}")
    return lines


def adopt(settings: Settings, server: Server, plan: Plan, outcome: Outcome, *, reset: bool,
          dry_run: bool = False, archive: bool = True) -> list[str]:
    """What the development database needs now (never changed here; RESET=1 rebuilt it)."""
    dev = server.dev_db
    ini = settings.alembic_config
    ours = {r.revision for r in plan.revisions} | {r.revision for r in plan.kept}
    if reset:
        state = "rebuilt from the squashed revision (RESET=1)"
    elif not plan.dev_exists:
        return [f"{dev} does not exist: `make db-upgrade` builds it from the squashed revision"]
    elif not plan.dev_current:
        return [f"{dev} is empty: `make db-upgrade` builds it from the squashed revision"]
    elif not set(plan.dev_current) <= ours:
        return _elsewhere(plan, dev)
    elif plan.lagging:
        return _lagging(settings, server, plan, outcome, dry_run=dry_run, archive=archive)
    elif plan.dev_current != [plan.head]:
        return [f"{dev} is at {', '.join(plan.dev_current)}, on the revisions the partial "
                "squash kept: `make db-upgrade` takes it to head as before"]
    else:
        state = "at the old head"
    lines: list[str] = []
    if outcome.new_revision and not reset:
        lines.append(f"{dev} is at the old head {plan.head}; the squashed revision has a new "
                     f"id: stamp every database that was at the head with")
        lines.append(f"  alembic -c {ini} stamp --purge {outcome.revision}")
        if archive:
            lines.append("  (or run `make db-upgrade` on it: its catch-up stamps it)")
    else:
        lines.append(f"{dev} is already at the squashed revision {outcome.revision} ({state}): "
                     "nothing to do" if not plan.kept else
                     f"{dev} is at the head {plan.head} ({state}): nothing to do")
    if outcome.b_snapshot is not None:
        try:
            dev_snapshot = catalog.snapshot_of(server, dev)
        except ServerUnreachable:
            return lines
        differences = catalog.diff_snapshots(dev_snapshot, outcome.b_snapshot,
                                             names=(dev, "squashed"))
        if differences:
            lines.append(f"{dev}'s schema differs from a fresh build of the squashed revision "
                         f"in {len(differences)} places (reported, not changed):")
            lines += [f"  {d}" for d in differences[:20]]
            if len(differences) > 20:
                lines.append(f"  ... and {len(differences) - 20} more (squash_report.json)")
        else:
            lines.append(f"{dev}'s schema is identical to a fresh build of the squashed revision")
    return lines


def _elsewhere(plan: Plan, dev: str) -> list[str]:
    """At a revision of an earlier squash's archive, or of no chain dbkit knows."""
    try:
        held = archives.where(archives.archives(plan.versions_dir), plan.dev_current or ())
    except ConfigError:
        held = None
    if held is not None:
        return [f"{dev} is at {', '.join(plan.dev_current or ())}, in the archived chain "
                f"{held.path} of an earlier squash: `make db-upgrade` catches it up through "
                "the archives, its rows kept"]
    return [f"{dev} is at {', '.join(plan.dev_current or ())}, which is not a revision of this "
            "chain: dbkit cannot tell what it needs; compare it with the squashed schema "
            "(make db-validate-schema) before using it"]
