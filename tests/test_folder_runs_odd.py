"""Folder runs against what an archive really holds and what really happens to a run: folders
and photos this user cannot read, files already in the output folder, two folders of one name,
a disk that refuses the copy, a run killed mid-publication or stopped by SIGTERM. Real files,
the real CLI; as root (CI) the permission cases run under ``setpriv`` without the capabilities
that let root read anything."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image
from test_daemon_support import real_photo, unprivileged
from test_folder_runs import FAST, copies, run
from tinybiqa import synthetic_photo

from pixcamd.daemon.ledger import Ledger


def cli(*args, json_lines: bool = True) -> subprocess.CompletedProcess:
    """``pixcamd protect`` as a process this user's file permissions bind (root included)."""
    command = unprivileged([sys.executable, "-m", "pixcamd", "protect", *map(str, args)])
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": "1"}
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)


def photos(root: Path, *names: str, size=(320, 240)) -> Path:
    for k, name in enumerate(names):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        synthetic_photo(*size, k).save(root / name, quality=95)
    return root


def test_a_folder_or_photo_that_cannot_be_read_is_named_and_the_rest_protected(tmp_path):
    album = photos(tmp_path / "album", "ok.jpg", "locked/in.jpg", "secret.jpg")
    os.chmod(album / "locked", 0)
    os.chmod(album / "secret.jpg", 0)
    try:
        done = cli(album, "--outdir", tmp_path / "out", "--json", *FAST)
    finally:
        os.chmod(album / "locked", 0o755)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert f"{album / 'locked'}: refused: a folder that cannot be read" in done.stderr
    assert f"{album / 'secret.jpg'}: error: cannot read the file" in done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert {"path": str(album / "locked"), "refused": lines[0]["refused"]} in lines
    summary = lines[-1]["summary"]
    assert (summary["protected"], summary["failed"], summary["refused"]) == (1, 1, 1)
    assert sorted(copies(tmp_path / "out")) == ["album/ok.jpg"]
    assert "1 refused (each named above)" in done.stderr


def test_a_pipe_or_a_symlink_loop_named_on_its_own_is_an_error_not_a_hang(tmp_path, capsys):
    os.mkfifo(tmp_path / "pipe.jpg")
    (tmp_path / "loop.jpg").symlink_to(tmp_path / "loop.jpg")
    photos(tmp_path, "ok.jpg")
    out = tmp_path / "out"
    code, _, summary, err = run(
        capsys,
        tmp_path / "pipe.jpg",
        tmp_path / "loop.jpg",
        tmp_path / "ok.jpg",
        "--outdir",
        out,
        *FAST,
    )
    assert code == 1 and "Traceback" not in err
    assert f"{tmp_path / 'pipe.jpg'}: error: not a regular file" in err
    assert f"{tmp_path / 'loop.jpg'}: error:" in err
    assert summary["protected"] == 1 and summary["failed"] == 2
    assert sorted(copies(out)) == ["ok.jpg"]


@pytest.mark.parametrize("kind", ["dangling", "loop"])
def test_an_output_folder_that_is_a_broken_symlink_is_refused_before_any_work(
    tmp_path, capsys, kind
):
    photos(tmp_path, "ok.jpg")
    outdir = tmp_path / "out"
    outdir.symlink_to(tmp_path / ("nowhere" if kind == "dangling" else "out"))
    code, _, _, err = run_raw(capsys, tmp_path / "ok.jpg", "--outdir", outdir, *FAST)
    assert code == 2 and "Traceback" not in err
    assert f"{outdir}: a symlink to nothing or a symlink loop" in err
    assert "model brisque" not in err  # said before the model was loaded


def run_raw(capsys, *args):
    from pixcamd.cli import main

    code = main(["protect", *map(str, args)])
    out = capsys.readouterr()
    return code, out.out, None, out.err


def test_a_file_in_the_output_folder_that_no_run_wrote_is_never_overwritten(tmp_path, capsys):
    album = photos(tmp_path / "album", "a.jpg", "b.jpg")
    out = tmp_path / "out"
    (out / "album").mkdir(parents=True)
    mine = out / "album" / "a.jpg"
    mine.write_bytes(b"the user's own file")
    code, _, summary, err = run(capsys, album, "--outdir", out, *FAST)
    assert code == 1 and mine.read_bytes() == b"the user's own file"
    assert f"{mine}: a file this --outdir's record did not write is already there" in err
    assert summary["protected"] == 1 and summary["failed"] == 1
    mine.unlink()  # the user moves it away: the next run protects the photo
    code, _, summary, err = run(capsys, album, "--outdir", out, *FAST)
    assert code == 0, err
    assert summary["protected"] == 2 and summary["from_earlier_run"] == 1


