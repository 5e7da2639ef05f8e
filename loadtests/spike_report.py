"""The spike's report: per-phase and total figures, time series, pass/fail checks, Markdown and charts.

Pure functions of what the run collected, so that they can be tested on made-up samples:

- *records*: the Locust users' JSON lines (``turn``: send time ``t``, end ``t_end``, ``tier``,
  ``outcome``, ``ttft``/``ttlt`` seconds, ``background``; ``users``: user counts; ``http_error``: 5xx);
- *samples*: what the orchestrator read every ~2 s (``t``, ``degrade_level``, ``busy``,
  cumulative ``prompt_tokens``/``cached_tokens`` of the fleet, ``queue``);
- the shape's phases, in seconds from the shape's start ``t0``.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from loadtests.locust_support import OUTCOMES, UNATTENDED

TTFT_WINDOW_S = 10.0  # TTFT percentiles over time are taken over this trailing window
PAID = "plus"
FREE = "free"


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return math.nan
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def turns_of(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in records if r.get("type") == "turn"]


def ttft_values(turns: Iterable[dict[str, Any]], tier: str | None) -> list[float]:
    """TTFTs of turns (of ``tier``, or all) whose phone stayed in the foreground until the first token."""
    return [
        r["ttft"]
        for r in turns
        if (tier is None or r.get("tier") == tier)
        and r.get("ttft") is not None
        and r.get("background", "none") == "none"
    ]


STAGES = ("accept", "queue", "worker", "deliver")
# Fewer turns than this make a p99 little more than the largest value: the comparison is not made.
MIN_P99_SAMPLES = 50
SLOWEST = 5  # the slowest turns of each phase and tier are listed with their stages


def stage_times(turn: dict[str, Any]) -> dict[str, float] | None:
    """Where a turn's time to first token went, in seconds: ``accept`` (the send until the answer row
    was made, in memory: HTTP, auth, limits, quota, reads), ``queue`` (until it was put on a worker: the
    accepting transaction's commit, Surge's fair queue, the branch, the prompt, routing), ``worker``
    (until the worker's first token: SGLang's own queue and the prefill), ``deliver`` (until the phone
    read it: event log, SSE, the client). None without the server's times (``answer`` from the
    database) or a first token."""
    server, ttft = turn.get("answer"), turn.get("ttft")
    if not server or ttft is None:
        return None
    return {
        "accept": server["accepted"] - turn["t"],
        "queue": server["started"] - server["accepted"],
        "worker": server["first_token"] - server["started"],
        "deliver": turn["t"] + ttft - server["first_token"],
    }


def attach_answer_times(turns: Iterable[dict[str, Any]], times: dict[str, dict[str, float]]) -> None:
    """Give each turn record the server's times of its answer (``answer``), when known."""
    for turn in turns:
        answer = times.get(str(turn.get("assistant_message_id")))
        if answer is not None:
            turn["answer"] = answer


def summarise(
    turns: Sequence[dict[str, Any]], samples: Sequence[dict[str, Any]], start: float, end: float
) -> dict[str, Any]:
    """Figures of the turns *sent* in [start, end) and of the samples taken in it (wall-clock times)."""
    sent = [r for r in turns if start <= r["t"] < end]
    span = max(1e-9, end - start)
    outcomes = Counter(r["outcome"] for r in sent)
    result: dict[str, Any] = {"seconds": round(end - start, 1), "turns": sum(outcomes[o] for o in OUTCOMES)}
    for outcome in (*OUTCOMES, UNATTENDED):
        result[outcome] = outcomes.get(outcome, 0)
    result["turns_per_s"] = result["turns"] / span
    result["served_per_s"] = sum(outcomes[o] for o in OUTCOMES[:3]) / span
    every = ttft_values(sent, None)
    result["ttft_all_n"], result["ttft_all_p99_s"] = len(every), percentile(every, 0.99)
    for tier in (PAID, FREE):
        values = ttft_values(sent, tier)
        result[f"ttft_{tier}_n"] = len(values)
        result[f"ttft_{tier}_p50_s"] = percentile(values, 0.5)
        result[f"ttft_{tier}_p99_s"] = percentile(values, 0.99)
        timed = [
            (r, stages)
            for r in sent
            if r.get("tier") == tier
            and r.get("background", "none") == "none"
            and (stages := stage_times(r)) is not None
        ]
        result[f"stages_{tier}"] = {
            stage: [percentile([s[stage] for _, s in timed], q) for q in (0.5, 0.99)] for stage in STAGES
        } | {"n": len(timed)}
        slowest = sorted(timed, key=lambda pair: pair[0]["ttft"], reverse=True)[:SLOWEST]
        result[f"slowest_{tier}"] = [
            {"t": r["t"], "ttft": r["ttft"], "outcome": r["outcome"], "thinking": r.get("thinking")} | s
            for r, s in slowest
        ]
    inside = [s for s in samples if start <= s["t"] < end]
    levels = [s["degrade_level"] for s in inside if s.get("degrade_level") is not None]
    result["degrade_max"] = max(levels) if levels else None
    result["degrade_mean"] = sum(levels) / len(levels) if levels else None
    busy = [s["busy"] for s in inside if s.get("busy") is not None]
    result["busy_mean"] = sum(busy) / len(busy) if busy else None
    result["hit_rate"] = hit_rate(samples, start, end)
    cpu = [s["cpu"] for s in inside if s.get("cpu")]
    result["cpu_cores"] = {
        group: sum(reading.get(group, 0.0) for reading in cpu) / len(cpu)
        for group in sorted({group for reading in cpu for group in reading})
    }
    users = [s["users"] for s in inside if s.get("users") is not None]
    result["users_max"] = max(users) if users else None
    return result


