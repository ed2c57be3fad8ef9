"""The daemon's one config schema: example file, validation messages, ``pixcamd config check``."""

from __future__ import annotations

import json
import os
import re
import sys

import pytest
from test_daemon_support import ROOT, no_leaked_threads  # noqa: F401

from pixcamd.cli import main
from pixcamd.daemon.config import ConfigError, load_config, validate
from pixcamd.daemon.config_toml import render_example
from pixcamd.daemon.fs import choose_tmp_dir
from pixcamd.daemon.schema import SCHEMA
from pixcamd.platforms import DEFAULT_PLATFORMS, PRESETS, Pipeline

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


# The commented [pipelines.NAME] example's first table header: a line of its own (the docs'
# "[pipelines.NAME]" may also start a wrapped line, followed by more words).
EXAMPLE_TABLE = r"\n# \[pipelines\.[^\]\n]+\]\n"


def test_example_file_is_generated_from_the_schema_and_documents_every_key():
    text = (ROOT / "config.example.toml").read_text()
    assert text == render_example(), "regenerate config.example.toml from the schema"
    parsed = tomllib.loads(text)
    # [pipelines.NAME] tables are an example to copy, commented out; every other key is set
    assert list(parsed) == [o.key for o in SCHEMA if o.key != "pipelines"]
    for option in SCHEMA:
        start = EXAMPLE_TABLE if option.key == "pipelines" else re.escape(f"\n{option.key} = ")
        found = re.search(start, text)
        assert found, option.key
        doc_start = found.start()
        assert text[:doc_start].rstrip().endswith(option.doc.split()[-1]), option.key


def test_the_commented_pipeline_example_is_valid_once_uncommented(tmp_path):
    text = (ROOT / "config.example.toml").read_text()
    tables = text[re.search(EXAMPLE_TABLE, text).start() :]
    uncommented = "\n".join(line.removeprefix("# ") for line in tables.splitlines())
    raw = {**tomllib.loads(render_example()), **tomllib.loads(uncommented)}
    (tmp_path / "in").mkdir()
    raw.update(inbox=str(tmp_path / "in"), outbox=str(tmp_path / "out"))
    raw["platforms"] = [*raw["platforms"], *raw["pipelines"]]
    config = validate(raw, tmp_path / "c.toml")
    (name,) = raw["pipelines"]
    assert [p.name for p in config.platform_pipelines][-1] == name


def test_example_values_validate_with_real_folders(tmp_path):
    raw = tomllib.loads(render_example())
    (tmp_path / "in").mkdir()
    raw.update(inbox=str(tmp_path / "in"), outbox=str(tmp_path / "out"))
    config = validate(raw, tmp_path / "c.toml")
    assert config.model == ["auto"]
    assert config.on_unprotected == "hold"
    assert config.rescan_interval == 600
    assert ".stversions" in config.ignore and "*.part" in config.ignore
    assert config.platforms == list(DEFAULT_PLATFORMS)  # protected where photos go, by default
    assert config.platform_pipelines == tuple(PRESETS[n] for n in DEFAULT_PLATFORMS)


def write(tmp_path, text: str):
    (tmp_path / "inbox").mkdir(exist_ok=True)
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def problems(tmp_path, text: str) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    return str(info.value)


def test_messages_name_the_file_the_key_and_the_problem(tmp_path):
    message = problems(
        tmp_path,
        'inbox = "inbox"\noutbox = "out"\ninbx = 1\nepsilon = "big"\n'
        "output_quality = 120\nstrip_gps = 1\nviews = ['middle']\nmodel = 'vgg'\n"
        "on_unprotected = 'drop'\nignore = ['a/b']\n",
    )
    where = str(tmp_path / "config.toml")
    assert f"{where}: inbx: unknown key on line 3 (did you mean 'inbox'?)" in message
    assert f"{where}: epsilon: expected a number, got 'big' (str)" in message
    assert f"{where}: output_quality: 120 is out of range: give 1–100" in message
    assert f"{where}: strip_gps: expected true or false, got 1 (int)" in message
    assert "views: unknown view 'middle'" in message
    assert "model: unknown model 'vgg'" in message
    assert "on_unprotected: 'drop' is not one of hold, ship" in message
    assert "ignore: 'a/b': a pattern matches one file or folder name" in message
    assert message.count("\n  ") == 8  # every problem at once, one per line


