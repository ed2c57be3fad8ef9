"""Folder runs: ``pixcamd protect FOLDER --outdir DIR`` on real trees, resumed, interrupted."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tinybiqa import synthetic_photo

from pixcamd.cli import main
from pixcamd.daemon.ledger_file import read_only

FAST = ["--model", "brisque", "--views", "center", "--steps", "20", "--platforms", "task"]


@pytest.fixture
def album(tmp_path) -> Path:
    """2019/ with a sub-folder, a non-photo, an ignored sync temp file and a symlink out."""
    root = tmp_path / "2019"
    (root / "May").mkdir(parents=True)
    synthetic_photo(800, 600, 0).save(root / "beach.png")
    synthetic_photo(800, 600, 1).save(root / "May" / "garden.jpg", quality=95)
    (root / "notes.txt").write_text("not a photo")
    synthetic_photo(64, 48, 2).save(root / ".syncthing.beach.png.tmp", format="PNG")
    synthetic_photo(64, 48, 4).save(root / "May" / ".hidden.jpg")  # hidden by its name: said
    outside = tmp_path / "elsewhere.jpg"
    synthetic_photo(640, 480, 3).save(outside, quality=95)
    (root / "link.jpg").symlink_to(outside)
    return root


def run(capsys, *args) -> tuple[int, list[dict], dict, str]:
    """The exit status, the photos' JSON reports (the refused files' lines left out), the
    summary, and stderr."""
    code = main(["protect", "--json", *map(str, args)])
    out = capsys.readouterr()
    lines = [json.loads(line) for line in out.out.splitlines()]
    reports = [line for line in lines[:-1] if "refused" not in line]
    return code, reports, lines[-1]["summary"], out.err


def copies(outdir: Path) -> dict[str, int]:
    """Every copy under the outdir (the record folder left out) → its mtime."""
    return {
        p.relative_to(outdir).as_posix(): p.stat().st_mtime_ns
        for p in outdir.rglob("*")
        if p.is_file() and ".pixcamd" not in p.parts
    }


def test_a_folder_is_mirrored_and_a_rerun_does_no_work_twice(tmp_path, album, capsys):
    outdir = tmp_path / "out"
    code, reports, summary, err = run(capsys, album, "--outdir", outdir, *FAST)
    assert code == 1, err  # the symlink out of the folder is refused, and said so
    assert "link.jpg: refused: a symlink that leads out of the folder" in err
    assert "2 other files left alone" in err  # notes.txt and the sync tool's temp file
    assert f"{album / 'May' / '.hidden.jpg'}: left alone for its name" in err
    assert sorted(copies(outdir)) == ["2019/May/garden.jpg", "2019/beach.jpg"]
    assert {r["verdict"] for r in reports} == {"protected"}
    assert summary | {"photos_per_hour": None} == {
        "photos": 2,
        "protected": 2,
        "unprotected": 0,
        "failed": 0,
        "refused": 1,  # the symlink out
        "left": 0,
        "from_earlier_run": 0,
        "photos_per_hour": None,
    }
    assert summary["photos_per_hour"] > 0
    with Image.open(outdir / "2019" / "beach.jpg") as written:
        assert written.format == "JPEG" and written.size == (800, 600)
    (album / "link.jpg").unlink()  # the user removes what was refused

    before = copies(outdir)
    code, reports, summary, err = run(capsys, album, "--outdir", outdir, *FAST)
    assert code == 0, err
    assert all(r.get("earlier") for r in reports) and summary["from_earlier_run"] == 2
    assert copies(outdir) == before  # nothing rewritten
    assert "done by an earlier run" in err

    # one photo changes: only it is done again; other settings: every photo again
    synthetic_photo(800, 600, 7).save(album / "May" / "garden.jpg", quality=95)
    code, reports, summary, err = run(capsys, album, "--outdir", outdir, *FAST)
    assert code == 0, err
    assert [Path(r["path"]).name for r in reports if not r.get("earlier")] == ["garden.jpg"]
    assert copies(outdir)["2019/beach.jpg"] == before["2019/beach.jpg"]
    assert copies(outdir)["2019/May/garden.jpg"] != before["2019/May/garden.jpg"]
    code, reports, summary, err = run(capsys, album, "--outdir", outdir, *FAST, "--epsilon", "5")
    assert code == 0, err
    assert summary["from_earlier_run"] == 0 and summary["protected"] == 2


def test_failures_are_retried_and_the_same_photo_twice_is_optimized_once(
    tmp_path, capsys, monkeypatch
):
    root = tmp_path / "trip"
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    synthetic_photo(800, 600, 8).save(root / "a" / "sea.jpg", quality=95)
    (root / "b" / "sea.jpg").write_bytes((root / "a" / "sea.jpg").read_bytes())  # two albums
    (root / "b" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a whole jpeg")
    outdir = tmp_path / "out"

    import pixcamd.protect

    calls = []
    real = pixcamd.protect.protect

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(pixcamd.protect, "protect", counted)
    code, reports, summary, err = run(capsys, root, "--outdir", outdir, *FAST)
    assert code == 1
    assert len(calls) == 1  # the second sea.jpg is the first one's copy
    a, b = (outdir / "trip" / "a" / "sea.jpg"), (outdir / "trip" / "b" / "sea.jpg")
    assert a.read_bytes() == b.read_bytes()
    assert any("same photo as trip/a/sea.jpg" in line for line in err.splitlines())
    (failed,) = [r for r in reports if "error" in r]
    assert "broken.jpg" in failed["path"] and "cannot decode" in failed["error"]
    assert summary["failed"] == 1 and summary["protected"] == 2

    # the failure is tried again on the next run (and fails again, said again)
    code, reports, summary, err = run(capsys, root, "--outdir", outdir, *FAST)
    assert code == 1 and summary["failed"] == 1 and summary["from_earlier_run"] == 2
    # the user replaces the broken file: now it is protected
    synthetic_photo(800, 600, 10).save(root / "b" / "broken.jpg", quality=95)
    code, reports, summary, err = run(capsys, root, "--outdir", outdir, *FAST)
    assert code == 0, err
    assert (outdir / "trip" / "b" / "broken.jpg").is_file()
    db = read_only(outdir / ".pixcamd" / "ledger.sqlite")
    states = dict(db.execute("SELECT path, state FROM photos").fetchall())
    assert states == {
        "trip/a/sea.jpg": "done",
        "trip/b/sea.jpg": "done",
        "trip/b/broken.jpg": "done",
    }


def made_from(copy: Path, sources: list[Path]) -> Path:
    """The source whose pixels the copy is closest to (the copies differ from their own
    photo by a few grey levels, from the others by far more)."""
    with Image.open(copy) as c:
        pixels = np.asarray(c.convert("RGB"), dtype=np.float64)

    def distance(source: Path) -> float:
        with Image.open(source) as s:
            return float(np.abs(np.asarray(s.convert("RGB"), dtype=np.float64) - pixels).mean())

    return min(sources, key=distance)


def test_photos_whose_copies_would_share_a_name_each_get_their_own(tmp_path, capsys):
    # a phone's HEIC beside its JPEG export, as sync folders have them: the JPEG keeps the
    # plain name, the other its full one; a photo really named like that takes the next
    root = tmp_path / "phone"
    root.mkdir()
    jpg, png, odd = root / "IMG_1.JPG", root / "IMG_1.png", root / "IMG_1.png.jpg"
    synthetic_photo(640, 480, 21).save(png)
    synthetic_photo(640, 480, 22).save(jpg, quality=95)
    synthetic_photo(640, 480, 23).save(odd, quality=95)
    outdir = tmp_path / "out"
    code, reports, summary, err = run(capsys, root, "--outdir", outdir, *FAST)
    assert code == 0, err
    names = {"phone/IMG_1.jpg": jpg, "phone/IMG_1.png.jpg": odd, "phone/IMG_1.png-2.jpg": png}
    assert sorted(copies(outdir)) == sorted(names)
    sources = [jpg, png, odd]
    assert {name: made_from(outdir / name, sources) for name in names} == names
    assert {r["output"] for r in reports} == {str(outdir / n) for n in names}
    before = copies(outdir)
    code, reports, summary, err = run(capsys, root, "--outdir", outdir, *FAST)
    assert code == 0 and summary["from_earlier_run"] == 3 and copies(outdir) == before

    # a copy published by an earlier run keeps its name when a JPEG of the same name arrives
    synthetic_photo(640, 480, 24).save(root / "IMG_2.png")
    code, reports, summary, err = run(capsys, root, "--outdir", outdir, *FAST)
    assert code == 0 and sorted(copies(outdir)) == sorted([*names, "phone/IMG_2.jpg"])
    synthetic_photo(640, 480, 25).save(root / "IMG_2.jpg", quality=95)
    first = copies(outdir)["phone/IMG_2.jpg"]
    code, reports, summary, err = run(capsys, root, "--outdir", outdir, *FAST)
    assert code == 0, err
    assert copies(outdir)["phone/IMG_2.jpg"] == first  # not overwritten by the new photo
    two = [root / "IMG_2.png", root / "IMG_2.jpg"]
    assert made_from(outdir / "phone" / "IMG_2.jpg", two) == root / "IMG_2.png"
    assert made_from(outdir / "phone" / "IMG_2.jpg.jpg", two) == root / "IMG_2.jpg"


def test_copy_names_that_differ_only_in_case_or_accent_form_are_one_name(tmp_path, capsys):
    # an outdir on a Mac, a Windows share or a FAT card (or synced to one) takes Beach.jpg and
    # beach.jpg, or café in its two Unicode spellings, for one file: each photo its own copy
    root = tmp_path / "trip"
    root.mkdir()
    composed, decomposed = "caf\u00e9.jpg", "cafe\u0301.jpg"
    named = ["Beach.jpg", "beach.JPG", "BEACH.png", composed, decomposed]
    for seed, name in enumerate(named, 31):
        synthetic_photo(640, 480, seed).save(root / name, quality=95)
    outdir = tmp_path / "out"
    code, reports, summary, err = run(capsys, root, "--outdir", outdir, *FAST)
    assert code == 0 and summary["failed"] == 0, err
    names = {
        "trip/Beach.jpg": "Beach.jpg",
        "trip/beach.JPG.jpg": "beach.JPG",
        "trip/BEACH.png.jpg": "BEACH.png",
        f"trip/{decomposed}": decomposed,  # first by code point: e (U+0065) before é
        f"trip/{composed}.jpg": composed,
    }
    assert sorted(copies(outdir)) == sorted(names)
    assert sorted(r["output"] for r in reports) == sorted(str(outdir / n) for n in names)
    sources = [root / name for name in named]
    made = {name: made_from(outdir / name, sources) for name in names}
    assert made == {name: root / source for name, source in names.items()}
    before = copies(outdir)
    code, _, summary, err = run(capsys, root, "--outdir", outdir, *FAST)
    assert code == 0 and summary["from_earlier_run"] == 5 and copies(outdir) == before


def test_a_run_killed_while_its_record_is_first_made_leaves_nothing_refused(tmp_path, capsys):
    """SIGKILL at the ledger's first write (strace injects it) used to leave an empty ledger
    file, refused as damaged by every later run ("protect into another --outdir") though
    nothing was ever recorded. A new ledger is made whole under another name, then renamed."""
    import shutil

    strace = shutil.which("strace")
    if strace is None or subprocess.run([strace, "-o", "/dev/null", "true"]).returncode:
        pytest.skip("needs strace, allowed to trace here")
    root = tmp_path / "trip"
    root.mkdir()
    synthetic_photo(640, 480, 5).save(root / "a.png")
    outdir = tmp_path / "out"
    ledger = outdir / ".pixcamd" / "ledger.sqlite"
    inject = [strace, "-f", "-o", "/dev/null", "-e", "inject=pwrite64:signal=KILL:when=1"]
    protect = [sys.executable, "-m", "pixcamd", "protect", str(root), "--outdir", str(outdir)]
    killed = subprocess.run(
        [*inject, "-P", str(ledger), "-P", f"{ledger}.new", *protect, *FAST],
        capture_output=True,
        text=True,
    )
    assert killed.returncode != 0 and not copies(outdir), killed.stderr
    code, _, summary, err = run(capsys, root, "--outdir", outdir, *FAST)
    assert code == 0 and summary["protected"] == 1, err


def test_a_name_a_sync_respelled_keeps_its_record_and_copy(tmp_path, capsys):
    """A Mac's sync rewrites café (é composed) as cafe + ◌́: the same name, so a run after it
    finds the photo done with its copy — not a second copy beside the first. A photo of the
    same bytes under another name is still a copy of its own."""
    root = tmp_path / "trip"
    root.mkdir()
    composed, decomposed = "caf\u00e9.png", "cafe\u0301.png"
    synthetic_photo(640, 480, 5).save(root / composed)
    outdir = tmp_path / "out"
    code, _, summary, err = run(capsys, root, "--outdir", outdir, *FAST)
    assert code == 0 and summary["protected"] == 1, err
    before = copies(outdir)
    assert list(before) == ["trip/caf\u00e9.jpg"]
    os.rename(root / composed, root / decomposed)
    code, reports, summary, err = run(capsys, root, "--outdir", outdir, *FAST)
    assert code == 0 and summary["from_earlier_run"] == 1, err
    assert reports[0]["earlier"] and reports[0]["output"] == str(outdir / "trip/caf\u00e9.jpg")
    assert copies(outdir) == before
    os.link(root / decomposed, root / "renamed.png")  # a photo under another name
    code, _, summary, err = run(capsys, root, "--outdir", outdir, *FAST)
    assert code == 0 and summary["from_earlier_run"] == 1, err
    assert sorted(copies(outdir)) == ["trip/caf\u00e9.jpg", "trip/renamed.jpg"]
    assert {k: v for k, v in copies(outdir).items() if k in before} == before


def test_plain_lines_when_not_a_terminal_and_ctrl_c_stops_cleanly(tmp_path, capsys):
    """A real ``pixcamd protect`` process: lines on a pipe; a second run into its outdir
    meanwhile is refused; SIGINT mid-run leaves no partial file and the same command continues
    where it stopped."""
    root = tmp_path / "big"
    root.mkdir()
    for k, seed in enumerate((0, 1, 2, 7)):
        synthetic_photo(800, 600, seed).save(root / f"p{k}.png")
    outdir = tmp_path / "out"
    command = [sys.executable, "-m", "pixcamd", "protect", str(root), "--outdir", str(outdir)]
    command += [*FAST, "--steps", "60", "--threads", "1"]
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    # Ctrl-C as at a terminal: a test run started in the background (``cmd &`` in a script)
    # hands its children SIGINT ignored, and a program keeps that, as it should.
    proc = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    first = proc.stdout.readline()  # the first photo's line: then interrupt the second
    assert "PROTECTED" in first and "→" in first, first
    # two runs would each protect every photo and sweep each other's staged copies
    assert main(["protect", str(root), "--outdir", str(outdir), *FAST]) == 2
    said = capsys.readouterr().err
    assert f"another pixcamd protect (pid {proc.pid}) is protecting into this" in said, said
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "run the same command again to continue" in err
    assert "\r" not in first + out  # plain lines, no bar drawn on a pipe
    done = copies(outdir)
    assert 1 <= len(done) < 4
    leftovers = [p for p in (outdir / ".pixcamd" / "tmp").iterdir()]
    assert not leftovers and all(n.endswith(".jpg") for n in done)

    again = subprocess.run([*command, "--json"], capture_output=True, text=True, env=env)
    assert again.returncode == 0, again.stderr
    lines = [json.loads(line) for line in again.stdout.splitlines()]
    redone = [r for r in lines[:-1] if not r.get("earlier")]
    assert len(redone) == 4 - len(done)  # what the first run finished is not done again
    assert lines[-1]["summary"]["protected"] == 4
    assert len(copies(outdir)) == 4


@pytest.mark.parametrize("columns", [160, 0])
def test_on_a_terminal_one_overall_bar_and_the_current_photos_steps(tmp_path, columns):
    """Stderr on a real pseudo-terminal: tqdm's bar with the counts and rate, and the current
    photo's step line. One that says it has 0 columns (a pty no one sized: `script` from cron,
    a console before its first resize) is drawn 80 wide: tqdm drew nothing there, so a run
    sat silent until each photo's result."""
    import fcntl
    import pty
    import struct
    import termios

    root = tmp_path / "few"
    root.mkdir()
    for k, seed in enumerate((0, 1)):
        synthetic_photo(800, 600, seed).save(root / f"p{k}.png")
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30 if columns else 0, columns, 0, 0))
    command = [sys.executable, "-m", "pixcamd", "protect", str(root), "--outdir"]
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    proc = subprocess.Popen(
        [*command, str(tmp_path / "out"), *FAST],
        stdout=slave,
        stderr=slave,
        close_fds=True,
        env=env | {"TERM": "xterm"},
    )
    os.close(slave)
    screen = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # the other side closed
            break
        if not chunk:
            break
        screen += chunk
    assert proc.wait(timeout=120) == 0
    text = screen.decode()
    assert "2/2 [" in text and "2 protected, 0 unprotected, 0 failed" in text
    assert "p0.png: step 1, worst view" in text
    assert "/h]" in text or not columns  # photos per hour (cut at 80 columns)