def hit_rate(samples: Sequence[dict[str, Any]], start: float, end: float) -> float | None:
    """Fleet prefix-cache hit rate over [start, end): new cached tokens / new prompt tokens."""
    inside = [s for s in samples if start <= s["t"] <= end and s.get("prompt_tokens") is not None]
    if len(inside) < 2:
        return None
    prompt = inside[-1]["prompt_tokens"] - inside[0]["prompt_tokens"]
    cached = inside[-1]["cached_tokens"] - inside[0]["cached_tokens"]
    return cached / prompt if prompt > 0 else None


def phase_windows(phases: Sequence[tuple[str, float, float]], t0: float) -> list[tuple[str, float, float]]:
    return [(name, t0 + start, t0 + end) for name, start, end in phases]


def timeseries(
    records: Sequence[dict[str, Any]], samples: Sequence[dict[str, Any]], t0: float, step: float = 2.0
) -> list[dict[str, Any]]:
    """One row per ``step`` seconds from t0 (``t`` relative): users, turns/s by outcome (by the time the
    outcome was known), TTFT p50/p99 by tier over a trailing window (by first-token time), and the
    samples' degrade level, busy share and hit rate."""
    turns = turns_of(records)
    users = sorted((r["t"], r["users"]) for r in records if r.get("type") == "users")
    end = max(
        [t0 + step]
        + [r.get("t_end", r["t"]) for r in turns]
        + [s["t"] for s in samples]
        + [t for t, _ in users]
    )
    rows = []
    previous: dict[str, Any] | None = None
    ordered_samples = sorted(samples, key=lambda s: s["t"])
    for index in range(math.ceil((end - t0) / step) + 1):
        lo, hi = t0 + index * step, t0 + (index + 1) * step
        row: dict[str, Any] = {"t": round(index * step, 1)}
        known = [u for t, u in users if t < hi]
        row["users"] = known[-1] if known else 0
        ended = Counter(r["outcome"] for r in turns if lo <= r.get("t_end", r["t"]) < hi)
        for outcome in OUTCOMES:
            row[outcome] = ended.get(outcome, 0) / step
        for tier in (PAID, FREE):
            window = [
                r["ttft"]
                for r in turns
                if r.get("tier") == tier
                and r.get("ttft") is not None
                and r.get("background", "none") == "none"
                and hi - TTFT_WINDOW_S <= r["t"] + r["ttft"] < hi
            ]
            row[f"ttft_{tier}_p50_s"] = percentile(window, 0.5)
            row[f"ttft_{tier}_p99_s"] = percentile(window, 0.99)
        sample = next((s for s in reversed(ordered_samples) if s["t"] < hi), None)
        fresh = sample is not None and sample["t"] >= lo - step
        row["degrade_level"] = sample.get("degrade_level") if sample and fresh else None
        row["busy"] = sample.get("busy") if sample and fresh else None
        row["queue"] = sample.get("queue") if sample and fresh else None
        row["hit_rate"] = None
        if sample and fresh and previous and sample.get("prompt_tokens") is not None:
            prompt = sample["prompt_tokens"] - previous["prompt_tokens"]
            if prompt > 0:
                row["hit_rate"] = (sample["cached_tokens"] - previous["cached_tokens"]) / prompt
        if sample and fresh and sample.get("prompt_tokens") is not None:
            previous = sample
        rows.append(row)
    return rows


