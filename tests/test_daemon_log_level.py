"""``log_level``: which events a real ``pixcamd run`` writes to stderr (the journal, a container's
log), while its JSON log file keeps every one; a reload changes it; a bad value is refused."""

from __future__ import annotations

import re
import signal

import pytest
from test_daemon_support import (
    events,
    finished,
    make_config,
    no_leaked_threads,  # noqa: F401
    noise_photo,
    one_torch_thread,  # noqa: F401
    pixcamd_process,
    real_photo,
    wait_for,
)

from pixcamd.cli import main

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# an event's human line: "21:53:21 WARNING failed bad.jpg: …", "… INFO    ready: …" (a date
# first on another day; the paths here have no spaces)
HUMAN = re.compile(
    r"^(?:\d{4}-\d\d-\d\d )?\d\d:\d\d:\d\d (INFO|WARNING|ERROR)\s+([a-z_]+)(?: (\S+?))?(?::\s|$)"
)


def said(out: str) -> list[tuple[str, str, str | None]]:
    """(level, event, path or None) of each event's line on stderr, in order."""
    found = [HUMAN.match(line) for line in out.splitlines()]
    return [(m[1], m[2], m[3]) for m in found if m]


def as_said(event: dict) -> tuple[str, str, str | None]:
    return event["level"].upper(), event["event"], event.get("path")


def logged(config, event: str) -> list[dict]:
    return [e for e in events(config) if e["event"] == event]


def stop(process, timeout: float = 60) -> str:
    process.send_signal(signal.SIGTERM)
    try:
        out, _ = process.communicate(timeout=timeout)
    except Exception:
        process.kill()
        out, _ = process.communicate()
        raise AssertionError(f"pixcamd did not stop:\n{out}") from None
    return out


def test_warning_keeps_stderr_to_warnings_the_log_file_has_all_and_a_reload_brings_info(
    tmp_path,
):
    config = make_config(tmp_path, log_level="warning", threads=1)
    path = config.source
    real_photo(config.inbox / "good.jpg")  # really protected: started, protected, …
    (config.inbox / "bad.jpg").write_bytes(b"\xff\xd8 not a photo at all")  # undecodable, failed
    process = pixcamd_process(path)
    try:
        wait_for(lambda: finished(config, ["good.jpg", "bad.jpg"]), 120, "both photos")
        wait_for(lambda: logged(config, "failed"), 30, "the bad photo's failure in the log")
        # quiet → talkative: a reload applies the level, and says it changed
        path.write_text(path.read_text().replace('log_level = "warning"', 'log_level = "info"'))
        process.send_signal(signal.SIGHUP)
        (reloaded,) = wait_for(lambda: logged(config, "reloaded"), 60, "the reload")
        noise_photo(config.inbox / "after.png", 1)
        wait_for(lambda: finished(config, ["after.png"]), 60, "a photo after the reload")
        wait_for(
            lambda: [e for e in logged(config, "protected") if e["path"] == "after.png"],
            30,
            "its protected event",
        )
        # a level no one can read is refused like any bad value; the one in force stays
        path.write_text(path.read_text().replace('log_level = "info"', 'log_level = "loud"'))
        process.send_signal(signal.SIGHUP)
        (refused,) = wait_for(lambda: logged(config, "reload_refused"), 60, "the refusal")
        assert process.poll() is None
    finally:
        out = stop(process) if process.poll() is None else process.communicate()[0]
    assert process.returncode == 0, out
    assert reloaded["changed"] == {"log_level": ["warning", "info"]}
    assert 'log_level "warning" → "info"' in reloaded["message"]
    assert "log_level: 'loud' is not one of info, warning, error" in refused["message"]

    lines = said(out)
    assert ("INFO", "reloaded", None) in lines, out  # the first line at the new level
    cut = lines.index(("INFO", "reloaded", None))
    before, after = lines[:cut], lines[cut:]
    everything = events(config)
    recorded = everything[: [e["event"] for e in everything].index("reloaded")]
    # at "warning": no photo's started/protected, no start-up chatter — exactly the events at
    # warning and above, in their order, the failed photo's among them ...
    assert before == [as_said(e) for e in recorded if e["level"] != "info"], out
    assert ("WARNING", "failed", "bad.jpg") in before, out
    assert all(level != "INFO" for level, _, _ in before), out
    # ... while the JSON log file kept every event, the info ones too
    good = [e["event"] for e in recorded if e.get("path") == "good.jpg"]
    assert {"detected", "settled", "queued", "started", "protected"} <= set(good)
    assert {e["event"] for e in recorded} >= {"daemon_started", "model", "ready"}
    # after the reload to "info": every event again, the photo's steps on stderr
    assert ("INFO", "started", "after.png") in after, out
    assert ("INFO", "protected", "after.png") in after, out
    assert ("WARNING", "reload_refused", None) in after, out
    assert ("INFO", "stopped", None) in after, out  # "info" kept: the refusal changed nothing


def test_an_unknown_log_level_is_refused_at_config_check_and_at_the_start(tmp_path, capsys):
    config = make_config(tmp_path)
    path = config.source
    path.write_text(path.read_text() + 'log_level = "loud"\n')
    expected = "log_level: 'loud' is not one of info, warning, error"
    assert main(["config", "check", "--config", str(path)]) == 2
    assert expected in capsys.readouterr().err
    process = pixcamd_process(path)
    try:
        out, _ = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 2, out
    assert expected in out
    assert not logged(config, "daemon_started")  # refused before anything started


def test_config_check_prints_the_level_in_force(tmp_path, capsys):
    config = make_config(tmp_path, log_level="error")
    assert main(["config", "check", "--config", str(config.source)]) == 0
    assert 'log_level = "error"' in capsys.readouterr().out


def test_at_error_a_folder_gone_and_back_is_said_both_ways_on_stderr(tmp_path):
    """At "error" the journal said the inbox or the outbox gone, and never that it was back
    (``inbox_back``, ``outbox_back`` are info): the console read as a daemon still cut off.
    What closes an error said on stderr is said there too, whatever the level."""
    config = make_config(tmp_path, log_level="error", threads=1)
    process = pixcamd_process(config.source)
    try:
        wait_for(lambda: logged(config, "ready"), 60, "the daemon ready")
        config.inbox.rename(tmp_path / "inbox-away")
        wait_for(lambda: logged(config, "inbox_unavailable"), 30, "the inbox gone")
        (tmp_path / "inbox-away").rename(config.inbox)
        wait_for(lambda: logged(config, "inbox_back"), 30, "the inbox back")
        config.outbox.rename(tmp_path / "outbox-away")
        noise_photo(config.inbox / "a.png", 1)
        wait_for(lambda: logged(config, "outbox_unavailable"), 30, "the outbox gone")
        (tmp_path / "outbox-away").rename(config.outbox)
        wait_for(lambda: finished(config, ["a.png"]), 60, "the photo, the outbox back")
    finally:
        out = stop(process) if process.poll() is None else process.communicate()[0]
    assert process.returncode == 0, out
    assert [event for _, event, _ in said(out)] == [
        "inbox_unavailable",
        "inbox_back",
        "outbox_unavailable",
        "outbox_back",
    ], out