def test_problems_between_keys_and_overlapping_folders_are_said_with_the_others(tmp_path):
    message = problems(
        tmp_path,
        'inbox = "inbox"\noutbox = "inbox/out"\nsed = 1\nweb = "0.0.0.0:18740"\n'
        "epsilon = 8\nepsilon_cap = 4\nhold_dir = 'held'\non_unprotected = 'ship'\n",
    )
    where = str(tmp_path / "config.toml")
    said = [line.strip() for line in message.splitlines()[1:]]  # in one go, one per line
    assert [line.split(": ")[1] for line in said] == [
        "sed",  # a key alone, then the problems between keys, then the folders
        "epsilon_cap",
        "hold_dir",
        "web",
        "outbox",
    ]
    assert all(line.startswith(f"{where}: ") for line in said)
    assert "'0.0.0.0:18740' is reachable from other machines" in said[3]
    assert f"{tmp_path / 'inbox' / 'out'} is inside the inbox" in said[4]
    message = problems(
        tmp_path, 'inbox = "inbox"\noutbox = "out"\nmode = "enhance"\nenhance_strength = 0\n'
    )
    assert f"{where}: enhance_strength: 0 leaves the colour filter of mode = " in message
    # a key that does not parse leaves out only the checks that read it
    message = problems(tmp_path, 'inbox = "inbox"\noutbox = "inbox/out"\nweb = 5\n')
    assert "web: expected a string" in message and "is inside the inbox" in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('outbox = "out"\n', "inbox: required"),
        ('inbox = "inbox"\noutbox = "inbox/out"\n', "is inside the inbox"),
        ('inbox = "inbox"\noutbox = "."\n', "contains the inbox"),
        ('inbox = "inbox"\noutbox = "out"\nstate_dir = "inbox/.state"\n', "state_dir: "),
        ('inbox = "inbox"\noutbox = "out"\ntmp_dir = "out/.tmp"\n', "inside the outbox"),
        # emptied at every start: never a folder that holds the photos or the record
        ('inbox = "inbox"\noutbox = "out"\ntmp_dir = "."\n', "holds the inbox"),
        ('inbox = "inbox"\noutbox = "out"\nstate_dir = "st"\ntmp_dir = "st"\n', "holds the state"),
        ('inbox = "missing"\noutbox = "out"\n', "inbox: "),
        ('inbox = "inbox"\noutbox = "out"\nepsilon = 6\nepsilon_cap = 4\n', "epsilon_cap: 4"),
        ('inbox = "inbox"\noutbox = "out"\nmodel = ["auto", "brisque"]\n', "auto stands alone"),
        (
            'inbox = "inbox"\noutbox = "out"\nmodel = ["koncept512", "brisque"]\ntarget = 30\n',
            "target: several models",
        ),
        (
            'inbox = "inbox"\noutbox = "out"\nhold_dir = "held"\non_unprotected = "ship"\n',
            "hold_dir: only",
        ),
        ('inbox = "inbox"\noutbox = "out"\ndevice = "gpu"\n', "device: 'gpu' is not a device"),
        ('inbox = "inbox"\noutbox = "out"\nextensions = ["jpg"]\n', "with their dot"),
        ('inbox = "inbox"\noutbox = "out"\ntarget = { vgg = 3 }\n', "target: unknown model 'vgg'"),
        ('inbox = "inbox"\noutbox = "out"\nsettle_time = 0\n', "settle_time: 0 is out of range"),
        ('inbox = "inbox"\noutbox = "out"\nmax_attempts = 1.5\n', "expected a whole number"),
        ("inbox = \n", "not valid TOML"),
        # TOML says only "Invalid value": what the line should read is said too
        (
            'inbox = ~/Pictures/inbox  # mine\noutbox = "out"\n',
            'Invalid value (at line 1, column 9); text goes in quotes: inbox = "~/Pictures/inbox"',
        ),
        ("inbox = D:\\Photos\\inbox\n", "text goes in quotes: inbox = 'D:\\Photos\\inbox'"),
        (
            'inbox = "inbox"\noutbox = "out"\nstrip_gps = Yes\n',
            "yes or no is true or false: strip_gps = true",
        ),
    ],
)
def test_invalid_configurations_are_refused_with_the_key(tmp_path, text, expected):
    assert expected in problems(tmp_path, text)


def test_a_tmp_dir_inside_the_outbox_is_said_once_with_no_advice_that_fails(tmp_path):
    said = problems(tmp_path, 'inbox = "inbox"\noutbox = "out"\ntmp_dir = "out"\n')
    assert "is inside the outbox" in said and "holds the outbox" not in said, said


def test_missing_file_says_how_to_start(tmp_path):
    with pytest.raises(ConfigError, match=r"config\.example\.toml"):
        load_config(tmp_path / "nope.toml")


def test_relative_paths_follow_the_config_file_and_systemd_directories(tmp_path, monkeypatch):
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "var-lib"))
    monkeypatch.setenv("LOGS_DIRECTORY", str(tmp_path / "var-log"))
    config = load_config(write(tmp_path, 'inbox = "inbox"\noutbox = "../out"\n'))
    assert config.inbox == tmp_path / "inbox"
    assert config.outbox == tmp_path.parent / "out"
    assert config.state_dir == tmp_path / "var-lib"
    assert config.log_file == tmp_path / "var-log" / "pixcamd.jsonl"
    assert config.ledger_path == tmp_path / "var-lib" / "ledger.sqlite3"


def test_target_table_and_single_values(tmp_path):
    config = load_config(
        write(tmp_path, 'inbox = "inbox"\noutbox = "o"\nmodel = "brisque"\ntarget = 85\n')
    )
    assert config.target == {"*": 85.0}
    assert config.model == ["brisque"]
    config = config.replace(model=["koncept512", "brisque"], target={"brisque": 90})
    assert config.target == {"brisque": 90.0}


