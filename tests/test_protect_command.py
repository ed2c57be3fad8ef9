"""``pixcamd protect`` end to end: real files in, real JPEG files out, judged independently."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tinybiqa import synthetic_photo

from pixcamd.cli import main
from pixcamd.models import load_model
from pixcamd.platform_specs import parse_platforms
from pixcamd.platforms import PRESETS
from pixcamd.scoring import score_file

FAST = ["--model", "brisque", "--views", "center", "--steps", "20", "--platforms", "task"]


@pytest.fixture
def photo(tmp_path):
    path = tmp_path / "in" / "garden.png"
    path.parent.mkdir()
    synthetic_photo(800, 600, 0).save(path)
    return path


def run(capsys, *args) -> tuple[int, list[dict], str]:
    code = main(["protect", "--json", *map(str, args)])
    out = capsys.readouterr()
    lines = [json.loads(line) for line in out.out.splitlines()]
    assert lines and "summary" in lines[-1], out.out  # one object per photo, then the summary
    return code, lines[:-1], out.err


def test_writes_a_protected_jpeg_that_scores_low_after_jpeg90(tmp_path, photo, capsys):
    original = photo.read_bytes()
    out = tmp_path / "out" / "garden.jpg"
    code, (report,), err = run(capsys, photo, "-o", out, *FAST)
    assert code == 0, err
    assert report["verdict"] == "protected" and report["output"] == str(out)
    with Image.open(out) as written:
        assert written.format == "JPEG" and written.size == (800, 600)
    # Independent judgement of the file on disk: Pillow JPEG-90 (the task), then BRISQUE.
    judged = score_file(out, load_model("brisque"), ("center",), (PRESETS["task"],))
    (task,) = judged.platforms
    assert task.served == (800, 600)
    assert not judged.good and task.views[0].score >= 60
    assert report["file_check"]["task"]["brisque"]["center"] == pytest.approx(task.views[0].score)
    assert report["protected_on"] == {"task": True}
    assert photo.read_bytes() == original  # the original is never touched
    assert report["psnr"] > 35
    assert "PROTECTED" in err  # the summary line goes to stderr with --json
    assert "task: center " in err and "worst: task center " in err  # per pipeline, the worst


def test_outdir_keeps_going_past_a_bad_photo(tmp_path, photo, capsys):
    broken = photo.parent / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 definitely not a whole jpeg")
    outdir = tmp_path / "outbox"
    code, reports, err = run(capsys, broken, photo, "--outdir", outdir, *FAST)
    assert code == 1
    assert "broken.jpg" in reports[0]["path"] and "error" in reports[0]
    assert reports[1]["verdict"] == "protected"
    assert sorted(p.name for p in outdir.iterdir()) == [".pixcamd", "garden.jpg"]  # + the record
    assert "1 of 2 photos protected" in err and "1 failed" in err


def test_zero_budget_is_reported_unprotected_and_not_shipped(tmp_path, photo, capsys):
    out = tmp_path / "garden.jpg"
    code, (report,), err = run(
        capsys, photo, "-o", out, "--epsilon", "0", "--epsilon-cap", "0", *FAST
    )
    assert code == 1
    assert report["protected"] is False and report["output"] is None
    assert not out.exists()
    assert "0 of 1 photos protected; 1 left unprotected" in err
    code, (report,), _ = run(
        capsys,
        photo,
        "-o",
        out,
        "--epsilon",
        "0",
        "--epsilon-cap",
        "0",
        "--write-unprotected",
        *FAST,
    )
    assert code == 1 and out.exists() and report["output"] == str(out)


def test_copies_are_never_written_into_a_daemon_s_inbox(home, photo, capsys):
    """The daemon would protect them again, running now or at its next start."""
    assert main(["init"]) == 0
    capsys.readouterr()
    inbox = home / "Pictures" / "pixcamd-inbox"
    config = home / "config" / "pixcamd" / "config.toml"
    said = f"in the inbox of {config} ({inbox}) — its daemon would protect what is written there"
    assert main(["protect", str(photo), "-o", str(inbox / "garden.jpg"), *FAST]) == 2
    assert f"{inbox / 'garden.jpg'}: {said}" in capsys.readouterr().err
    assert main(["protect", str(photo), "--outdir", str(inbox / "shared"), *FAST]) == 2
    assert f"{inbox / 'shared'}: {said}" in capsys.readouterr().err
    # a folder given is mirrored under --outdir: Pictures/pixcamd-inbox is that inbox too
    folder = home / "elsewhere" / "pixcamd-inbox"
    folder.mkdir(parents=True)
    synthetic_photo(640, 480, 2).save(folder / "lake.png")
    assert main(["protect", str(folder), "--outdir", str(home / "Pictures"), *FAST]) == 2
    assert f"{inbox}: {said}" in capsys.readouterr().err
    assert list(inbox.iterdir()) == []
    assert main(["protect", str(photo), "--outdir", str(home / "Pictures" / "shared"), *FAST]) == 0


def test_refuses_ambiguous_outputs_before_doing_any_work(tmp_path, photo, capsys):
    twin = tmp_path / "garden.png"  # the same name as the photo, in another folder
    synthetic_photo(640, 480, 1).save(twin)
    outdir = tmp_path / "outbox"
    assert main(["protect", str(photo), str(twin), "--outdir", str(outdir), *FAST]) == 2
    err = capsys.readouterr().err
    assert f"{photo} and {twin} would both be written to {outdir / 'garden.jpg'}" in err
    assert "into different --outdir folders" in err and not outdir.exists()
    twin = tmp_path / "garden.jpg"
    synthetic_photo(640, 480, 1).save(twin)
    assert main(["protect", str(photo), str(twin), "-o", str(tmp_path / "x.jpg"), *FAST]) == 2
    assert "takes one photo" in capsys.readouterr().err
    assert main(["protect", str(twin), "-o", str(twin), *FAST]) == 2
    assert "overwrite an original" in capsys.readouterr().err
    png = tmp_path / "copy.png"  # the copy is a JPEG: a .png name would lie about it
    assert main(["protect", str(twin), "-o", str(png), *FAST]) == 2
    assert "the protected copy is a JPEG; name it .jpg" in capsys.readouterr().err
    assert not png.exists()
    folder = tmp_path / "outbox"  # -o given a folder: --outdir was meant
    folder.mkdir()
    assert main(["protect", str(twin), "-o", f"{folder}/", *FAST]) == 2
    err = capsys.readouterr().err
    assert f"{folder}: is a folder, not a file name; to write the copy into it, use " in err
    assert f"--outdir {folder}" in err and "name it .jpg" not in err
    assert not any(folder.iterdir())
    spaced = tmp_path / "my photos"  # the hint is a command line to copy: quoted as one
    spaced.mkdir()
    assert main(["protect", str(twin), "-o", str(spaced), *FAST]) == 2
    err = capsys.readouterr().err
    assert f"use --outdir '{spaced}'" in err, err
    new = tmp_path / "new-outbox"  # a folder not made yet, said as one by its trailing /
    with pytest.raises(SystemExit) as exc:
        main(["protect", str(twin), "-o", f"{new}/", *FAST])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert f"'{new}/' is a folder (the / at its end): to write the copy into it, use " in err
    assert f"--outdir {new}" in err and "name it .jpg" not in err and not new.exists()
    kept = tmp_path / "kept.jpg"  # a file, a / typed after it: no folder to suggest
    kept.write_bytes(b"an earlier copy")
    with pytest.raises(SystemExit) as exc:
        main(["protect", str(twin), "-o", f"{kept}/", *FAST])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert f"'{kept}/': {kept} is a file, not a folder (to write over it, drop the /" in err, err
    assert "use --outdir" not in err and kept.read_bytes() == b"an earlier copy"


def test_an_output_that_cannot_be_written_is_said_before_any_work(tmp_path, photo, capsys):
    blocker = tmp_path / "notes.txt"  # a file where the copy's folder would be
    blocker.write_text("not a folder")
    album = tmp_path / "album.jpg"  # a folder named like a copy
    album.mkdir()
    for target, said in [
        (blocker / "copy.jpg", f"{blocker}: is a file, not a folder"),
        (
            blocker / "sub" / "copy.jpg",
            f"{blocker / 'sub'}: cannot be created: {blocker} is a file",
        ),
        (album, f"{album}: is a folder, not a file name"),
    ]:
        assert main(["protect", str(photo), "-o", str(target), *FAST]) == 2
        err = capsys.readouterr().err
        assert said in err and "model brisque" not in err  # refused before the model loads


@pytest.mark.skipif(
    not os.path.ismount("/dev/shm") or not os.access("/dev/shm", os.W_OK),
    reason="needs /dev/shm as a writable mount point",
)
def test_a_copy_at_the_top_of_a_mount_point_is_written(photo, capsys):
    # The folder above /dev/shm is another filesystem: the temporary file cannot go there (as
    # with /home that a user cannot write); it goes, hidden, into the copy's own folder.
    target = Path(f"/dev/shm/pixcamd-test-{os.getpid()}-{photo.stat().st_ino}.jpg")
    try:
        code, (report,), _ = run(capsys, photo, "-o", target, *FAST)
        assert code == 0 and report["output"] == str(target)
        assert Image.open(target).size == (800, 600)
        assert not [p for p in Path("/dev/shm").glob(".pixcamd-*.part")]
    finally:
        target.unlink(missing_ok=True)


def test_target_must_name_each_model(tmp_path, photo, capsys):
    args = ["protect", str(photo), "-o", str(tmp_path / "o.jpg"), "--model", "brisque"]
    assert main([*args, "--target", "koncept512=20"]) == 2
    assert "not among brisque" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*args, "--epsilon", "-1"])
    capsys.readouterr()
    assert main([*args, "--epsilon", "6", "--epsilon-cap", "2"]) == 2  # never a silent cap
    err = capsys.readouterr().err
    assert "--epsilon-cap 2 is below --epsilon 6; the cap must be at least" in err
    assert not (tmp_path / "o.jpg").exists()
    # --epsilon alone above the default cap: the cap follows it, as before
    code = main([*args, "--epsilon", "16", "--platforms", "task", "--steps", "1", "--json"])
    out = capsys.readouterr()
    assert code in (0, 1) and "is below" not in out.err
    assert json.loads(out.out.splitlines()[0])["epsilon"] == 16


def test_a_filter_strength_without_a_filter_to_use_it_is_refused(tmp_path, photo, capsys):
    args = ["protect", str(photo), "-o", str(tmp_path / "o.jpg"), "--model", "brisque"]
    assert main([*args, "--enhance-strength", "40"]) == 2  # the invisible mode, by default
    assert "--enhance-strength sets the colour filter of --mode enhance or auto" in (
        capsys.readouterr().err
    )
    assert main([*args, "--mode", "enhance", "--enhance-strength", "0"]) == 2
    assert "--enhance-strength 0 leaves the colour filter nothing to change" in (
        capsys.readouterr().err
    )
    assert not (tmp_path / "o.jpg").exists()


@pytest.mark.parametrize(
    ("flag", "value", "said"),
    [
        ("--seed", "18446744073709551615", "give a whole number 0–2³¹"),
        ("--seed", "-1", "give a whole number 0–2³¹"),
        ("--target", "inf", "give a score 0–100"),
        ("--target", "nan", "give a score 0–100"),
        ("--target", "brisque=150", "give a score 0–100"),
    ],
)
def test_a_seed_or_target_out_of_range_is_refused_before_any_work(
    tmp_path, photo, capsys, flag, value, said
):
    with pytest.raises(SystemExit):
        main(["protect", str(photo), "-o", str(tmp_path / "o.jpg"), flag, value])
    err = capsys.readouterr().err
    assert f"{flag}: {value!r}: {said}" in err, err
    assert not (tmp_path / "o.jpg").exists()


@pytest.mark.parametrize("quality", ["0", "101", "none", "high"])
def test_the_copys_quality_is_a_jpeg_quality_and_the_error_says_so(
    tmp_path, photo, capsys, quality
):
    with pytest.raises(SystemExit):
        main(["protect", str(photo), "-o", str(tmp_path / "o.jpg"), "--quality", quality])
    err = capsys.readouterr().err
    assert err.endswith(f"--quality: '{quality}': give a JPEG quality 1–100\n")  # not "or none"
    assert not (tmp_path / "o.jpg").exists()


def _exiftool(path) -> dict:
    import shutil
    import subprocess

    tool = shutil.which("exiftool")
    if tool is None:
        pytest.skip("exiftool is not installed (CI installs it: see .ci/run)")
    out = subprocess.run([tool, "-j", "-G", "-a", str(path)], capture_output=True, check=True)
    return json.loads(out.stdout)[0]


@pytest.mark.parametrize("keep", [False, True])
def test_the_copy_drops_the_gps_position_unless_asked_to_keep_it(
    tmp_path, corpus_dir, capsys, keep
):
    """The same privacy default as the daemon: a copy made for sharing carries no position
    (exiftool judges); the rest of the metadata stays, and the CLI says what it removed."""
    source = corpus_dir / "exif" / "FurnaceCreekInn.jpg"
    assert any(k.endswith(":GPSLatitude") for k in _exiftool(source))  # it has a position
    out = tmp_path / "inn.jpg"
    flags = ["--keep-gps"] if keep else []
    code, reports, err = run(capsys, source, "-o", out, "--write-unprotected", *FAST, *flags)
    assert code in (0, 1) and out.is_file()
    tags = _exiftool(out)
    gps = [k for k in tags if k.startswith("EXIF:GPS") or k.startswith("Composite:GPS")]
    assert tags.get("EXIF:Make") == _exiftool(source).get("EXIF:Make")  # the rest is kept
    if keep:
        assert "EXIF:GPSLatitude" in gps
        assert "GPS" not in err
    else:
        assert gps == []
        assert any("GPS" in note for note in reports[0]["metadata_notes"])
        assert "GPS position removed" in err


@pytest.mark.parametrize("strip", [False, True])
def test_strip_metadata_leaves_only_the_colour_profile(tmp_path, capsys, strip):
    """Judged by exiftool: --strip-metadata leaves no EXIF, XMP, IPTC, GPS, serial number nor
    owner, only the ICC profile; without it the serials and the owner stay (faithful metadata,
    docs/photo-io.md) and only the position goes."""
    from test_photo_io import (
        ENCODING_GROUPS,
        IDENTIFYING,
        MAKERS_PROFILE,
        exiftool_tags,
        private_camera_jpeg,
    )

    source = private_camera_jpeg(tmp_path / "in" / "camera.jpg")
    before = exiftool_tags(source)
    assert {k: before.get(k) for k in IDENTIFYING} == IDENTIFYING
    assert "GPS:GPSLatitude" in before and "XMP-exif:GPSLatitude" in before
    out = tmp_path / "camera.jpg"
    flags = ["--strip-metadata"] if strip else []
    code, (report,), err = run(capsys, source, "-o", out, "--write-unprotected", *FAST, *flags)
    assert code in (0, 1) and out.is_file(), err
    after, data = exiftool_tags(out), out.read_bytes()
    profile = "ICC_Profile:ProfileDescription"
    assert before[profile] == MAKERS_PROFILE
    assert not [k for k in after if "GPS" in k]
    if strip:  # the maker's sRGB profile, its words and date, for pixcamd's own, dated alike
        assert after[profile] == "sRGB built-in", after
        assert after["ICC-header:ProfileDateTime"] == "2000:01:01 00:00:00", after
        assert MAKERS_PROFILE.encode("utf-16-be") not in data
        groups = {key.partition(":")[0] for key in after}
        assert {g for g in groups if not g.startswith("ICC")} <= ENCODING_GROUPS, groups
        assert "File:Comment" not in after
        for secret in (*IDENTIFYING.values(), "Ada Lovelace", "Pixcam", "Harbour", "tripod"):
            assert secret.encode() not in data, secret
        assert any("all metadata removed" in n for n in report["metadata_notes"])
        assert "all metadata removed" in err
    else:
        assert after[profile] == MAKERS_PROFILE  # faithful: carried as it is
        assert {k: after.get(k) for k in IDENTIFYING} == IDENTIFYING
        assert after["IFD0:Make"] == "Pixcam" and after["XMP-dc:Creator"] == "Ada Lovelace"
        assert "GPS position removed" in err


def test_keep_gps_with_strip_metadata_is_refused_naming_both(tmp_path, photo, capsys):
    out = tmp_path / "o.jpg"
    args = ["protect", str(photo), "-o", str(out), "--keep-gps", "--strip-metadata", *FAST]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "--keep-gps and --strip-metadata contradict each other" in err
    assert not out.exists()


def test_a_folder_rerun_with_another_metadata_choice_makes_the_copy_again(tmp_path, capsys):
    """Whether the copy keeps the position, or any metadata, is in its bytes: a rerun that
    asks otherwise is not 'done by an earlier run' (a copy kept its position after the user
    asked it gone)."""
    import piexif
    from test_folder_runs import run as folder_run

    album = tmp_path / "album"
    album.mkdir()
    gps = {
        piexif.GPSIFD.GPSLatitudeRef: b"N",
        piexif.GPSIFD.GPSLatitude: ((36, 1), (26, 1), (54, 1)),
        piexif.GPSIFD.GPSLongitudeRef: b"W",
        piexif.GPSIFD.GPSLongitude: ((116, 1), (51, 1), (18, 1)),
    }
    exif = piexif.dump({"0th": {piexif.ImageIFD.Make: b"Canon"}, "GPS": gps})
    synthetic_photo(320, 240, 0).save(album / "a.jpg", quality=95, exif=exif)
    copy = tmp_path / "out" / "album" / "a.jpg"
    for flags in (["--keep-gps"], [], ["--strip-metadata"], ["--keep-gps"]):
        code, reports, _, err = folder_run(
            capsys, album, "--outdir", tmp_path / "out", "--write-unprotected", *FAST, *flags
        )
        assert code in (0, 1) and len(reports) == 1, err
        assert "done by an earlier run" not in err, err
        tags = _exiftool(copy)
        assert ("EXIF:GPSLatitude" in tags) == (flags == ["--keep-gps"]), (flags, err)
        assert tags.get("EXIF:Make") == (None if flags == ["--strip-metadata"] else "Canon")


def test_a_black_and_white_photo_comes_out_black_and_white(tmp_path, corpus_dir, capsys):
    """Per-channel changes would speckle a B&W photo with colour: its copy stays neutral,
    whether the file was greyscale or a B&W export saved as RGB. Default pipelines."""
    with Image.open(corpus_dir / "photos" / "Dragonfly_by_Bolly.jpg") as img:
        left, top = (img.width - 1024) // 2, (img.height - 768) // 2
        grey = img.convert("L").crop((left, top, left + 1024, top + 768))
    inbox = tmp_path / "in"
    inbox.mkdir()
    grey.save(inbox / "grey.jpg", quality=95)
    grey.convert("RGB").save(inbox / "exported.jpg", quality=95)
    code, reports, err = run(capsys, inbox, "--outdir", tmp_path / "out", "--model", "brisque")
    assert code == 0, err
    assert sorted(r["verdict"] for r in reports) == ["protected", "protected"]
    for report in reports:
        with Image.open(report["output"]) as written:
            pixels = np.asarray(written.convert("RGB")).astype(int)
        assert np.array_equal(pixels[..., 0], pixels[..., 1]), report["output"]
        assert np.array_equal(pixels[..., 1], pixels[..., 2]), report["output"]
        assert np.abs(pixels[..., 0] - np.asarray(grey)).max() > 0  # it was protected: changed


def test_a_missing_photo_is_named_once_in_its_error(tmp_path, capsys):
    missing = tmp_path / "missing.jpg"
    assert main(["protect", str(missing), "-o", str(tmp_path / "o.jpg"), *FAST]) == 1
    out = capsys.readouterr()
    (line,) = [x for x in (out.out + out.err).splitlines() if "no such file" in x]
    assert line.count(str(missing)) == 1 and line.endswith("error: no such file")


def test_a_photo_too_long_for_a_jpeg_is_refused_in_words_not_a_traceback(tmp_path, capsys):
    """libjpeg takes at most 65,500 px a side: a strip a scanner or a stitcher made longer used
    to end in Pillow's "broken data stream" traceback (retried by folder runs and the daemon).
    The copy is a JPEG of the photo's size: refused before the work. `score` judges it where
    the pipelines asked for serve it smaller, and names a pipeline that would not."""
    strip = tmp_path / "strip.png"
    Image.new("RGB", (1300, 66_000), (120, 130, 140)).save(strip)
    code, (report,), err = run(capsys, strip, "-o", tmp_path / "o.jpg", *FAST)
    assert code == 1 and "Traceback" not in err, err
    assert "1300×66000 px: the protected copy is a JPEG of the photo's size, and JPEG takes " \
        "at most 65,500 px a side" in report["error"]  # fmt: skip
    assert not (tmp_path / "o.jpg").exists()
    code, (report,), err = run(capsys, strip, "--outdir", tmp_path / "out", *FAST)
    assert code == 1 and "JPEG takes at most 65,500 px a side" in report["error"], err
    assert "attempt" not in report["error"]  # failed at once, not after retries
    assert main(["score", "--json", str(strip), "--model", "brisque"]) == 1
    (said,) = json.loads(capsys.readouterr().out)
    assert said["error"].startswith(
        "task would serve this 1300×66000 photo at 1300×66000: JPEG takes at most 65,500"
    ), said
    facebook = ["--platforms", "facebook"]  # 2048 px long: judged
    assert main(["score", "--json", str(strip), "--model", "brisque", *facebook]) == 0
    capsys.readouterr()
    # refused from its header, before its pixels are decoded: a file cut short after the
    # header says so too, not "truncated"
    header_only = tmp_path / "header_only.png"
    header_only.write_bytes(strip.read_bytes()[:200])
    code, (report,), err = run(capsys, header_only, "-o", tmp_path / "h.jpg", *FAST)
    assert code == 1 and "JPEG takes at most 65,500 px a side" in report["error"], err


def test_a_photo_only_just_low_is_protected_to_the_margin_not_passed_through(
    corpus_dir, tmp_path, capsys
):
    """A soft crop of Wine scores 60.6 after the copy's encoding, just past BRISQUE's 60: it
    used to pass through "already low" and read good (59.4, 59.8) on downscales a little off
    the named ones. It is protected to the margin like any other photo."""
    from PIL import ImageFilter

    with Image.open(corpus_dir / "photos" / "Wine_by_Jakkub_Mede.jpg") as photo:
        soft = photo.convert("RGB").resize((640, 959), Image.Resampling.LANCZOS)
    soft.crop((0, 0, 640, 480)).filter(ImageFilter.GaussianBlur(1.9)).save(tmp_path / "soft.png")
    out = tmp_path / "soft.jpg"
    code, (report,), _ = run(capsys, tmp_path / "soft.png", "-o", out, "--model", "brisque")
    assert code == 0 and report["verdict"] == "protected" and report["margin_met"], report
    assert report["steps"] > 0
    off = ["--platforms", "long480-q85,long320-q80", "--model", "brisque", "--json"]
    assert main(["score", str(out), *off]) == 0
    (judged,) = json.loads(capsys.readouterr().out)
    assert judged["verdict"] == "low quality", judged["worst"]


def test_a_photo_already_low_is_never_made_worse_by_the_colour_filter(corpus_dir, tmp_path, capsys):
    """Low (60.1) but short of its target, the photo goes to the search; in `enhance` mode the
    filter made it *better* to the model (58.8, good) and the photo was held back. The search
    keeps a result only where it widens the margin: otherwise the photo passes untouched."""
    from PIL import ImageFilter

    with Image.open(corpus_dir / "photos" / "Wine_by_Jakkub_Mede.jpg") as photo:
        soft = photo.convert("RGB").resize((640, 959), Image.Resampling.LANCZOS)
    soft.crop((0, 0, 640, 480)).filter(ImageFilter.GaussianBlur(1.85)).save(tmp_path / "s.png")
    enhance = ["--mode", "enhance", "--enhance-strength", "4", "--steps", "5"]
    out = tmp_path / "s.jpg"
    code, (report,), _ = run(capsys, tmp_path / "s.png", "-o", out, "--model", "brisque", *enhance)
    assert code == 0 and report["verdict"] == "already low quality", report
    assert report["enhancement"] is None and out.is_file()


def test_an_already_low_photo_is_said_to_be_unchanged_by_us(tmp_path, capsys):
    """Its copy is only re-encoded: the line says our change was 0, and that PSNR is the file's."""
    noise = tmp_path / "noise.png"
    rng = np.random.default_rng(3)
    Image.fromarray(rng.integers(0, 256, (384, 512, 3), dtype=np.uint8)).save(noise)
    assert main(["protect", str(noise), "-o", str(tmp_path / "o.jpg"), *FAST]) == 0
    out = capsys.readouterr()
    (line,) = [x for x in (out.out + out.err).splitlines() if "ALREADY LOW QUALITY" in x]
    assert "changed ≤ 0/255 before encoding" in line and "PSNR" in line