def test_cluster_flags_without_a_folder_run_are_refused(tmp_path, album, capsys):
    out = tmp_path / "o.jpg"
    assert main(["protect", str(album / "beach.png"), "-o", str(out), "--ray", "local"]) == 2
    assert "--ray works with --outdir" in capsys.readouterr().err
    assert main(["protect", str(album), "--outdir", str(tmp_path / "x"), "--workers", "2"]) == 2
    assert "--workers is for --ray" in capsys.readouterr().err
    assert main(["protect", str(album), "-o", str(out)]) == 2
    assert "use --outdir DIR to protect folders" in capsys.readouterr().err
    assert main(["protect", str(album), "--outdir", str(tmp_path / "x"), "--ray", ""]) == 2
    assert "--ray needs an address" in capsys.readouterr().err  # not a silent local run
    assert not out.exists() and not (tmp_path / "x").exists()


def test_an_output_folder_that_cannot_take_the_copies_is_said_before_any_work(
    tmp_path, album, capsys
):
    blocker = tmp_path / "notes.txt"
    blocker.write_text("not a folder")
    for outdir, said in [
        (blocker, f"{blocker}: is a file, not a folder"),
        (blocker / "copies", f"{blocker / 'copies'}: cannot be created: {blocker} is a file"),
    ]:
        assert main(["protect", str(album), "--outdir", str(outdir), *FAST]) == 2
        err = capsys.readouterr().err
        assert said in err and "Traceback" not in err and "model brisque" not in err


