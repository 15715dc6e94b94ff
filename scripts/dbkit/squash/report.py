"""What a squash says when it is done: the terminal summary, squash_report.md and .json."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from dbkit import __version__
from dbkit.backup import manifest
from dbkit.console import Console
from dbkit.errors import DbkitError, ProofFailed
from dbkit.files import file_digest
from dbkit.settings import Settings
from dbkit.squash import datafile
from dbkit.squash.depend import Node
from dbkit.squash.state import Outcome, Plan

_RELATIONS = ("table", "view", "matview")


def _ratio(old: float, new: float) -> str:
    if old <= 0 or new <= 0 or abs(old - new) < 0.1 * old:
        return "about the same"
    return f"{old / new:.1f}x faster" if new < old else f"{new / old:.1f}x slower"


def report(out: Console, settings: Settings, plan: Plan, outcome: Outcome, *,
           dry_run: bool) -> None:
    """Terminal summary, and squash_report.md + squash_report.json beside the backup."""
    folder = outcome.output if dry_run else outcome.backup
    data = {
        "dbkit_version": __version__,
        "dry_run": dry_run,
        "project": str(settings.alembic_config),
        "replaced": {"count": len(plan.revisions), "first": plan.first.revision,
                     "last": plan.top, "until": plan.until,
                     "kept": [r.revision for r in plan.kept],
                     "revisions": [r.revision for r in plan.revisions]},
        "revision": outcome.revision,
        "new_revision_id": outcome.new_revision,
        "file": str(outcome.file) if outcome.file else None,
        "file_size": outcome.file_size,
        "data_size": outcome.data_size,
        "captured": outcome.counts,
        "fresh_install_seconds": {"old_chain": round(outcome.old_chain_seconds, 3),
                                  "new_revision": round(outcome.new_revision_seconds, 3)},
        "proof": outcome.checks,
        "backup": str(outcome.backup) if outcome.backup else None,
        "output": str(outcome.output) if outcome.output else None,
        "archived": str(outcome.archived) if outcome.archived else None,
        "model_drift": outcome.drift,
        "model_drift_note": outcome.drift_note,
        "development_database": outcome.adopt,
        "took_seconds": round(outcome.took, 3),
        "view_graph": outcome.view_graph,
    }
    lines = _report_lines(data, dry_run=dry_run)
    out.result("")
    for line in lines:
        out.result(line)
    if folder is None:
        return
    md = folder / "squash_report.md"
    js = folder / "squash_report.json"
    # Read before the report is written: a backup with a file its manifest does not list is
    # refused as damaged.
    current = None if dry_run else manifest.read_manifest(folder)
    manifest.write_private(md, markdown(data, dry_run=dry_run).encode())
    manifest.write_private(js, (json.dumps(data, indent=2) + "\n").encode())
    if current is not None:
        # The report belongs to the backup: list it in the manifest with its checksum.
        for path in (md, js):
            current["files"][path.name] = file_digest(path)
        manifest.write_manifest(folder, current)
    out.result(f"Report: {md} (and {js.name})")


def failure_report(folder: Path | None, err: ProofFailed, out: Console) -> None:
    """A failed proof's differences, in full, where the report would have gone."""
    if folder is None or not folder.is_dir():
        return
    path = folder / "squash_report.md"
    text = "\n".join(["# Squash report: proof FAILED", "", err.message, "",
                      "Nothing in the project was changed. What differed:", "", "```",
                      *err.diff, "```", *_traceback_section(err)])
    try:
        backup = manifest.read_manifest(folder) if (folder / manifest.MANIFEST).exists() \
            else None
    except DbkitError:  # the proof's failure is the news; a damaged backup is said elsewhere
        backup = None
    manifest.write_private(path, (text + "\n").encode())
    if backup is not None:  # listed, or the backup would be refused as damaged
        backup["files"][path.name] = file_digest(path)
        manifest.write_manifest(folder, backup)
    if err.trace:
        # The one line says what failed; where the rest is belongs on it too.
        err.message = f"{err.message} (the whole traceback: {path})"
    else:
        out.result(f"What differed, in full: {path}")