@pytest.mark.parametrize("size", [(1, 1), (3, 5), (400, 4)])
def test_a_photo_a_few_pixels_across_is_written_not_failed(tmp_path, size, capsys):
    # SSIM's 11×11 window reflects 5 px at the borders: a photo (or a side) no wider than that
    # once failed every attempt with a padding error after it had been judged.
    source = tmp_path / "tiny.png"
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(source)
    out = tmp_path / "tiny.jpg"
    code, (report,), err = run(capsys, source, "-o", out, "--model", "brisque")
    assert code == 0, err
    assert "error" not in report and report["protected"] is True  # already low, as noise is
    with Image.open(out) as written:
        assert written.size == size
    assert 0 < report["ssim"] <= 1


def test_a_display_p3_photo_is_protected_in_srgb_and_its_copy_says_so(tmp_path, capsys):
    # an iPhone's photo: the platforms serve it converted to sRGB, so that is what is protected
    from iccprofiles import display_p3_profile

    from pixcamd.photo import SRGB_PROFILE

    source = tmp_path / "iphone.png"
    synthetic_photo(800, 600, 0).save(source, icc_profile=display_p3_profile())
    out = tmp_path / "iphone.jpg"
    code, (report,), err = run(capsys, source, "-o", out, *FAST)
    assert code == 0 and report["verdict"] == "protected", err
    assert any("converted from Display P3 to sRGB" in w for w in report["warnings"])
    with Image.open(out) as written:
        assert written.info["icc_profile"] == SRGB_PROFILE
    from test_photo_io import exiftool_tags  # dated once for all (not when the process began)

    assert exiftool_tags(out)["ICC-header:ProfileDateTime"] == "2000:01:01 00:00:00"
    # judged on what a platform serves: the copy as written is already its sRGB
    judged = score_file(out, load_model("brisque"), ("center",), (PRESETS["task"],))
    assert report["file_check"]["task"]["brisque"]["center"] == pytest.approx(
        judged.platforms[0].views[0].score
    )


