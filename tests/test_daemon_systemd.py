"""The systemd unit and its drop-ins (GPU, Ray): `systemd-analyze verify` clean, exposure ≤ 3.0."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_daemon_support import ROOT, no_leaked_threads  # noqa: F401

UNIT = ROOT / "systemd" / "pixcamd.service"
DROPIN = ROOT / "systemd" / "gpu.conf"
DROPINS = {"unit": None, "unit+gpu.conf": "gpu.conf", "unit+ray.conf": "ray.conf"}
ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed")


def directives(text: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.lstrip().startswith(("#", "[")):
            key, value = line.split("=", 1)
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def installed_copy(folder: Path, dropin: str | None) -> Path:
    """The unit as an installation would have it: ExecStart pointing at a real pixcamd."""
    pixcamd = Path(sys.executable).parent / "pixcamd"
    if not pixcamd.exists():
        pytest.skip(f"{pixcamd} is not installed (pip install -e .)")
    folder.mkdir()
    unit = folder / "pixcamd.service"
    unit.write_text(UNIT.read_text().replace("/opt/pixcamd/.venv/bin/pixcamd", str(pixcamd)))
    if dropin:
        (folder / "pixcamd.service.d").mkdir()
        shutil.copy(ROOT / "systemd" / dropin, folder / "pixcamd.service.d" / dropin)
    return unit


def test_the_unit_says_what_the_issue_asks():
    d = directives(UNIT.read_text())
    expected = {
        "Type": "notify",
        "Restart": "on-failure",
        "User": "pixcamd",
        "StateDirectory": "pixcamd",
        "CacheDirectory": "pixcamd",
        "LogsDirectory": "pixcamd",
        "ProtectSystem": "strict",
        "ProtectHome": "read-only",
        "PrivateTmp": "yes",
        "NoNewPrivileges": "yes",
        "RestrictAddressFamilies": "AF_UNIX",
        "IPAddressDeny": "any",
        "CPUSchedulingPolicy": "idle",
        "IOSchedulingClass": "idle",
        "RestartPreventExitStatus": "2",
    }
    for key, value in expected.items():
        assert d.get(key) == [value], key
    assert d["ReadWritePaths"] and d["TimeoutStopSec"] == ["90s"]
    assert d["ExecReload"] == ["/bin/kill -HUP $MAINPID"]  # SIGHUP: reload
    assert d["WatchdogSec"] == ["5min"]
    # the stop timeout covers the default grace time and the unwinding after it
    from pixcamd.daemon.schema import KEYS
    from pixcamd.daemon.shutdown import ABANDON_WAIT

    assert KEYS["grace_time"].default + ABANDON_WAIT < 90
    gpu = directives(DROPIN.read_text())
    assert gpu["PrivateDevices"] == ["no"]
    assert any(v.startswith("/dev/nvidia") for v in gpu["DeviceAllow"])
    ray = directives((ROOT / "systemd" / "ray.conf").read_text())
    assert ray["PrivateNetwork"] == ["no"] and "AF_INET" in ray["RestrictAddressFamilies"][0]
    assert ray["IPAddressDeny"] == ["any"] and ray["IPAddressAllow"] == ["localhost"]


@needs_analyze
@pytest.mark.parametrize("dropin", DROPINS.values(), ids=DROPINS.keys())
def test_systemd_analyze_verify_is_clean(tmp_path, dropin):
    unit = installed_copy(tmp_path / "units", dropin)
    result = subprocess.run(
        [ANALYZE, "verify", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"SYSTEMD_UNIT_PATH": f"{unit.parent}:", "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == "", result.stderr


@needs_analyze
@pytest.mark.parametrize("dropin", DROPINS.values(), ids=DROPINS.keys())
def test_systemd_analyze_security_exposure(tmp_path, dropin, capsys):
    unit = installed_copy(tmp_path / "units", dropin)
    result = subprocess.run(
        [ANALYZE, "security", "--offline=true", "--no-pager", "pixcamd.service"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=unit.parent,
        env={"SYSTEMD_UNIT_PATH": f"{unit.parent}:", "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
    )
    if "Unknown command verb" in result.stderr or "unrecognized option" in result.stderr:
        pytest.skip("this systemd-analyze has no offline security review (systemd < 250)")
    match = re.search(
        r"Overall exposure level for pixcamd\.service: (\d+\.\d+) (\w+)", result.stdout
    )
    assert match, result.stdout + result.stderr
    exposure = float(match.group(1))
    with capsys.disabled():  # reported in the test log
        print(
            f"\nsystemd-analyze security (with {dropin or 'no drop-in'}): "
            f"exposure {exposure} {match.group(2)}"
        )
    assert exposure <= 3.0, result.stdout


USER_UNIT = ROOT / "systemd" / "user" / "pixcamd.service"


def verify_user_unit(unit: Path, runtime: Path) -> subprocess.CompletedProcess:
    """`systemd-analyze --user verify` as a user manager would load the unit."""
    runtime.mkdir(mode=0o700, exist_ok=True)
    return subprocess.run(
        [ANALYZE, "--user", "verify", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        env={
            "SYSTEMD_UNIT_PATH": f"{unit.parent}:",
            "XDG_RUNTIME_DIR": str(runtime),
            "PATH": "/usr/bin:/bin",
            "LANG": "C.UTF-8",
        },
    )


def test_the_user_unit_is_the_one_init_installs():
    from pixcamd.daemon.user_units import render_user_unit

    assert USER_UNIT.read_text() == render_user_unit()  # regenerate from render_user_unit()
    d = directives(USER_UNIT.read_text())
    for key, value in {
        "Type": "notify",
        "WatchdogSec": "5min",
        "Restart": "on-failure",
        "RestartPreventExitStatus": "2",
        "TimeoutStopSec": "90s",
        "CacheDirectory": "pixcamd",
        "CPUSchedulingPolicy": "idle",
        "IOSchedulingClass": "idle",
        "NoNewPrivileges": "yes",
        "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",  # the web page on loopback
        "WantedBy": "default.target",
        "ExecReload": "/bin/kill -HUP $MAINPID",
    }.items():
        assert d.get(key) == [value], key
    assert "User" not in d and "--config" not in d["ExecStart"][0]  # the user config
    # before systemd 254 a user unit's StateDirectory= is under ~/.config: the daemon's own
    # default (~/.local/state/pixcamd, where a shell's `pixcamd status` looks) instead
    assert "StateDirectory" not in d and "STATE_DIRECTORY" not in str(d.get("Environment"))


@needs_analyze
def test_systemd_analyze_verify_the_user_unit_is_clean(tmp_path):
    pixcamd = Path(sys.executable).parent / "pixcamd"
    if not pixcamd.exists():
        pytest.skip(f"{pixcamd} is not installed (pip install -e .)")
    (tmp_path / "units").mkdir()
    unit = tmp_path / "units" / "pixcamd.service"
    unit.write_text(USER_UNIT.read_text().replace("%h/pixcamd/.venv/bin/pixcamd", str(pixcamd)))
    result = verify_user_unit(unit, tmp_path / "runtime")
    assert result.returncode == 0, result.stderr
    assert result.stderr == "", result.stderr
    # the check can fail: an unknown key is reported
    unit.write_text(unit.read_text().replace("Nice=19", "Nice=19\nNicety=20"))
    assert "Unknown key" in verify_user_unit(unit, tmp_path / "runtime").stderr