def test_two_folders_of_one_name_never_share_their_copies(tmp_path, capsys):
    first = photos(tmp_path / "2019" / "May", "a.jpg")
    second = tmp_path / "2020" / "May"
    second.mkdir(parents=True)
    synthetic_photo(320, 240, 5).save(second / "a.jpg", quality=95)
    out = tmp_path / "out"
    assert run(capsys, first, "--outdir", out, *FAST)[0] == 0
    kept = (out / "May" / "a.jpg").read_bytes()
    code, _, summary, err = run(capsys, second, "--outdir", out, *FAST)
    assert code == 1 and (out / "May" / "a.jpg").read_bytes() == kept
    assert f"{second / 'a.jpg'}: error: this --outdir holds the copy of another photo" in err
    assert str(first / "a.jpg") in err and summary["failed"] == 1
    # the first folder moved away since: then the second is that photo, changed
    first.rename(tmp_path / "2019" / "May-old")
    code, _, summary, err = run(capsys, second, "--outdir", out, *FAST)
    assert code == 0 and summary["protected"] == 1, err
    assert (out / "May" / "a.jpg").read_bytes() != kept


def test_a_copy_the_output_folder_refuses_is_said_and_nothing_is_left_staged(tmp_path, capsys):
    album = photos(tmp_path / "album", "a.jpg", "sub/b.jpg")
    out = tmp_path / "out"
    (out / "album").mkdir(parents=True)
    (out / "album" / "sub").write_bytes(b"")  # a file where the copy's folder would go
    code, _, summary, err = run(capsys, album, "--outdir", out, *FAST)
    assert code == 1 and "Traceback" not in err
    assert f"error: cannot write its copy {out / 'album' / 'sub' / 'b.jpg'}" in err
    assert summary["protected"] == 1 and summary["failed"] == 1
    assert not list((out / ".pixcamd" / "tmp").iterdir())
    (out / "album" / "sub").unlink()
    code, _, summary, err = run(capsys, album, "--outdir", out, *FAST)
    assert code == 0 and summary["protected"] == 2, err


def test_names_at_the_length_limit_get_copy_names_that_fit(tmp_path, capsys):
    """A photo named up to a file name's 255 bytes has no room for a second ending: its copy's
    name is shortened before the ending, never refused by the disk after the work."""
    long = "L" * 250
    accents = "é" * 125  # two bytes each: shortened by whole characters
    names = (f"{long}.jpg", f"{long}.png", f"{accents}.jpg", f"{accents}.tif")
    album = photos(tmp_path / "album", *names)
    out = tmp_path / "out"
    code, _, summary, err = run(capsys, album, "--outdir", out, *FAST)
    assert code == 0 and summary["protected"] == 4, err
    names = sorted(copies(out))
    wanted = [f"{long}.jpg", "L" * 247 + ".png.jpg", f"{accents}.jpg", "é" * 123 + ".tif.jpg"]
    assert names == sorted("album/" + n for n in wanted), names
    assert all(len(os.fsencode(Path(n).name)) <= 255 for n in names)


def test_names_with_control_characters_are_shown_escaped_by_protect_and_score(tmp_path, capsys):
    """A name from a sync peer cannot split a result line, forge the next one or drive the
    terminal (the daemon's lines escape them too); a name that is not UTF-8 does not stop
    `score` mid-line. --json keeps names exactly."""
    from pixcamd.cli import main

    names = ["new\nline.jpg", "esc\x1b[31mRED.jpg"]
    album = photos(tmp_path / "album", *names)
    latin1 = photos(tmp_path / "elsewhere", os.fsdecode(b"caf\xe9.jpg"))  # folder runs refuse it
    out = tmp_path / "out"
    code, reports, _, err = run(capsys, album, "--outdir", out, *FAST)
    assert code == 0 and "\x1b" not in err and "line.jpg: " not in err.replace("\\nline", ""), err
    assert f"{album}/new\\nline.jpg → " in err and "esc\\x1b[31mRED.jpg" in err, err
    assert {r["path"] for r in reports} == {str(album / n) for n in names}  # exact in JSON
    files = [*(str(album / n) for n in names), *map(str, latin1.iterdir())]
    code = main(["score", "--model", "brisque", "--platforms", "task", *files])
    shown = capsys.readouterr()
    assert code == 0 and "\x1b" not in shown.out + shown.err, shown
    assert f"{album}/new\\nline.jpg  (" in shown.out and f"{latin1}/caf\\xe9.jpg  (" in shown.out
    assert len([line for line in shown.out.splitlines() if not line.startswith(" ")]) == 3


