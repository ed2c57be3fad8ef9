"""``pixcamd status``: what the daemon is doing, read from its ledger (works while it runs)."""

from __future__ import annotations

import json
import os
import threading
import time
from datetime import datetime

from pixcamd.daemon.config import Config
from pixcamd.daemon.events import clock, human_line, iso_time, printable
from pixcamd.daemon.ledger_file import read_only
from pixcamd.daemon.ledger_row import Row, judged_specs
from pixcamd.daemon.ledger_schema import STATES
from pixcamd.daemon.locks import lock_free
from pixcamd.daemon.retry import held_hint
from pixcamd.errors import PixcamdError
from pixcamd.report import score_text

STALE_AFTER = 30.0  # seconds without a heartbeat before a live pid is reported as unresponsive


def _pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user (the service user)
        return True
    return True


def gather(config: Config, events: int = 10, now: float | None = None, photos: int = 10) -> dict:
    path = config.ledger_path
    if not os.path.lexists(path):
        raise PixcamdError(
            f"no ledger at {path}: the daemon has not run with this state dir yet "
            "(or give the --config it runs with)"
        )
    now = time.time() if now is None else now
    db = read_only(path)
    try:
        facts = {k: json.loads(v) for k, v in db.execute("SELECT key, value FROM daemon")}
        counts = dict.fromkeys(STATES, 0)
        counts.update(dict(db.execute("SELECT state, count(*) FROM photos GROUP BY state")))
        current = [
            {"path": r["path"], "since": r["started_at"], "attempt": r["attempts"]}
            for r in db.execute("SELECT * FROM photos WHERE state = 'processing' ORDER BY id")
        ]
        problems = [
            {
                "path": r["path"],
                "state": r["state"],
                "reason": r["error"],
                "attempts": r["attempts"],
                "at": r["finished_at"],
                "output": r["output"],
                "held": r["held"],
                "earlier_copy": Row.from_sql(r).earlier_copy,
            }
            for r in db.execute(
                "SELECT * FROM photos WHERE state IN ('failed', 'unprotected') "
                "ORDER BY finished_at DESC, id DESC LIMIT 50"
            )
        ]
        retrying = [
            {
                "path": r["path"],
                "attempts": r["attempts"],
                "next_at": r["not_before"],
                "reason": r["error"],
            }
            for r in db.execute(
                "SELECT * FROM photos WHERE state = 'queued' AND error IS NOT NULL "
                "ORDER BY not_before LIMIT 50"
            )
        ]
        (retrying_total,) = db.execute(
            "SELECT count(*) FROM photos WHERE state = 'queued' AND error IS NOT NULL"
        ).fetchone()
        since = now - 3600
        hour = db.execute(
            "SELECT count(*), sum(state = 'done'), sum(state = 'unprotected'), "
            "sum(state = 'failed'), avg(seconds), sum(state IN ('queued', 'processing')) "
            "FROM photos WHERE finished_at >= ? AND duplicate_of IS NULL",
            (since,),
        ).fetchone()
        again = _retried(db, since)
        per_platform: dict[str, list[int]] = {}  # name → [protected on it, judged]
        now_spec = {name: spec for spec, name in (facts.get("platform_specs") or {}).items()}
        for (report,) in db.execute(
            "SELECT report FROM photos WHERE finished_at >= ? AND report IS NOT NULL "
            "AND duplicate_of IS NULL",
            (since,),
        ):
            data = json.loads(report)
            spec = judged_specs(data)
            for name, low in (data.get("protected_on") or {}).items():
                if name in now_spec and spec.get(name) not in (None, now_spec[name]):
                    name = f"{name} ({spec[name]}, redefined since)"  # not the one in force
                tally = per_platform.setdefault(name, [0, 0])
                tally[0] += bool(low)
                tally[1] += 1
        recent = [
            _photo(r)
            for r in db.execute(
                "SELECT * FROM photos WHERE state IN ('done', 'unprotected', 'failed') "
                "AND finished_at IS NOT NULL ORDER BY finished_at DESC, id DESC LIMIT ?",
                (photos,),
            )
        ][::-1]
        last = [
            {
                "ts": r["ts"],
                "level": r["level"],
                "event": r["event"],
                "path": r["path"],
                **{k: v for k, v in json.loads(r["data"] or "{}").items() if k == "message"},
            }
            for r in db.execute("SELECT * FROM events ORDER BY id DESC LIMIT ?", (events,))
        ][::-1]
        # a start refused since the last start and stop (its weights unreadable, say): a
        # refusal before the daemon's record was opened leaves that record as it was
        last_run = max(facts.get("started_at") or 0, facts.get("stopped_at") or 0)
        refusal = db.execute(
            "SELECT ts, data FROM events WHERE ts > ? AND event = 'start_refused' "
            "ORDER BY id DESC LIMIT 1",
            (last_run,),
        ).fetchone()
    finally:
        db.close()
    pid = facts.get("pid")
    # the state dir's lock free: no daemon runs, whatever pid its record names (in a container
    # pid 1 is alive in every other one); held, or not to be told: the pid says
    # (the ledger's folder: a config that does not validate gives its record alone, no state_dir)
    alive = _pid_alive(pid) and lock_free(config.ledger_path.parent / "daemon.lock") is not True
    heartbeat = facts.get("heartbeat")
    if alive and heartbeat is not None and now - heartbeat > STALE_AFTER:
        running = "unresponsive"
    else:
        running = "running" if alive else "stopped"
    # a clean stop and a start refused in words clear the pid; a crash, a kill -9 or a power
    # cut leaves a dead one behind, and its photo in processing: interrupted, done again
    crashed = pid is not None and not alive
    # the fallback's reason gone since: KonCept512's weights installed, after it was chosen,
    # where the daemon looks (its own environment's cache, not this shell's)
    where = facts.get("weights_file")
    installed = bool(facts.get("model_fallback")) and bool(where) and os.path.isfile(where)
    advice = facts.get("model_note")
    if installed:
        when = "a reload (SIGHUP) or restart" if running == "running" else "its next start"
        advice = f"KonCept512's weights were installed since; the daemon uses them after {when}"
    ran_with = facts.get("grace_time")
    return {
        "daemon": running,
        "pid": pid if alive else None,
        "ended_unexpectedly": crashed,
        # ... after a stop was asked (SIGTERM): killed before it ended (a container engine's
        # SIGKILL after its stop timeout, systemd's after TimeoutStopSec), no crash
        "stop_asked_at": _stop_asked(facts) if crashed else None,
        # the one it ran with, to say beside it: the config's where its record has none (an
        # earlier pixcamd's), said so
        "grace_time": ran_with if ran_with is not None else getattr(config, "grace_time", None),
        "grace_time_of": "config" if ran_with is None else "daemon",
        "heartbeat": heartbeat,
        "started_at": facts.get("started_at"),
        "stopped_at": facts.get("stopped_at"),
        "refused": (
            {"ts": refusal["ts"], "reason": json.loads(refusal["data"] or "{}").get("message")}
            if refusal is not None
            else None
        ),
        "model": facts.get("model"),
        "model_note": facts.get("model_note"),
        "model_fallback": bool(facts.get("model_fallback")),
        "weights_since": installed,
        "model_advice": advice,  # what the fallback line says now (the page's too)
        "model_fingerprints": facts.get("model_fingerprints") or [],
        "platform_specs": facts.get("platform_specs") or {},
        "metadata_fingerprints": facts.get("metadata_fingerprints") or {},  # fingerprint → mode
        "platforms": facts.get("platforms") or [],
        "fingerprint": facts.get("fingerprint"),
        # a crashed daemon's last words ("protecting big.jpg; queue 1") are no activity now
        "status": "ended unexpectedly" if crashed else facts.get("status"),
        "counts": counts,
        "settling": facts.get("settling", 0) if alive else 0,
        "current": current if alive else [],
        "interrupted": [] if alive else current,
        "current_step": facts.get("current_step") if current and alive else None,
        "failures": problems,
        "retrying": retrying,  # the first 50; retrying_total counts them all
        "retrying_total": retrying_total,
        "last_hour": {
            "finished": (hour[0] or 0) + again,
            "done": hour[1] or 0,
            "unprotected": hour[2] or 0,
            "failed": hour[3] or 0,
            "again": (hour[5] or 0) + again,  # finished in it, being protected again now
            "mean_seconds": round(hour[4], 2) if hour[4] is not None else None,
            "protected_on": {
                name: {"protected": done, "judged": judged}
                for name, (done, judged) in per_platform.items()
            },
        },
        "photos": recent,
        "events": last,
        "ledger": str(path),
        "log_file": str(config.log_file),
        "executor": getattr(config, "executor", None),
        "web": getattr(config, "web", None),  # the page's address ("": off; None: unknown, a
        # config that does not validate gives only its record)
    }


