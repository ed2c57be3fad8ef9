"""``pixcamd status`` in words: the report ``pixcamd.daemon.status.gather`` makes, as lines a
person reads (``render``) — the daemon's state, the counts, the photos, the events."""

from __future__ import annotations

from datetime import datetime

from pixcamd.daemon.events import clock, printable
from pixcamd.daemon.ledger_schema import STATES
from pixcamd.daemon.retry import held_hint
from pixcamd.report import score_text


def _photo_line(p: dict) -> str:
    when = clock(p["at"])
    if p["state"] == "failed":
        return f"  {when} FAILED      {p['path']}: {p['reason']}"
    what = p["verdict"] or p["state"]
    if p["duplicate_of"] and not p["seconds"]:
        what += f" (copy of {p['duplicate_of']})"
    where = f" → {p['output']}" if p["output"] else ""
    if p["held"]:
        where = f", held back: copy in {p['held']}"
    elif (not p["output"] or p["earlier_copy"]) and p["state"] != "done":
        where = ", held back (no copy kept)"
    if p["earlier_copy"]:
        where += f"; its earlier copy {p['earlier_copy']} stays in the outbox"
    worst = p["worst"]
    detail = []
    if worst:
        detail.append(
            f"worst {worst['pipeline']}/{worst['view']} {score_text(worst['score'])} "
            f"({worst['model']})"
        )
    if p["psnr"] is not None:
        detail.append(f"PSNR {p['psnr']:.1f} dB")
    if p["seconds"]:
        detail.append(f"{p['seconds']:.1f} s")
    state = "done" if p["state"] == "done" else "UNPROTECTED"
    tail = f" — {', '.join(detail)}" if detail else ""
    return f"  {when} {state:11} {p['path']}{where}: {what}{tail}"


def _when(ts: float | None) -> str:
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S") if ts else "—"


def killed_while_stopping(report: dict) -> str:
    """A stop asked (recorded as it began) that never ended: the process was killed while it
    gave its photo ``grace_time`` — a stop timeout shorter than that, said with the remedy."""
    grace = report.get("grace_time")
    whose = ", the config's now" if report.get("grace_time_of") == "config" else ""
    within = f"grace_time ({grace:g} s{whose}) + 10 s" if grace is not None else "grace_time + 10 s"
    return (
        f"a stop was asked at {clock(report['stop_asked_at'])} and the process was killed before "
        f"it ended — the stop timeout (a container engine's: docker's 10 s by default, "
        f"--stop-timeout; systemd's TimeoutStopSec) is shorter than {within}: raise it, or lower "
        "grace_time (a photo it cut short is protected again, its attempt not counted)"
    )


def _refused(report: dict) -> str:
    refused = report.get("refused")
    if not refused:
        return ""
    return f"its last start ({_when(refused['ts'])}) was refused: {refused['reason']}"


def _more(out: list[str], left: int, web: str | None) -> None:
    """The lists show the latest 50: how many more there are, never left out unsaid, and where
    to see them all."""
    if left > 0:
        where = "the web page lists every photo"
        if web == "":  # off in the config: the page can still be served on its own
            where += ' (web = "" here: `pixcamd web --listen 127.0.0.1:8765` serves it alone)'
        out.append(f"  … and {left} more ({where})")


def _duration(hours: float) -> str:
    if hours < 1:
        return f"{max(1, round(hours * 60))} min"
    return f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.1f} days"