def test_a_publication_a_killed_run_left_is_finished_from_its_staged_copy(tmp_path, capsys):
    """A run killed between recording a copy and renaming it into place: the next run renames
    that staged copy (the record says so), and only then empties the staging folder."""
    album = photos(tmp_path / "album", "a.jpg")
    out = tmp_path / "out"
    assert run(capsys, album, "--outdir", out, *FAST)[0] == 0
    ledger = Ledger(out / ".pixcamd" / "ledger.sqlite")
    row = ledger.get("album/a.jpg")
    staged = out / ".pixcamd" / "tmp" / f"stage-{row.id}.jpg"
    old = (out / "album" / "a.jpg").read_bytes()
    new = old[:2] + b"\xff\xfe\x00\x06next" + old[2:]  # other bytes (a comment), a JPEG
    staged.write_bytes(new)
    ledger.claim(row.id)
    final = {"state": "done", "output": "album/a.jpg", "verdict": row.verdict}
    ledger.prepare_commit(
        row.id, str(staged), "album/a.jpg", hashlib.sha256(new).hexdigest(), final
    )
    ledger.close()
    code, _, _, err = run(capsys, album, "--outdir", out, *FAST)
    assert code == 0, err
    assert "finished its interrupted publication → album/a.jpg" in err
    assert (out / "album" / "a.jpg").read_bytes() == new
    assert not staged.exists()


def test_photos_in_folders_passed_over_for_their_names_are_said(tmp_path, capsys):
    album = photos(tmp_path / "album", "ok.jpg", ".private/a.jpg", "@eaDir/t.jpg")
    code, _, summary, err = run(capsys, album, "--outdir", tmp_path / "out", *FAST)
    assert code == 0 and summary["photos"] == 1
    assert "2 folders passed over for their names" in err
    assert str(album / ".private") in err and str(album / "@eaDir") in err


def test_write_unprotected_on_a_rerun_writes_what_the_first_run_held_back(tmp_path, capsys):
    album = real_photo(tmp_path / "album" / "a.jpg").parent  # judged good: needs protection
    out = tmp_path / "out"
    weak = [*FAST, "--epsilon", "0", "--epsilon-cap", "0", "--steps", "1"]
    code, reports, _, _ = run(capsys, album, "--outdir", out, *weak)
    assert code == 1 and reports[0]["verdict"] == "unprotected" and not copies(out)
    code, reports, _, err = run(capsys, album, "--outdir", out, *weak, "--write-unprotected")
    assert reports[0]["verdict"] == "unprotected" and not reports[0].get("earlier"), err
    assert sorted(copies(out)) == ["album/a.jpg"]


def test_sigterm_stops_a_run_as_ctrl_c_does(tmp_path):
    names = [f"p{k}.jpg" for k in range(8)]  # minutes of work: the signal comes long before
    root = photos(tmp_path / "big", *names, size=(800, 600))
    outdir = tmp_path / "out"
    command = [sys.executable, "-m", "pixcamd", "protect", str(root), "--outdir", str(outdir)]
    command += [*FAST, "--steps", "60", "--threads", "1", "--json"]
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    first = json.loads(proc.stdout.readline())  # the first photo: then stop the second
    assert first["verdict"] == "protected"
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "run the same command again to continue" in err and "Traceback" not in err
    assert json.loads(out.splitlines()[-1])["summary"]["left"] >= 1
    assert not list((outdir / ".pixcamd" / "tmp").iterdir())
    ledger = Ledger(outdir / ".pixcamd" / "ledger.sqlite")
    try:
        assert not ledger.processing()  # the photo in flight is queued again, not stuck
    finally:
        ledger.close()


def test_a_copy_kept_from_an_earlier_version_is_replaced_by_a_later_run(tmp_path, capsys):
    """Protected, then edited and left unprotected (its earlier copy stays, as the daemon's
    outbox keeps it), then protected again: the copy is the run's own and is replaced."""
    album = real_photo(tmp_path / "album" / "a.jpg").parent
    out = tmp_path / "out"
    assert run(capsys, album, "--outdir", out, *FAST)[0] == 0
    first = (out / "album" / "a.jpg").read_bytes()
    with Image.open(album / "a.jpg") as img:  # edited: a corner cropped away, still good
        img.crop((8, 8, 640, 480)).save(album / "a.jpg", quality=95)
    weak = [*FAST, "--epsilon", "0", "--epsilon-cap", "0", "--steps", "1"]
    code, reports, _, _ = run(capsys, album, "--outdir", out, *weak)
    assert code == 1 and reports[0]["verdict"] == "unprotected"
    assert (out / "album" / "a.jpg").read_bytes() == first  # kept, never forgotten
    code, reports, _, _ = run(capsys, album, "--outdir", out, *weak)  # nothing new to do
    assert reports[0]["earlier"] and reports[0]["output"] is None  # the old one is not its
    code, reports, _, err = run(capsys, album, "--outdir", out, *FAST)
    assert code == 0 and reports[0]["verdict"] == "protected", err
    assert (out / "album" / "a.jpg").read_bytes() != first