def test_a_heic_said_to_be_p3_by_its_nclx_is_protected_in_srgb_and_an_hdr_one_refused(
    tmp_path, capsys
):
    # HEIC/AVIF may name their colours with nclx code points instead of an ICC profile
    pytest.importorskip("pillow_heif")
    from iccprofiles import save_nclx_heic

    from pixcamd.photo import SRGB_PROFILE

    def heic(name: str, primaries: int, transfer: int):
        path = tmp_path / name
        save_nclx_heic(synthetic_photo(800, 600, 0), path, primaries, transfer, quality=95)
        return path

    out = tmp_path / "p3.jpg"
    code, (report,), err = run(capsys, heic("p3.heic", 12, 13), "-o", out, *FAST)
    assert code == 0 and report["verdict"] == "protected", err
    assert any("converted from Display P3 (nclx) to sRGB" in w for w in report["warnings"])
    with Image.open(out) as written:
        assert written.info["icc_profile"] == SRGB_PROFILE
    hdr, out = heic("hdr.heic", 9, 16), tmp_path / "hdr.jpg"  # BT.2020, PQ
    code, (report,), err = run(capsys, hdr, "-o", out, *FAST)
    assert code == 1 and not out.exists() and "Traceback" not in err
    assert "an HDR photo (PQ (SMPTE 2084) transfer): pixcamd protects SDR photos" in report["error"]


