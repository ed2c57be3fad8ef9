"""``pixcamd init`` and the config every command finds without a flag, on a temporary HOME
(the XDG variables set by the test), through the CLI: init → run → status, none with --config."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

from test_daemon_support import ROOT, noise_photo, unprivileged, wait_for

from pixcamd.cli import main
from pixcamd.daemon.config import load_config
from pixcamd.daemon.config_toml import render_example


def cli(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_before_init_the_error_says_where_it_looked_and_what_to_do(home, capsys):
    code, _, err = cli(capsys, "status")
    assert code == 2
    assert str(home / "config" / "pixcamd" / "config.toml") in err
    assert "$PIXCAMD_CONFIG" in err and "/etc/pixcamd/config.toml" in err
    assert "pixcamd init" in err


def test_init_writes_the_documented_config_and_the_folders(home, capsys):
    code, out, _ = cli(capsys, "init")
    assert code == 0
    path = home / "config" / "pixcamd" / "config.toml"
    inbox, outbox = home / "Pictures" / "pixcamd-inbox", home / "Pictures" / "pixcamd-outbox"
    assert inbox.is_dir() and outbox.is_dir()
    assert str(path) in out and str(inbox) in out and "pixcamd run" in out
    # which model judges, before the first photo: BRISQUE, and how KonCept512 comes
    assert "model:  BRISQUE (embedded) until KonCept512's weights are installed" in out, out
    assert "`pixcamd model fetch`" in out
    text = path.read_text()
    assert f'inbox = "{inbox}"' in text  # absolute: it means the same read from anywhere
    # the same documented schema as config.example.toml, with the user's folders filled in
    example = render_example().splitlines()
    written = text.splitlines()
    assert [line for line in written if line.startswith("# ---- ")] == [
        line for line in example if line.startswith("# ---- ")
    ]
    assert {line for line in example if line.startswith("# ") and "----" not in line} - set(
        written
    ) <= set(example[:3])  # only the example's header differs
    config = load_config()
    assert config.source == path and config.inbox == inbox and config.outbox == outbox
    leftovers = [p.name for p in path.parent.iterdir() if p.name != "config.toml"]
    assert leftovers == []  # no temporary file left by the atomic write


def test_init_on_a_folder_with_photos_says_the_first_start_takes_them_all(home, capsys):
    phone = home / "Sync" / "Camera"  # a phone's sync folder: its whole history is there
    (phone / "2019" / ".trashed").mkdir(parents=True)
    for i in range(3):
        noise_photo(phone / "2019" / f"IMG_{i}.jpg", i)
    noise_photo(phone / "2019" / ".trashed" / "IMG_9.jpg", 9)  # ignored: not counted
    (phone / "2019" / "IMG_0.mp4").write_bytes(b"not a photo")
    outbox = home / "share"
    code, out, _ = cli(capsys, "init", "--inbox", str(phone), "--outbox", str(outbox))
    assert code == 0
    assert "3 photos there already: the first start protects every one, today's first" in out
    # a folder init made is empty; a record already there knows its photos: nothing said
    other = home / "config" / "pixcamd" / "camera.toml"
    args = ["--config", str(other), "--outbox", str(home / "out2")]
    code, out, _ = cli(capsys, "init", *args, "--inbox", str(home / "new"))
    assert code == 0 and "there already" not in out
    (home / "state" / "pixcamd").mkdir(parents=True, exist_ok=True)
    (home / "state" / "pixcamd" / "ledger.sqlite3").write_bytes(b"")
    code, out, _ = cli(capsys, "init", "--force", "--inbox", str(phone), "--outbox", str(outbox))
    assert code == 0 and "there already" not in out, out


def test_init_on_a_folder_with_one_photo_says_it_as_one(home, capsys):
    inbox = home / "Sync" / "Camera"
    inbox.mkdir(parents=True)
    noise_photo(inbox / "IMG_1.jpg", 1)
    code, out, _ = cli(capsys, "init", "--inbox", str(inbox), "--outbox", str(home / "share"))
    assert code == 0
    assert "        1 photo there already: the first start protects it\n" in out, out


def test_init_never_fails_on_a_state_dir_it_cannot_look_into(home):
    phone = home / "Sync" / "Camera"  # photos there: init looks for a record before counting
    phone.mkdir(parents=True)
    noise_photo(phone / "IMG_1.jpg", 1)
    state = home / "state" / "pixcamd"  # another user's, say, from an earlier `sudo pixcamd`
    state.mkdir(parents=True)
    state.chmod(0)
    try:
        argv = [sys.executable, "-m", "pixcamd", "init", "--inbox", str(phone)]
        argv += ["--outbox", str(home / "share")]
        done = subprocess.run(unprivileged(argv), cwd=ROOT, capture_output=True, text=True)
    finally:
        state.chmod(0o755)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert f"inbox:  {phone}" in done.stdout and "outbox:" in done.stdout, done.stdout
    assert "there already" not in done.stdout  # what its record holds is not known here
    assert (home / "config" / "pixcamd" / "config.toml").is_file()


def test_every_command_finds_it_and_says_which_one(home, capsys, monkeypatch):
    assert cli(capsys, "init", "--inbox", str(home / "in"), "--outbox", "~/out")[0] == 0
    code, out, err = cli(capsys, "config", "check")
    path = home / "config" / "pixcamd" / "config.toml"
    assert code == 0 and f"config: {path} (your user config)" in err
    assert f'outbox = "{home / "out"}"' in out  # ~ expanded at init
    assert "finds it without a flag" in path.read_text()
    other = home / "elsewhere.toml"
    monkeypatch.setenv("PIXCAMD_CONFIG", str(other))
    code, _, err = cli(capsys, "config", "check")
    assert code == 2 and str(other) in err and "$PIXCAMD_CONFIG" in err
    # init writes where the commands look first: $PIXCAMD_CONFIG when it is set
    code, out, _ = cli(capsys, "init", "--inbox", str(home / "in2"), "--outbox", "~/out2")
    assert code == 0 and other.is_file()
    code, _, err = cli(capsys, "config", "check")
    assert code == 0 and f"config: {other} ($PIXCAMD_CONFIG)" in err


def test_a_config_written_with_config_elsewhere_says_commands_need_the_flag(home, capsys):
    named = home / "cameras" / "pixcamd.toml"
    args = ["init", "--config", str(named), "--inbox", str(home / "in"), "--outbox", "~/out"]
    code, out, _ = cli(capsys, *args)
    assert code == 0 and out.startswith(f"wrote the config --config names: {named}\n")
    header = named.read_text().split("\n# ----")[0]
    assert "finds it without a flag" not in header
    assert "Commands read it only when" in header and "--config" in header
    assert cli(capsys, "config", "check", "--config", str(named))[0] == 0
    code, _, err = cli(capsys, *args)  # a second init names the file in what it suggests
    assert code == 2 and f"pixcamd config check --config {named}`" in err
    assert f"pixcamd init --config {named} --force" in err
    # --config naming the file init writes by itself: found without the flag, said so
    user = home / "config" / "pixcamd" / "config.toml"
    code, out, _ = cli(capsys, "init", "--config", str(user), "--inbox", str(home / "in"))
    assert code == 0 and "finds it without a flag" in user.read_text()
    assert "  pixcamd status " in out and " --config " not in out.split("\n", 1)[1]  # no flag


def test_the_system_config_written_with_config_says_it_is_found_by_itself(
    home, capsys, monkeypatch
):
    import pixcamd.daemon.config
    import pixcamd.daemon.init

    system = home / "etc" / "pixcamd" / "config.toml"  # /etc/pixcamd/config.toml, for a server
    monkeypatch.setattr(pixcamd.daemon.config, "SYSTEM_CONFIG", system)
    monkeypatch.setattr(pixcamd.daemon.init, "SYSTEM_CONFIG", system)
    args = ["init", "--config", str(system), "--inbox", str(home / "in"), "--outbox", "~/out"]
    code, out, _ = cli(capsys, *args)
    assert code == 0 and "sudo systemctl enable --now pixcamd" in out and "pixcamd run" not in out
    header = system.read_text().split("\n# ----")[0]
    assert "Commands read it only when" not in header and "the system config" in header
    assert "`systemctl reload pixcamd`" in header and "--user" not in header
    code, _, err = cli(capsys, "config", "check")  # no user config: found without a flag
    assert code == 0 and f"config: {system} (the system config)" in err


def test_init_of_the_system_config_looks_for_the_record_where_its_service_keeps_it(
    home, capsys, monkeypatch
):
    import pixcamd.daemon.config
    import pixcamd.daemon.init

    system = home / "etc" / "pixcamd" / "config.toml"  # /etc/pixcamd/config.toml, for a server
    service = home / "var" / "lib" / "pixcamd"  # the system unit's StateDirectory=
    monkeypatch.setattr(pixcamd.daemon.config, "SYSTEM_CONFIG", system)
    monkeypatch.setattr(pixcamd.daemon.init, "SYSTEM_CONFIG", system)
    monkeypatch.setattr(pixcamd.daemon.init, "SERVICE_STATE_DIR", service, raising=False)
    inbox = home / "srv" / "inbox"
    inbox.mkdir(parents=True)
    noise_photo(inbox / "IMG_1.jpg", 1)
    args = ["init", "--config", str(system), "--inbox", str(inbox), "--outbox", "~/out"]
    code, out, _ = cli(capsys, *args)
    assert code == 0 and "1 photo there already" in out, out
    # the service has protected it since: `sudo pixcamd init --force` from a root shell (no
    # $STATE_DIRECTORY there, no record in root's own state dir) says no first start to come
    service.mkdir(parents=True)
    (service / "ledger.sqlite3").write_bytes(b"")
    code, out, _ = cli(capsys, *args, "--force")
    assert code == 0 and "there already" not in out, out


def test_an_existing_config_is_never_replaced_without_force(home, capsys):
    assert cli(capsys, "init")[0] == 0
    path = home / "config" / "pixcamd" / "config.toml"
    path.write_text(path.read_text() + "\n# my own note\n")
    before = path.read_text()
    code, _, err = cli(capsys, "init", "--inbox", str(home / "other"))
    assert code == 2 and "already there" in err and "--force" in err
    assert path.read_text() == before and not (home / "other").exists()
    code, out, _ = cli(capsys, "init", "--if-missing", "--inbox", str(home / "other"))
    assert code == 0 and "kept" in out
    assert path.read_text() == before and not (home / "other").exists()
    assert f"kept your user config: {path} (already there; `pixcamd config check` shows" in out
    # a config only --config finds: the command that shows it says so (without the flag, it
    # showed the user config)
    camera = home / "camera.toml"
    args = ["--inbox", str(home / "cam"), "--outbox", str(home / "cam-out")]
    assert cli(capsys, "init", "--config", str(camera), *args)[0] == 0
    code, out, _ = cli(capsys, "init", "--config", str(camera), "--if-missing")
    assert code == 0, out
    kept = f"kept the config --config names: {camera} (already there; `pixcamd config check"
    assert f"{kept} --config {camera}` shows it)" in out, out
    code, out, _ = cli(capsys, "init", "--force", "--inbox", str(home / "other"))
    assert code == 0 and out.startswith("replaced")
    assert load_config().inbox == home / "other"


def test_a_refused_init_writes_nothing_and_leaves_no_folder(home, capsys):
    inbox = home / "new" / "inbox"
    code, _, err = cli(capsys, "init", "--inbox", str(inbox), "--outbox", str(inbox / "out"))
    assert code == 2 and "outbox" in err and "inside the inbox" in err
    assert not (home / "config" / "pixcamd" / "config.toml").exists()
    assert not (home / "new").exists()  # the folders it had made are gone again
    (home / "afile").write_text("x")
    code, _, err = cli(capsys, "init", "--outbox", str(home / "afile"))
    assert code == 2 and "not a folder" in err
    assert not (home / "config" / "pixcamd" / "config.toml").exists()


def test_init_then_run_then_status_without_a_single_flag(home, capsys, brisque):
    assert cli(capsys, "init")[0] == 0
    inbox, outbox = home / "Pictures" / "pixcamd-inbox", home / "Pictures" / "pixcamd-outbox"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    env["OMP_NUM_THREADS"] = "1"
    process = subprocess.Popen(
        [sys.executable, "-m", "pixcamd", "run"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for(lambda: (home / "state" / "pixcamd" / "ledger.sqlite3").exists(), 60, "start")
        # a background job by default: the desktop stays responsive while it works
        assert os.getpriority(os.PRIO_PROCESS, process.pid) == 19
        assert os.sched_getscheduler(process.pid) == os.SCHED_IDLE
        noise_photo(inbox / "IMG_1.png", 1)  # BRISQUE already scores noise low: quick
        wait_for(lambda: (outbox / "IMG_1.jpg").is_file(), 120, "the protected copy")

        def status() -> dict:
            code, out, err = cli(capsys, "status", "--json")
            assert code == 0 and "(your user config)" in err
            return json.loads(out)

        # the copy is renamed into the outbox a moment before its row is finished
        wait_for(lambda: status()["counts"]["done"] == 1, 10, "the photo counted done")
        assert status()["daemon"] == "running"
    finally:
        process.send_signal(signal.SIGTERM)
        log, _ = process.communicate(timeout=60)
    assert process.returncode == 0, log
    assert f"config: {home / 'config' / 'pixcamd' / 'config.toml'} (your user config)" in log
    assert "priority background (nice 19, idle CPU class)" in log  # on the daemon_started line


def test_init_installs_the_user_service_for_this_pixcamd(home, capsys):
    from test_daemon_systemd import ANALYZE, directives, verify_user_unit

    code, out, _ = cli(capsys, "init", "--systemd-user")
    assert code == 0 and "systemctl --user enable --now pixcamd" in out
    unit = home / "config" / "systemd" / "user" / "pixcamd.service"
    (exec_start,) = directives(unit.read_text())["ExecStart"]
    program = exec_start.split()[0]
    assert os.path.samefile(os.path.dirname(program), os.path.dirname(sys.executable))
    assert exec_start.endswith(" run")  # reads the user config, as a login service finds it
    if ANALYZE is not None:
        result = verify_user_unit(unit, home / "runtime")
        assert result.returncode == 0 and result.stderr == "", result.stderr
    code, out, err = cli(capsys, "init", "--if-missing", "--systemd-user")
    assert code == 0 and "kept the user service" in out and "not the unit" not in err, err
    unit.write_text(unit.read_text() + "# mine\n")  # edited, or an earlier pixcamd's: kept, said
    code, out, err = cli(capsys, "init", "--if-missing", "--systemd-user")
    assert code == 0 and "# mine" in unit.read_text()
    assert "it is not the unit this pixcamd writes" in err and "remove it" in err, err
    code, _, _err = cli(capsys, "init", "--force", "--systemd-user")
    assert code == 0 and "# mine" not in unit.read_text()
    # a config the service cannot find by itself is named in the ExecStart of a unit of its own
    other = home / "elsewhere" / "pixcamd.toml"
    args = ["--outbox", str(home / "elsewhere-out"), "--systemd-user", "--force"]
    code, _, _ = cli(capsys, "init", "--config", str(other), *args)
    assert code == 0
    (exec_start,) = directives(unit.with_name("pixcamd-pixcamd.service").read_text())["ExecStart"]
    assert exec_start.endswith(f" run --config {other}")
    assert directives(unit.read_text())["ExecStart"][0].endswith(" run")  # the user config's


def test_a_second_inbox_gets_a_unit_of_its_own_and_the_first_unit_stays(home, capsys):
    """A phone's inbox (the user config) and a camera's (camera.toml): two daemons, two units.
    The second init was refused (pixcamd.service was there), and its --force put the camera's
    config in pixcamd.service: the phone's inbox went unwatched from the next restart."""
    from test_daemon_systemd import ANALYZE, directives, verify_user_unit

    units = home / "config" / "systemd" / "user"
    assert cli(capsys, "init", "--systemd-user", "--inbox", str(home / "phone"))[0] == 0
    phone = (units / "pixcamd.service").read_bytes()
    camera = home / "config" / "pixcamd" / "camera.toml"
    folders = ["--inbox", str(home / "camera"), "--outbox", str(home / "camera-out")]
    args = ["init", "--config", str(camera), *folders, "--systemd-user"]
    code, out, err = cli(capsys, *args)
    assert code == 0, err
    unit = units / "pixcamd-camera.service"
    assert sorted(p.name for p in units.iterdir()) == ["pixcamd-camera.service", "pixcamd.service"]
    (exec_start,) = directives(unit.read_text())["ExecStart"]
    assert exec_start.endswith(f" run --config {camera}")
    assert (units / "pixcamd.service").read_bytes() == phone
    # what it prints, and what the config and the unit say, name the camera's unit
    assert f"wrote the user service: {unit}\n" in out
    assert "systemctl --user enable --now pixcamd-camera\n" in out
    assert "systemctl --user status pixcamd-camera " in out
    assert "journalctl --user -u pixcamd-camera -f" in out
    assert "`systemctl --user reload pixcamd-camera`" in camera.read_text()
    assert "`systemctl --user enable --now pixcamd-camera`" in unit.read_text()
    if ANALYZE is not None:
        result = verify_user_unit(unit, home / "runtime")
        assert result.returncode == 0 and result.stderr == "", result.stderr
    # again: refused, naming the flags that replace this config's unit, and nothing changes
    unit.write_text(unit.read_text() + "# mine\n")
    code, _, err = cli(capsys, *args)
    assert code == 2 and f"{unit}: a unit is already there" in err, err
    assert f"`pixcamd init --config {camera} --systemd-user --force`" in err
    # --force replaces the camera's unit and leaves the phone's as it was
    code, out, _ = cli(capsys, *args, "--force")
    assert code == 0 and f"replaced the user service: {unit}\n" in out
    assert "# mine" not in unit.read_text() and (units / "pixcamd.service").read_bytes() == phone