def test_one_folder_reached_by_another_path_is_the_same_photos(tmp_path, capsys):
    """A link moved to a copy of the folder, a second mount, a share's other case: one
    photo by two paths is never "another photo of the same name"."""
    disk1 = photos(tmp_path / "disk1" / "May", "a.jpg")
    link = tmp_path / "May"
    link.symlink_to(disk1)
    out = tmp_path / "out"
    assert run(capsys, link, "--outdir", out, *FAST)[0] == 0
    shutil.copytree(disk1, tmp_path / "disk2" / "May")
    os.utime(tmp_path / "disk2" / "May" / "a.jpg", (1e9, 1e9))  # the same bytes, a new mtime
    link.unlink()
    link.symlink_to(tmp_path / "disk2" / "May")
    code, _, summary, err = run(capsys, link, "--outdir", out, *FAST)
    assert code == 0 and "another photo of the same name" not in err, err
    assert summary["from_earlier_run"] == 1  # the same bytes: nothing to do again


def test_a_kept_copy_taken_away_is_not_a_reason_to_redo_the_photo_on_every_run(tmp_path, capsys):
    album = real_photo(tmp_path / "album" / "a.jpg").parent
    out = tmp_path / "out"
    assert run(capsys, album, "--outdir", out, *FAST)[0] == 0
    with Image.open(album / "a.jpg") as img:  # edited
        img.crop((8, 8, 640, 480)).save(album / "a.jpg", quality=95)
    (out / "album" / "a.jpg").unlink()  # an uploader took the copy
    weak = [*FAST, "--epsilon", "0", "--epsilon-cap", "0", "--steps", "1"]
    assert run(capsys, album, "--outdir", out, *weak)[1][0]["verdict"] == "unprotected"
    _, reports, summary, _ = run(capsys, album, "--outdir", out, *weak)
    assert summary["from_earlier_run"] == 1 and reports[0]["earlier"]


def test_another_file_of_one_size_and_time_in_a_folder_of_one_name_is_refused(tmp_path, capsys):
    """Size and modification time vouch for the bytes only of the file the record saw:
    uncompressed photos of one size, unpacked with one time stamp, are two photos."""
    first, second = tmp_path / "2019" / "May", tmp_path / "2020" / "May"
    for folder, seed in ((first, 1), (second, 2)):
        folder.mkdir(parents=True)
        synthetic_photo(320, 240, seed).save(folder / "a.bmp")
        os.utime(folder / "a.bmp", (1e9, 1e9))
    assert (first / "a.bmp").stat().st_size == (second / "a.bmp").stat().st_size
    out = tmp_path / "out"
    assert run(capsys, first, "--outdir", out, *FAST)[0] == 0
    code, _, summary, err = run(capsys, second, "--outdir", out, *FAST)
    assert code == 1 and "holds the copy of another photo of the same name" in err, err
    assert summary["from_earlier_run"] == 0


def test_a_run_stopped_just_after_a_copy_is_offered_gives_it_its_copy_next_time(
    tmp_path, capsys, monkeypatch
):
    """The same photo in a second album, found by a rerun: its record was written in two
    steps — done as a duplicate with no copy of its own, then the copy made or queued — and a
    stop between them (Ctrl-C here, as SIGKILL) left it so for good: every later run reported
    it done by an earlier run, its copy never made. The offer queues the copy in the same
    transaction."""
    from pixcamd.folders import FolderRun

    root = tmp_path / "trip"
    (root / "a").mkdir(parents=True)
    synthetic_photo(640, 480, 5).save(root / "a" / "sea.png")
    outdir = tmp_path / "out"
    code, _, summary, err = run(capsys, root, "--outdir", outdir, *FAST)
    assert code == 0 and summary["protected"] == 1, err
    (root / "b").mkdir()
    shutil.copy(root / "a" / "sea.png", root / "b" / "sea.png")  # the same photo, elsewhere

    def stopped(self, row, donor):
        raise KeyboardInterrupt  # right after the offer, before the copy is published

    with monkeypatch.context() as patch:
        patch.setattr(FolderRun, "_copy_from", stopped)
        code, _, _, err = run_raw(capsys, root, "--outdir", outdir, *FAST)
    assert code != 0 and "run the same command again" in err, err
    code, reports, summary, err = run(capsys, root, "--outdir", outdir, *FAST)
    assert code == 0 and summary["protected"] == 2, err
    copy = next(r for r in reports if r["path"].endswith("b/sea.png"))
    assert copy["output"] == str(outdir / "trip" / "b" / "sea.jpg"), copy
    assert sorted(copies(outdir)) == ["trip/a/sea.jpg", "trip/b/sea.jpg"]