def _retried(db, since: float) -> int:
    """Photos that finished since ``since`` and that `pixcamd retry` has queued again since
    (its row forgets the finish; its ``retry`` event keeps it), not finished again yet: still
    finished in the last hour, being protected again. (A settings change or new bytes queue a
    photo again keeping its finish: the query's own ``queued``/``processing`` rows.) A
    duplicate retried is left out, as the last hour leaves out duplicates."""
    paths = set()
    for path, data in db.execute(
        "SELECT path, data FROM events WHERE event = 'retry' AND ts >= ?", (since,)
    ):
        was = json.loads(data or "{}").get("was") or {}
        if (was.get("finished_at") or 0) >= since and not was.get("duplicate_of"):
            paths.add(path)
    if not paths:
        return 0
    waiting = db.execute(  # the queue's paths: a retry of a library names too many for an IN
        "SELECT path FROM photos WHERE finished_at IS NULL AND duplicate_of IS NULL "
        "AND state IN ('queued', 'processing')"
    )
    return sum(path in paths for (path,) in waiting)


def _photo(r) -> dict:
    """One finished photo as a person asks about it: verdict, worst view, PSNR, time, where."""
    row = Row.from_sql(r)
    report = row.report if isinstance(row.report, dict) else {}
    return {
        "path": r["path"],
        "state": r["state"],
        "verdict": r["verdict"],
        "worst": report.get("worst"),
        "psnr": r["psnr"],
        "seconds": r["seconds"],
        "output": r["output"],
        "held": r["held"],
        "earlier_copy": row.earlier_copy,
        "duplicate_of": r["duplicate_of"],
        "reason": r["error"] if r["state"] != "done" else None,
        "at": r["finished_at"],
    }


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