def test_a_second_inbox_gets_a_page_of_its_own(home, capsys):
    """Both daemons serve their page: camera.toml was written with the user config's port,
    so the daemon started second had none (a warning in its log), whichever that was."""
    assert cli(capsys, "init", "--systemd-user")[0] == 0
    default = load_config().web
    assert default == "127.0.0.1:8765"
    pages = [default]
    for name in ("camera", "tablet"):  # the tablet's: neither the user config's nor camera's
        config = home / "config" / "pixcamd" / f"{name}.toml"
        args = ["--inbox", str(home / name), "--outbox", str(home / f"{name}-out")]
        code, out, err = cli(capsys, "init", "--config", str(config), *args, "--systemd-user")
        assert code == 0, err
        pages.append(load_config(config).web)
        assert f"page:   http://{pages[-1]}/  (another config here has the default port)" in out
    assert pages == ["127.0.0.1:8765", "127.0.0.1:8766", "127.0.0.1:8767"]
    # the user config written again keeps its port; one without a second config says nothing
    code, out, _ = cli(capsys, "init", "--force")
    assert code == 0 and load_config().web == default and "page:" not in out


def test_a_page_of_its_own_also_beside_a_config_that_does_not_validate_now(home, capsys):
    """The phone's inbox on a drive not mounted while the camera's config is written: its
    config does not validate then, and camera.toml got 127.0.0.1:8765 too — once the drive
    was back, the daemon started second had no page."""
    phone = home / "usb" / "phone"
    assert cli(capsys, "init", "--inbox", str(phone))[0] == 0
    phone.rmdir()  # unmounted
    assert cli(capsys, "config", "check")[0] == 2
    camera = home / "config" / "pixcamd" / "camera.toml"
    args = ["--inbox", str(home / "camera"), "--outbox", str(home / "camera-out")]
    code, out, err = cli(capsys, "init", "--config", str(camera), *args)
    assert code == 0, err
    assert load_config(camera).web == "127.0.0.1:8766"
    assert "page:   http://127.0.0.1:8766/" in out


