"""report.md and results.json for a run of one or more drills."""
from __future__ import annotations

import json
import subprocess
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Optional

COLUMNS = ["drill", "result", "accepted", "completed", "lost", "dup (expl/unexpl)", "stuck", "unexpected",
           "failed tries told/dropped", "new leader s", "first accept s", "first completion s",
           "completion gap s", "heal→healthy s"]


def _max(faults: list[dict], key: str) -> Optional[float]:
    vals = [f[key] for f in faults if f.get(key) is not None]
    return max(vals) if vals else None


def _fmt(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.1f}"
    return str(v)


def row(r) -> list[str]:
    if r.status in ("refused", "unsupported") or not r.verdict:
        return [r.name, f"{r.status}: {r.reason[:120]}"] + [""] * (len(COLUMNS) - 2)
    c, f = r.verdict["counts"], r.verdict["faults"]
    return [r.name, "**FAILED**" if r.status != "passed" else "passed", c["accepted"], c["completed"], c["lost"],
            f"{c['duplicated_jobs']} ({c['duplicates_explained']}/{c['duplicates_unexplained']})", c["stuck"],
            c["unexpected"], f"{c['failed_tries_told']}/{c['failed_tries_dropped']}",
            _fmt(_max(f, "new_leader_s")), _fmt(_max(f, "first_accept_s")), _fmt(_max(f, "first_completion_s")),
            _fmt(_max(f, "completion_gap_s")), _fmt(_max(f, "heal_to_healthy_s"))]


def table(results: list) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in results:
        lines.append("| " + " | ".join(str(x) for x in row(r)) + " |")
    return "\n".join(lines)


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              timeout=5).stdout.strip()
    except Exception:
        return "?"


def write(results: list, out_dir: Path, target_desc: str, catalogue: dict) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    md = [f"# Failover drills, {time.strftime('%Y-%m-%d %H:%M:%S')}", "",
          f"- target: {target_desc}", f"- commit: {_commit()}",
          f"- load: {results[0].params.get('rate') if results else '?'} submits/s through every gateway, "
          "each submit retried across gateways with one Idempotency-Key", "",
          "Timings are the worst over a drill's faults, in seconds from the fault (heal→healthy: from the heal). "
          "`dup (expl/unexpl)`: jobs executed more than once, (extra executions explained by a fault / jobs with "
          "an unexplained one). Definitions: docs/drills.md.", "", table(results), ""]
    for r in results:
        md += [f"## {r.name}", "", f"{r.summary}", ""]
        if r.status in ("refused", "unsupported"):
            md += [f"Not run ({r.status}): {r.reason}", ""]
            continue
        d = catalogue.get(r.name)
        if d is not None and d.verifies:
            md += ["What it sets out to show: " + "; ".join(d.verifies) + ".", ""]
        if r.reason:
            md += [f"Error: `{r.reason}`", ""]
        md += ["| invariant | holds | detail |", "|---|---|---|"]
        for inv in r.verdict["invariants"]:
            md.append(f"| {inv['name']} | {'yes' if inv['ok'] else '**NO**'} | {inv['detail']} |")
        c = r.verdict["counts"]
        fs = r.verdict["failed_submits"]
        md += ["", f"Counts: {c['ops']} submits ({c['submit_tries']} tries, {c['failovers']} failed over to another "
               f"gateway), {c['accepted']} accepted, {c['completed']} completed, {c['executions']} executions; "
               f"failed tries told {c['failed_tries_told']} {fs['told_by_code'] or ''}, dropped "
               f"{c['failed_tries_dropped']} {fs['dropped_by_error'] or ''}; submits never accepted: "
               f"told {c['failed_ops_told']}, dropped {c['failed_ops_dropped']}; unexpected {c['unexpected']} "
               f"(after a 503: {c['unexpected_after_503']}, after no answer: {c['unexpected_no_answer']}).", ""]
        if r.verdict["faults"]:
            md += ["| fault | new leader | new leader s | first accept s | first completion s | completion gap s | "
                   "heal→healthy s |", "|---|---|---|---|---|---|---|"]
            for f in r.verdict["faults"]:
                md.append(f"| {f['label']} | {f.get('new_leader') or '–'} | {_fmt(f.get('new_leader_s'))} | "
                          f"{_fmt(f.get('first_accept_s'))} | {_fmt(f.get('first_completion_s'))} | "
                          f"{_fmt(f.get('completion_gap_s'))} | {_fmt(f.get('heal_to_healthy_s'))} |")
            md.append("")
        for e in r.verdict.get("unscheduled_leader_changes", []):
            md += [f"A leader change that no fault caused: epoch {e['from_epoch']} -> {e['epoch']} ({e['leader']}) "
                   f"at +{e['t'] - r.started:.1f} s after the drill started.", ""]
        if r.verdict["duplicates"]["explained_by_fault"]:
            md += ["Duplicate executions explained by: " + ", ".join(
                f"{k} ({v})" for k, v in r.verdict["duplicates"]["explained_by_fault"].items()), ""]
        for n in r.notes:
            md.append(f"- {n}")
        if r.timeline_png:
            md += ["", f"![timeline]({Path(r.timeline_png).relative_to(out_dir)})", ""]
        md.append(f"History: `{Path(r.history_file).relative_to(out_dir) if r.history_file else '-'}` "
                  f"({r.duration_s:.0f} s)")
        md.append("")
    (out_dir / "report.md").write_text("\n".join(md))
    (out_dir / "results.json").write_text(json.dumps(
        {"target": target_desc, "commit": _commit(), "drills": {r.name: asdict(r) for r in results}},
        indent=2, default=str))
    return out_dir / "report.md"