def checks(
    phases: dict[str, dict[str, Any]],
    audit: dict[str, Any] | None,
    records: Sequence[dict[str, Any]],
    samples: Sequence[dict[str, Any]],
) -> list[dict[str, Any]]:
    """The spike's pass/fail criteria. ``gates``: whether a failure fails the exit code by default
    (correctness does; performance is reported, and gates only with ``--strict``)."""
    results = []
    if audit is None:
        results.append(_check("no lost or duplicated message", False, "the audit did not run", gates=True))
    else:
        results.append(
            _check(
                "no lost or duplicated message",
                audit["lost"] == 0 and audit["duplicated"] == 0,
                f"{audit['acknowledged']} acknowledged; "
                f"lost {audit['lost']}, duplicated {audit['duplicated']}",
                gates=True,
            )
        )
        results.append(
            _check(
                "every answer ended (complete/cancelled/failed)",
                not audit["non_terminal_answers"],
                f"{len(audit['non_terminal_answers'])} still queued or streaming after the drain",
                gates=True,
            )
        )
    bad = [
        r
        for r in records
        if r.get("type") == "http_error" and not (r["status"] == 503 and r.get("retry_after"))
    ]
    statuses = Counter(f"{r['status']} {r.get('route')}" for r in bad)
    results.append(
        _check(
            "no 5xx other than 503 with Retry-After",
            not bad,
            "none" if not bad else ", ".join(f"{k} x{v}" for k, v in statuses.most_common(5)),
            gates=True,
        )
    )
    results.append(paid_ttft_check(phases))
    results.append(degrade_check(phases, samples))
    return results