def test_a_second_config_with_the_first_ones_outbox_is_refused_before_anything_is_written(
    home, capsys
):
    """`init --config camera.toml --inbox ~/Sync/camera`, --outbox left out: the default, the
    user config's outbox. It was written, and its unit installed, with `enable --now` to run:
    that daemon was refused at every start, the phone's publishing there."""
    assert cli(capsys, "init", "--systemd-user")[0] == 0
    outbox = home / "Pictures" / "pixcamd-outbox"
    camera = home / "config" / "pixcamd" / "camera.toml"
    args = ["init", "--config", str(camera), "--inbox", str(home / "Sync" / "camera")]
    code, out, err = cli(capsys, *args, "--systemd-user")
    assert code == 2 and out == "", out
    assert f"outbox: {outbox} is the outbox of {load_config().source} too" in err, err
    assert "give this config an outbox of its own (--outbox DIR)" in err
    units = home / "config" / "systemd" / "user"
    assert not camera.exists() and not (home / "Sync").exists()
    assert [p.name for p in units.iterdir()] == ["pixcamd.service"]
    # spelt another way, the same folder; an outbox of its own is written
    code, _, err = cli(capsys, *args, "--outbox", str(outbox / ".." / "pixcamd-outbox"))
    assert code == 2 and "is the outbox of" in err, err
    code, out, err = cli(capsys, *args, "--outbox", str(home / "Pictures" / "camera-out"))
    assert code == 0 and load_config(camera).outbox == home / "Pictures" / "camera-out", err


