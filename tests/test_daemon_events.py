"""Human log lines and ``pixcamd status`` with file names a sync peer chose: one line per entry."""

from __future__ import annotations

import io
import json

from test_daemon_support import make_config

from pixcamd.daemon.events import EventLog, printable
from pixcamd.daemon.ledger import Ledger
from pixcamd.daemon.status import gather, render

FORGED = "IMG_1.jpg\n12:00:00 INFO    protected IMG_2.jpg\x1b[2K\u202egpj.exe"


def test_a_newline_in_a_name_cannot_forge_a_log_line(tmp_path):
    config = make_config(tmp_path)
    config.state_dir.mkdir(parents=True, exist_ok=True)
    ledger = Ledger(config.ledger_path)
    stream = io.StringIO()
    try:
        log = EventLog(config.log_file, ledger, stream)
        log.emit("failed", FORGED, "not a photo")
    finally:
        ledger.close()
    human = stream.getvalue()
    assert human.count("\n") == 1  # one event, one line
    assert "IMG_1.jpg\\n12:00:00 INFO    protected IMG_2.jpg\\x1b[2K\\u202egpj.exe" in human
    (line,) = config.log_file.read_text().splitlines()
    assert json.loads(line)["path"] == FORGED  # the machine log keeps the name exactly
    text = render(gather(config))
    entries = [line for line in text.splitlines() if "IMG_1.jpg" in line]
    assert entries and all("\\n12:00:00" in line for line in entries)
    assert not any(line.startswith("12:00:00") for line in text.splitlines())


def test_printable_leaves_ordinary_names_alone():
    for name in ("IMG_0001.HEIC", "Ferien 2026/Strand é 日本.jpg", "a b\\c.png"):
        assert printable(name) == name
    assert printable("tab\there\r") == "tab\\there\\r"