def test_a_photo_too_big_for_the_memory_left_is_refused_in_one_line(
    tmp_path, photo, capsys, monkeypatch
):
    import pixcamd.devices

    monkeypatch.setattr(pixcamd.devices, "available_memory", lambda: 100_000_000)
    out = tmp_path / "garden.jpg"
    code, (report,), err = run(capsys, photo, "-o", out, *FAST)
    assert code == 1 and not out.exists()
    assert "needs about 0.7 GB of memory for its 0.5 MP, and 0.1 GB is available" in report["error"]
    assert "Traceback" not in err and "max_pixels" in err
    # where memory is plenty (the real figure of this machine, or unknown), the same photo goes
    monkeypatch.setattr(pixcamd.devices, "available_memory", lambda: None)
    code, (report,), err = run(capsys, photo, "-o", out, *FAST)
    assert code == 0 and report["verdict"] == "protected"


def test_the_memory_left_is_read_from_this_machine():
    import os
    from pathlib import Path

    from pixcamd.devices import available_memory

    if not os.path.exists("/proc/meminfo"):
        pytest.skip("no /proc/meminfo: the check is skipped on this system")
    total = next(
        int(line.split()[1]) * 1024
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal:")
    )
    assert 0 < available_memory() <= total


def _kernel_tree(root, meminfo_kb: int, membership: str, files: dict[str, str]):
    """A /proc and /sys/fs/cgroup as the kernel lays them out, in ``root``."""
    proc, cgroups = root / "proc", root / "cgroup"
    (proc / "self").mkdir(parents=True)
    (proc / "meminfo").write_text(
        f"MemTotal: 32000000 kB\nMemFree: 1000000 kB\nMemAvailable: {meminfo_kb} kB\n"
    )
    (proc / "self" / "cgroup").write_text(membership)
    for name, text in files.items():
        (cgroups / name).parent.mkdir(parents=True, exist_ok=True)
        (cgroups / name).write_text(text)
    return proc, cgroups