def test_a_unit_that_runs_another_config_is_refused_even_with_force(home, capsys):
    """Two configs of one file name in two folders would share one unit name: the second is
    refused, naming the config the unit runs, with or without --force or --if-missing; and a
    pixcamd.service an earlier --force pointed at another config is not taken back silently."""
    units = home / "config" / "systemd" / "user"
    camera = home / "config" / "pixcamd" / "camera.toml"
    args = ["init", "--config", str(camera), "--inbox", str(home / "camera"), "--systemd-user"]
    assert cli(capsys, *args)[0] == 0
    before = (units / "pixcamd-camera.service").read_bytes()
    other = home / "sd-card" / "camera.toml"
    for flag in ("--force", "--if-missing"):
        code, _, err = cli(
            capsys, "init", "--config", str(other), "--inbox", str(home / "sd"), "--systemd-user",
            flag,
        )  # fmt: skip
        assert code == 2 and f"this unit runs another config, {camera}" in err, err
        assert "give this config a file name of its own" in err
        assert (units / "pixcamd-camera.service").read_bytes() == before
        assert not other.exists() and not (home / "sd").exists()  # refused before writing
    # the user config's pixcamd.service running camera.toml (what --force did before)
    (units / "pixcamd.service").write_bytes(before)
    code, _, err = cli(capsys, "init", "--systemd-user", "--force")
    assert code == 2 and f"this unit runs another config, {camera}" in err, err
    assert f"`pixcamd init --config {camera} --systemd-user --if-missing`" in err
    assert "`systemctl --user disable --now pixcamd`" in err
    # in this order: while pixcamd.service runs camera.toml, init keeps it as camera's unit
    assert err.index("disable --now pixcamd") < err.index("pixcamd init --config"), err
    assert "(pixcamd-camera: enable it as it says)" in err
    assert (units / "pixcamd.service").read_bytes() == before
    assert not (home / "config" / "pixcamd" / "config.toml").exists()


