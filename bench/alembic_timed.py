"""``alembic upgrade head`` with its parts timed from inside: ``python -m bench.alembic_timed
ALEMBIC_INI`` (the database in ``DATABASE_URL``) prints JSON seconds: ``imports`` (Alembic and
SQLAlchemy), ``load`` (reading every revision file) and ``upgrade`` (env.py and the migrations
against the database: the database time, the Python of each migration included).

The same steps as ``alembic.command.upgrade``, with the script directory read first.
"""

from __future__ import annotations

import json
import sys
import time

started = time.perf_counter()

from alembic.config import Config  # noqa: E402
from alembic.runtime.environment import EnvironmentContext  # noqa: E402
from alembic.script import ScriptDirectory  # noqa: E402


def main(ini: str) -> None:
    imported = time.perf_counter()
    config = Config(ini)
    script = ScriptDirectory.from_config(config)
    revisions = list(script.walk_revisions())
    loaded = time.perf_counter()

    def upgrade(rev, context):  # noqa: ANN001, ANN202 (Alembic's callback)
        return script._upgrade_revs("head", rev)

    with EnvironmentContext(config, script, fn=upgrade, as_sql=False, starting_rev=None,
                            destination_rev="head", tag=None):
        script.run_env()
    done = time.perf_counter()
    print(json.dumps({"imports": imported - started, "load": loaded - imported,
                      "upgrade": done - loaded, "revisions": len(revisions)}))


if __name__ == "__main__":
    main(sys.argv[1])