def paid_ttft_check(phases: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The paid tier's TTFT p99 on the plateau against its value before the spike.

    Before the spike, with nothing waiting (level 0), Surge serves both tiers alike, so "before" is the
    p99 of every turn then: at the workload's 9:1 mix the paid tier alone has a handful of turns in the
    baseline, and a p99 of three turns is their maximum, whatever happened to be pasted. The paid tier's
    own baseline is printed alongside."""
    name = "paid TTFT p99 on the plateau within 2x of before"
    baseline, plateau = phases.get("baseline", {}), phases.get("plateau", {})
    before, before_n = baseline.get("ttft_all_p99_s"), baseline.get("ttft_all_n", 0)
    during, during_n = plateau.get(f"ttft_{PAID}_p99_s"), plateau.get(f"ttft_{PAID}_n", 0)
    if before is None or during is None or not math.isfinite(before) or not math.isfinite(during):
        return _check(name, None, "no turns to compare")
    detail = (
        f"{during:.2f} s on the plateau (n={during_n}) vs {before:.2f} s before "
        f"(every turn before the spike, n={before_n}; the paid tier's own: "
        f"{_fmt(baseline.get(f'ttft_{PAID}_p99_s'))} s, n={baseline.get(f'ttft_{PAID}_n', 0)})"
    )
    if before_n < MIN_P99_SAMPLES or during_n < MIN_P99_SAMPLES:
        return _check(name, None, f"too few turns for a p99: {detail}")
    return _check(name, during <= 2 * before, detail)


def degrade_check(phases: dict[str, dict[str, Any]], samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
    name = "degrade level rises during the spike and falls back after it"
    levels = [s for s in samples if s.get("degrade_level") is not None]
    if not levels:
        return _check(name, False, "no degrade level exposed (surge_degrade_level / admin fleet admission)")
    base = phases.get("baseline", {}).get("degrade_max") or 0
    spike = max((phases.get(p, {}).get("degrade_max") or 0) for p in ("ramp", "plateau"))
    final = levels[-1]["degrade_level"]
    rose, fell = spike > base, final < spike
    return _check(
        name,
        rose and fell,
        f"baseline max {base}, ramp/plateau max {spike}, last sampled {final}",
    )


def _check(name: str, passed: bool | None, detail: str, *, gates: bool = False) -> dict[str, Any]:
    return {"name": name, "passed": passed, "detail": detail, "gates": gates}


# --- output ---
def _fmt(value: Any, digits: int = 2, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}{unit}"
    return f"{value}{unit}"


COLUMNS = [
    ("phase", None),
    ("s", "seconds"),
    ("users", "users_max"),
    ("turns", "turns"),
    ("served", "served"),
    ("queued", "queued_then_served"),
    ("degraded", "degraded"),
    ("shed", "shed"),
    ("errors", "error"),
    ("unatt.", "unattended"),
    ("served/s", "served_per_s"),
    ("paid TTFT p50/p99", None),
    ("free TTFT p50/p99", None),
    ("degrade max", "degrade_max"),
    ("busy", "busy_mean"),
    ("hit rate", "hit_rate"),
]


def table(phases: dict[str, dict[str, Any]]) -> str:
    """The Markdown table of per-phase figures and the total."""
    header = "| " + " | ".join(name for name, _ in COLUMNS) + " |"
    lines = [header, "|" + "---|" * len(COLUMNS)]
    for phase, figures in phases.items():
        cells = []
        for name, key in COLUMNS:
            if name == "phase":
                cells.append(f"**{phase}**" if phase == "total" else phase)
            elif name.endswith("TTFT p50/p99"):
                tier = PAID if name.startswith("paid") else FREE
                cells.append(
                    f"{_fmt(figures[f'ttft_{tier}_p50_s'])}/{_fmt(figures[f'ttft_{tier}_p99_s'])} s"
                    f" (n={figures[f'ttft_{tier}_n']})"
                )
            else:
                value = figures.get(key) if key else None
                cells.append(_fmt(value, 1 if key == "seconds" else 2))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def stage_table(phases: dict[str, dict[str, Any]]) -> str:
    """Per phase and tier, where the time to first token went (p50/p99 of each stage, seconds)."""
    lines = [
        "| phase | tier | n | " + " | ".join(f"{stage} p50/p99" for stage in STAGES) + " |",
        "|" + "---|" * (3 + len(STAGES)),
    ]
    for phase, figures in phases.items():
        for tier in (PAID, FREE):
            split = figures.get(f"stages_{tier}")
            if not split or not split["n"]:
                continue
            cells = [f"{_fmt(split[stage][0])}/{_fmt(split[stage][1])}" for stage in STAGES]
            lines.append(f"| {phase} | {tier} | {split['n']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def cpu_table(phases: dict[str, dict[str, Any]]) -> str:
    """Mean CPU cores used per phase by each part of the run."""
    groups = sorted({group for figures in phases.values() for group in figures.get("cpu_cores", {})})
    if not groups:
        return "(not sampled)"
    lines = ["| phase | " + " | ".join(groups) + " |", "|" + "---|" * (1 + len(groups))]
    for phase, figures in phases.items():
        cores = figures.get("cpu_cores", {})
        lines.append(f"| {phase} | " + " | ".join(_fmt(cores.get(group)) for group in groups) + " |")
    return "\n".join(lines)


def slowest_table(phases: dict[str, dict[str, Any]], phase: str, tier: str, t0: float) -> str:
    """The slowest turns of one phase and tier, with where their time to first token went."""
    rows = phases.get(phase, {}).get(f"slowest_{tier}") or []
    lines = [
        "| sent at (s) | TTFT | " + " | ".join(STAGES) + " | outcome | thinking |",
        "|" + "---|" * (4 + len(STAGES)),
    ]
    for row in rows:
        stages = " | ".join(_fmt(row[stage]) for stage in STAGES)
        lines.append(
            f"| {row['t'] - t0:.1f} | {_fmt(row['ttft'])} | {stages} | {row['outcome']} | {row['thinking']} |"
        )
    return "\n".join(lines)


def markdown(result: dict[str, Any]) -> str:
    lines = [
        "# Spike (WORKLOAD.md benchmark 3)",
        "",
        f"Run: {result['started']}, {result['wall_s']:.0f} s wall clock.",
        "",
        "Parameters: `" + ", ".join(f"{k}={v}" for k, v in result["parameters"].items()) + "`",
        "",
        "## Per phase (turns counted by when they were sent; TTFT in real seconds)",
        "",
        table(result["phases"]),
        "",
        "Outcomes: served; queued (saw a `queued` event, then served); degraded (saw `degraded`,",
        "then served); shed (429/503 with Retry-After at send, or an `error` event `overloaded`);",
        "errors (anything else); unattended (phone put away for good: the server finished alone; the",
        "audit says how those ended).",
        "Each attempt counts: a message shed twice and then served is two shed and one served.",
        "",
        "## Where the time to first token went (seconds, p50/p99 of each stage)",
        "",
        stage_table(result["phases"]),
        "",
        "accept: the send until the answer's row was made (HTTP, auth, limits, quota, reads); queue:",
        "until Surge put it on a worker (the commit, fair queue, branch, prompt, routing); worker: until",
        "the first token (SGLang's queue, prefill); deliver: until the client read it (event log, SSE,",
        "the client — Locust shares this machine's cores). Percentiles of each stage are taken separately.",
        "",
        f"The slowest {PAID} turns of the plateau:",
        "",
        slowest_table(result["phases"], "plateau", PAID, result.get("t0", 0.0)),
        "",
        "## CPU (mean cores in use per phase; `machine` is all of it)",
        "",
        cpu_table(result["phases"]),
        "",
        "## Checks",
        "",
    ]
    for check in result["checks"]:
        mark = {True: "PASS", False: "FAIL", None: "n/a"}[check["passed"]]
        gate = " (fails the run)" if check["gates"] else ""
        lines.append(f"- **{mark}** {check['name']}{gate}: {check['detail']}")
    audit = result.get("audit")
    if audit:
        lines += [
            "",
            "## Audit",
            "",
            f"- acknowledged turns: {audit['acknowledged']}; user messages stored: {audit['user_messages']}"
            f" ({audit['unacknowledged_user_messages']} never acknowledged to a client)",
            f"- missing user messages: {len(audit['missing_user_messages'])}; missing answers: "
            f"{len(audit['missing_answers'])}",
            f"- idempotency key conflicts: {len(audit['key_conflicts'])}; duplicate user messages: "
            f"{len(audit['duplicate_user_messages'])}",
            f"- answers by status: {audit['answer_status']}",
            f"- unattended answers by status: {audit['unattended_status']}",
        ]
    errors = result.get("surge_errors_logged") or {}
    if errors:
        lines += ["", "Errors Surge logged (see surge.log):"]
        lines += [f"- {count} x {message}" for message, count in errors.items()]
    if result.get("problems"):
        lines += ["", "Broken run:"] + [f"- {problem}" for problem in result["problems"]]
    signups = result.get("signups") or {}
    if signups:
        lines += ["", f"Sign-ups by outcome: {signups}"]
    lines += ["", "## Charts", ""]
    for name in result.get("charts", []):
        lines.append(f"![{name}]({name})")
    return "\n".join(lines) + "\n"


def charts(
    rows: Sequence[dict[str, Any]], phases: Sequence[tuple[str, float, float]], directory: Path
) -> list[str]:
    """PNG charts over time; returns the file names written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [row["t"] for row in rows]

    def shade(axis: Any) -> None:
        for index, (name, start, end) in enumerate(phases):
            if index % 2:
                axis.axvspan(start, end, color="0.92", zorder=0)
            axis.text(
                (start + end) / 2,
                1.0,
                name,
                transform=axis.get_xaxis_transform(),
                ha="center",
                va="bottom",
                fontsize=7,
            )

    def series(key: str) -> list[float]:
        return [math.nan if row.get(key) is None else row[key] for row in rows]

    plots: list[tuple[str, str, list[tuple[str, str]]]] = [
        ("users.png", "Locust users", [("users", "users")]),
        ("turns.png", "turns/s by outcome (when the outcome was known)", [(o, o) for o in OUTCOMES]),
        (
            "ttft.png",
            f"TTFT by tier, trailing {TTFT_WINDOW_S:.0f} s (s, log)",
            [(f"ttft_{tier}_{q}_s", f"{tier} {q}") for tier in (PAID, FREE) for q in ("p50", "p99")],
        ),
        ("degrade.png", "degrade level", [("degrade_level", "degrade level")]),
        (
            "busy.png",
            "fleet busy share and prefix-cache hit rate",
            [("busy", "busy share"), ("hit_rate", "hit rate")],
        ),
    ]
    written = []
    for name, title, lines in plots:
        figure, axis = plt.subplots(figsize=(9, 3.2))
        for key, label in lines:
            if name == "turns.png":
                axis.plot(t, series(key), label=label, drawstyle="steps-post", linewidth=1)
            else:
                axis.plot(t, series(key), label=label, linewidth=1.2)
        if name == "ttft.png":
            axis.set_yscale("log")
        if name == "degrade.png" and all(math.isnan(v) for v in series("degrade_level")):
            axis.text(0.5, 0.5, "not exposed by this build", transform=axis.transAxes, ha="center")
        shade(axis)
        axis.set_title(title, fontsize=9, pad=14)
        axis.set_xlabel("seconds since the shape started")
        axis.grid(alpha=0.3)
        if len(lines) > 1:
            axis.legend(fontsize=7, loc="upper right")
        figure.tight_layout()
        figure.savefig(directory / name, dpi=110)
        plt.close(figure)
        written.append(name)
    return written