def test_a_config_an_earlier_pixcamd_gave_pixcamd_service_keeps_that_unit(home, capsys):
    """The release before named every config's unit pixcamd.service: a config elsewhere, the
    only inbox, runs from it. A setup script's `init --config FILE --systemd-user --if-missing`
    wrote pixcamd-NAME.service beside it — a second unit for one config, whose `enable --now`
    starts a daemon refused on the state dir the first holds — and named that one."""
    units = home / "config" / "systemd" / "user"
    camera = home / "photos" / "camera.toml"
    args = ["init", "--config", str(camera), "--inbox", str(home / "camera"), "--systemd-user"]
    assert cli(capsys, *args)[0] == 0
    # as the release before wrote it: pixcamd.service, its ExecStart naming camera.toml
    unit = units / "pixcamd.service"
    text = (units / "pixcamd-camera.service").read_text()
    unit.write_text(text.replace("enable --now pixcamd-camera`", "enable --now pixcamd`"))
    (units / "pixcamd-camera.service").unlink()
    before = unit.read_bytes()
    code, out, err = cli(capsys, *args, "--if-missing")
    assert code == 0 and err == "", err
    assert [p.name for p in units.iterdir()] == ["pixcamd.service"]
    assert unit.read_bytes() == before
    assert f"kept the user service: {unit}\n" in out
    assert "systemctl --user enable --now pixcamd\n" in out
    assert "journalctl --user -u pixcamd -f" in out
    # one its ExecStart edited (pixcamd installed elsewhere since): the way to replace it stops
    # it first — removed while it runs, camera.toml's unit came back as pixcamd-camera, whose
    # start was refused on the state dir the old one still held
    unit.write_text(before.decode().replace(" run --config ", " --verbose run --config "))
    code, out, err = cli(capsys, *args, "--if-missing")
    assert code == 0 and f"kept the user service: {unit}\n" in out
    assert "to replace it, `systemctl --user disable --now pixcamd`, remove it" in err, err
    code, _, err = cli(capsys, *args[:-1], "--systemd-user")
    assert code == 2 and "`systemctl --user disable --now pixcamd`, remove this file" in err, err
    # --force writes the config and that unit again, and the config's header names it
    code, out, err = cli(capsys, *args, "--force")
    assert code == 0 and f"replaced the user service: {unit}\n" in out, err
    assert [p.name for p in units.iterdir()] == ["pixcamd.service"]
    assert "`systemctl --user reload pixcamd`" in camera.read_text()