def _traceback_section(err: ProofFailed) -> list[str]:
    """The project's own traceback (the child's), when an operation of it failed."""
    if not err.trace:
        return []
    return ["", "The traceback in the project's Python (the Alembic child):", "", "```",
            err.trace.rstrip(), "```"]


def _report_lines(data: dict[str, Any], *, dry_run: bool) -> list[str]:
    times = data["fresh_install_seconds"]
    lines = [
        ("Dry run: proven, nothing in the project was changed" if dry_run else
         "Squashed and proven"),
        f"  replaced        {data['replaced']['count']} revisions, "
        f"{data['replaced']['first']} … {data['replaced']['last']}" + _kept_note(data),
        f"  revision        {data['revision']}"
        + _id_note(data),
        f"  file            {data['file']} ({data['file_size']:,} bytes{_data(data)})",
        f"  fresh install   old chain {times['old_chain']:.2f} s, new revision "
        f"{times['new_revision']:.2f} s ({_ratio(times['old_chain'], times['new_revision'])})",
        "  proof           " + "; ".join(data["proof"]),
    ]
    if data["backup"]:
        lines.append(f"  backup          {data['backup']}")
    if data["output"]:
        lines.append(f"  output folder   {data['output']}")
    if data["archived"]:
        lines.append(f"  archived        {data['archived']}")
    lines.append("  captured:")
    lines += [f"    {kind:<30} {count}" for kind, count in data["captured"].items()]
    drift = data["model_drift"]
    if data["model_drift_note"]:
        lines.append(f"  model drift     {data['model_drift_note']}")
    elif drift is None:
        lines.append("  model drift     the project declares no models (no target_metadata)")
    elif not drift:
        lines.append("  model drift     none: the models match the squashed schema")
    else:
        lines.append(f"  model drift     {len(drift)} differences between the models and the "
                     "squashed schema (reported, not fixed):")
        for d in drift[:30]:
            detail = f" ({d['detail']})" if d.get("detail") else ""
            lines.append(f"    {d.get('op', '?')} {d.get('object', '')}{detail}")
        if len(drift) > 30:
            lines.append(f"    ... and {len(drift) - 30} more (squash_report.json)")
    lines.append("  development database:")
    lines += [f"    {line}" for line in data["development_database"]]
    lines.append(f"  took            {data['took_seconds']:.1f} s")
    return lines


# -- squash_report.md -------------------------------------------------------------------------

def view_graph(nodes: Iterable[Node]) -> list[dict[str, Any]]:
    """Each view and materialized view with the tables, views and materialized views it reads
    (from the capture's dependency graph), in the revision's order."""
    graph = []
    for node in nodes:
        if node.kind in ("view", "matview"):
            graph.append({"name": node.key, "kind": node.kind, "depends_on": [
                {"name": key, "kind": kind} for kind, key in sorted(
                    node.deps, key=lambda d: (d[1], d[0])) if kind in _RELATIONS]})
    return graph


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _code(text: object) -> str:
    return f"`{text}`"


def mermaid(graph: list[dict[str, Any]]) -> list[str]:
    """The views' dependency graph as a Mermaid flowchart: view --> what it reads."""
    ids: dict[tuple[str, str], str] = {}
    shapes = {"table": ('[("', '")]'), "view": ('["', '"]'), "matview": ('[["', '"]]')}
    lines = ["```mermaid", "flowchart LR"]

    def node(kind: str, name: str) -> str:
        if (kind, name) not in ids:
            ids[(kind, name)] = f"n{len(ids)}"
            opening, closing = shapes[kind]
            label = name.replace('"', "#quot;")
            lines.append(f"    {ids[(kind, name)]}{opening}{label}{closing}:::{kind}")
        return ids[(kind, name)]

    for view in graph:
        node(view["kind"], view["name"])
    for view in graph:
        for dep in view["depends_on"]:
            lines.append(f"    {node(view['kind'], view['name'])} --> "
                         f"{node(dep['kind'], dep['name'])}")
    lines += ["    classDef table fill:#eef,stroke:#446",
              "    classDef view fill:#efe,stroke:#464",
              "    classDef matview fill:#fec,stroke:#864", "```"]
    return lines