def test_a_folder_inside_the_output_folder_is_refused_not_skipped(tmp_path, album, capsys):
    # Everything under the output folder is taken for copies: a folder of photos there would
    # otherwise come out as "0 photos" with nothing said about them.
    inside = tmp_path / "2019" / "May"
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    for outdir in (tmp_path / "2019", tmp_path):
        assert main(["protect", str(inside), "--outdir", str(outdir), *FAST]) == 2
        err = capsys.readouterr().err
        assert f"{inside}: is inside the output folder {outdir}" in err
        assert "choose an output folder outside it" in err
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before  # nothing written


def test_a_pipe_or_a_symlink_loop_in_a_folder_is_refused_and_the_rest_protected(
    tmp_path, album, capsys
):
    os.mkfifo(album / "May" / "pipe.jpg")  # reading it would wait for ever
    (album / "x.jpg").symlink_to(album / "y.jpg")
    (album / "y.jpg").symlink_to(album / "x.jpg")
    (album / "broken.jpg").symlink_to(album / "nowhere.jpg")
    latin1 = album / os.fsdecode(b"caf\xe9.jpg")  # no ledger key can hold its name
    latin1.write_bytes((album / "May" / "garden.jpg").read_bytes())
    outdir = tmp_path / "out"
    code, _, summary, err = run(capsys, album, "--outdir", outdir, *FAST)
    assert code == 1 and "Traceback" not in err and summary["protected"] == 2
    assert f"{album / 'May' / 'pipe.jpg'}: refused: not a regular file" in err
    assert f"{album / 'x.jpg'}: refused: unusable symlink" in err
    assert f"{album / 'broken.jpg'}: refused: a symlink to nothing" in err
    shown = f"{album}/caf\\xe9.jpg"  # its bytes, as a terminal can show them
    assert f"{shown}: refused: its name is not valid UTF-8" in err
    assert (outdir / "2019" / "beach.jpg").is_file() and (
        outdir / "2019" / "May" / "garden.jpg"
    ).is_file()