def test_the_memory_left_is_what_a_systemd_unit_or_container_limit_leaves(tmp_path):
    from pixcamd.devices import available_memory

    gib = 1024**3
    # cgroup v2, a systemd unit with MemoryMax=3G using 1 GiB, inside a slice with no limit
    unit = "system.slice/pixcamd.service"
    proc, cgroups = _kernel_tree(
        tmp_path / "v2",
        8 * 1024**2,  # 8 GiB available to the machine
        f"0::/{unit}\n",
        {
            f"{unit}/memory.max": f"{3 * gib}\n",
            f"{unit}/memory.current": f"{gib}\n",
            "system.slice/memory.max": "max\n",
            "system.slice/memory.current": f"{5 * gib}\n",
        },
    )
    assert available_memory(proc, cgroups) == 2 * gib
    # of what the unit uses, its inactive page cache (files read once) is reclaimed first: room
    (cgroups / unit / "memory.stat").write_text("anon 100\nfile 900\ninactive_file 805306368\n")
    assert available_memory(proc, cgroups) == 2 * gib + 805306368
    (cgroups / unit / "memory.stat").unlink()
    # a parent's limit leaves less than the unit's own: the least room counts
    (cgroups / "system.slice/memory.max").write_text(f"{6 * gib}\n")
    assert available_memory(proc, cgroups) == gib
    # the machine's MemAvailable when it is the smaller
    proc, cgroups = _kernel_tree(
        tmp_path / "tight",
        512 * 1024,  # 0.5 GiB
        f"0::/{unit}\n",
        {f"{unit}/memory.max": f"{3 * gib}\n", f"{unit}/memory.current": "0\n"},
    )
    assert available_memory(proc, cgroups) == gib // 2
    # cgroup v1 inside a container: the group in /proc/self/cgroup is not under the mount (the
    # container's own group is mounted as the root), so the root's limit is the one read
    proc, cgroups = _kernel_tree(
        tmp_path / "v1",
        8 * 1024**2,
        "5:devices:/docker/4a1f\n4:memory:/docker/4a1f\n0::/\n",
        {
            "memory/memory.limit_in_bytes": f"{4 * gib}\n",
            "memory/memory.usage_in_bytes": f"{3 * gib}\n",
        },
    )
    assert available_memory(proc, cgroups) == gib
    # v1 counts the group's page cache in its usage too; the hierarchy's inactive part is room
    (cgroups / "memory/memory.stat").write_text(
        f"cache {2 * gib}\ninactive_file 4096\ntotal_inactive_file {gib}\n"
    )
    assert available_memory(proc, cgroups) == 2 * gib
    # v1 says "no limit" with a number near 2^63: only MemAvailable counts
    (cgroups / "memory/memory.limit_in_bytes").write_text("9223372036854771712\n")
    assert available_memory(proc, cgroups) == 8 * gib
    # nothing readable at all: unknown, and the check is then skipped
    assert available_memory(tmp_path / "none", tmp_path / "none") is None


