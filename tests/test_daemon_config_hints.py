"""A config typed by hand: each slip a person makes is answered with what to write instead, on
one line that names the key and the line — by `pixcamd config check`, and by `pixcamd run`,
which refuses to start."""

from __future__ import annotations

import json

import pytest
from test_daemon_support import no_leaked_threads  # noqa: F401

from pixcamd.cli import main

BASE = 'inbox = "inbox"\noutbox = "out"\nstate_dir = "st"\n'


def refused(tmp_path, capsys, text: str) -> str:
    """What `config check` says of the file ``text`` — `run` says it too and starts nothing."""
    (tmp_path / "inbox").mkdir(exist_ok=True)
    path = tmp_path / "config.toml"
    path.write_text(text)
    assert main(["config", "check", "--config", str(path)]) == 2
    said = capsys.readouterr().err
    assert main(["run", "--config", str(path)]) == 2
    assert capsys.readouterr().err == said
    assert not (tmp_path / "st").exists() and not (tmp_path / "out").exists()
    return said


@pytest.mark.parametrize(
    "value, toml_says",
    [
        ('"C:\\Users\\me\\Pictures"', "Invalid hex value (at line 4, column 17)"),
        ('"D:\\photos"  # mine', "Unescaped '\\' in a string (at line 4, column 17)"),
        ('"C:\\user\\pics"', "Invalid hex value (at line 4, column 17)"),
    ],
)
def test_a_windows_path_between_double_quotes_says_to_quote_it_singly_or_use_slashes(
    tmp_path, capsys, value, toml_says
):
    said = refused(tmp_path, capsys, f"{BASE}hold_dir = {value}\n")
    path = value.split('"')[1]
    single, slashes = f"hold_dir = '{path}'", f'hold_dir = "{path.replace(chr(92), "/")}"'
    assert toml_says in said and single in said and slashes in said, said
    assert len(said.splitlines()) == 1, said


@pytest.mark.parametrize(
    "value, escape, meant",
    [
        ('"C:\\temp"', "\\t between double quotes is an escape, read as a tab", "C:\\temp"),
        ('"D:\\new\\fotos"', "\\n between double quotes is an escape", "D:\\new\\fotos"),
        ('"E:\\bilder"', "\\b between double quotes is an escape", "E:\\bilder"),
    ],
)
def test_a_windows_path_whose_backslashes_toml_takes_as_escapes_is_refused_not_made(
    tmp_path, capsys, value, escape, meant
):
    # "C:\temp" is valid TOML — a tab — and was a folder "C:<tab>emp" made beside the config
    said = refused(tmp_path, capsys, f"{BASE}hold_dir = {value}\n")
    slashes = meant.replace("\\", "/")
    assert f"hold_dir: {escape}" in said, said
    assert f"write '{meant}' in single quotes, or \"{slashes}\" with forward slashes" in said
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.toml", "inbox"]


def test_a_folder_alone_on_its_line_between_triple_quotes_is_still_read(tmp_path, capsys):
    """The line break before the closing quotes (and a tab pasted after a path) is white space
    around the folder, dropped as before: such a config, which ran, was refused as holding a
    Windows path's escape, with a folder ending in \\n to write instead."""
    (tmp_path / "inbox").mkdir()
    path = tmp_path / "config.toml"
    path.write_text(
        'inbox = """\ninbox\n"""\n'
        "outbox = '''\nout\n'''\n"
        'state_dir = "st\t"\n'
        'model = "brisque"\n'
    )
    assert main(["config", "check", "--config", str(path)]) == 0, capsys.readouterr().err
    said = capsys.readouterr().out
    for key, folder in (("inbox", "inbox"), ("outbox", "out"), ("state_dir", "st")):
        assert f'{key} = "{tmp_path / folder}"  # as written: "{folder}"\n' in said, said


@pytest.mark.parametrize(
    "line, expected",
    [
        (
            "settle_time =",
            "Invalid value (at line 4, column 14); settle_time needs a value: write e.g. "
            "settle_time = 5.0 (the default, as with no line)",
        ),
        ("steps =   # later", "steps needs a value: write e.g. steps = 40 (the default,"),
        ('hold_dir = ""\nstrip_gps =', "strip_gps needs a value: write e.g. strip_gps = true ("),
        ("ignore =", "ignore needs a value after the =, or remove the line for the default"),
        ("colour =", "colour needs a value after the =, or remove the line"),
    ],
)
def test_a_key_with_nothing_after_the_equals_sign_is_shown_with_a_value(
    tmp_path, capsys, line, expected
):
    said = refused(tmp_path, capsys, f"{BASE}{line}\n")
    assert expected in said and len(said.splitlines()) == 1, said