def render(report: dict) -> str:
    out = []
    daemon = report["daemon"]
    if daemon == "running":
        out.append(f"daemon: running (pid {report['pid']}, since {_when(report['started_at'])})")
    elif daemon == "unresponsive":
        out.append(
            f"daemon: UNRESPONSIVE (pid {report['pid']}, last heartbeat "
            f"{_when(report['heartbeat'])})"
        )
    elif report.get("ended_unexpectedly") and report.get("stop_asked_at"):
        later = _refused(report) or "`pixcamd run` goes on from there"
        out.append(f"daemon: not running — {killed_while_stopping(report)}; {later}")
    elif report.get("ended_unexpectedly"):  # and a start since, refused: both are news
        later = _refused(report) or "`pixcamd run` goes on from there"
        out.append(
            "daemon: not running — it ended without stopping (a crash, a kill or a power cut; "
            f"last heartbeat {_when(report['heartbeat'])}); {later}"
        )
    elif refused := _refused(report):
        out.append(f"daemon: not running — {refused}")
    else:
        out.append(f"daemon: not running (stopped {_when(report['stopped_at'])})")
    if report["model"]:
        line = f"model: {report['model']}"
        if report["model_fallback"]:
            line += f" — FALLBACK: {report.get('model_advice') or report['model_note']}"
        out.append(line)
    if report["platforms"]:
        out.append("platforms: " + "; ".join(report["platforms"]))
    counts = report["counts"]
    out.append("photos: " + ", ".join(f"{state} {counts[state]}" for state in STATES))
    hour = report["last_hour"]
    # photos an hour: one worker's (its mean time a photo), or as many as finished in the last
    # hour where that is more (a Ray cluster protects several at once). No mean (the hour's
    # photos all queued again, their times forgotten): no pace — a count finished alone says
    # how many came, not how fast they go (4 photos of 10 s each were "about 1.0 h" for 4)
    mean = hour["mean_seconds"]
    per_hour = max(hour["finished"], 3600 / mean) if mean else 0
    if counts["queued"] > 1 and per_hour:  # a backlog (a library found at the first start)
        hours = counts["queued"] / per_hour
        out.append(
            f"queue: {counts['queued']} photos, about {_duration(hours)} at the last hour's "
            "pace; photos from the last day are taken first"
        )
    if report["settling"]:
        out.append(f"settling: {report['settling']} new files waiting to be complete")
    for cur in report["current"]:
        step = report["current_step"]
        extra = f", step {step}" if step else ""
        out.append(
            f"current: {cur['path']} (attempt {cur['attempt']}, since {_when(cur['since'])}{extra})"
        )
    for cur in report.get("interrupted", []):
        attempt = cur["attempt"]
        out.append(f"interrupted: {cur['path']} (attempt {attempt}; again at the next start)")
    hour = report["last_hour"]
    mean = f", {hour['mean_seconds']:.1f} s per photo" if hour["mean_seconds"] else ""
    out.append(
        f"last hour: {hour['finished']} photo{'' if hour['finished'] == 1 else 's'} finished "
        f"({hour['done']} done, {hour['unprotected']} unprotected, {hour['failed']} failed"
        + (f", {hour['again']} being protected again" if hour.get("again") else "")
        + f"){mean}"
    )
    if hour["protected_on"]:
        tallies = hour["protected_on"].items()
        out.append(
            "last hour, protected per platform: "
            + ", ".join(f"{k} {v['protected']}/{v['judged']}" for k, v in tallies)
        )
    if report["retrying"]:
        out.append("retrying:")
        for r in report["retrying"]:
            out.append(
                f"  {r['path']}: attempt {r['attempts'] + 1} at {_when(r['next_at'])} — "
                f"{r['reason']}"
            )
        _more(out, report.get("retrying_total", 0) - len(report["retrying"]), report.get("web"))
    if report["failures"]:
        out.append("failed or unprotected (held back from the outbox unless shipped):")
        for f in report["failures"]:
            where = f" (shipped anyway: {f['output']})" if f["output"] else ""
            if f["earlier_copy"]:
                where = f" (its earlier copy stays in the outbox: {f['output']})"
            held = f" (copy in {f['held']})" if f["held"] else ""
            out.append(f"  {f['state']:11} {f['path']}{where}{held}: {f['reason']}")
        _more(
            out,
            counts["failed"] + counts["unprotected"] - len(report["failures"]),
            report.get("web"),
        )
        held = [f for f in report["failures"] if f["state"] == "unprotected" and not f["output"]]
        if held:
            kept = any(f["held"] for f in held)
            out.append("  held back: " + held_hint("PATH", report.get("executor"), kept))
        states = {f["state"] for f in report["failures"]}
        if "failed" in states:
            out.append(
                "  failed: `pixcamd retry --failed` once the cause is fixed; a file that does "
                "not decode is read again when a new version of it arrives"
            )
    if report.get("photos"):
        out.append("last photos:")
        out += [_photo_line(p) for p in report["photos"]]
    if report["events"]:
        out.append("last events:")
        for e in report["events"]:
            path = f" {e['path']}" if e["path"] else ""
            message = f": {e['message']}" if e.get("message") else ""
            out.append(f"  {clock(e['ts'])} {e['event']}{path}{message}")
    # names come from whoever syncs into the inbox: one escaped line per entry, never two
    return "\n".join(printable(line) for line in out if line) + "\n"
