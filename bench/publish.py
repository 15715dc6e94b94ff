"""One run's results as goals met or missed, a Markdown table and a PNG chart."""

from __future__ import annotations

from pathlib import Path
from typing import Any

INSTALL_VS_PSQL = 1.2       # squashed install's database time / psql -1 -f of a dump
REPLAY_SPEEDUP = 10.0       # replaying the 300-revision chain / squashed install
SQUASH_VS_BUILDS = 1.5      # dbkit squash / the two irreducible builds
LINEAR = 1.2                # time per table at the largest size / at the smallest
VALIDATE_AT_500 = 2.0       # seconds at 500 tables + 100 views
BACKUP_VS_DUMP = RESTORE_VS_RAW = 1.05
RESTORE_OVER_VS_RAW = 1.3


def derive(r: dict[str, Any]) -> dict[str, Any]:
    """The ratios of one squash input, from the minimum of each measurement: other jobs on
    the machine only ever add time, so the minimum is the least disturbed figure."""
    builds = r["build_old"]["min"] + r["build_new"]["min"]
    r["squash_vs_builds"] = round(r["squash"]["min"] / builds, 2)
    r["squash_per_table_ms"] = round(
        1000 * r["squash"]["min"] / max(1, r["captured"].get("tables", 1)), 2)
    if "install" in r:
        i = {k: v["min"] for k, v in r["install"].items() if isinstance(v, dict) and "min" in v}
        chain_db, squashed_db = i["replay_chain_upgrade"], i["squashed_upgrade"]
        r["install"]["derived"] = {
            "replay_db_s": round(chain_db, 3),
            "squashed_db_s": round(squashed_db, 3),
            "squashed_db_vs_psql": round(squashed_db / i["psql_dump"], 2),
            "replay_vs_squashed": round(i["replay_chain"] / i["squashed"], 2),
            "replay_db_vs_squashed_db": round(chain_db / squashed_db, 2),
        }
    return r


def _goal(name: str, measured: float | None, target: float, *, unit: str = "x",
          higher: bool = False, note: str = "") -> dict[str, Any]:
    met = None if measured is None else (measured >= target if higher else measured <= target)
    return {"goal": name, "measured": measured, "target": target, "unit": unit,
            "higher_is_better": higher, "met": met, "note": note}


