"""The daemon in-process (its loop in a thread with a stop event): states, ledger, outbox, status,
retries, shutdown and sd_notify behaviour. Real tools and real processes: test_daemon_e2e.py."""

from __future__ import annotations

import errno
import json
import os
import shutil
import threading
import time

import numpy as np
import pytest
import torch
from PIL import Image
from test_daemon_support import (
    FakeNotifier,
    OutboxRecorder,
    events,
    finished,
    ledger_rows,
    make_config,
    no_leaked_threads,  # noqa: F401
    noise_photo,
    one_torch_thread,  # noqa: F401
    real_photo,
    running,
    sha,
    wait_for,
)

from pixcamd.check import verify_file
from pixcamd.cli import main
from pixcamd.daemon.events import EventLog
from pixcamd.daemon.ledger import Ledger
from pixcamd.daemon.service import Daemon
from pixcamd.daemon.settings import build_settings, degraded
from pixcamd.daemon.worker import Worker
from pixcamd.errors import PixcamdError

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def event_names(config, path=None) -> list[str]:
    return [e["event"] for e in events(config) if path is None or e.get("path") == path]


def test_photos_are_protected_into_a_mirrored_outbox_and_recorded(tmp_path, brisque, capsys):
    config = make_config(tmp_path)
    inbox = config.inbox
    noise_photo(inbox / "n1.png", 1)
    noise_photo(inbox / "trip" / "day 2" / "N2.PNG", 2)
    real_photo(inbox / "trip" / "real.jpg")
    originals = {p: sha(p) for p in inbox.rglob("*") if p.is_file()}
    notifier = FakeNotifier()
    with OutboxRecorder(config.outbox) as recorder, running(config, [brisque], notifier) as daemon:
        sources = ["n1.png", "trip/day 2/N2.PNG", "trip/real.jpg"]
        wait_for(lambda: finished(config, sources), 60, "three photos")
        # a second daemon of the same config is refused, told that one runs it
        with pytest.raises(PixcamdError, match="pixcamd already runs this config"):
            Daemon(config, models=[brisque]).start()
        # status works while the daemon runs
        daemon.tick()
        assert main(["status", "--config", str(config.source), "--json"]) == 0
        report = json.loads(capsys.readouterr().out)
        assert main(["status", "--config", str(config.source)]) == 0
        text = capsys.readouterr().out
    recorder.assert_clean()
    assert recorder.names() == {"n1.jpg", "trip/day 2/N2.jpg", "trip/real.jpg"}
    assert sorted(str(p.relative_to(config.outbox)) for p in config.outbox.rglob("*.jpg")) == [
        "n1.jpg",
        "trip/day 2/N2.jpg",
        "trip/real.jpg",
    ]
    assert {p: sha(p) for p in originals} == originals  # originals never modified

    rows = ledger_rows(config)
    real = rows["trip/real.jpg"]
    assert real["state"] == "done" and real["verdict"] == "protected"
    assert real["model"] == "brisque" and real["fingerprint"].startswith("s1-")
    assert real["sha256"] == originals[inbox / "trip" / "real.jpg"]
    assert real["attempts"] == 1 and real["error"] is None
    assert 20 < real["psnr"] < 60
    scores = json.loads(real["scores"])
    before, after = scores["before"]["task"], scores["after_jpeg"]["task"]
    assert before["brisque"]["center"] < 60 <= after["brisque"]["center"]
    assert scores["file"]["task"]["brisque"]["center"] >= 60
    assert json.loads(real["report"])["protected_on"] == {"task": True}
    assert set(json.loads(real["timings"])) >= {"decode", "protect", "write", "verify", "total"}
    # the published file itself is judged low quality after the task's JPEG-90
    (task,) = config.platform_pipelines
    assert verify_file(config.outbox / "trip" / "real.jpg", [brisque], ("center",), (task,)).all_low
    assert rows["n1.png"]["verdict"] == "already low quality"

    # the status log: one event per state change, with scores, PSNR and seconds
    log = [e for e in events(config) if e.get("path") == "trip/real.jpg"]
    assert [e["event"] for e in log] == ["detected", "settled", "queued", "started", "protected"]
    protected = log[-1]
    assert protected["psnr"] == real["psnr"] and protected["seconds"] > 0
    assert protected["scores"]["task"]["brisque"]["center"] >= 60 and protected["level"] == "info"
    assert protected["protected_on"] == {"task": True}
    assert protected["worst"]["pipeline"] == "task" and protected["worst"]["view"] == "center"
    assert "task: center " in protected["message"]
    assert all("ts" in e for e in log)

    # sd_notify: READY after the model is loaded and the scan is queued; STATUS=; STOPPING=1
    lines = notifier.lines()
    assert lines[0] == "READY=1" and lines[1].startswith("STATUS=model brisque")
    assert any("queue" in m for m in notifier.lines("STATUS="))
    assert "STOPPING=1" in lines

    assert report["daemon"] == "running"
    assert report["counts"]["done"] == 3 and report["counts"]["queued"] == 0
    assert report["last_hour"]["finished"] == 3 and report["model"] == "brisque"
    assert report["platforms"] == ["task (full size, JPEG 90 4:2:0)"]
    assert report["last_hour"]["protected_on"] == {"task": {"protected": 3, "judged": 3}}
    assert report["events"][-1]["event"] in ("protected", "ready")
    assert "photos: queued 0, processing 0, done 3" in text
    assert "last hour: 3 photos finished" in text
    assert "platforms: task (full size, JPEG 90 4:2:0)" in text


