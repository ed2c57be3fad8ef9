"""The README's set-up commands are the ones CI and users actually run."""

from __future__ import annotations

import re

from conftest import ROOT


def readme_commands() -> list[str]:
    return re.findall(r"```sh\n(python3 -m venv .+?)\n```", (ROOT / "README.md").read_text())


def test_ci_runs_the_readme_test_command_verbatim():
    install_and_run, run_tests = readme_commands()
    assert run_tests.endswith("python -m pytest")
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert run_tests in ci_lines
    assert ci_lines[-1] == run_tests  # pytest's summary is the last thing CI prints
    assert "torch==2.13.0" in install_and_run
    # init writes the user config every later command finds: no --config anywhere after it
    assert "pixcamd init --if-missing && " in install_and_run
    assert install_and_run.endswith("pixcamd run") and "--config" not in install_and_run