def follow(
    config: Config,
    out,
    stop: threading.Event,
    as_json: bool = False,
    interval: float = 0.5,
    backlog: int = 0,
) -> None:
    """Stream events as the daemon records them (``journalctl -f``), from the ``backlog`` last
    ones on, until ``stop`` is set: one escaped human line each, or one JSON object per line."""
    path = config.ledger_path
    if not os.path.lexists(path):
        raise PixcamdError(f"no ledger at {path}: the daemon has not run with this state dir yet")
    db = read_only(path)
    try:
        (top,) = db.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()
        after = max(0, top - backlog)
        while True:
            rows = db.execute(
                "SELECT * FROM events WHERE id > ? ORDER BY id LIMIT 1000", (after,)
            ).fetchall()
            for r in rows:
                after = r["id"]
                # ts as the log file has it; the number it was before 2026-12: unix_time
                e = {"ts": iso_time(r["ts"]), "unix_time": r["ts"], "level": r["level"]}
                e.update({"event": r["event"], "path": r["path"]})
                e.update(json.loads(r["data"] or "{}"))
                human = human_line(r["ts"], e["level"], e["event"], e["path"], e.get("message", ""))
                out.write(json.dumps(e, default=str) if as_json else human)
                out.write("\n")
            out.flush()
            if stop.is_set() or (not rows and stop.wait(interval)):
                return
    finally:
        db.close()


def _stop_asked(facts: dict) -> float | None:
    """The stop asked of the daemon that started last: one asked before that start is an
    earlier run's, left in the record by a pixcamd from before it was recorded (a downgrade:
    it neither clears nor records it), never this run's stop cut short."""
    asked, started = facts.get("stop_asked_at"), facts.get("started_at")
    if asked is None or (started is not None and asked < started):
        return None
    return asked


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