def goals(results: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    squash = results.get("squash", {}).get("inputs", [])
    chains = sorted((r for r in squash if r["kind"] == "chain"), key=lambda r: r["size"])
    schemas = sorted((r for r in squash if r["kind"] == "schema"), key=lambda r: r["size"])
    if chains:
        big = chains[-1]
        d = big["install"]["derived"]
        out.append(_goal(f"squashed install, database time / psql -1 -f (chain {big['size']})",
                         d["squashed_db_vs_psql"], INSTALL_VS_PSQL))
        goal = _goal(f"replaying the {big['size']}-revision chain / squashed install "
                     "(wall)", d["replay_vs_squashed"], REPLAY_SPEEDUP, higher=True,
                     note=f"database time alone: {d['replay_db_vs_squashed_db']:.1f}x")
        if big["size"] < 300:
            goal.update(met=None, note=goal["note"] + "; the goal is for 300 revisions")
        out.append(goal)
    for r in chains + schemas:
        out.append(_goal(f"squash / the two builds ({r['kind']} {r['size']})",
                         r["squash_vs_builds"], SQUASH_VS_BUILDS))
    if len(schemas) > 1:
        a, b = schemas[0], schemas[-1]
        out.append(_goal(f"squash time per table, {b['size']} / {a['size']} tables",
                         round(_per_table(b) / _per_table(a), 2), LINEAR))
    sizes = sorted(results.get("validate", {}).get("sizes", []), key=lambda r: r["tables"])
    at500 = next((r for r in sizes if r["tables"] == 500), None)
    if at500:
        out.append(_goal("validate at 500 tables + 100 views", at500["validate"]["min"],
                         VALIDATE_AT_500, unit="s"))
    if len(sizes) > 1:
        a, b = sizes[0], sizes[-1]
        out.append(_goal(f"validate time per table, {b['tables']} / {a['tables']} tables",
                         round((b["validate"]["min"] / b["tables"])
                               / (a["validate"]["min"] / a["tables"]), 2), LINEAR))
    backup = results.get("backup")
    if backup:
        out.append(_goal("backup-full / pg_dump -Fc", backup["backup_ratio"], BACKUP_VS_DUMP))
        out.append(_goal("restore-full into a new database / pg_restore",
                         backup["restore_ratio"], RESTORE_VS_RAW))
        out.append(_goal("restore-full over an existing database / pg_restore",
                         backup["restore_over_ratio"], RESTORE_OVER_VS_RAW))
    return out


def _per_table(r: dict[str, Any]) -> float:
    return r["squash"]["min"] / max(1, r["captured"].get("tables", r["size"]))


def _s(stat: dict[str, Any]) -> str:
    return f"{stat['median']:.2f} ({stat['min']:.2f})"


def markdown(results: dict[str, Any]) -> str:
    m = results["machine"]
    lines = [
        f"# dbkit benchmarks, {results['date']}{' (QUICK)' if results['quick'] else ''}",
        "",
        f"Machine: {m['cores']} cores ({m['cpu']}), {m['memory_gb']} GB RAM, Python "
        f"{m['python']}, PostgreSQL {results['postgresql']} (embedded); load average "
        f"{' / '.join(str(x) for x in m['load_average'])} at the start and "
        f"{' / '.join(str(x) for x in results['load_average_end'])} at the end (other jobs "
        f"share the machine: compare ratios within this run). Seconds, median (min) of "
        f"{results['repeat']} runs; ratios and per-table times from the min (other jobs only "
        f"ever add time). Took {results['took_s'] / 60:.1f} min.",
        "",
    ]
    squash = results.get("squash", {}).get("inputs", [])
    chains = [r for r in squash if r["kind"] == "chain"]
    if chains:
        lines += [
            "## Fresh install",
            "",
            "| revisions | tables | views | replay the chain | squashed revision | psql -1 -f of "
            "a dump | interpreter | imports + reading revisions, chain / squashed | database "
            "time, chain / squashed | squashed database time / psql | replay / squashed |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in chains:
            i, d = r["install"], r["install"]["derived"]
            c = r["captured"]
            lines.append(
                f"| {r['size']} | {c.get('tables', 0)} | {c.get('views', 0)} + "
                f"{c.get('materialized views', 0)} mv | {_s(i['replay_chain'])} | "
                f"{_s(i['squashed'])} | {_s(i['psql_dump'])} | {_s(i['interpreter'])} | "
                f"{i['replay_chain_imports']['min'] + i['replay_chain_load']['min']:.2f} / "
                f"{i['squashed_imports']['min'] + i['squashed_load']['min']:.2f} | "
                f"{i['replay_chain_upgrade']['min']:.2f} / {i['squashed_upgrade']['min']:.2f} | "
                f"**{d['squashed_db_vs_psql']:.2f}x** | **{d['replay_vs_squashed']:.1f}x** "
                f"(db {d['replay_db_vs_squashed_db']:.1f}x) |")
        lines += ["", "Wall times are `alembic upgrade head` into an empty database from process "
                  "start to exit; the parts (imports, reading the revision files, the upgrade "
                  "itself = database time) are timed inside the same process "
                  "(`bench/alembic_timed.py`).", ""]
    if squash:
        lines += [
            "## Squash",
            "",
            "| input | tables | views | revision file | `dbkit squash --dry-run` | old chain "
            "build | squashed build | squash / builds | ms per table |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in squash:
            c = r["captured"]
            what = (f"chain of {r['size']} revisions" if r["kind"] == "chain" else
                    f"schema of {r['size']} tables")
            lines.append(
                f"| {what} | {c.get('tables', 0)} | {c.get('views', 0)} | "
                f"{r['revision_bytes'] / 1024:.0f} KB | {_s(r['squash'])} | "
                f"{_s(r['build_old'])} | {_s(r['build_new'])} | **{r['squash_vs_builds']:.2f}x** "
                f"| {r['squash_per_table_ms']:.0f} |")
        lines.append("")
    sizes = results.get("validate", {}).get("sizes", [])
    if sizes:
        lines += [
            "## Validate",
            "",
            "| tables | views | functions/triggers | `dbkit validate` | Alembic child | "
            "declared definitions | ms per table |",
            "|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in sizes:
            lines.append(
                f"| {r['tables']} | {r['views']} | {r['functions']} | {_s(r['validate'])} | "
                f"{r['child_s']:.2f} | {r['definitions_s']:.2f} | "
                f"{1000 * r['validate']['min'] / r['tables']:.1f} |")
        lines.append("")
    backup = results.get("backup")
    if backup:
        b = backup["best_s"]
        lines += [
            f"## Backup and restore ({backup['database_bytes'] / 1024**3:.2f} GB, best of "
            f"{backup['repeat']})",
            "",
            "| operation | seconds | vs raw |",
            "|---|---:|---:|",
            f"| `pg_dump -Fc` | {b['pg_dump']:.1f} | |",
            f"| `dbkit backup-full` | {b['backup']:.1f} | {backup['backup_ratio']:.2f}x |",
            f"| `pg_restore -j2` into a new database | {b['pg_restore']:.1f} | |",
            f"| `dbkit restore-full` into a new database | {b['restore_new']:.1f} | "
            f"{backup['restore_ratio']:.2f}x |",
            f"| `dbkit restore-full` over an existing database (kept) | "
            f"{b['restore_over']:.1f} | {backup['restore_over_ratio']:.2f}x |",
        ]
        if "restore_over_keep0" in b:
            lines.append(f"| `dbkit restore-full` over an existing database, `KEEP_PREVIOUS=0` "
                         f"(safety dump) | {b['restore_over_keep0']:.1f} | "
                         f"{backup['restore_over_keep0_ratio']:.2f}x |")
        lines.append(f"| `psql < database_full.sql` | {b['psql']:.1f} | "
                     f"{backup['psql_ratio']:.2f}x |")
        if "backup_dir" in b:
            trip = backup["directory_round_trip"]
            lines += [
                f"| `pg_dump -Fd -j2` | {b['pg_dump_dir']:.1f} | |",
                f"| `dbkit backup-full FORMAT=directory` | {b['backup_dir']:.1f} | "
                f"{backup['backup_dir_ratio']:.2f}x |",
                f"| `dbkit backup-verify` (directory) | {b['verify_dir']:.1f} | |",
                f"| `pg_restore -j2` of the folder into a new database | "
                f"{b['pg_restore_dir']:.1f} | |",
                f"| `dbkit restore-full` (directory) into a new database | "
                f"{b['restore_dir']:.1f} | {backup['restore_dir_ratio']:.2f}x |",
                "",
                f"Directory round trip: {trip['rows']:,} rows in {trip['tables']} tables, "
                f"{trip['files']} files; row counts and schema fingerprint identical: "
                f"{'yes' if trip['identical'] else 'NO'}.",
            ]
        lines.append("")
    lines += ["## Goals", "", "| goal | measured | target | |", "|---|---:|---:|---|"]
    for g in results["goals"]:
        sign = ">=" if g["higher_is_better"] else "<="
        verdict = {True: "met", False: "**missed**", None: "not judged"}[g["met"]]
        note = f" ({g['note']})" if g["note"] else ""
        measured = "-" if g["measured"] is None else f"{g['measured']:g} {g['unit']}"
        lines.append(f"| {g['goal']}{note} | {measured} | {sign} {g['target']:g} {g['unit']} "
                     f"| {verdict} |")
    lines += ["", "Reproduce: `make bench` (full) or `make bench QUICK=1` (smallest sizes).", ""]
    return "\n".join(lines)


def chart(results: dict[str, Any], path: Path) -> bool:
    """Time against size, one panel per benchmark; False when matplotlib is missing."""
    try:
        import matplotlib
    except ImportError:
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    squash = results.get("squash", {}).get("inputs", [])
    chains = sorted((r for r in squash if r["kind"] == "chain"), key=lambda r: r["size"])
    schemas = sorted((r for r in squash if r["kind"] == "schema"), key=lambda r: r["size"])
    sizes = sorted(results.get("validate", {}).get("sizes", []), key=lambda r: r["tables"])
    panels = [p for p in ("install", "chain", "schema", "validate") if {
        "install": chains, "chain": chains, "schema": schemas, "validate": sizes}[p]]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 4.2), squeeze=False)
    for ax, panel in zip(axes[0], panels, strict=True):
        if panel == "install":
            x = [r["size"] for r in chains]
            for key, label in (("replay_chain", "replay the chain"),
                               ("squashed", "squashed revision"),
                               ("psql_dump", "psql -1 -f of a dump"),
                               ("replay_chain_upgrade", "chain: database time"),
                               ("squashed_upgrade", "squashed: database time"),
                               ("interpreter", "python -c pass")):
                ax.plot(x, [r["install"][key]["median"] for r in chains], marker="o",
                        label=label)
            ax.set_title("Fresh install")
            ax.set_xlabel("revisions in the chain")
        elif panel in ("chain", "schema"):
            rows = chains if panel == "chain" else schemas
            x = [r["size"] if panel == "chain" else r["captured"].get("tables", r["size"])
                 for r in rows]
            ax.plot(x, [r["squash"]["median"] for r in rows], marker="o",
                    label="dbkit squash --dry-run")
            ax.plot(x, [r["build_old"]["median"] + r["build_new"]["median"] for r in rows],
                    marker="o", label="the two builds")
            ax.plot(x, [SQUASH_VS_BUILDS * (r["build_old"]["median"] + r["build_new"]["median"])
                        for r in rows], linestyle=":", color="grey",
                    label=f"goal: {SQUASH_VS_BUILDS}x the builds")
            ax.set_title("Squash, long chains" if panel == "chain" else "Squash, big schemas")
            ax.set_xlabel("revisions in the chain" if panel == "chain" else
                          "tables (+20% views)")
        else:
            x = [r["tables"] for r in sizes]
            ax.plot(x, [r["validate"]["median"] for r in sizes], marker="o",
                    label="dbkit validate")
            ax.plot(x, [r["child_s"] for r in sizes], marker="o", label="its Alembic child")
            ax.axhline(VALIDATE_AT_500, linestyle=":", color="grey", label="2 s")
            ax.set_title("Validate")
            ax.set_xlabel("tables (+20% views)")
        ax.set_ylabel("seconds (median)")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    m = results["machine"]
    fig.suptitle(f"dbkit, {results['date']}: {m['cores']} cores, PostgreSQL "
                 f"{results['postgresql']}{' (QUICK)' if results['quick'] else ''}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def write(results: dict[str, Any], stem: Path) -> tuple[str, bool]:
    """``<stem>.json``, ``.md`` and ``.png``; the Markdown, and whether the chart was drawn."""
    import json

    for r in results.get("squash", {}).get("inputs", []):
        derive(r)
    results["goals"] = goals(results)
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
    text = markdown(results)
    stem.with_suffix(".md").write_text(text)
    return text, chart(results, stem.with_suffix(".png"))


def main(argv: list[str]) -> None:
    """``python -m bench.publish RESULTS.json``: the Markdown and chart again from a run."""
    import json

    for name in argv:
        path = Path(name)
        text, _ = write(json.loads(path.read_text()), path.with_suffix(""))
        print(text)


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
