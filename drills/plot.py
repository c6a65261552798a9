"""One picture per drill: faults against throughput and latency, drawn from the history."""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

TERMINAL = {"succeeded", "dead", "cancelled"}


def series(history: list[dict[str, Any]]) -> dict[str, Any]:
    """The numbers the picture shows, as plain data (also handy in tests)."""
    start = min((e["t"] for e in history if e["type"] == "mark" and e.get("what") == "load-start"),
                default=min((e["t"] for e in history), default=0.0))
    accepted_t: dict[str, float] = {}
    acc, told, dropped, submit_lat = Counter(), Counter(), Counter(), []
    for e in history:
        if e["type"] != "submit":
            continue
        b = int(e["t"] - start)
        if e["outcome"] == "accepted":
            acc[b] += 1
            accepted_t.setdefault(e["id"], e["t"])
            submit_lat.append((e.get("t_end", e["t"]) - start, e.get("t_end", e["t"]) - e["t"]))
        elif e["outcome"] == "told":
            told[b] += 1
        elif e["outcome"] == "dropped":
            dropped[b] += 1
    done: dict[str, float] = {}
    for e in sorted((e for e in history if e["type"] in ("state", "final")), key=lambda e: e["t"]):
        ph = e.get("phase") or e.get("status")
        if ph in TERMINAL and e["id"] in accepted_t and e["id"] not in done:
            done[e["id"]] = e["t"]
    comp = Counter(int(t - start) for t in done.values())
    e2e = sorted((t - start, t - accepted_t[j]) for j, t in done.items())
    faults = {}
    for e in history:
        if e["type"] == "fault":
            f = faults.setdefault(e["fault_id"], {"label": e.get("label", ""), "inject": None, "heal": None})
            if e["event"] == "inject":
                # Shade from when the action began: a fault of many processes takes a while.
                f["inject"] = e["t"] - e.get("action_s", 0.0) - start
                f["label"] = e.get("label", "")
            else:
                f["heal"] = e["t"] - start
    leaders, last_epoch = [], None
    for e in sorted((e for e in history if e["type"] == "cluster" and e.get("epoch") is not None and e.get("leader")),
                    key=lambda e: e["t"]):
        if last_epoch is not None and e["epoch"] > last_epoch:
            leaders.append((e["t"] - start, e["leader"]))
        last_epoch = max(last_epoch or 0, e["epoch"])
    return {"start": start, "accepted": acc, "told": told, "dropped": dropped, "completed": comp,
            "submit_latency": submit_lat, "e2e_latency": e2e, "faults": list(faults.values()), "new_leaders": leaders}


def timeline_png(history: list[dict[str, Any]], path: Path, title: str) -> str:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = series(history)
    span = max([k for c in (s["accepted"], s["completed"], s["told"], s["dropped"]) for k in c] + [1]) + 1
    xs = list(range(span))
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(11, 6.5), sharex=True)
    ax1.plot(xs, [s["accepted"].get(x, 0) for x in xs], label="accepted /s", color="tab:blue")
    ax1.plot(xs, [s["completed"].get(x, 0) for x in xs], label="completed /s", color="tab:green")
    ax1.bar(xs, [s["told"].get(x, 0) for x in xs], color="tab:orange", alpha=0.6, label="503 /s")
    ax1.bar(xs, [s["dropped"].get(x, 0) for x in xs], bottom=[s["told"].get(x, 0) for x in xs],
            color="tab:red", alpha=0.6, label="no answer /s")
    ax1.set_ylabel("jobs per second")
    ax1.legend(loc="upper right", fontsize=8)
    if s["e2e_latency"]:
        ax2.scatter(*zip(*s["e2e_latency"]), s=4, color="tab:green", label="submit -> terminal (s)")
    if s["submit_latency"]:
        ax2.scatter(*zip(*s["submit_latency"]), s=4, color="tab:blue", label="POST answered 202 (s)")
    ax2.set_yscale("log")
    ax2.set_ylabel("latency (s)")
    ax2.set_xlabel("seconds since the load started")
    ax2.legend(loc="upper right", fontsize=8)
    for ax in (ax1, ax2):
        for f in s["faults"]:
            if f["inject"] is None:
                continue
            end = f["heal"] if f["heal"] is not None else f["inject"] + 0.5
            ax.axvspan(f["inject"], max(end, f["inject"] + 0.3), color="grey", alpha=0.25)
        for x, _ in s["new_leaders"]:
            ax.axvline(x, color="purple", linestyle="--", linewidth=1)
    for f in s["faults"]:
        if f["inject"] is not None:
            ax1.annotate(f["label"][:40], (f["inject"], ax1.get_ylim()[1] * 0.95), fontsize=7, rotation=90,
                         va="top", ha="right")
    fig.suptitle(f"{title}  (grey: fault in force; dashed: new Raft leader)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return str(path)