def test_model_view_and_target_names_are_read_whatever_their_case(tmp_path):
    text = 'inbox = "inbox"\noutbox = "o"\nmodel = "BRISQUE"\nviews = ["Centre", "RESIZE"]\n'
    config = load_config(write(tmp_path, text + "target = { Brisque = 70 }\n"))
    assert config.model == ["brisque"]
    assert config.views == ["center", "resize"]
    assert config.target == {"brisque": 70.0}


def test_tmp_dir_is_in_the_state_dir_on_the_outbox_mount(tmp_path):
    config = load_config(write(tmp_path, 'inbox = "inbox"\noutbox = "out"\nstate_dir = "st"\n'))
    assert choose_tmp_dir(config) == tmp_path / "st" / "tmp"
    assert (tmp_path / "st" / "tmp").is_dir() and (tmp_path / "out").is_dir()


def test_tmp_dir_falls_back_beside_the_outbox_on_another_mount(tmp_path):
    other = "/dev/shm"
    if not os.path.isdir(other) or os.stat(other).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("needs /dev/shm on another filesystem than the test folder")
    state = os.path.join(other, f"pixcamd-test-{os.getpid()}")
    try:
        config = load_config(
            write(tmp_path, f'inbox = "inbox"\noutbox = "out"\nstate_dir = "{state}"\n')
        )
        assert choose_tmp_dir(config) == tmp_path / ".pixcamd-tmp-out"  # one per outbox
        config = config.replace(tmp_dir=os.path.join(state, "t"))
        with pytest.raises(ConfigError, match=r"on the outbox.s mount"):
            choose_tmp_dir(config)
    finally:
        import shutil

        shutil.rmtree(state, ignore_errors=True)