@pytest.mark.parametrize(
    "lines, expected",
    [
        (
            "steps = 40\nepsilon = 6\n\nsteps = 50",  # one added below, the first forgotten
            "Cannot overwrite a value (at line 7, column 11); steps is written twice, on line 4 "
            "and on line 7: keep one, remove the other",
        ),
        (
            '[pipelines.blog]\nquality = 80\nresize = "long 1600"\nquality = 75',
            "Cannot overwrite a value (at line 7, column 13); quality is written twice, on line "
            "5 and on line 7: keep one, remove the other",
        ),
        (
            '[pipelines.blog]\nquality = 80\n[pipelines.blog]\nresize = "long 1600"',
            "Cannot declare ('pipelines', 'blog') twice (at line 6, column 16); [pipelines.blog] "
            "is written twice, on line 4 and on line 6: put its keys under the first and remove "
            "the second",
        ),
    ],
)
def test_a_key_or_a_table_written_twice_names_both_lines(tmp_path, capsys, lines, expected):
    said = refused(tmp_path, capsys, f"{BASE}{lines}\n")
    assert expected in said and len(said.splitlines()) == 1, said


def test_a_required_folder_with_nothing_after_the_equals_sign_is_shown_with_an_example(
    tmp_path, capsys
):
    said = refused(tmp_path, capsys, 'inbox =\noutbox = "out"\n')
    assert 'Invalid value (at line 1, column 8); inbox needs a value, e.g. inbox = "/' in said


@pytest.mark.parametrize(
    "line, expected",
    [
        ('steps = "40"', "steps: '40' on line 4 is text in quotes: write steps = 40"),
        ('epsilon = "1,5"', "epsilon: '1,5' on line 4 is text in quotes: write epsilon = 1.5"),
        (
            'strip_gps = "true"',
            "strip_gps: 'true' on line 4 is text in quotes: write strip_gps = true",
        ),
        (
            'strip_gps = "No"',
            "strip_gps: 'No' on line 4 is text in quotes: write strip_gps = false",
        ),
        (
            'output_quality = "120"',
            "output_quality: '120' on line 4 is text in quotes, and without them 120 is out of "
            "range: give 1–100",
        ),
        # words that are no number stay the parser's own
        ('steps = "forty"', "steps: expected a number, got 'forty' (str)"),
        ('strip_gps = "1"', "strip_gps: expected true or false, got '1' (str)"),
    ],
)
def test_a_number_or_true_in_quotes_is_shown_without_them(tmp_path, capsys, line, expected):
    said = refused(tmp_path, capsys, f"{BASE}{line}\n")
    assert said.splitlines()[1:] == [f"  {tmp_path / 'config.toml'}: {expected}"], said
    # each key's line, also after another key's problem
    said = refused(tmp_path, capsys, f'{BASE}threads = "many"\n{line}\n').splitlines()
    expected = expected.replace("on line 4", "on line 5")
    assert said[2:] == [f"  {tmp_path / 'config.toml'}: {expected}"], said


@pytest.mark.parametrize(
    "line, expected",
    [
        ('INBOX = "inbox"', "INBOX: unknown key on line 4 (did you mean 'inbox'?)"),
        ("Settle_Time = 3", "Settle_Time: unknown key on line 4 (did you mean 'settle_time'?)"),
        ('"Steps" = 40', "Steps: unknown key on line 4 (did you mean 'steps'?)"),
        ('outbox_dir = "out"', "outbox_dir: unknown key on line 4 (did you mean 'outbox'?)"),
        ("settle_time_s = 3", "settle_time_s: unknown key on line 4 (did you mean 'settle_time'?)"),
        ("setle_time = 3", "setle_time: unknown key on line 4 (did you mean 'settle_time'?)"),
        ("colour = 3", "colour: unknown key on line 4"),
        # a pipeline's table answers its own keys alike
        (
            'platforms = ["task", "mine"]\n[pipelines.mine]\nQuality = 80',
            "pipelines.mine.Quality: unknown key (did you mean 'quality'? use codec, crop, ",
        ),
    ],
)
def test_an_unknown_key_names_its_line_and_the_key_meant(tmp_path, capsys, line, expected):
    said = refused(tmp_path, capsys, f"{BASE}{line}\n")
    assert f"  {tmp_path / 'config.toml'}: {expected}" in said.splitlines()[1:2][0], said


@pytest.mark.parametrize("section", ["daemon", "pixcamd", "general", "Folders"])
def test_the_files_own_keys_under_a_section_it_has_not_are_said_to_go_at_the_top(
    tmp_path, capsys, section
):
    # TOML reads every key after [daemon] as that table's: the file was "daemon: unknown key"
    # and, for the inbox written there, "inbox: required"
    said = refused(tmp_path, capsys, f"# my config\n[{section}]\n{BASE}steps = 40\nstepz = 4\n")
    where = tmp_path / "config.toml"
    assert said.splitlines()[1:] == [
        f"  {where}: {section}: [{section}] on line 2 is no section of this config; inbox, "
        "outbox, state_dir and steps go at the top of the file, outside any [section]: "
        f"delete the line [{section}]",
        f"  {where}: stepz: unknown key on line 7 (did you mean 'steps'?)",
    ], said