def test_a_copy_deleted_from_the_outdir_is_made_again_on_the_next_run(tmp_path, album, capsys):
    outdir = tmp_path / "out"
    assert run(capsys, album, "--outdir", outdir, *FAST)[0] == 1  # the symlink out: refused
    gone = outdir / "2019" / "May" / "garden.jpg"
    kept = outdir / "2019" / "beach.jpg"
    first, mtime = gone.read_bytes(), kept.stat().st_mtime_ns
    gone.unlink()
    code, reports, summary, _ = run(capsys, album, "--outdir", outdir, *FAST)
    assert code == 1 and gone.read_bytes() == first  # the same settings: the same copy, its name
    assert kept.stat().st_mtime_ns == mtime  # the other one untouched
    redone = next(r for r in reports if r["path"].endswith("garden.jpg"))
    assert not redone.get("earlier") and redone["output"] == str(gone)
    assert summary["from_earlier_run"] == 1


def test_a_photo_given_twice_is_protected_once_and_said(tmp_path, album, capsys):
    outdir = tmp_path / "out"
    (album / "@eaDir").mkdir()  # a NAS's thumbnails: passed over for its name, and said
    given = [album, album / "beach.png", f"{album}/", album / "May" / ".." / "beach.png"]
    code, reports, summary, err = run(capsys, *given, "--outdir", outdir, *FAST)
    assert code == 1 and err.count("link.jpg: refused") == 1  # the album's link out, said once
    assert summary["photos"] == 2 and len(reports) == 2, err
    assert "4 photos given more than once: each is protected once" in err
    # what the folder holds besides is counted once too, however often the folder was given
    assert "1 folder passed over for its name (hidden, or sync tools' own): " in err, err
    assert f"own): {album.resolve() / '@eaDir'}; name it on its own to protect" in err
    assert "2 other files left alone (not photos, or ignored names)" in err
    assert sorted(copies(outdir)) == ["2019/May/garden.jpg", "2019/beach.jpg"]