def test_a_custom_pipeline_from_the_config_is_protected_for_and_reported(tmp_path, brisque, capsys):
    """``[pipelines.myblog]`` (long side 600) beside the task: a 700×520 photo is served at
    600×446 by it, protected on both, and the ledger, the log and ``pixcamd status`` say so."""
    myblog = {"resize": "long 600", "quality": 80}
    config = make_config(tmp_path, platforms=["task", "myblog"], pipelines={"myblog": myblog})
    assert [p.spec() for p in config.platform_pipelines] == ["none-q90", "long600-q80"]
    real_photo(config.inbox / "blog.jpg", size=(700, 520))
    with running(config, [brisque]):
        wait_for(lambda: finished(config, ["blog.jpg"]), 120, "the photo")
    row = ledger_rows(config)["blog.jpg"]
    assert row["state"] == "done" and row["verdict"] == "protected", row["error"]
    report = json.loads(row["report"])
    assert report["protected_on"] == {"task": True, "myblog": True}
    served = {p["name"]: p["served"] for p in report["platforms"]}
    assert served == {"task": [700, 520], "myblog": [600, 446]}
    assert report["platforms"][1]["description"] == "long side 600 px (lanczos), JPEG 80 4:2:0"
    assert report["worst"]["pipeline"] in ("task", "myblog")
    scores = json.loads(row["scores"])
    for name in ("task", "myblog"):  # before: judged good somewhere; after: low everywhere
        assert scores["after_jpeg"][name]["brisque"]["center"] >= brisque.threshold
        assert scores["file"][name]["brisque"]["center"] >= brisque.threshold
    assert scores["before"]["task"]["brisque"]["center"] < brisque.threshold
    # the written file, judged independently by each real pipeline
    assert verify_file(
        config.outbox / "blog.jpg", [brisque], ("center",), config.platform_pipelines
    ).all_low
    # the log: the platforms at start; per-pipeline scores for the photo
    start = next(e for e in events(config) if e["event"] == "platforms")
    assert [p["name"] for p in start["platforms"]] == ["task", "myblog"]
    assert "myblog (long side 600 px (lanczos), JPEG 80 4:2:0)" in start["message"]
    protected = next(e for e in events(config) if e["event"] == "protected")
    assert protected["protected_on"] == {"task": True, "myblog": True}
    assert "task: center " in protected["message"] and " | myblog: center " in protected["message"]
    assert set(protected["scores"]) == {"task", "myblog"}
    # pixcamd status, text and JSON
    assert main(["status", "--config", str(config.source)]) == 0
    text = capsys.readouterr().out
    assert (
        "platforms: task (full size, JPEG 90 4:2:0); myblog (long side 600 px (lanczos), "
        "JPEG 80 4:2:0)"
    ) in text
    assert "last hour, protected per platform: task 1/1, myblog 1/1" in text
    assert main(["status", "--config", str(config.source), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["platforms"] == [
        "task (full size, JPEG 90 4:2:0)",
        "myblog (long side 600 px (lanczos), JPEG 80 4:2:0)",
    ]
    assert status["last_hour"]["protected_on"] == {
        "task": {"protected": 1, "judged": 1},
        "myblog": {"protected": 1, "judged": 1},
    }


def test_the_same_photo_in_two_albums_gets_two_copies_from_one_optimization(tmp_path, brisque):
    """Two inbox paths, the same bytes: each path its own outbox copy, the second made from the
    first's published bytes (one optimization); once the uploader took the first copy, a third
    album's copy is protected anew rather than skipped."""
    config = make_config(tmp_path)
    inbox, outbox = config.inbox, config.outbox
    real_photo(inbox / "summer" / "beach.jpg")  # a real optimization, not noise passed through
    shutil.copy(inbox / "summer" / "beach.jpg", tmp_path / "copy.jpg")
    with running(config, [brisque]):
        wait_for(lambda: finished(config, ["summer/beach.jpg"]), 60, "the first album")
        os.makedirs(inbox / "best of")
        shutil.copy(tmp_path / "copy.jpg", inbox / "best of" / "beach.jpg")
        wait_for(lambda: (outbox / "best of" / "beach.jpg").is_file(), 60, "the second copy")
        first = outbox / "summer" / "beach.jpg"
        assert sha(outbox / "best of" / "beach.jpg") == sha(first)
        os.rename(first, tmp_path / "uploaded.jpg")  # the uploader took it
        os.makedirs(inbox / "2026")
        shutil.copy(tmp_path / "copy.jpg", inbox / "2026" / "beach.jpg")
        wait_for(lambda: finished(config, ["2026/beach.jpg"]), 60, "the third album")
        wait_for(lambda: (outbox / "2026" / "beach.jpg").is_file(), 60, "the third copy")
    rows = ledger_rows(config)
    assert rows["best of/beach.jpg"]["duplicate_of"] == "summer/beach.jpg"
    assert rows["best of/beach.jpg"]["output"] == "best of/beach.jpg"
    assert rows["best of/beach.jpg"]["verdict"] == rows["summer/beach.jpg"]["verdict"]
    assert event_names(config, "summer/beach.jpg").count("started") == 1
    assert "started" not in event_names(config, "best of/beach.jpg")  # not optimized again
    assert event_names(config, "2026/beach.jpg").count("started") == 1  # its donor was gone
    for name in ("best of/beach.jpg", "2026/beach.jpg"):
        check = verify_file(outbox / name, [brisque], config.views, config.platform_pipelines)
        assert check.all_low


def test_same_content_is_not_redone_changed_content_is(tmp_path, brisque):
    config = make_config(tmp_path)
    inbox, outbox = config.inbox, config.outbox
    noise_photo(inbox / "x.png", 1)
    noise_photo(inbox / "y.png", 2)
    noise_photo(inbox / "z.png", 3)
    with running(config, [brisque]) as daemon:
        wait_for(lambda: finished(config, ["x.png", "y.png", "z.png"]), 30, "first pass")
        first_z = sha(outbox / "z.jpg")
        (outbox / "x.jpg").unlink()  # the uploader took it
        (inbox / "x.png").write_bytes((inbox / "x.png").read_bytes())  # re-synced, same bytes
        (inbox / "sub").mkdir()
        os.rename(inbox / "y.png", inbox / "sub" / "y.png")  # renamed inside the inbox
        noise_photo(inbox / "z.png", 30)  # edited: new content
        wait_for(lambda: finished(config, ["sub/y.png"]), 30, "the renamed photo")
        wait_for(lambda: event_names(config, "x.png").count("settled") == 2, 30, "x re-settled")
        wait_for(
            lambda: event_names(config, "z.png").count("protected") == 2, 30, "z protected again"
        )
        daemon.intake.scan("periodic")  # a rescan finds nothing to do
        time.sleep(1.0)
    rows = ledger_rows(config)
    assert not (outbox / "x.jpg").exists()  # not recreated
    assert event_names(config, "x.png").count("started") == 1
    # the record follows the renamed photo: its copy (y.jpg) is sub/y.png's now
    assert rows["sub/y.png"]["state"] == "done" and rows["sub/y.png"]["output"] == "y.jpg"
    assert "y.png" not in rows and rows["sub/y.png"]["duplicate_of"] is None
    assert not (outbox / "sub").exists()  # nothing written for a rename
    assert "duplicate" in event_names(config, "sub/y.png")
    assert sha(outbox / "z.jpg") != first_z  # changed content: redone, replaced
    assert rows["z.png"]["sha256"] == sha(inbox / "z.png")
    assert sorted(p.name for p in outbox.iterdir()) == ["y.jpg", "z.jpg"]


def test_a_new_photo_under_a_moved_photo_s_old_name_gets_a_copy_of_its_own(tmp_path, brisque):
    """A photo filed away into another folder keeps its copy; a different photo that then
    arrives under its old name (a reused camera counter, a second phone) is a new photo: it
    used to find the moved photo's record and replace that photo's copy with its own."""
    config = make_config(tmp_path)
    inbox, outbox = config.inbox, config.outbox
    noise_photo(inbox / "DCIM" / "IMG_0001.JPG", 1)
    with running(config, [brisque]):
        wait_for(lambda: finished(config, ["DCIM/IMG_0001.JPG"]), 30, "the first photo")
        first = sha(outbox / "DCIM" / "IMG_0001.jpg")
        (inbox / "Trip").mkdir()
        os.rename(inbox / "DCIM" / "IMG_0001.JPG", inbox / "Trip" / "IMG_0001.JPG")
        wait_for(lambda: finished(config, ["Trip/IMG_0001.JPG"]), 30, "the move")
        noise_photo(inbox / "DCIM" / "IMG_0001.JPG", 2)  # another photo, the same name
        wait_for(lambda: finished(config, ["DCIM/IMG_0001.JPG"]), 30, "the newcomer")
    rows = ledger_rows(config)
    moved, new = rows["Trip/IMG_0001.JPG"], rows["DCIM/IMG_0001.JPG"]
    assert moved["output"] == "DCIM/IMG_0001.jpg" and moved["duplicate_of"] is None
    assert sha(outbox / "DCIM" / "IMG_0001.jpg") == first  # the moved photo's copy, untouched
    assert new["state"] == "done" and new["output"] == "DCIM/IMG_0001.JPG.jpg", new
    assert sha(outbox / "DCIM" / "IMG_0001.JPG.jpg") != first
    (said,) = [e["message"] for e in events(config) if e.get("path") == "Trip/IMG_0001.JPG"
               and e["event"] == "duplicate"]  # fmt: skip
    assert said == "renamed from DCIM/IMG_0001.JPG: its copy DCIM/IMG_0001.jpg follows it; " \
        "nothing written", said  # fmt: skip


def test_a_copy_renamed_after_its_original_was_edited_keeps_its_own_copy(tmp_path, brisque):
    """P done, X a copy of it (its own copy), P edited and redone, P deleted, X renamed to E:
    E's content is no longer P's, so P's record is not E's — X's is, with its copy: E is
    neither called a duplicate of the edited photo nor shipped a second time."""
    config = make_config(tmp_path)
    inbox, outbox = config.inbox, config.outbox
    noise_photo(inbox / "P.jpg", 1)
    with running(config, [brisque]):
        wait_for(lambda: finished(config, ["P.jpg"]), 30, "P")
        shutil.copy(inbox / "P.jpg", inbox / "X.jpg")
        wait_for(lambda: finished(config, ["X.jpg"]), 30, "X")
        noise_photo(inbox / "P.jpg", 2)  # edited
        wait_for(lambda: ledger_rows(config)["P.jpg"]["sha256"] == sha(inbox / "P.jpg")
                 and finished(config, ["P.jpg"]), 30, "P again")  # fmt: skip
        (inbox / "P.jpg").unlink()
        os.rename(inbox / "X.jpg", inbox / "E.jpg")
        wait_for(lambda: finished(config, ["E.jpg"]), 30, "E")
    rows = ledger_rows(config)
    # E is X renamed: X's record, and its copy, follow it — not shipped a second time
    assert rows["E.jpg"]["duplicate_of"] is None and rows["E.jpg"]["output"] == "X.jpg", rows
    assert "X.jpg" not in rows and not (outbox / "E.jpg").exists()
    assert rows["P.jpg"]["output"] == "P.jpg"  # the edited photo's record stays its own


def test_copies_renamed_beside_their_original_take_their_own_records_along(tmp_path, brisque):
    """A copy renamed while its original stays in the inbox (as it is, or edited), and an album
    renamed with a photo and its copy in it: each new name takes the record and the outbox copy
    of the file it was — nothing is protected or shipped a second time. The copy-or-rename test
    used to look only at the original's path: there, each was taken for a new copy."""
    config = make_config(tmp_path)
    inbox, outbox = config.inbox, config.outbox
    noise_photo(inbox / "P.jpg", 1)
    noise_photo(inbox / "album" / "Q.jpg", 3)
    with running(config, [brisque]):
        wait_for(lambda: finished(config, ["P.jpg", "album/Q.jpg"]), 30, "P and Q")
        shutil.copy(inbox / "P.jpg", inbox / "X.jpg")
        shutil.copy(inbox / "album" / "Q.jpg", inbox / "album" / "Q copy.jpg")
        wait_for(lambda: finished(config, ["X.jpg", "album/Q copy.jpg"]), 30, "the copies")
        copies = {p.relative_to(outbox).as_posix(): sha(p) for p in outbox.rglob("*.jpg")}
        os.rename(inbox / "X.jpg", inbox / "Y.jpg")  # P still there, unchanged
        wait_for(lambda: finished(config, ["Y.jpg"]), 30, "Y")
        noise_photo(inbox / "P.jpg", 2)  # edited
        wait_for(lambda: ledger_rows(config)["P.jpg"]["sha256"] == sha(inbox / "P.jpg")
                 and finished(config, ["P.jpg"]), 30, "P again")  # fmt: skip
        os.rename(inbox / "Y.jpg", inbox / "Z.jpg")  # P edited, still there
        os.rename(inbox / "album", inbox / "album 2026")  # Q and its copy at once
        moved = ["Z.jpg", "album 2026/Q.jpg", "album 2026/Q copy.jpg"]
        wait_for(lambda: finished(config, moved), 30, "the renames")
        time.sleep(1.0)  # anything queued by mistake would start now
    rows = ledger_rows(config)
    assert {path: rows[path]["output"] for path in moved} == {
        "Z.jpg": "X.jpg",
        "album 2026/Q.jpg": "album/Q.jpg",
        "album 2026/Q copy.jpg": "album/Q copy.jpg",
    }, rows
    assert not {"X.jpg", "Y.jpg", "album/Q.jpg", "album/Q copy.jpg"} & set(rows)
    assert rows["Z.jpg"]["duplicate_of"] is None  # its original is another photo now
    assert rows["album 2026/Q copy.jpg"]["duplicate_of"] == "album 2026/Q.jpg"
    for path in moved:
        assert "started" not in event_names(config, path), path
    # the outbox holds what it held, and P's new copy: nothing written for a rename
    after = {p.relative_to(outbox).as_posix(): sha(p) for p in outbox.rglob("*.jpg")}
    assert after.pop("P.jpg") != copies.pop("P.jpg")
    assert after == copies
    said = [e.get("message") for e in events(config) if e.get("path") == "Z.jpg"]
    assert "renamed from Y.jpg: its copy X.jpg follows it; nothing written" in said, said


def test_a_new_copy_of_a_photo_whose_old_copy_was_deleted_gets_a_copy_of_its_own(tmp_path, brisque):
    """A copy deleted from the inbox long ago (its outbox copy taken by the uploader) is no
    record of a copy made since: only a file that keeps the old one's time was renamed."""
    config = make_config(tmp_path)
    inbox, outbox = config.inbox, config.outbox
    noise_photo(inbox / "P.jpg", 1)
    with running(config, [brisque]):
        wait_for(lambda: finished(config, ["P.jpg"]), 30, "P")
        (inbox / "old").mkdir()
        shutil.copy(inbox / "P.jpg", inbox / "old" / "C.jpg")
        wait_for(lambda: finished(config, ["old/C.jpg"]), 30, "C")
        (inbox / "old" / "C.jpg").unlink()
        (outbox / "old" / "C.jpg").unlink()  # the uploader took it
        (inbox / "new").mkdir()
        shutil.copy(inbox / "P.jpg", inbox / "new" / "N.jpg")
        wait_for(lambda: finished(config, ["new/N.jpg"]), 30, "N")
    rows = ledger_rows(config)
    assert rows["new/N.jpg"]["output"] == "new/N.jpg", rows["new/N.jpg"]
    assert (outbox / "new" / "N.jpg").is_file()


def test_photos_whose_copies_would_share_a_name_each_get_their_own(tmp_path, brisque):
    """The first to arrive keeps the plain name, the next its full one; a photo really named
    like that pushes the last one to a numbered name; names that differ only in case are one
    name (the outbox may be synced to a Mac or a Windows share). No copy replaces another's."""
    config = make_config(tmp_path)
    inbox, outbox = config.inbox, config.outbox
    arrivals = [("IMG_1.jpg", 1), ("IMG_1.png.jpg", 2), ("IMG_1.png", 3), ("img_1.JPG", 4)]
    with running(config, [brisque]):
        for name, seed in arrivals:
            noise_photo(tmp_path / name, seed)
            os.rename(tmp_path / name, inbox / name)
            wait_for(lambda name=name: finished(config, [name]), 30, name)
    rows = ledger_rows(config)
    expected = {"IMG_1.jpg": "IMG_1.jpg", "IMG_1.png.jpg": "IMG_1.png.jpg"}
    expected.update({"IMG_1.png": "IMG_1.png-2.jpg", "img_1.JPG": "img_1.JPG.jpg"})
    assert {name: rows[name]["output"] for name, _ in arrivals} == expected
    assert sorted(p.name for p in outbox.iterdir()) == sorted(expected.values())
    assert len({name.casefold() for name in expected.values()}) == len(expected)
    for source, copy in expected.items():  # each copy from its own photo (noise: kept as is)
        with Image.open(inbox / source) as a, Image.open(outbox / copy) as b:
            diff = np.abs(np.asarray(a, dtype=float) - np.asarray(b.convert("RGB"), dtype=float))
        assert diff.mean() < 20  # another photo's noise differs by ~85 on average


def test_memory_refused_mid_photo_is_said_in_words_and_retried(tmp_path, brisque, monkeypatch):
    """torch's CPU allocator refusing mid-protection (a ulimit, memory others took meanwhile):
    the photo is retried as the memory check's refusal is, said in words — not a bare
    RuntimeError from alloc_cpu.cpp."""
    import pixcamd.protect

    def greedy(image, models, settings, progress=None):
        return torch.empty(2**45, dtype=torch.uint8)  # 32 TiB: the real allocator says no

    monkeypatch.setattr(pixcamd.protect, "protect", greedy)
    config = make_config(tmp_path, max_attempts=2, retry_backoff=0.1)
    noise_photo(config.inbox / "a.png", 1)
    with running(config, [brisque]):
        wait_for(lambda: finished(config, ["a.png"]), 30, "the attempts")
    row = ledger_rows(config)["a.png"]
    assert row["state"] == "failed" and row["attempts"] == 2, row
    assert row["error"].startswith(
        "gave up after 2 attempts: NotEnoughMemory: ran out of memory mid-way through its 0.2 MP"
    ), row["error"]
    assert "alloc_cpu" not in row["error"]


@pytest.mark.parametrize("policy", ["hold", "ship"])
def test_unprotected_photos_are_held_back_or_shipped_loudly(tmp_path, brisque, capsys, policy):
    extra = {"hold_dir": str(tmp_path / "held")} if policy == "hold" else {}
    # a zero budget cannot change a pixel: a good-quality photo stays unprotected
    config = make_config(tmp_path, epsilon=0, epsilon_cap=0, on_unprotected=policy, **extra)
    real_photo(config.inbox / "good.jpg")
    with running(config, [brisque]):
        wait_for(lambda: finished(config, ["good.jpg"]), 30, "the photo")
    row = ledger_rows(config)["good.jpg"]
    assert row["state"] == "unprotected" and row["verdict"] == "unprotected"
    assert row["error"].startswith("not protected: task: center ")
    assert "worst: task center " in row["error"]
    log = [e for e in events(config) if e.get("path") == "good.jpg"][-1]
    assert log["level"] == "warning"
    if policy == "hold":
        assert not (config.outbox / "good.jpg").exists()
        assert (tmp_path / "held" / "good.jpg").is_file()
        assert row["held"] == str(tmp_path / "held" / "good.jpg") and row["output"] is None
        assert log["event"] == "unprotected" and "held back" in log["message"]
    else:
        assert (config.outbox / "good.jpg").is_file() and row["output"] == "good.jpg"
        assert log["event"] == "shipped_unprotected" and "NOT protected" in log["message"]
    from pixcamd.daemon.status import gather
    from pixcamd.daemon.status_text import render

    text = render(gather(config))
    assert "unprotected good.jpg" in text and "not protected: task: center" in text
    assert "last hour, protected per platform: task 0/1" in text


def test_transient_failures_are_retried_with_backoff_then_failed(tmp_path, brisque, monkeypatch):
    import pixcamd.protect

    real_protect = pixcamd.protect.protect
    calls: dict[str, int] = {}

    def flaky(image, models, settings, progress=None):
        key = "b" if image.size == (520, 390) else "a"
        calls[key] = calls.get(key, 0) + 1
        if key == "b" or calls[key] == 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_protect(image, models, settings, progress)

    config = make_config(tmp_path, max_attempts=3, retry_backoff=0.1)
    noise_photo(config.inbox / "a.png", 1)
    noise_photo(config.inbox / "b.png", 2, size=(520, 390))
    monkeypatch.setattr(pixcamd.protect, "protect", flaky)
    with running(config, [brisque]):
        wait_for(lambda: finished(config, ["a.png", "b.png"]), 30, "retries")
    rows = ledger_rows(config)
    assert rows["a.png"]["state"] == "done" and rows["a.png"]["attempts"] == 2
    assert rows["b.png"]["state"] == "failed" and rows["b.png"]["attempts"] == 3
    assert rows["b.png"]["error"].startswith("gave up after 3 attempts: OSError")
    assert "No space left on device" in rows["b.png"]["error"]
    retried = [e for e in events(config) if e["event"] == "retried" and e["path"] == "b.png"]
    assert [e["delay"] for e in retried] == [0.1, 0.2]  # exponential backoff
    assert calls == {"a": 2, "b": 3}
    assert not (config.outbox / "b.jpg").exists()


def test_a_failed_write_is_retried_with_the_pixels_already_protected(
    tmp_path, brisque, monkeypatch
):
    """The outbox disk was full: the retry writes the result it already has, no second
    optimization (tried: 24 MP photos took minutes each time)."""
    import pixcamd.output
    import pixcamd.protect

    real_protect, real_write = pixcamd.protect.protect, pixcamd.output.atomic_write
    calls = {"protect": 0, "write": 0}

    def counted(*args, **kwargs):
        calls["protect"] += 1
        return real_protect(*args, **kwargs)

    def full_once(*args, **kwargs):
        calls["write"] += 1
        if calls["write"] == 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(*args, **kwargs)

    monkeypatch.setattr(pixcamd.protect, "protect", counted)
    monkeypatch.setattr(pixcamd.output, "atomic_write", full_once)
    config = make_config(tmp_path, retry_backoff=0.1)
    real_photo(config.inbox / "a.jpg")
    with running(config, [brisque]):
        wait_for(lambda: finished(config, ["a.jpg"]), 60, "the retried write")
    row = ledger_rows(config)["a.jpg"]
    assert row["state"] == "done" and row["attempts"] == 2
    assert calls == {"protect": 1, "write": 2}  # optimized once, written twice
    assert "reused" in event_names(config, "a.jpg")
    check = verify_file(config.outbox / "a.jpg", [brisque], config.views, config.platform_pipelines)
    assert check.all_low


def test_gpu_out_of_memory_steps_down_to_smaller_batches_then_the_cpu(tmp_path, brisque):
    config = make_config(tmp_path)
    ledger = Ledger(config.ledger_path)
    try:
        ledger.offer("a.jpg", "h", 1, 1, "fp")
        settings = build_settings(config, [brisque], "cuda")
        log = EventLog(tmp_path / "log.jsonl", ledger, open(os.devnull, "w"))  # noqa: SIM115
        worker = Worker(config, ledger, [brisque], settings, "fp", log, tmp_path)
        assert settings.batch_size == 2
        assert degraded(settings, 1).batch_size == 1
        assert degraded(settings, 2).device == "cpu"
        row = ledger.claim_next()
        worker._transient(row, torch.cuda.OutOfMemoryError("CUDA out of memory"))
        row = ledger.get("a.jpg")
        assert (row.state, row.degrade, row.attempts) == ("queued", 1, 0)
        worker._transient(ledger.claim_next(), torch.cuda.OutOfMemoryError("CUDA out of memory"))
        assert ledger.get("a.jpg").degrade == 2
        messages = [json.loads(line)["message"] for line in log.path.read_text().splitlines()]
        assert messages == [
            "GPU out of memory; again with batch size 1",
            "GPU out of memory; again on the CPU",
        ]
        log.stream.close()
    finally:
        ledger.close()


def slow_protect(started: threading.Event, release: threading.Event | None = None):
    """A stand-in for protect() that makes steps until abandoned (or released)."""
    import pixcamd.protect

    real = pixcamd.protect.protect

    def fake(image, models, settings, progress=None):
        started.set()
        for step in range(100_000):
            progress(step, 50.0)
            if release is not None and release.is_set():
                return real(image, models, settings, progress)
            time.sleep(0.01)
        raise AssertionError("never abandoned")

    return fake


def test_a_photo_held_back_under_the_settings_a_reload_replaced_is_tried_again(
    tmp_path, brisque, monkeypatch
):
    """Reloaded while a photo was under way: it finished with the settings it started with
    (held back at a budget too small), and the reload's scan, run meanwhile, passed it over."""
    import pixcamd.protect

    started, release = threading.Event(), threading.Event()
    monkeypatch.setattr(pixcamd.protect, "protect", slow_protect(started, release))
    config = make_config(tmp_path, epsilon=0.5, epsilon_cap=0.5, steps=1)
    real_photo(config.inbox / "a.jpg")
    with running(config, [brisque]) as daemon:
        assert started.wait(30)
        text = config.source.read_text().replace("epsilon = 0.5", "epsilon = 6.0")
        config.source.write_text(text.replace("epsilon_cap = 0.5", "epsilon_cap = 12.0"))
        assert daemon.reload() is True
        new = daemon.fingerprint
        release.set()  # it finishes with the settings it started with: held back
        wait_for(lambda: ledger_rows(config)["a.jpg"]["fingerprint"] == new, 60, "a retry")
        wait_for(lambda: finished(config, ["a.jpg"]), 60, "the retry's end")
    names = event_names(config, "a.jpg")
    assert "unprotected" in names and names.count("started") == 2


def test_shutdown_lets_the_current_photo_finish_within_the_grace_time(
    tmp_path, brisque, monkeypatch
):
    import pixcamd.protect

    started, release = threading.Event(), threading.Event()
    monkeypatch.setattr(pixcamd.protect, "protect", slow_protect(started, release))
    config = make_config(tmp_path, grace_time=20)
    noise_photo(config.inbox / "a.png", 1)
    with running(config, [brisque]) as daemon:
        assert started.wait(30)
        threading.Timer(0.5, release.set).start()  # finishes well within the grace time
        daemon.stop_event.set()
        wait_for(lambda: daemon._closed, 30, "shutdown")
    assert ledger_rows(config)["a.png"]["state"] == "done"
    assert (config.outbox / "a.jpg").is_file()


def test_shutdown_abandons_cleanly_after_the_grace_time(tmp_path, brisque, monkeypatch):
    import pixcamd.protect

    started = threading.Event()
    monkeypatch.setattr(pixcamd.protect, "protect", slow_protect(started))
    config = make_config(tmp_path, grace_time=0.2)
    noise_photo(config.inbox / "a.png", 1)
    with running(config, [brisque]) as daemon:
        assert started.wait(30)  # never released: only the grace time ends the stop
        t0 = time.monotonic()
    # which grace ended it: this config's 0.2 s, not make_config's 20 s (not a speed target)
    assert time.monotonic() - t0 < 10
    row = ledger_rows(config)["a.png"]
    assert (row["state"], row["attempts"], row["output"]) == ("queued", 0, None)
    assert not list(config.outbox.iterdir())
    assert not list((config.state_dir / "tmp").iterdir())
    assert event_names(config, "a.png")[-1] == "abandoned"
    assert daemon.clean_exit


def test_watchdog_pings_only_while_the_worker_makes_progress(tmp_path, brisque, monkeypatch):
    import pixcamd.protect

    stuck, release = threading.Event(), threading.Event()

    def hang(image, models, settings, progress=None):
        progress(1, 50.0)
        stuck.set()
        release.wait(30)  # one step that never ends (no progress reported)
        raise OSError(errno.EIO, "gave up")

    monkeypatch.setattr(pixcamd.protect, "protect", hang)
    notifier = FakeNotifier(watchdog=0.4)
    config = make_config(tmp_path, max_attempts=1)
    with running(config, [brisque], notifier):
        time.sleep(1.0)  # idle: pings
        idle_pings = len(notifier.lines("WATCHDOG=1"))
        noise_photo(config.inbox / "a.png", 1)
        assert stuck.wait(30)
        time.sleep(0.6)  # past the watchdog interval: pings stop
        count = len(notifier.lines("WATCHDOG=1"))
        time.sleep(1.0)
        stalled_pings = len(notifier.lines("WATCHDOG=1")) - count
        release.set()
        wait_for(lambda: finished(config, ["a.png"]), 30, "the failure")
        count = len(notifier.lines("WATCHDOG=1"))
        time.sleep(1.0)
        resumed = len(notifier.lines("WATCHDOG=1")) - count
    assert idle_pings >= 2
    assert stalled_pings == 0
    assert resumed >= 1
    statuses = notifier.lines("STATUS=")
    assert any("protecting a.png" in s for s in statuses)
    assert ledger_rows(config)["a.png"]["state"] == "failed"


def test_recovery_after_a_crash_finishes_publications_and_requeues(tmp_path, brisque):
    config = make_config(tmp_path)
    tmp = config.state_dir / "tmp"
    tmp.mkdir(parents=True)
    noise_photo(config.inbox / "published.png", 1)
    noise_photo(config.inbox / "committing.png", 2)
    noise_photo(config.inbox / "midway.png", 3)
    ledger = Ledger(config.ledger_path)
    for name in ("published.png", "committing.png", "midway.png"):
        p = config.inbox / name
        ledger.offer(name, sha(p), p.stat().st_size, p.stat().st_mtime_ns, "fp")
    # crashed after the rename: staged file gone, output published (and maybe already uploaded)
    row = ledger.claim_next()
    final = {"state": "done", "output": "published.jpg", "verdict": "protected"}
    ledger.prepare_commit(row.id, str(tmp / "gone.jpg"), "published.jpg", "0" * 64, final)
    # crashed between the commit record and the rename: the staged copy is complete
    row = ledger.claim_next()
    noise_photo(tmp / "stage-2-1.jpg", 20)
    staged_sha = sha(tmp / "stage-2-1.jpg")
    final = {"state": "done", "output": "committing.jpg", "verdict": "protected"}
    ledger.prepare_commit(row.id, str(tmp / "stage-2-1.jpg"), "committing.jpg", staged_sha, final)
    # crashed mid-protection: a half-written temp file is left behind
    ledger.claim_next()
    (tmp / ".pixcamd-half.part").write_bytes(b"\xff\xd8 half")
    ledger.close()
    with OutboxRecorder(config.outbox) as recorder, running(config, [brisque]):
        wait_for(lambda: finished(config, ["midway.png"]), 30, "the requeued photo")
    recorder.assert_clean()
    rows = ledger_rows(config)
    assert rows["published.png"]["state"] == "done"
    assert not (config.outbox / "published.jpg").exists()  # not redone, not recreated
    assert rows["committing.png"]["state"] == "done" and rows["committing.png"]["staged"] is None
    assert sha(config.outbox / "committing.jpg") == staged_sha  # the rename was finished
    assert rows["midway.png"]["state"] == "done" and rows["midway.png"]["attempts"] == 2
    assert (config.outbox / "midway.jpg").is_file()
    assert not list(tmp.iterdir())  # swept
    assert recorder.names() == {"committing.jpg", "midway.jpg"}
    assert event_names(config).count("recovered") == 3


def test_auto_model_falls_back_to_brisque_loudly(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "empty-cache"))
    monkeypatch.delenv("CACHE_DIRECTORY", raising=False)
    config = make_config(tmp_path, model="auto", device="cpu")
    noise_photo(config.inbox / "a.png", 1)
    notifier = FakeNotifier()
    with running(config, None, notifier):
        wait_for(lambda: finished(config, ["a.png"]), 30, "a.png")
    assert ledger_rows(config)["a.png"]["model"] == "brisque (auto fallback)"
    model_event = next(e for e in events(config) if e["event"] == "model")
    assert model_event["level"] == "warning" and model_event["fallback"] is True
    assert "model auto → BRISQUE (embedded)" in model_event["message"]
    assert "pixcamd model fetch" in model_event["message"]
    assert notifier.lines("STATUS=")[0].startswith("STATUS=model auto → BRISQUE (embedded)")
    from pixcamd.daemon.status import gather
    from pixcamd.daemon.status_text import render

    report = gather(config)
    assert report["model_fallback"] and report["daemon"] == "stopped"
    assert "FALLBACK: model auto → BRISQUE" in render(report)


def test_tmp_dir_is_never_inside_the_outbox_and_cleaned(tmp_path, brisque):
    """What a dead attempt left in the temp folder goes at the start, and what pixcamd did not
    write there stays (before: the whole folder was emptied — with tmp_dir set to the folder
    above the inbox, the originals)."""
    work = tmp_path / "work"
    config = make_config(tmp_path, tmp_dir=str(work))
    work.mkdir()
    for name in ("stage-3-1.jpg", "ship-4-999.jpg", ".pixcamd-x1y2.part"):  # dead attempts
        (work / name).write_bytes(b"partial")
    (work / "notes.txt").write_text("mine")
    (work / "2019").mkdir()
    (work / "2019" / "IMG_1.jpg").write_bytes(b"a photo of mine")
    noise_photo(config.inbox / "a.png", 1)
    with running(config, [brisque]):
        wait_for(lambda: finished(config, ["a.png"]), 30, "a.png")
    assert sorted(p.name for p in work.iterdir()) == ["2019", "notes.txt"]
    assert (work / "2019" / "IMG_1.jpg").read_bytes() == b"a photo of mine"
    shutil.rmtree(work)


def test_lost_events_are_made_up_by_scans(tmp_path, brisque):
    """inotify overflow (watchdog logs it) and a dead watcher both lead to a scan at once."""
    import logging

    config = make_config(tmp_path)  # no periodic rescans
    with running(config, [brisque]) as daemon:
        daemon.intake.observer.unschedule_all()  # from now on the watcher hears nothing
        noise_photo(config.inbox / "lost.png", 1)
        time.sleep(1.0)
        assert "lost.png" not in ledger_rows(config)
        logging.getLogger("watchdog.observers.inotify_c").warning(
            "Inotify queue overflowed; filesystem events were lost"
        )
        wait_for(lambda: finished(config, ["lost.png"]), 30, "the overflow rescan")
        daemon.intake.observer.stop()  # the watcher thread dies
        daemon.intake.observer.join(5)
        noise_photo(config.inbox / "later.png", 2)
        wait_for(lambda: finished(config, ["later.png"]), 30, "the restarted watcher")
    scans = [e["message"] for e in events(config) if e["event"] == "scanned"]
    assert scans[:2] == [
        "start-up scan: 0 photos (0 new or changed)",
        "inotify overflow scan: 1 photos (1 new or changed)",
    ]
    assert scans[2].startswith("watcher restart scan")
    restarted = next(e for e in events(config) if e["event"] == "watching")
    assert restarted["level"] == "warning" and "restarting" in restarted["message"]
    assert not logging.getLogger("watchdog.observers").handlers  # removed at shutdown


def test_the_log_says_the_gps_position_was_removed(tmp_path, brisque, corpus_dir):
    config = make_config(tmp_path)
    shutil.copy(corpus_dir / "exif" / "FurnaceCreekInn.jpg", config.inbox / "inn.jpg")
    with running(config, [brisque]):
        wait_for(lambda: finished(config, ["inn.jpg"]), 60, "the photo")
    (shipped,) = [e for e in events(config) if e.get("path") == "inn.jpg" and e.get("output")]
    assert "metadata: EXIF GPS position removed (strip_gps)" in shipped["message"]
    assert any("GPS" in note for note in shipped["metadata_notes"])


def test_strip_metadata_ships_copies_with_only_the_colour_profile(tmp_path, brisque):
    """strip_metadata = true: exiftool finds no EXIF, XMP, IPTC, serial number nor owner in
    the copy, only the ICC profile, and no position (strip_gps = false beside it is refused:
    test_daemon_config)."""
    from test_photo_io import ENCODING_GROUPS, IDENTIFYING, exiftool_tags, private_camera_jpeg

    config = make_config(tmp_path, strip_metadata=True)
    before = exiftool_tags(private_camera_jpeg(config.inbox / "camera.jpg"))
    with running(config, [brisque]):
        wait_for(lambda: finished(config, ["camera.jpg"]), 60, "the photo")
    copy = config.outbox / "camera.jpg"
    after, data = exiftool_tags(copy), copy.read_bytes()
    groups = {key.partition(":")[0] for key in after}
    assert {g for g in groups if not g.startswith("ICC")} <= ENCODING_GROUPS, groups
    assert before["ICC_Profile:ProfileDescription"] != "sRGB built-in"  # its maker's name
    assert after["ICC_Profile:ProfileDescription"] == "sRGB built-in"  # pixcamd's own sRGB
    assert not [k for k in after if "GPS" in k] and "File:Comment" not in after
    for secret in (*IDENTIFYING.values(), "Ada Lovelace", "Pixcam", "Harbour"):
        assert secret.encode() not in data, secret
    (shipped,) = [e for e in events(config) if e.get("path") == "camera.jpg" and e.get("output")]
    assert "all metadata removed" in shipped["message"]


def test_what_the_decoder_changed_is_logged_and_kept_with_the_photo(tmp_path, brisque):
    """A transparent PNG is flattened onto white for the JPEG copy: the daemon says so, as the
    command line does, instead of leaving it to a debug line nobody sees."""
    config = make_config(tmp_path)
    rgb = noise_photo(tmp_path / "noise.png", 3)
    with Image.open(rgb) as img:
        rgba = img.convert("RGBA")
    rgba.putalpha(Image.new("L", rgba.size, 128))  # half transparent everywhere
    rgba.save(config.inbox / "see-through.png")
    with running(config, [brisque]):
        wait_for(lambda: finished(config, ["see-through.png"]), 60, "the photo")
    (note,) = [e for e in events(config) if e["event"] == "photo_note"]
    assert note["path"] == "see-through.png" and "transparent" in note["message"]
    row = ledger_rows(config)["see-through.png"]
    assert row["state"] == "done" and json.loads(row["report"])["warnings"] == [note["message"]]


def test_a_photo_too_big_for_the_memory_left_fails_clearly_not_the_daemon(
    tmp_path, brisque, monkeypatch
):
    # The kernel's OOM killer would end the whole daemon mid-photo; the check before the photo
    # says it, retries with the back-off (memory may be freed), and gives up with the figures.
    import pixcamd.devices

    free = {"bytes": 50_000_000}  # 50 MB left: less than any photo needs
    monkeypatch.setattr(pixcamd.devices, "available_memory", lambda: free["bytes"])
    config = make_config(tmp_path, max_attempts=2, retry_backoff=0.1)
    noise_photo(config.inbox / "big.png", 1, size=(1200, 1000))
    with running(config, [brisque]):
        wait_for(lambda: finished(config, ["big.png"]), 30, "the refusal")
        free["bytes"] = 8_000_000_000  # memory freed: a retry goes through
        noise_photo(config.inbox / "later.png", 2)
        wait_for(lambda: finished(config, ["later.png"]), 30, "the next photo")
    rows = ledger_rows(config)
    assert rows["big.png"]["state"] == "failed" and rows["big.png"]["attempts"] == 2
    error = rows["big.png"]["error"]
    assert error.startswith("gave up after 2 attempts: NotEnoughMemory: needs about 0.7 GB")
    assert "for its 1.2 MP, and 0.1 GB is available" in error and "max_pixels" in error
    assert rows["later.png"]["state"] == "done"


def test_a_photo_wider_than_a_jpeg_can_be_is_refused_from_its_header_when_settled(
    tmp_path, brisque
):
    # its copy would be a JPEG of its size: refused from its header at the settle check, as a
    # photo over max_pixels is (not held as undecodable while it may still be arriving)
    from PIL import Image

    config = make_config(tmp_path, settle_time=0.2)
    Image.new("RGB", (66_000, 8), (90, 120, 200)).save(config.inbox / "strip.png")
    with running(config, [brisque]):
        wait_for(lambda: finished(config, ["strip.png"]), 30, "the refusal")
    (settled,) = [e for e in events(config) if e["event"] == "settled"]
    assert "66000×8 px: the protected copy is a JPEG" in settled["message"]
    assert "JPEG takes at most 65,500 px a side" in settled["message"]
    row = ledger_rows(config)["strip.png"]
    assert row["state"] == "failed" and row["attempts"] == 1 and "65,500 px a side" in row["error"]