def test_the_most_memory_a_photo_may_ever_have_is_the_least_limit_less_what_is_held(tmp_path):
    """A photo that needs more than this bound is refused for good (not retried as if memory
    could be freed): the machine's memory, a unit's or container's limit — whichever is less —
    less what the process already holds."""
    from pixcamd.devices import memory_ceiling

    gib = 1024**3
    unit = "system.slice/pixcamd.service"
    proc, cgroups = _kernel_tree(
        tmp_path,
        8 * 1024**2,
        f"0::/{unit}\n",
        {f"{unit}/memory.max": f"{3 * gib}\n", f"{unit}/memory.current": f"{2 * gib}\n"},
    )
    (proc / "self" / "status").write_text(
        f"Name:\tpython\nVmSize:\t 9000000 kB\nVmRSS:\t {gib // 1024} kB\n"
    )
    assert memory_ceiling(proc, cgroups) == 2 * gib  # the unit's 3 GiB, less the 1 GiB held
    (cgroups / unit / "memory.max").write_text("max\n")
    assert memory_ceiling(proc, cgroups) == 32000000 * 1024 - gib  # the machine's, less it
    assert memory_ceiling(tmp_path / "none", tmp_path / "none") is None


def test_a_photo_larger_than_a_ulimit_allows_is_refused_for_good_in_words(tmp_path, capsys):
    """Under `ulimit -v` a 12 MP photo can never have the ~2 GB it needs: refused for good at
    once, in words, as a unit's MemoryMax= is — the check used to read only the machine's and
    the cgroups' memory, so such a photo went on until torch's allocator refused (a
    traceback, seen on a 29 MP screenshot under 4 GiB)."""
    import resource
    import subprocess
    import sys

    big = tmp_path / "big.png"
    Image.new("RGB", (4000, 3000), (120, 130, 140)).save(big)
    limit = 2 * 1024**3

    def address_space():
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    command = [sys.executable, "-m", "pixcamd", "protect", "--json", str(big), "--outdir"]
    for where in ("-o", "--outdir"):
        out = tmp_path / ("big.jpg" if where == "-o" else "out")
        run = subprocess.run(
            [*command[:-1], where, str(out), *FAST],
            capture_output=True,
            text=True,
            timeout=300,
            preexec_fn=address_space,
        )
        assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr
        error = json.loads(run.stdout.splitlines()[0])["error"]
        assert "needs about 2.0 GB of memory for its 12.0 MP, more than this process may ever " \
            "have here (" in error, error  # fmt: skip
        assert "attempt" not in error  # refused for good at once, not retried