def test_a_link_inside_a_folder_is_a_photo_of_its_own(tmp_path, album, capsys):
    (album / "latest.jpg").symlink_to(album / "May" / "garden.jpg")  # leads inside: taken
    outdir = tmp_path / "out"
    code, _, summary, err = run(capsys, album, "--outdir", outdir, *FAST)
    assert code == 1 and err.count("refused:") == 1  # the album's link out of the folder
    assert summary["photos"] == 3 and "given more than once" not in err
    assert sorted(copies(outdir)) == ["2019/May/garden.jpg", "2019/beach.jpg", "2019/latest.jpg"]


def test_folders_whose_names_are_not_utf8(tmp_path, capsys):
    # a folder above the album: its photos' keys are fine, their paths are not text
    above = tmp_path / os.fsdecode(b"M\xfcller") / "album"
    above.mkdir(parents=True)
    synthetic_photo(640, 480, 5).save(above / "a.png")
    (above / "bad.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(200))  # fails, named in words
    outdir = tmp_path / "out"
    code, _, summary, err = run(capsys, above, "--outdir", outdir, *FAST)
    assert code == 1 and "Traceback" not in err, err
    assert summary["protected"] == 1 and summary["failed"] == 1
    from pixcamd.daemon.ledger import Ledger

    (row,) = [r for r in Ledger(outdir / ".pixcamd" / "ledger.sqlite").rows() if r.error]
    assert row.path == "album/bad.jpg" and not row.error.startswith("/")  # no path before it
    # a folder given whose own name is not UTF-8: refused once, as a folder
    latin1 = tmp_path / os.fsdecode(b"caf\xe9")
    latin1.mkdir()
    for name in ("x.png", "y.png"):
        synthetic_photo(64, 48, 1).save(latin1 / name)
    code, _, summary, err = run(capsys, latin1, "--outdir", tmp_path / "out2", *FAST)
    assert code == 1 and summary["photos"] == 0
    assert err.count("refused: a folder whose name is not valid UTF-8") == 1


def test_a_rerun_says_why_photos_done_before_are_protected_again(tmp_path, capsys, monkeypatch):
    """Done from the same bytes, protected again: because a setting changed, because pixcamd's
    search changed since (an upgrade: the same settings), or — for a record from before the
    run kept its settings — either; said before the work and on each photo's line."""
    import pixcamd.daemon.settings as settings

    album = tmp_path / "album"
    album.mkdir()
    for k in range(2):
        synthetic_photo(320, 240, k).save(album / f"{k}.jpg", quality=95)
    out = tmp_path / "out"
    assert run(capsys, album, "--outdir", out, *FAST)[0] == 0
    code, reports, summary, err = run(capsys, album, "--outdir", out, *FAST[:-2], "--platforms",
                                      "task,instagram")  # fmt: skip
    assert (
        code == 0 and "2 photos an earlier run did are protected again: the settings changed" in err
    ), err
    assert {r.get("again") for r in reports} == {"the settings changed"}
    assert "(again: the settings changed)" in err, err  # on each photo's line
    monkeypatch.setattr(settings, "SEARCH_REVISION", settings.SEARCH_REVISION + 1)  # upgraded
    code, reports, summary, err = run(capsys, album, "--outdir", out, *FAST[:-2], "--platforms",
                                      "task,instagram")  # fmt: skip
    why = "pixcamd's search changed since (the same settings)"
    assert f"2 photos an earlier run did are protected again: {why}" in err, err
    assert {r.get("again") for r in reports} == {why} and summary["protected"] == 2
    with contextlib.closing(sqlite3.connect(out / ".pixcamd" / "ledger.sqlite")) as db, db:
        for path, report in db.execute("SELECT path, report FROM photos").fetchall():
            report = json.loads(report)
            del report["settings_key"]  # as a record from before the key was kept
            db.execute("UPDATE photos SET report = ? WHERE path = ?", (json.dumps(report), path))
    code, reports, summary, err = run(capsys, album, "--outdir", out, *FAST)
    why = "made with other settings, or by an earlier pixcamd"
    assert f"2 photos an earlier run did are protected again: {why}" in err, err
    code, reports, summary, err = run(capsys, album, "--outdir", out, *FAST)  # nothing changed
    assert code == 0 and "protected again" not in err and summary["from_earlier_run"] == 2, summary
