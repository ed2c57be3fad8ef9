"""``pixcamd score`` through its public interface, on real files."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pixcamd.cli import main
from pixcamd.platforms import DEFAULT_PLATFORMS, PRESETS

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def no_installed_weights(tmp_path, monkeypatch):
    """A user cache without KonCept512 weights, whatever this machine has installed."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("CACHE_DIRECTORY", raising=False)


def textured(width: int, height: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = 128 + 80 * np.sin(x / 37.0 + seed) * np.cos(y / 23.0)
    pixels = np.stack([base, base * 0.8 + 20, 255 - base], axis=-1) + rng.normal(
        0, 6, (height, width, 3)
    )
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")


def run_json(capsys, *args) -> tuple[int, list[dict], str]:
    code = main(["score", "--json", *map(str, args)])
    out = capsys.readouterr()
    return code, json.loads(out.out), out.err


def only_views(result: dict) -> dict:
    """The views of a report judged by one pipeline (``--platforms task``, ``--jpeg ...``)."""
    (pipeline,) = result["platforms"].values()
    return pipeline["views"]


def test_json_report_has_what_a_ledger_needs(tmp_path, capsys):
    path = tmp_path / "photo.jpg"
    textured(1200, 900).save(path, quality=95)
    code, results, err = run_json(capsys, path, "--model", "brisque")
    assert code == 0
    (result,) = results
    assert result["path"] == str(path)
    assert (result["width"], result["height"]) == (1200, 900)
    assert result["model"] == "brisque"
    assert result["fingerprint"].startswith("brisque-live-svr@sha256:")
    assert result["direction"] == "lower_is_better"
    # the default set of destinations, each as it serves the photo (never enlarged)
    assert list(result["platforms"]) == list(DEFAULT_PLATFORMS)
    served = {name: tuple(p["served"]) for name, p in result["platforms"].items()}
    assert served == {
        "task": (1200, 900),
        "facebook": (1200, 900),
        "instagram": (1080, 810),
        "whatsapp": (1200, 900),
        "bluesky": (1200, 900),
        "web": (1200, 900),
    }
    threshold = result["threshold"]
    for name, pipeline in result["platforms"].items():
        assert pipeline["name"] == name and pipeline["spec"] == PRESETS[name].spec()
        assert pipeline["description"] == PRESETS[name].describe()
        assert list(pipeline["views"]) == ["center", "resize"]
        for view in pipeline["views"].values():
            good = view["score"] < threshold
            assert view["verdict"] == ("good quality" if good else "low quality")
        any_good = any(v["verdict"] == "good quality" for v in pipeline["views"].values())
        assert pipeline["verdict"] == ("good quality" if any_good else "low quality")
    every = [
        (name, view, v["score"])
        for name, p in result["platforms"].items()
        for view, v in p["views"].items()
    ]
    name, view, score = min(every, key=lambda r: r[2])  # BRISQUE: lower is better
    assert result["worst"] == {
        "pipeline": name,
        "model": "brisque",
        "view": view,
        "score": score,
        "good_by": pytest.approx(threshold - score),  # how far on the good side (BRISQUE: <)
    }
    any_good = any(p["verdict"] == "good quality" for p in result["platforms"].values())
    assert result["verdict"] == ("good quality" if any_good else "low quality")
    assert "model brisque" in err


def test_jpeg90_is_applied_to_the_full_photo_before_the_views(tmp_path, capsys):
    img = textured(1000, 700, seed=3)
    original, precompressed = tmp_path / "a.png", tmp_path / "b.png"
    img.save(original)
    PRESETS["task"].apply(img).save(precompressed)  # Pillow JPEG-90 of the full photo
    views = ["--model", "brisque", "--views", "center,resize,tiles"]
    _, with_jpeg, _ = run_json(capsys, original, *views, "--platforms", "task")
    _, by_hand, _ = run_json(capsys, precompressed, *views, "--jpeg", "none")
    assert list(by_hand[0]["platforms"]) == ["as-is"]
    assert only_views(with_jpeg[0]) == only_views(by_hand[0])
    assert len(only_views(with_jpeg[0])) == 2 + 2 * 2  # 1000×700 → 2×2 tiles
    _, as_jpeg90, _ = run_json(capsys, original, *views, "--jpeg", "90")
    assert only_views(as_jpeg90[0]) == only_views(with_jpeg[0])  # --jpeg 90: the task's JPEG
    (name,) = as_jpeg90[0]["platforms"]  # printed as a name --platforms reads back
    _, again, _ = run_json(capsys, original, *views, "--platforms", name)
    assert name == "none-q90" and only_views(again[0]) == only_views(as_jpeg90[0])
    _, without, _ = run_json(capsys, original, "--model", "brisque", "--jpeg", "none")
    assert only_views(without[0])["center"] != only_views(with_jpeg[0])["center"]


def test_exif_orientation_is_applied_before_the_views(tmp_path, capsys):
    upright = textured(900, 600, seed=5)
    rotated = tmp_path / "rotated.png"
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    upright.transpose(Image.Transpose.ROTATE_90).save(rotated, exif=exif)
    plain = tmp_path / "upright.png"
    upright.save(plain)
    _, a, _ = run_json(capsys, rotated, "--model", "brisque", "--jpeg", "none")
    _, b, _ = run_json(capsys, plain, "--model", "brisque", "--jpeg", "none")
    assert (a[0]["width"], a[0]["height"]) == (900, 600)
    assert only_views(a[0]) == only_views(b[0])


def test_bad_files_get_clear_errors_and_the_rest_is_still_scored(tmp_path, capsys):
    good = tmp_path / "good.jpg"
    textured(800, 600).save(good)
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    text = tmp_path / "notes.jpg"
    text.write_text("not a photo")
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(good.read_bytes()[:2000])
    missing = tmp_path / "missing.jpg"
    code, results, err = run_json(
        capsys, empty, text, good, truncated, missing, "--model", "brisque", "--platforms", "task"
    )
    assert code == 1
    assert [r["path"] for r in results] == [str(p) for p in (empty, text, good, truncated, missing)]
    errors = {r["path"]: r.get("error") for r in results}
    assert "empty file" in errors[str(empty)]
    assert "not an image" in errors[str(text)]
    assert errors[str(good)] is None and "views" in results[2]["platforms"]["task"]
    assert "cannot decode" in errors[str(truncated)]
    assert "no such file" in errors[str(missing)]
    assert "4 of 5 files could not be scored" in err


def test_a_folder_is_walked_as_protect_walks_one_and_nothing_in_it_goes_unsaid(tmp_path, capsys):
    album = tmp_path / "downloaded"  # an album downloaded back from a platform
    (album / "day 2" / ".thumbnails").mkdir(parents=True)
    textured(640, 480).save(album / "a.jpg")
    textured(480, 640, 1).save(album / "day 2" / "b.png")
    (album / "day 2" / "c.jpg").write_bytes((album / "a.jpg").read_bytes()[:1500])  # cut
    textured(320, 240).save(album / "day 2" / ".thumbnails" / "a.jpg")
    textured(320, 240).save(album / ".a.jpg")
    (album / "index.html").write_text("<html></html>")
    empty = tmp_path / "nothing here"
    empty.mkdir()
    single = tmp_path / "single.jpg"
    textured(640, 480, 2).save(single)
    args = ["--model", "brisque", "--platforms", "task", "--views", "center"]
    code, results, err = run_json(capsys, single, album, empty, *args)
    assert code == 1  # the cut one
    found = album.resolve()
    assert [r["path"] for r in results] == [
        str(single), str(found / "a.jpg"), str(found / "day 2" / "b.png"),
        str(found / "day 2" / "c.jpg"),
    ]  # fmt: skip
    assert [("error" in r) for r in results] == [False, False, False, True]
    assert (results[2]["width"], results[2]["height"]) == (480, 640)
    assert "truncated" in results[3]["error"], results[3]
    assert f"{found / '.a.jpg'}: left alone for its name" in err and "to score it" in err
    assert f"1 folder passed over for its name (hidden, or sync tools' own): {found}" in err
    assert "1 other file left alone (not a photo, or an ignored name)" in err
    assert f"{empty}: no photo in it to score" in err
    assert "1 of 4 files could not be scored" in err


def test_a_photo_given_again_with_its_folder_is_scored_once_and_said(tmp_path, capsys):
    album = tmp_path / "album"
    album.mkdir()
    textured(640, 480).save(album / "a.jpg")
    textured(320, 240).save(album / ".b.jpg")  # hidden: named once, however often walked
    args = ["--model", "brisque", "--platforms", "task", "--views", "center"]
    code, results, err = run_json(capsys, album, f"{album}/", album / "a.jpg", *args)
    assert code == 0
    assert [r["path"] for r in results] == [str(album.resolve() / "a.jpg")], results
    assert "2 photos given more than once: each is scored once" in err, err
    assert err.count(".b.jpg: left alone for its name") == 1, err


def test_a_folder_whose_names_are_not_utf8_is_scored_as_its_photos_are_alone(tmp_path, capsys):
    # an album from an old Windows camera: Latin-1 names, scored as each is on its own (no
    # record keeps a score), not refused with "rename it to protect it"
    album = tmp_path / os.fsdecode(b"R\xe9veillon")
    (album / os.fsdecode(b"f\xeate")).mkdir(parents=True)
    textured(640, 480).save(album / os.fsdecode(b"caf\xe9.jpg"))
    textured(480, 640, 1).save(album / os.fsdecode(b"f\xeate") / "a.jpg")
    args = ["--model", "brisque", "--platforms", "task", "--views", "center"]
    code, results, err = run_json(capsys, album, *args)
    assert code == 0, err
    assert [("error" in r, r["width"]) for r in results] == [(False, 640), (False, 480)], results
    assert "rename it" not in err and "could not be scored" not in err, err


def test_a_protect_outdir_is_scored_without_its_record_offered_as_photos(tmp_path, capsys):
    textured(320, 240).save(tmp_path / "a.jpg")
    out = tmp_path / "out"  # checked after protect, as a photographer checks the copies
    fast = ["--model", "brisque", "--views", "center", "--platforms", "task"]
    main(["protect", str(tmp_path / "a.jpg"), "--outdir", str(out), "--steps", "2", *fast])
    capsys.readouterr()
    assert (out / ".pixcamd").is_dir()
    code, results, err = run_json(capsys, out, *fast)
    assert code == 0, err
    assert [r["path"] for r in results] == [str(out.resolve() / "a.jpg")], err
    assert ".pixcamd" not in err and "passed over" not in err, err


def test_auto_falls_back_to_brisque_and_says_so(tmp_path, capsys):
    path = tmp_path / "photo.jpg"
    textured(640, 480).save(path)
    code, results, err = run_json(capsys, path)
    assert code == 0 and results[0]["model"] == "brisque"
    assert "KonCept512 weights not installed" in err


def test_koncept512_without_weights_is_an_error_not_random_scores(tmp_path, capsys):
    path = tmp_path / "photo.jpg"
    textured(640, 480).save(path)
    assert main(["score", str(path), "--model", "koncept512"]) == 2
    assert "pixcamd model fetch" in capsys.readouterr().err


@pytest.mark.slow
def test_koncept512_scores_with_given_weights(tmp_path, capsys, recipe_checkpoint):
    path = tmp_path / "photo.jpg"
    textured(700, 500).save(path)
    code, results, _ = run_json(
        capsys, path, "--model", "koncept512", "--weights", recipe_checkpoint, "--platforms", "task"
    )
    assert code == 0
    assert results[0]["model"] == "koncept512" and results[0]["threshold"] == 50
    assert results[0]["fingerprint"].startswith("koncept512-irv2-avgpool8-topleft@sha256:")
    assert all(isinstance(v["score"], float) for v in only_views(results[0]).values())


def test_human_table(tmp_path, capsys):
    path = tmp_path / "photo.png"  # not a JPEG: no encoding of its own to report
    textured(640, 480).save(path)
    args = ["--model", "brisque", "--views", "center", "--platforms", "task,width320-q80"]
    assert main(["score", str(path), *args]) == 0
    out = capsys.readouterr().out
    assert f"{path}  (640×480): " in out and "best seen by " in out
    assert "  task — full size, JPEG 90 4:2:0, served at 640×480" in out
    assert "  width320-q80 — width 320 px (lanczos), JPEG 80 4:2:0, served at 320×240" in out
    assert out.count("    center ") == 2


@pytest.mark.parametrize("encoding", ["ascii", "latin-1"])
def test_a_terminal_that_is_not_utf8_gets_the_answer_not_a_traceback(tmp_path, encoding):
    """×, → and a photo's own name cannot all be written in ASCII or Latin-1 (a legacy locale):
    what the terminal cannot show comes out as ``?``, the scores and the exit status stay."""
    path = tmp_path / "café ✓.png"
    textured(640, 480).save(path)
    env = dict(os.environ, PYTHONIOENCODING=encoding, PYTHONPATH=str(ROOT))
    args = [str(path), "--model", "brisque", "--views", "center", "--platforms", "task"]
    for command in (["score", *args], ["protect", "--help"]):
        done = subprocess.run(
            [sys.executable, "-m", "pixcamd", *command],
            capture_output=True,
            env=env,
            timeout=300,
        )
        out = done.stdout.decode(encoding)
        assert done.returncode == 0 and b"Traceback" not in done.stderr, done.stderr[-2000:]
        if command[0] == "score":
            for line in (f"{path.name}  (640×480): ", "  task — full size", "    center "):
                assert line.encode(encoding, "replace").decode(encoding) in out
        else:
            assert out.startswith("usage: pixcamd protect") and "--platforms" in out


def test_what_reading_changed_is_said_with_the_scores(tmp_path, capsys):
    see_through = textured(640, 480).convert("RGBA")
    see_through.putalpha(128)
    see_through.save(tmp_path / "see_through.png")
    textured(640, 480).save(tmp_path / "plain.png")
    args = ["--model", "brisque", "--views", "center", "--platforms", "task"]
    code, results, err = run_json(
        capsys, tmp_path / "see_through.png", tmp_path / "plain.png", *args
    )
    assert code == 0
    flattened = "transparent areas composited onto white (JPEG has no transparency)"
    assert results[0]["warnings"] == [flattened] and results[1]["warnings"] == []
    assert f"{tmp_path / 'see_through.png'}: {flattened}" in err
    assert "plain.png:" not in err


def test_names_are_read_whatever_their_case_as_platform_names_are(tmp_path, capsys):
    path = tmp_path / "photo.png"
    textured(640, 480).save(path)
    args = ["--model", "BRISQUE", "--views", "Centre", "--platforms", "Task"]
    code, (result,), _ = run_json(capsys, path, *args)
    assert code == 0 and result["model"] == "brisque"
    assert list(only_views(result)) == ["center"]


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--views", "middle"], "unknown view 'middle'"), (["--jpeg", "101"], "quality 1–100")],
)
def test_bad_options_are_refused(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as exc:
        main(["score", str(tmp_path / "x.jpg"), *args])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_scores_the_corpus_centre_crops_like_the_reference(corpus_dir, data_dir, capsys):
    """``score --views center --jpeg none`` is exactly the reference's crop: same numbers."""
    rows = csv.DictReader(
        io.StringIO((data_dir / "brisque_reference_scores.tsv").read_text()), delimiter="\t"
    )
    reference = {r["image"]: float(r["brisque_score"]) for r in rows if r["variant"] == "crop"}
    paths = [corpus_dir / name for name in reference if name.startswith("photos/")]
    code, results, _ = run_json(
        capsys, *paths, "--model", "brisque", "--views", "center", "--jpeg", "none"
    )
    assert code == 0 and len(results) == 10
    deltas = [
        abs(only_views(r)["center"]["score"] - reference[f"photos/{r['path'].rsplit('/', 1)[1]}"])
        for r in results
    ]
    assert max(deltas) <= 0.02  # measured: at most 0.006 (Wine), most under 0.001


def test_scores_the_whole_corpus_as_the_issue_asks(corpus_dir, capsys):
    paths = sorted((corpus_dir / "photos").glob("*.jpg"))
    code, results, _ = run_json(capsys, *paths, "--model", "brisque")
    assert code == 0
    assert len(results) == len(paths) == 10
    assert all(list(r["platforms"]) == list(DEFAULT_PLATFORMS) for r in results)
    assert all(
        set(p["views"]) == {"center", "resize"} for r in results for p in r["platforms"].values()
    )


def test_a_jpeg_downloaded_back_says_how_it_was_encoded(tmp_path, capsys):
    # what a user reads to write a platform's pipeline down: libjpeg's quality and the chroma
    # subsampling, told from the file's own tables
    photo = textured(640, 480, 3)
    made = {
        "q75.jpg": dict(quality=75),  # Pillow's default 4:2:0
        "mastodon.jpg": dict(quality=90, subsampling="4:4:4"),
        "q100.jpg": dict(quality=100, subsampling="4:2:2"),
    }
    for name, options in made.items():
        photo.save(tmp_path / name, **options)
    # another encoder's tables: libjpeg's quality 80 luminance table, a few steps moved
    luma = Image.open(tmp_path / "q75.jpg").quantization[0]
    other = [min(255, v + (3 if i % 5 == 0 else 0)) for i, v in enumerate(luma)]
    photo.save(tmp_path / "other.jpg", qtables=[other, other], subsampling="4:2:0")
    photo.save(tmp_path / "photo.png")
    photo.convert("L").save(tmp_path / "grey.jpg", quality=85)
    photo.convert("CMYK").save(tmp_path / "print.jpg", quality=85)
    paths = [tmp_path / n for n in (*made, "other.jpg", "photo.png", "grey.jpg", "print.jpg")]
    code, results, _ = run_json(capsys, *paths, "--model", "brisque", "--platforms", "as-is")
    assert code == 0
    encodings = {r["path"].rsplit("/", 1)[1]: r["encoding"] for r in results}
    assert encodings["q75.jpg"] == {
        "size": [640, 480],
        "quality": 75,
        "exact": True,
        "subsampling": "4:2:0",
    }
    assert encodings["mastodon.jpg"]["quality"] == 90
    assert encodings["mastodon.jpg"]["subsampling"] == "4:4:4"
    q100 = encodings["q100.jpg"]
    assert (q100["quality"], q100["subsampling"]) == (100, "4:2:2")
    assert encodings["other.jpg"]["exact"] is False
    assert 70 <= encodings["other.jpg"]["quality"] <= 75  # the nearest of libjpeg's, not exact
    assert encodings["photo.png"] is None  # not a JPEG: no encoding of its own
    assert (encodings["grey.jpg"]["quality"], encodings["grey.jpg"]["subsampling"]) == (
        85,
        "grayscale",
    )
    assert encodings["print.jpg"]["subsampling"] == "CMYK (4 components)"  # not "other"
    for name, said in (("q75.jpg", "a JPEG q75 4:2:0"), ("other.jpg", "a JPEG ≈q")):
        main(["score", str(tmp_path / name), "--model", "brisque", "--platforms", "as-is"])
        assert f"(640×480, {said}" in capsys.readouterr().out


def test_a_strip_too_thin_to_judge_is_refused_in_words_and_the_next_file_is_scored(
    tmp_path, capsys
):
    """A 1×3000 line, enlarged to cover the 512×384 view, was 512×1,536,000 px: `score` ended
    in torch's allocation traceback (the next file never judged) and `protect` said to free
    memory and retry, which could never help."""
    line, photo = tmp_path / "line.png", tmp_path / "photo.png"
    Image.new("RGB", (1, 3000), (100, 120, 140)).save(line)
    textured(640, 480).save(photo)
    code, (refused, judged), err = run_json(capsys, line, photo, "--model", "brisque")
    assert code == 1 and "Traceback" not in err
    assert refused["error"].startswith("1×3000 px is too thin to judge"), refused
    assert judged["verdict"] in ("good quality", "low quality")
    out = tmp_path / "line.jpg"
    assert main(["protect", str(line), "-o", str(out), "--model", "brisque", "--json"]) == 1
    report, summary = map(json.loads, capsys.readouterr().out.splitlines())
    assert summary["summary"]["failed"] == 1
    assert "too thin to judge" in report["error"] and "memory" not in report["error"], report
    assert not out.exists()


def write_config(path, pipeline: str, extra: str = "") -> None:
    """A daemon config naming a pipeline of its own, ``myblog``; its folders need not exist."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f'inbox = "{path.parent / "in"}"\noutbox = "{path.parent / "out"}"\n{extra}'
        f'platforms = ["task", "myblog"]\n\n[pipelines.myblog]\n{pipeline}\n',
        encoding="utf-8",
    )


def test_a_pipeline_of_your_own_is_named_from_the_config_run_reads(home, capsys):
    path = home / "photo.png"
    textured(640, 480).save(path)
    write_config(home / "config" / "pixcamd" / "config.toml", 'resize = "long 320"\nquality = 70')
    args = ["--model", "brisque", "--views", "center"]
    code, (result,), _ = run_json(capsys, path, *args, "--platforms", "task,MyBlog")
    assert code == 0 and list(result["platforms"]) == ["task", "myblog"]
    myblog = result["platforms"]["myblog"]
    assert myblog["served"] == [320, 240]
    _, (inline,), _ = run_json(capsys, path, *args, "--platforms", "long320-q70")
    assert myblog["views"] == only_views(inline)  # the table's pipeline, judged the same way
    # --config names another file, whose table wins
    other = home / "elsewhere" / "pixcamd.toml"
    write_config(other, 'resize = "width 200"\nquality = 70', extra="epsilon = -1\n")
    code, (result,), _ = run_json(capsys, path, *args, "--config", other, "--platforms", "myblog")
    assert code == 0 and result["platforms"]["myblog"]["served"] == [200, 150]


def test_a_name_no_config_table_has_is_refused_naming_the_file(home, capsys):
    path = home / "photo.png"
    textured(640, 480).save(path)
    config = home / "config" / "pixcamd" / "config.toml"
    args = ["score", str(path), "--model", "brisque", "--views", "center"]
    with pytest.raises(SystemExit) as exc:  # no config at all: a typo is only a typo
        main([*args, "--platforms", "task,myblog"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "unknown platform 'myblog'" in err and "pixcamd init" not in err
    assert f"no config to find a [pipelines.myblog] in (none at {config} or " in err
    assert "--config FILE names one" in err
    write_config(config, 'resize = "long 320"\nquality = 70')
    with pytest.raises(SystemExit) as exc:
        main([*args, "--platforms", "myblg"])
    err = capsys.readouterr().err
    assert exc.value.code == 2
    assert "unknown platform 'myblg': choose from task" in err and "myblog" in err
    assert f"no [pipelines.myblg] in {config}" in err
    # a table with a problem is named by its key
    write_config(config, 'resize = "long 320"\nquality = 170')
    with pytest.raises(SystemExit) as exc:
        main([*args, "--platforms", "myblog"])
    assert exc.value.code == 2
    assert "pipelines.myblog.quality: 170 is out of range" in capsys.readouterr().err
    # the top's platforms written below the table: said where it goes, as `config check` does
    config.write_text(
        '[pipelines.myblog]\nresize = "long 320"\nquality = 70\nplatforms = ["myblog"]\n',
        encoding="utf-8",
    )
    with pytest.raises(SystemExit) as exc:
        main([*args, "--platforms", "myblog"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "platforms: written on line 4, below [pipelines.myblog]" in err, err
    assert "move it to the top of the file, above line 1" in err and "unknown key" not in err


def test_a_config_named_is_always_read_and_its_platforms_are_the_default(home, capsys):
    path = home / "photo.png"
    textured(640, 480).save(path)
    shop = home / "shop.toml"  # nothing but pipelines, named like inline specs would start
    shop.write_text(
        'platforms = ["task", "cropped", "lanczos-shop"]\n[pipelines.cropped]\n'
        'resize = "long 400"\nquality = 70\n[pipelines."lanczos-shop"]\n'
        'resize = "width 300"\nquality = 60\n',
        encoding="utf-8",
    )
    args = ["--model", "brisque", "--views", "center", "--config", shop]
    code, (result,), _ = run_json(capsys, path, *args)
    assert code == 0 and list(result["platforms"]) == ["task", "cropped", "lanczos-shop"]
    assert result["platforms"]["lanczos-shop"]["served"] == [300, 225]
    code, (result,), _ = run_json(capsys, path, *args, "--platforms", "Cropped")
    assert code == 0 and list(result["platforms"]) == ["cropped"]
    for typo in ("croped", "lanczos-shp"):  # they start like specs, but are names' typos
        with pytest.raises(SystemExit) as exc:
            main(["score", str(path), *map(str, args), "--platforms", typo])
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert f"unknown platform '{typo}': choose from task" in err and "cropped" in err
        assert f"no [pipelines.{typo}] in {shop}" in err
    for serve in ([], ["--jpeg", "90"]):  # named but not there: said, not passed over
        with pytest.raises(SystemExit) as exc:
            main(["score", str(path), *serve, "--config", str(home / "nothere.toml")])
        assert exc.value.code == 2
        assert "argument --config: " in capsys.readouterr().err


def test_presets_and_inline_specs_never_read_the_config(home, capsys):
    path = home / "photo.png"
    textured(640, 480).save(path)
    config = home / "config" / "pixcamd" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text("platforms = [task\n", encoding="utf-8")  # half edited: not TOML
    args = ["--model", "brisque", "--views", "center", "--platforms", "task,long320-q70"]
    code, (result,), _ = run_json(capsys, path, *args)
    assert code == 0 and list(result["platforms"]) == ["task", "long320-q70"]
    with pytest.raises(SystemExit) as exc:
        main(["score", str(path), "--model", "brisque", "--platforms", "myblog"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "looked for it in a config that cannot be used" in err
    assert f"{config}: not valid TOML" in err
    with pytest.raises(SystemExit) as exc:  # a name that only starts like a spec, the same
        main(["score", str(path), "--model", "brisque", "--platforms", "cropped"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "unknown platform 'cropped'" in err and f"{config}: not valid TOML" in err


def test_human_lines_say_which_side_of_the_threshold_is_good(tmp_path, capsys):
    """Each score says the side of the model's threshold it lies on, and the photo's line the
    threshold and which side is good (before: the bare score, the threshold on stderr once)."""
    from pixcamd.commands.score import good_side, side

    path = tmp_path / "photo.png"
    textured(640, 480).save(path)
    args = ["--model", "brisque", "--views", "center", "--platforms", "task,width320-q80"]
    assert main(["score", str(path), *args]) == 0
    out = capsys.readouterr().out
    assert "; brisque: good below 60)" in out.splitlines()[0], out
    views = [line.split() for line in out.splitlines() if line.startswith("    center ")]
    assert len(views) == 2
    for view in views:
        score, verdict, sides = float(view[1]), view[2], " ".join(view[4:])
        assert (verdict, sides) == (("good", "(< 60)") if score < 60 else ("low", "(≥ 60)")), view
    koncept = {"model": "koncept512", "threshold": 50.0, "direction": "higher_is_better"}
    assert good_side(koncept) == "koncept512: good above 50"
    assert side(koncept, 50.0, False) == "≤ 50" and side(koncept, 71.2, True) == "> 50"
