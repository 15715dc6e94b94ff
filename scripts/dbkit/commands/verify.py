"""make db-backup-verify."""

from __future__ import annotations

from datetime import datetime

from dbkit.backup import asrole
from dbkit.backup.load import verify_backup
from dbkit.backup.manifest import choose_backup, summary, write_manifest
from dbkit.console import Console
from dbkit.errors import BackupCorrupt
from dbkit.pg import scratch
from dbkit.pg.mode import get_server
from dbkit.settings import Settings


def backup_verify(settings: Settings, out: Console, *, backup: str = "") -> None:
    """Check a backup: checksums, archive listing, test restore compared with its manifest."""
    chosen = choose_backup(settings.backup_dir, out, backup, kinds=("full", "migrations"),
                           action="verify")
    server = None
    if chosen.kind == "full":
        server = get_server(settings)
        server.ensure_running(out)
        scratch.sweep_stale(server)
        asrole.sweep_roles(server)
    problems = verify_backup(server, chosen, out, settings.trust)
    chosen.manifest["verification"] = {
        "verified_at": datetime.now().astimezone().isoformat(timespec="seconds"),
        "ok": not problems,
        "detail": "; ".join(problems) if problems else "all checks passed",
    }
    write_manifest(chosen.path, chosen.manifest)
    if problems:
        raise BackupCorrupt(
            f"backup {chosen.name} FAILED verification: {summary(problems)}",
            detail="\n".join(problems),
        )
    what = "checksums, archive and test restore" if chosen.kind == "full" else "checksums"
    out.result(f"Backup {chosen.name} is good ({what} checked); recorded in its manifest")