def test_a_unit_written_by_hand_with_h_is_read_as_the_file_it_names(home, capsys):
    """systemd/user/pixcamd.service copied by hand, its ExecStart's --config written with %h
    (the home folder, as systemd reads it): that unit runs this config. It was taken for a
    file named %h/… under the current folder — the user config's init refused as "runs
    another config", a config elsewhere given a second unit."""
    units = home / "config" / "systemd" / "user"
    units.mkdir(parents=True)
    example = (ROOT / "systemd" / "user" / "pixcamd.service").read_text()
    unit = units / "pixcamd.service"
    for config, args in [
        ("%h/config/pixcamd/config.toml", []),  # the user config, named
        ("%h/photos/camera.toml", ["--config", str(home / "photos" / "camera.toml")]),
    ]:
        unit.write_text(example.replace(" run\n", f" run --config {config}\n"))
        outbox = ["--outbox", str(home / "out" / config.rsplit("/", 1)[1])]
        code, out, err = cli(capsys, "init", *args, *outbox, "--systemd-user", "--if-missing")
        assert code == 0, err
        assert f"kept the user service: {unit}\n" in out, out
        assert [p.name for p in units.iterdir()] == ["pixcamd.service"]


def test_a_unit_name_keeps_what_systemctl_takes_as_typed(home, capsys):
    """NAME is the file's name with anything but letters, digits and _ made a dash; a name
    with none of those gets the hash its state dir is named with."""
    from test_daemon_systemd import ANALYZE, verify_user_unit

    units = home / "config" / "systemd" / "user"
    for name, want in [("Fotos Kamera.v2.toml", "pixcamd-Fotos-Kamera-v2"), ("写真.toml", None)]:
        config = home / "100%" / name
        args = ["--outbox", str(home / "out" / name), "--systemd-user"]
        code, out, err = cli(capsys, "init", "--config", str(config), *args)
        assert code == 0, err
        if want is None:  # its state dir's pixcamd-写真-HASH: pixcamd-HASH
            state = load_config(config).state_dir
            assert state.name.startswith("pixcamd-写真-"), state
            want = "pixcamd-" + state.name.rsplit("-", 1)[1]
        assert f"systemctl --user enable --now {want}\n" in out, out
        if ANALYZE is not None:
            result = verify_user_unit(units / f"{want}.service", home / "runtime")
            assert result.returncode == 0 and result.stderr == "", result.stderr


def test_a_config_path_in_the_home_of_a_user_who_does_not_exist_is_refused(
    tmp_path, monkeypatch, capsys
):
    """``$PIXCAMD_CONFIG = "~name/…"`` (a container's environment: no shell expands it), or
    ``--config`` quoted, for a user with no passwd entry: init wrote the config into a folder
    named ``~name`` made under the current one — refused, as the inbox and outbox are."""
    import pwd

    import pytest

    nobody = "pixcamd-no-such-user"
    with pytest.raises(KeyError):
        pwd.getpwnam(nobody)
    monkeypatch.chdir(tmp_path)
    folders = ["--inbox", str(tmp_path / "in"), "--outbox", str(tmp_path / "out")]
    assert main(["init", "--config", f"~{nobody}/config.toml", *folders]) == 2
    assert f"--config: ~{nobody}/config.toml starts with ~{nobody}" in capsys.readouterr().err
    monkeypatch.setenv("PIXCAMD_CONFIG", f"~{nobody}/config.toml")
    assert main(["init", *folders]) == 2
    assert f"$PIXCAMD_CONFIG: ~{nobody}/config.toml starts with" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # no folder named ~name, no inbox, no outbox