@pytest.fixture
def memory_limit(tmp_path):
    """A real memory cgroup below this process's own, its limit set by the test: v1, or v2
    where the memory controller is delegated. Skips where the kernel does not let us make one
    (no cgroups, not ours to write), and removes it after the test."""
    import os
    from pathlib import Path

    child = None
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _id, controllers, group = line.split(":", 2)
            if "memory" in controllers.split(","):
                parent, limit = (
                    Path("/sys/fs/cgroup/memory") / group.lstrip("/"),
                    "memory.limit_in_bytes",
                )
            elif controllers == "":
                parent, limit = Path("/sys/fs/cgroup") / group.lstrip("/"), "memory.max"
                if "memory" not in (parent / "cgroup.subtree_control").read_text().split():
                    continue
            else:
                continue
            child = parent / f"pixcamd-test-{os.getpid()}"
            child.mkdir()
            break
    except OSError as exc:
        pytest.skip(f"no memory cgroup of our own to limit here: {exc}")
    if child is None:
        pytest.skip("this process has no memory cgroup to make a limited one below")

    import subprocess

    joined = subprocess.run(["sh", "-c", f'echo $$ > "{child / "cgroup.procs"}"'], check=False)
    if joined.returncode != 0:
        child.rmdir()
        pytest.skip("a process may not join a memory cgroup of ours here")

    def set_limit(nbytes: int) -> Path:
        (child / limit).write_text(str(nbytes))
        return child / "cgroup.procs"

    yield set_limit
    child.rmdir()  # its processes have all exited: a test runs them to the end