def test_config_check_prints_the_effective_configuration(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # no KonCept512 weights there
    monkeypatch.delenv("CACHE_DIRECTORY", raising=False)
    path = write(tmp_path, 'inbox = "inbox"\noutbox = "out"\nstate_dir = "st"\nsettle_time = 2\n')
    (tmp_path / "out").mkdir()
    assert main(["config", "check", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    effective = tomllib.loads(out)
    assert effective["inbox"] == str(tmp_path / "inbox")
    assert effective["settle_time"] == 2.0
    assert effective["model"] == ["brisque"]  # auto, resolved
    assert effective["device"] == "cpu"
    assert effective["tmp_dir"] == str(tmp_path / "st" / "tmp")
    assert effective["log_file"] == str(tmp_path / "st" / "pixcamd.jsonl")
    assert set(effective) == {o.key for o in SCHEMA}
    assert "model auto → BRISQUE (embedded): KonCept512 weights are not installed" in out


def test_a_config_saved_by_windows_notepad_is_read(tmp_path, capsys):
    """A byte-order mark before the UTF-8 and CRLF line ends (Notepad, or a file edited on
    Windows and copied over): TOML itself refused the mark it cannot show, at line 1."""
    path = write(tmp_path, "")
    text = 'inbox = "inbox"\r\noutbox = "out"\r\nstate_dir = "st"\r\nsettle_time = 3\r\n'
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())
    assert main(["config", "check", "--config", str(path)]) == 0
    effective = tomllib.loads(capsys.readouterr().out)
    assert effective["inbox"] == str(tmp_path / "inbox") and effective["settle_time"] == 3.0
    assert main(["status", "--json", "--config", str(path)]) == 2  # no daemon has run: ...
    said = json.loads(capsys.readouterr().out)  # ... but its state dir is the file's
    assert said["ledger"] == str(tmp_path / "st" / "ledger.sqlite3"), said


def test_config_check_shows_the_platforms_in_force_not_only_as_written(tmp_path, capsys):
    text = (
        'inbox = "inbox"\noutbox = "out"\nstate_dir = "st"\n'
        'platforms = ["task", "Instagram", "MYBLOG", "instagram"]\n'
        '[pipelines.MyBlog]\nresize = "long 1200"\nquality = 82\n'
    )
    path = write(tmp_path, text)
    assert main(["config", "check", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert tomllib.loads(out)["platforms"] == ["task", "instagram", "MyBlog"]
    assert '# as written: ["task", "Instagram", "MYBLOG", "instagram"]' in out, out


def test_config_check_fails_with_exit_2_and_the_key(tmp_path, capsys):
    path = write(tmp_path, 'inbox = "inbox"\noutbox = "inbox/out"\n')
    assert main(["config", "check", "--config", str(path)]) == 2
    assert "outbox: " in capsys.readouterr().err


def test_errors_escape_file_names_and_keep_one_problem_per_line(tmp_path, capsys):
    """A folder name with an escape sequence or a newline (a sync peer's) must neither drive
    the terminal nor forge a line of the message; the list of problems keeps its lines."""
    odd = tmp_path / "a\x1b[2Jb\nfake: line"
    odd.mkdir()
    path = write(odd, 'inbox = "inbox"\noutbox = "inbox/out"\nsed = 1\n')
    assert main(["config", "check", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "\x1b" not in err and "a\\x1b[2Jb\\nfake: line" in err
    lines = err.splitlines()
    assert lines[0] == "pixcamd: error: invalid configuration:"
    assert len(lines) == 3 and "config.toml: sed: " in lines[1], lines
    assert "config.toml: outbox: " in lines[2], lines
    weights = str(odd / "KonCept512.pth")
    assert main(["score", "--model", "koncept512", "--weights", weights, str(path)]) == 2
    err = capsys.readouterr().err
    assert "\x1b" not in err and len(err.splitlines()) == 1 and "weights not found at" in err


def test_protection_mode_is_checked_and_changes_the_settings_fingerprint(tmp_path, brisque):
    from pixcamd.daemon.settings import build_settings, settings_fingerprint

    message = problems(
        tmp_path, 'inbox = "inbox"\noutbox = "out"\nmode = "vivid"\nenhance_strength = 99\n'
    )
    assert "mode: 'vivid' is not one of invisible, enhance, auto" in message
    assert "enhance_strength: 99 is out of range" in message
    prints = set()
    for mode in ("invisible", "enhance", "auto"):
        config = load_config(write(tmp_path, f'inbox = "inbox"\noutbox = "out"\nmode = "{mode}"\n'))
        settings = build_settings(config, [brisque], "cpu")
        assert settings.mode == mode and settings.enhance_strength == 24 / 255
        prints.add(settings_fingerprint(settings, [brisque]))
    assert len(prints) == 3  # a new mode re-tries photos it left unprotected


def test_strip_metadata_is_a_boolean_config_check_shows(tmp_path, capsys):
    path = write(tmp_path, 'inbox = "inbox"\noutbox = "out"\nstrip_metadata = true\n')
    assert main(["config", "check", "--config", str(path)]) == 0
    effective = tomllib.loads(capsys.readouterr().out)
    assert effective["strip_metadata"] is True and effective["strip_gps"] is True
    path.write_text('inbox = "inbox"\noutbox = "out"\nstrip_metadata = "yes"\n')
    assert main(["config", "check", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    said = "strip_metadata: 'yes' on line 3 is text in quotes: write strip_metadata = true"
    assert f"{path}: {said}" in err


def test_stripping_the_metadata_changes_the_fingerprint_and_the_key_only_when_asked(brisque):
    """A copy with no metadata is other bytes: its photos are redone (a folder run) or tried
    again (the daemon's held-back ones) — but the default's fingerprints stay, and so does a
    keep-GPS one: no ledger redoes its photos for a key it does not use. With every tag gone
    the GPS choice changes nothing in the copy, nor in its fingerprint."""
    from pixcamd.daemon.settings import settings_fingerprint, settings_key
    from pixcamd.settings import Settings

    settings, models = Settings(), [brisque]
    for record in (settings_fingerprint, settings_key):
        default, keep = record(settings, models), record(settings, models, False)
        assert record(settings, models, True, False) == default
        assert record(settings, models, False, False) == keep != default
        stripped = record(settings, models, True, True)
        assert stripped not in (default, keep)
        assert record(settings, models, False, True) == stripped


@pytest.mark.parametrize(
    "module, rule, changed",
    [
        ("optimizer", "STEP_CLIP", 4.0),
        ("optimizer", "FADE", 0.0),
        ("roaming", "ROAM_NATIVE_SHARE", 0.0),
        ("roaming", "ROAM_NATIVE_QUALITY", (80, 90)),
        ("roaming", "ROAM_CROP_SHARE", 0.0),
        ("roaming", "ROAM_CROP_FIT_SHARE", 0.5),
        ("roaming", "ROAM_ASPECTS", ((1, 1),)),
        ("roaming", "NEAR_FULL", (1.02, 1.3)),
        ("roaming", "NEAR_FULL_444_SHARE", 0.0),
        ("search", "TRIM_MARGIN", 0.5),
        ("daemon.settings", "SEARCH_REVISION", 1),
    ],
)
def test_a_new_step_rule_changes_the_settings_fingerprint(
    monkeypatch, brisque, module, rule, changed
):
    """The optimizer's step rule and its roaming draws are no setting, but they change the
    pixels: photos an older rule left unprotected are tried again under the new one."""
    import importlib

    from pixcamd.daemon.settings import settings_fingerprint
    from pixcamd.protect import Settings

    before = settings_fingerprint(Settings(), [brisque])
    assert settings_fingerprint(Settings(), [brisque]) == before
    assert settings_fingerprint(Settings(fit_jitter=0.0), [brisque]) != before
    assert settings_fingerprint(Settings(near_full=0), [brisque]) != before
    monkeypatch.setattr(importlib.import_module(f"pixcamd.{module}"), rule, changed)
    assert settings_fingerprint(Settings(), [brisque]) != before


# ---- platforms and [pipelines.NAME] ----------------------------------------------------------

BASE = 'inbox = "inbox"\noutbox = "out"\nstate_dir = "st"\n'
MYBLOG = '[pipelines.myblog]\nresize = "long 600"\nfilter = "bicubic"\nquality = 80\n'


def test_a_custom_pipeline_is_checked_printed_and_used(tmp_path, monkeypatch, capsys, brisque):
    from pixcamd.daemon.settings import build_settings, settings_fingerprint

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("CACHE_DIRECTORY", raising=False)
    text = BASE + 'platforms = ["task", "myblog", "width1080-q80"]\n' + MYBLOG
    config = load_config(write(tmp_path, text))
    myblog = Pipeline("myblog", "long", 600, filter="bicubic", quality=80)
    assert config.platform_pipelines == (
        PRESETS["task"],
        myblog,
        Pipeline("width1080-q80", "width", 1080, quality=80),
    )
    settings = build_settings(config, [brisque], "cpu")
    assert settings.platforms == config.platform_pipelines
    # config check prints it as the daemon will use it
    assert main(["config", "check", "--config", str(config.source)]) == 0
    effective = tomllib.loads(capsys.readouterr().out)
    assert effective["platforms"] == ["task", "myblog", "width1080-q80"]
    assert effective["pipelines"] == {
        "myblog": {"resize": "long 600", "filter": "bicubic", "quality": 80}
    }
    # another pipeline is other settings: photos left unprotected are tried again
    other = load_config(write(tmp_path, text.replace("quality = 80", "quality = 70")))
    assert settings_fingerprint(build_settings(other, [brisque], "cpu"), [brisque]) != (
        settings_fingerprint(settings, [brisque])
    )


def test_custom_names_are_read_whatever_their_case_and_a_list_may_be_one_string(tmp_path):
    text = BASE + 'platforms = "task, MyBlog"\n' + MYBLOG
    config = load_config(write(tmp_path, text))
    assert [p.name for p in config.platform_pipelines] == ["task", "myblog"]
    twice = text + MYBLOG.replace("myblog", "MYBLOG")
    assert "pipelines.MYBLOG: another table has this name but for its case" in problems(
        tmp_path, twice
    )
    # a table named like a preset is told so once, not also that it is never used
    message = problems(tmp_path, BASE + MYBLOG.replace("myblog", "Instagram"))
    assert "pipelines.Instagram: a preset has this name" in message
    assert "defined but not named" not in message


def test_a_reordered_list_of_platforms_or_views_is_the_same_settings(tmp_path, brisque):
    from pixcamd.daemon.settings import build_settings, settings_fingerprint

    def fingerprint(platforms: str, views: str) -> str:
        text = BASE + f"platforms = {platforms}\nviews = {views}\n" + MYBLOG
        config = load_config(write(tmp_path, text))
        return settings_fingerprint(build_settings(config, [brisque], "cpu"), [brisque])

    first = fingerprint('["task", "myblog", "instagram"]', '["center", "resize"]')
    assert fingerprint('["instagram", "myblog", "TASK"]', '["resize", "center"]') == first
    assert fingerprint('["instagram", "myblog"]', '["resize", "center"]') != first


def test_a_custom_webp_or_avif_pipeline_reads_from_the_config_and_changes_the_fingerprint(
    tmp_path, capsys, brisque
):
    from pixcamd.daemon.settings import build_settings, settings_fingerprint

    text = BASE + 'platforms = ["task", "myblog"]\n' + MYBLOG
    webp = load_config(write(tmp_path, text + 'codec = "webp"\n'))
    assert webp.platform_pipelines[1] == Pipeline(
        "myblog", "long", 600, filter="bicubic", quality=80, codec="webp"
    )
    assert main(["config", "check", "--config", str(webp.source)]) == 0
    assert tomllib.loads(capsys.readouterr().out)["pipelines"]["myblog"]["codec"] == "webp"
    jpeg = load_config(write(tmp_path, text))
    assert jpeg.platform_pipelines[1].codec == "jpeg"
    avif = load_config(write(tmp_path, text + 'codec = "avif"\nsubsampling = "4:4:4"\n'))
    assert avif.platform_pipelines[1] == Pipeline(
        "myblog", "long", 600, filter="bicubic", quality=80, subsampling="4:4:4", codec="avif"
    )
    # a WebP or AVIF destination is another pipeline: photos held back are tried again
    fingerprints = {
        settings_fingerprint(build_settings(c, [brisque], "cpu"), [brisque])
        for c in (webp, jpeg, avif)
    }
    assert len(fingerprints) == 3


def test_a_custom_pipeline_by_megapixels_reads_from_the_config(tmp_path, capsys):
    text = BASE + 'platforms = ["task", "myblog"]\n' + MYBLOG.replace("long 600", "mp 2")
    config = load_config(write(tmp_path, text))
    mine = config.platform_pipelines[1]
    assert mine == Pipeline("myblog", "mp", 2, filter="bicubic", quality=80)
    assert mine.output_size(3000, 2000) == (1732, 1155)  # √(2·10⁶ · 3/2), √(2·10⁶ · 2/3)
    assert main(["config", "check", "--config", str(config.source)]) == 0
    assert tomllib.loads(capsys.readouterr().out)["pipelines"]["myblog"]["resize"] == "mp 2"


def test_a_custom_crop_pipeline_reads_from_the_config_and_changes_the_fingerprint(
    tmp_path, capsys, brisque
):
    from pixcamd.daemon.settings import build_settings, settings_fingerprint

    text = BASE + 'platforms = ["task", "myblog"]\n' + MYBLOG
    grid = load_config(write(tmp_path, text + 'crop = "3:4"\ncrop_after_resize = true\n'))
    assert grid.platform_pipelines[1] == Pipeline(
        "myblog", "long", 600, filter="bicubic", quality=80, crop=(3, 4), crop_after_resize=True
    )
    assert main(["config", "check", "--config", str(grid.source)]) == 0
    effective = tomllib.loads(capsys.readouterr().out)["pipelines"]["myblog"]
    assert (effective["crop"], effective["crop_after_resize"]) == ("3:4", True)
    square = load_config(write(tmp_path, text + 'crop = "1:1"\n'))
    assert square.platform_pipelines[1].crop == (1, 1)
    assert not square.platform_pipelines[1].crop_after_resize
    plain = load_config(write(tmp_path, text))
    fingerprints = {
        settings_fingerprint(build_settings(c, [brisque], "cpu"), [brisque])
        for c in (grid, square, plain)
    }
    assert len(fingerprints) == 3


BAD_PIPELINES = [
    (MYBLOG.replace("quality = 80", "quality = 0"), "pipelines.myblog.quality: 0 is out of range"),
    (
        MYBLOG.replace("quality = 80", "quality = 101"),
        "pipelines.myblog.quality: 101 is out of range",
    ),
    (MYBLOG.replace("long 600", "scale 2"), "pipelines.myblog.resize: scale 2 would enlarge"),
    (MYBLOG.replace("long 600", "long 8"), "pipelines.myblog.resize: long 8: give a whole number"),
    (MYBLOG.replace("long 600", "wide 600"), "pipelines.myblog.resize: 'wide 600': write"),
    (MYBLOG.replace("long 600", "mp 0"), "pipelines.myblog.resize: mp 0: give the megapixels"),
    (
        MYBLOG.replace("bicubic", "sharp"),
        "pipelines.myblog.filter: unknown resampling filter 'sharp'",
    ),
    (MYBLOG.replace("quality", "qualty"), "pipelines.myblog.qualty: unknown key"),
    (MYBLOG + 'codec = "jxl"\n', "pipelines.myblog.codec: unknown codec 'jxl'"),
    (
        MYBLOG + 'codec = "webp"\nsubsampling = "4:4:4"\n',
        "pipelines.myblog.subsampling: chroma subsampling 4:4:4 with WebP",
    ),
    (
        MYBLOG.replace("quality = 80", 'quality = "80"'),  # the top's keys get this hint too
        "pipelines.myblog.quality: '80' in quotes is text: write quality = 80",
    ),
    (
        MYBLOG.replace("quality = 80", 'quality = "120"'),
        "pipelines.myblog.quality: '120' in quotes is text, and without them 120 is out of range",
    ),
    (
        MYBLOG + 'crop = "1:1"\ncrop_after_resize = "true"\n',
        "pipelines.myblog.crop_after_resize: 'true' in quotes is text: write "
        "crop_after_resize = true",
    ),
    (
        MYBLOG.replace("quality = 80", 'quality = "eighty"'),
        "pipelines.myblog.quality: expected a whole number 1–100, got 'eighty' (str)",
    ),
    (
        MYBLOG.replace("quality = 80", "quality = 70.5"),
        "pipelines.myblog.quality: expected a whole number 1–100, got 70.5 (float)",
    ),
    (
        MYBLOG.replace("quality = 80\n", ""),
        "pipelines.myblog.quality: required: give the JPEG (or WebP, AVIF) quality",
    ),
    (MYBLOG.replace("myblog", "instagram"), "pipelines.instagram: a preset has this name"),
    (
        MYBLOG.replace("long 600", "long inf"),
        'pipelines.myblog.resize: \'long inf\': write "none", "long 2048"',
    ),
    (MYBLOG.replace("long 600", "mp nan"), "pipelines.myblog.resize: 'mp nan': write"),
    (
        MYBLOG.replace("myblog", "long1600-q75"),
        "pipelines.long1600-q75: written inline this name already means long side 1600 px "
        "(lanczos), JPEG 75 4:2:0; a custom pipeline needs a name of its own",
    ),
    (MYBLOG + 'crop = "wide"\n', "pipelines.myblog.crop: 'wide': write an aspect as width:height"),
    (MYBLOG + 'crop = "0:3"\n', "pipelines.myblog.crop: crop to '0:3' is no aspect"),
    (
        MYBLOG + "crop_after_resize = true\n",
        "pipelines.myblog.crop_after_resize: there is no crop to place",
    ),
    (
        MYBLOG + 'crop = "3:4"\ncrop_after_resize = "yes"\n',
        "pipelines.myblog.crop_after_resize: expected true or false",
    ),
]
BAD_PLATFORMS = [
    ('platforms = ["task", "myspace"]\n', "platforms: unknown platform 'myspace'"),
    (
        'platforms = ["task", "long1600-q0"]\n',
        "platforms: 'long1600-q0': JPEG quality 0 is out of range: give 1–100",
    ),
    ('platforms = ["scale1.5-q80"]\n', "platforms: 'scale1.5-q80': scale 1.5 would enlarge"),
    (
        'platforms = ["long1600-webp101"]\n',
        "platforms: 'long1600-webp101': WebP quality 101 is out of range",
    ),
    (
        'platforms = ["long1600-q80-sharp"]\n',
        "platforms: 'long1600-q80-sharp': cannot read 'sharp'",
    ),
    ("platforms = []\n", "platforms: give at least one platform"),
    ('platforms = ["task", ""]\n', "platforms: an empty platform name in ['task', '']: remove it"),
    ('platforms = "task,"\n', "platforms: an empty platform name in 'task,': a stray comma?"),
]
BAD = [(f'platforms = ["task", "myblog"]\n{t}', m) for t, m in BAD_PIPELINES] + BAD_PLATFORMS


@pytest.mark.parametrize(("text", "expected"), BAD)
def test_bad_platforms_are_refused_naming_the_key(tmp_path, capsys, text, expected):
    message = problems(tmp_path, BASE + text)
    assert f"{tmp_path / 'config.toml'}: {expected}" in message
    # config check: non-zero, the key named; the daemon does not start and makes no ledger
    path = tmp_path / "config.toml"
    assert main(["config", "check", "--config", str(path)]) == 2
    assert expected in capsys.readouterr().err
    assert main(["run", "--config", str(path)]) == 2
    assert expected in capsys.readouterr().err
    assert not (tmp_path / "st").exists() and not (tmp_path / "out").exists()


def test_every_pipeline_problem_is_reported_at_once_with_the_others(tmp_path):
    text = (
        BASE
        + 'epsilon = "big"\nplatforms = ["task", "mine", "square", "long1600-q0", "myspace"]\n'
        + '[pipelines.mine]\nresize = "wide 600"\nfilter = "sharp"\nquality = 0\ncolour = 1\n'
        + '[pipelines.square]\ncrop = "0:1"\ncrop_after_resize = "yes"\n'
    )
    where = f"{tmp_path / 'config.toml'}: "
    message = problems(tmp_path, text)
    assert message.splitlines()[1:] == [
        f"  {where}epsilon: expected a number, got 'big' (str)",
        f"  {where}pipelines.mine.colour: unknown key (use codec, crop, crop_after_resize, "
        "filter, quality, resize, subsampling)",
        f'  {where}pipelines.mine.resize: \'wide 600\': write "none", "long 2048", '
        '"width 1080", "height 1080", "scale 0.5" or "mp 8.3"',
        f"  {where}pipelines.mine.filter: unknown resampling filter 'sharp': choose from "
        "lanczos, bicubic, bilinear, hamming, box, nearest",
        f"  {where}pipelines.mine.quality: 0 is out of range: give a whole number 1–100",
        f"  {where}pipelines.square.quality: required: give the JPEG (or WebP, AVIF) quality, "
        "a whole number 1–100",
        f"  {where}pipelines.square.crop: crop to '0:1' is no aspect: give two whole numbers ≥ 1, "
        'width:height, e.g. "1:1" or "3:4", within 10:1',
        f"  {where}pipelines.square.crop_after_resize: expected true or false, got 'yes'",
        f"  {where}platforms: 'long1600-q0': JPEG quality 0 is out of range: give 1–100",
        f"  {where}platforms: unknown platform 'myspace': choose from task, facebook, instagram, "
        "whatsapp, telegram, bluesky, mastodon, wordpress, web, as-is, or write one inline as "
        "e.g. long1600-q75",
    ]


def test_config_check_prints_pipeline_names_that_are_no_bare_keys_as_toml_reads_them(
    tmp_path, capsys
):
    names = ["sp ace", "a,b", "a.b", 'say "hi"', "ünï"]  # a bare dot would make a dotted key
    tables = "".join(
        f'[pipelines.{json.dumps(name)}]\nresize = "long {1000 + i}"\nquality = 70\n'
        for i, name in enumerate(names)
    )
    path = write(tmp_path, BASE + f"platforms = {json.dumps(['task', *names])}\n" + tables)
    config = load_config(path)
    assert [p.name for p in config.platform_pipelines] == ["task", *names]
    assert main(["config", "check", "--config", str(path)]) == 0
    printed = capsys.readouterr().out
    assert tomllib.loads(printed)["pipelines"] == config.pipelines
    # the printed config, used as the config file, is the same settings
    again = load_config(write(tmp_path, printed))
    assert (again.platforms, again.pipelines) == (config.platforms, config.pipelines)
    assert again.platform_pipelines == config.platform_pipelines


def test_the_daemon_process_does_not_start_with_a_bad_pipeline(tmp_path):
    from test_daemon_support import pixcamd_process

    path = write(tmp_path, BASE + 'platforms = ["myblog"]\n' + BAD_PIPELINES[0][0])
    process = pixcamd_process(path)
    try:
        out, _ = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 2, out
    assert "pipelines.myblog.quality: 0 is out of range" in out
    assert not (tmp_path / "st").exists()  # no ledger, no log, nothing written


def test_grace_time_names_a_container_engines_stop_timeout_beside_systemds():
    # a container's stop (docker's 10 s by default) ends in SIGKILL before a 30-s grace_time:
    # the help names where each sets its limit, not only systemd's
    doc = " ".join(
        (ROOT / "config.example.toml").read_text().split("grace_time = ")[0][-700:].split()
    )
    for limit in ("TimeoutStopSec", "--stop-timeout", "stop_grace_period", "terminationGrace"):
        assert limit in doc, limit


def test_another_users_home_that_does_not_exist_is_refused_naming_the_key(
    tmp_path, monkeypatch, capsys
):
    """``~name/…`` for a user with no passwd entry stayed as written: a folder named
    ``~name`` made under the config's folder (or the current one) — refused like a ``~`` with
    no home, naming the key."""
    import pwd

    nobody = "pixcamd-no-such-user"
    with pytest.raises(KeyError):
        pwd.getpwnam(nobody)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "in").mkdir()
    (tmp_path / "out").mkdir()
    path = write(tmp_path, f'inbox = "in"\noutbox = "out"\nhold_dir = "~{nobody}/held"\n')
    assert main(["config", "check", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"hold_dir: ~{nobody}/held starts with ~{nobody}" in err, err
    assert "absolute path" in err
    named = tmp_path / "init.toml"
    argv = ["init", "--config", str(named), "--inbox", f"~{nobody}/in", "--outbox", "out"]
    assert main(argv) == 2
    assert "inbox (--inbox): " in capsys.readouterr().err
    assert not [p for p in tmp_path.rglob("*") if p.name.startswith("~")]
    assert not named.exists()


def test_strip_gps_false_beside_strip_metadata_is_refused_as_protect_refuses_both(tmp_path, capsys):
    """strip_metadata removes the position with the rest: a strip_gps = false beside it was
    silently unused, where `pixcamd protect --keep-gps --strip-metadata` is refused."""
    base = 'inbox = "inbox"\noutbox = "out"\n'
    path = write(tmp_path, base + "strip_gps = false\nstrip_metadata = true\n")
    assert main(["config", "check", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "strip_gps: false contradicts strip_metadata = true" in err, err
    for alone in ("strip_gps = false\n", "strip_metadata = true\n", ""):
        path.write_text(base + alone)
        assert main(["config", "check", "--config", str(path)]) == 0, capsys.readouterr().err


@pytest.mark.parametrize("given", ['".jpg, .png"', '".jpg .png"', '[".jpg,.png"]'])
def test_several_extensions_in_one_string_are_refused_not_taken_as_one(tmp_path, given):
    # ".jpg, .png" read as one extension would match no photo, in silence
    said = problems(tmp_path, f'inbox = "inbox"\noutbox = "out"\nextensions = {given}\n')
    assert "extensions: " in said and 'one extension per item, e.g. [".jpg", ".png"]' in said, said


@pytest.mark.parametrize("key", ["inbox", "hold_dir"])
def test_a_shell_variable_in_a_path_is_refused_not_taken_as_a_folder_name(tmp_path, key):
    # hold_dir = "$HOME/held" was a folder named "$HOME" beside the config, created in silence
    given = {"inbox": '"inbox"', "outbox": '"out"', key: '"$HOME/held"'}
    said = problems(tmp_path, "".join(f"{k} = {v}\n" for k, v in given.items()))
    assert f"{key}: $HOME is not expanded in the config: write ~/held" in said, said


@pytest.mark.parametrize(
    "line, expected",
    [
        # TOML says only "Expected newline or end of document after a statement"
        ("epsilon = 1,5  # mine", "; decimals take a point: epsilon = 1.5"),
        ("settle_time = 5s", "; durations are numbers of seconds: settle_time = 5"),
        (
            "rescan_interval = 10 minutes",
            "; durations are numbers of seconds: rescan_interval = 600",
        ),
        # as text the number is read by its key: the same words
        ('settle_time = "5 s"', "settle_time: '5 s': durations are numbers of seconds: write 5"),
        (
            'rescan_interval = "2m"',
            "rescan_interval: '2m': durations are numbers of seconds: write 120",
        ),
        ('grace_time = "1,5"', "grace_time: '1,5': durations are numbers of seconds: write 1.5"),
    ],
)
def test_a_number_with_a_unit_or_a_decimal_comma_is_said_as_it_reads(tmp_path, line, expected):
    said = problems(tmp_path, f'inbox = "inbox"\noutbox = "out"\n{line}\n')
    assert expected in said, said