def test_a_key_that_names_a_section_below_another_is_said_to_move_above_the_first(tmp_path, capsys):
    text = f'{BASE}platforms = ["task", "mine"]\n[pipelines.mine]\nquality = 80\n'
    said = refused(tmp_path, capsys, f'{text}[web]\nweb_token = "secret"\n')
    assert said.splitlines()[1:] == [
        f"  {tmp_path / 'config.toml'}: web: [web] on line 7 is no section of this config (web "
        "is a key, not a table); web_token goes at the top of the file, outside any [section]: "
        "move it to the top, above line 5 ([pipelines.mine])"
    ], said


def test_the_files_own_keys_after_a_table_of_the_config_are_said_to_go_above_it(tmp_path, capsys):
    # [pipelines.NAME] comes last; a key added at the end of the file is read into the table
    text = f'{BASE}platforms = ["task", "mine"]\n[pipelines.mine]\nquality = 80\nsteps = 30\n'
    said = refused(tmp_path, capsys, f'{text}[target]\nbrisque = 70\nepsilon = "4"\n')
    where = tmp_path / "config.toml"
    assert said.splitlines()[1:] == [
        f"  {where}: steps: written on line 7, below [pipelines.mine], it is read as part of "
        "that table: move it to the top of the file, above line 5 ([pipelines.mine])",
        f"  {where}: epsilon: written on line 10, below [target], it is read as part of that "
        "table: move it to the top of the file, above line 5 ([pipelines.mine])",
        # its own problems are said at once too
        f"  {where}: epsilon: '4' on line 10 is text in quotes: write epsilon = 4",
    ], said


def test_real_tables_are_still_read(tmp_path, capsys):
    text = f'{BASE}platforms = ["task", "mine"]\n[pipelines.mine]\nquality = 80\n'
    (tmp_path / "inbox").mkdir()
    path = tmp_path / "config.toml"
    path.write_text(f"{text}[target]\nbrisque = 70\n")
    assert main(["config", "check", "--config", str(path)]) == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert "target = { brisque = 70.0 }" in printed and "quality = 80" in printed, printed


def test_several_ignore_patterns_in_one_string_are_refused_with_the_list_to_write(tmp_path, capsys):
    # read as one pattern, "*.tmp, *.part" hid neither kind of file, in silence
    said = refused(tmp_path, capsys, f'{BASE}ignore = "*.tmp, *.part"\n')
    assert (
        'ignore: \'*.tmp, *.part\': several patterns go in a list, ["*.tmp", "*.part"]; one '
        'name with a comma in it, in a list of its own: ["*.tmp, *.part"]'
    ) in said, said
    # either answer, written as said, is read; a pattern alone in a string still is
    for given, read in [
        ('["*.tmp", "*.part"]', ["*.tmp", "*.part"]),
        ('["*.tmp, *.part"]', ["*.tmp, *.part"]),
        ('"*.tmp"', ["*.tmp"]),
    ]:
        (tmp_path / "config.toml").write_text(f"{BASE}ignore = {given}\n")
        assert main(["config", "check", "--config", str(tmp_path / "config.toml")]) == 0
        assert f"ignore = {json.dumps(read)}\n" in capsys.readouterr().out


def test_a_list_of_ones_own_ignore_patterns_says_which_defaults_it_drops(tmp_path, capsys):
    """`ignore = ["*.tmp"]` replaces the default list: Syncthing's .stversions (old versions of
    every photo) and part-written files were taken for photos, and `config check` said
    nothing of it."""
    (tmp_path / "inbox").mkdir()
    path = tmp_path / "config.toml"
    path.write_text(f'{BASE}ignore = ["*.tmp", ".*", "@eaDir"]\n')
    assert main(["config", "check", "--config", str(path)]) == 0
    said = capsys.readouterr().out
    note = "# ignore: your list replaces the default one, so these are not ignored now: "
    # the dotted ones are not named: ".*" ignores them (it named .stversions, which it hides)
    assert note + "~syncthing~*, *.~*, *.part, *.crdownload, Thumbs.db, desktop.ini (" in said
    assert "passed over)" in said.split(note)[1], said
    path.write_text(f'{BASE}ignore = ["*.tmp"]\n')
    assert main(["config", "check", "--config", str(path)]) == 0
    said = capsys.readouterr().out
    # every default but .syncthing.*.tmp, which *.tmp ignores
    assert note + ".*, ~syncthing~*, *.~*, .*.??????, *.part," in said, said
    assert "passed over — .stversions holds every photo's old versions)" in said
    path.write_text(BASE)  # the default list: nothing to say
    assert main(["config", "check", "--config", str(path)]) == 0
    assert "# ignore:" not in capsys.readouterr().out