def test_a_real_container_limit_refuses_what_would_not_fit_and_counts_page_cache_as_room(
    tmp_path, photo, memory_limit
):
    import subprocess
    import sys

    from pixcamd.devices import available_memory

    if (available_memory() or 0) < 4e9:
        pytest.skip("this machine has too little memory free to tell its limit from a cgroup's")
    procs = memory_limit(2_000_000_000)  # a container's 2 GB on a machine with more
    big = tmp_path / "big.jpg"  # 12 MP: about 2.0 GB to protect, the whole limit
    Image.new("RGB", (4000, 3000), (120, 130, 140)).save(big, quality=90)
    fill = tmp_path / "synced.bin"

    def protect_inside(source, out) -> tuple[int, dict]:
        # the process joins the group, then writes 700 MB (a sync tool's files arriving: page
        # cache charged to the container), then protects: its check must read the cgroup
        run = subprocess.run(
            [
                "sh",
                "-c",
                f'echo $$ > "{procs}" && dd if=/dev/zero of="{fill}" bs=1M count=700 '
                'status=none && exec "$@"',
                "sh",
                sys.executable,
                "-m",
                "pixcamd",
                "protect",
                "--json",
                str(source),
                "-o",
                str(out),
                *FAST,
            ],
            capture_output=True,
            text=True,
            timeout=600,
        )
        return run.returncode, json.loads(run.stdout.splitlines()[0])

    code, report = protect_inside(big, tmp_path / "big-protected.jpg")
    assert code == 1 and not (tmp_path / "big-protected.jpg").exists()
    error = report["error"]  # the whole limit, less what the process holds: never enough
    assert "needs about 2.0 GB of memory for its 12.0 MP, more than this process may " in error
    most = float(error.split("ever have here (")[1].split(" GB")[0])
    assert 1.1 <= most < 2.0  # the limit, not the machine's memory (≥ 4 GB free)
    # the same container's 700 MB of page cache is room (the kernel reclaims it before it kills
    # anyone): a 6 MP photo needing 1.3 GB goes, where counting the cache as used would refuse it
    mid = tmp_path / "mid.jpg"
    Image.new("RGB", (3000, 2000), (120, 130, 140)).save(mid, quality=90)
    code, report = protect_inside(mid, tmp_path / "mid-protected.jpg")
    assert code == 0, report.get("error")


def test_a_pipeline_of_your_own_from_the_config_is_protected_and_checked(home, photo, capsys):
    config = home / "blog.toml"
    config.write_text(
        f'inbox = "{home / "in"}"\noutbox = "{home / "out"}"\nplatforms = ["myblog"]\n'
        '[pipelines.myblog]\nresize = "width 400"\nquality = 80\n',
        encoding="utf-8",
    )
    out = home / "o.jpg"
    fast = FAST[:-2]  # --platforms left out
    code, (report,), err = run(
        capsys, photo, "-o", out, *fast, "--config", config, "--platforms", "myblog"
    )
    assert code == 0, err
    assert report["protected_on"] == {"myblog": True}
    # judged again by the real pipeline the table describes, on the written file
    judged = score_file(out, load_model("brisque"), ("center",), parse_platforms("width400-q80"))
    assert judged.platforms[0].served == (400, 300) and not judged.good
    with pytest.raises(SystemExit) as exc:  # a name the file lacks: refused before any work
        main(
            [
                "protect",
                str(photo),
                "-o",
                str(home / "p.jpg"),
                "--config",
                str(config),
                "--platforms",
                "myblug",
            ]
        )
    assert exc.value.code == 2 and f"no [pipelines.myblug] in {config}" in capsys.readouterr().err
    assert not (home / "p.jpg").exists()
