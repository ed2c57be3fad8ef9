"""``pixcamd status``: what the daemon is doing, read from its ledger (works while it runs)."""

from __future__ import annotations

import json
import os
import threading
import time

from pixcamd.daemon.config import Config
from pixcamd.daemon.events import human_line, iso_time
from pixcamd.daemon.ledger_file import ledger_there, read_only
from pixcamd.daemon.ledger_row import Row, judged_specs
from pixcamd.daemon.ledger_schema import STATES
from pixcamd.daemon.locks import lock_free

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
    ledger_there(path)
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
    ledger_there(path)
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