def _id_note(data: dict[str, Any]) -> str:
    if data["new_revision_id"]:
        return " (new id)"
    return " (UNTIL's id)" if data["replaced"].get("until") else " (the old head's id)"


def _kept_note(data: dict[str, Any]) -> str:
    kept = data["replaced"].get("kept") or []
    return f"; the {len(kept)} revisions after it are kept as they were" if kept else ""


def markdown(data: dict[str, Any], *, dry_run: bool) -> str:
    """squash_report.md: summary, captured counts, proof, timings, the views' graph."""
    times = data["fresh_install_seconds"]
    replaced = data["replaced"]
    rows = [
        ("outcome", "dry run: proven, nothing in the project was changed" if dry_run else
         "squashed and proven"),
        ("replaced", f"{replaced['count']} revisions, {_code(replaced['first'])} … "
         f"{_code(replaced['last'])}" + _kept_note(data)),
        ("revision", _code(data["revision"]) + _id_note(data)),
        ("file", f"{_code(data['file'])} ({data['file_size']:,} bytes{_data(data)})"),
        *[(label, _code(data[key])) for label, key in (
            ("backup", "backup"), ("output folder", "output"), ("archived", "archived"))
          if data[key]],
        ("dbkit", data["dbkit_version"]),
    ]
    lines = ["# Squash report", "", "## Summary", "", "| | |", "|---|---|"]
    lines += [f"| {label} | {_cell(value)} |" for label, value in rows]
    lines += ["", "## Captured", "", "| kind | count |", "|---|---:|"]
    lines += [f"| {_cell(kind)} | {count:,} |" for kind, count in data["captured"].items()]
    lines += ["", "## Proof", ""]
    lines += [f"- [x] {check}" for check in data["proof"]]
    old, new = times["old_chain"], times["new_revision"]
    lines += ["", "## Timings", "", "| | seconds |", "|---|---:|",
              f"| fresh install, old chain ({replaced['count']} revisions) | {old:.2f} |",
              f"| fresh install, squashed revision | {new:.2f} |",
              f"| the whole squash | {data['took_seconds']:.1f} |", "",
              "Fresh installs are `alembic upgrade head` into an empty database, timed in "
              f"dbkit's Alembic child (interpreter start not counted): {_ratio(old, new)}.", ""]
    graph = data["view_graph"]
    lines += ["## Views and materialized views", ""]
    if graph:
        views = sum(1 for v in graph if v["kind"] == "view")
        matviews = len(graph) - views
        lines += [f"{views} view{'s' * (views != 1)} and {matviews} materialized "
                  f"view{'s' * (matviews != 1)}, each pointing at the relations it reads "
                  "(tables are cylinders, materialized views double boxes):", "",
                  *mermaid(graph), ""]
    else:
        lines += ["The chain creates no views.", ""]
    lines += ["## Model drift", ""]
    drift = data["model_drift"]
    if data.get("model_drift_note"):
        lines.append(data["model_drift_note"])
    elif drift is None:
        lines.append("The project declares no models (no `target_metadata`).")
    elif not drift:
        lines.append("None: the models match the squashed schema.")
    else:
        lines += [f"{len(drift)} differences between the models and the squashed schema "
                  "(reported, not fixed):", "", "| operation | object | detail |",
                  "|---|---|---|"]
        lines += [f"| {_cell(d.get('op', '?'))} | {_cell(d.get('object', ''))} | "
                  f"{_cell(d.get('detail') or '')} |" for d in drift]
    lines += ["", "## Development database", ""]
    for line in data["development_database"]:
        lines += ["```sh", line.strip(), "```"] if line.startswith("  ") else [line, ""]
    return "\n".join(lines) + "\n"


def _data(data: dict[str, Any]) -> str:
    """What the data files beside the revision add, if there are any."""
    size = data.get("data_size") or 0
    return f"; data files {size:,} bytes in {datafile.folder_name(data['revision'])}/" \
        if size else ""
