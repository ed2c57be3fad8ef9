"""The names and defaults a person writes — on the command line or in the daemon's config — kept
apart from the modules that use them, which need torch: ``pixcamd --help``, ``status`` and the
config's schema read them here and never load it. Each is still importable from its old home
(``pixcamd.views``, ``pixcamd.models``, ``pixcamd.settings``, ``pixcamd.enhance``,
``pixcamd.models.weights``), which takes it from here.
"""

from __future__ import annotations

import difflib
import os
import pwd
import stat
from pathlib import Path

from pixcamd.errors import PixcamdError

# The views (pixcamd.views)
VIEW_NAMES = ("center", "resize", "tiles")
DEFAULT_VIEWS = ("center", "resize")

# The quality models (pixcamd.models)
MODEL_NAMES = ("koncept512", "brisque")
CHOICES = ("auto", *MODEL_NAMES)
WEIGHTS_URL = "https://surfdrive.surf.nl/files/index.php/s/oeGv7wEyyMwwbIO/download"
WEIGHTS_FILENAME = "KonCept512.pth"

# A protection run (pixcamd.settings, pixcamd.enhance)
MODES = ("invisible", "enhance", "auto")  # enhance: a colour filter; auto: filter, then invisible
DEFAULT_MODE = "invisible"
# The default budget in 8-bit grey levels (in strong texture; the mask gives less elsewhere):
# the one source of Settings', the config schema's and the command line's defaults.
EPSILON = 6.0
EPSILON_CAP = 12.0
STEPS = 40  # per round of the schedule, before escalating
OUTPUT_QUALITY = 95  # the copy's JPEG quality (4:4:4)
STRENGTH = 24.0  # enhance: the largest change a tone curve may make, in 8-bit grey levels


def parse_views(text: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """``"center,resize"`` → ("center", "resize"), rejecting unknown or empty names.

    Case does not matter and ``centre`` is ``center``, as platform names are read."""
    raw = text.split(",") if isinstance(text, str) else list(text)
    names = [n.strip().lower() for n in raw]
    if not names or any(not n for n in names):
        raise ValueError(f"no view given: choose from {', '.join(VIEW_NAMES)}")
    names = ["center" if n == "centre" else n for n in names]
    unknown = [raw[i].strip() for i, n in enumerate(names) if n not in VIEW_NAMES]
    if unknown:
        raise ValueError(f"unknown view {unknown[0]!r}: choose from {', '.join(VIEW_NAMES)}")
    return tuple(dict.fromkeys(names))  # keep order, drop repeats


def meant(name: str, names) -> str | None:
    """The one of ``names`` a person who wrote ``name`` most likely meant — the same in
    another case (``INBOX``), else the nearest spelling (``setle_time``) — or None: the config's
    unknown keys, at the top and in a pipeline's table, are answered alike."""
    folded = {n.lower(): n for n in names}
    if name.lower() in folded:
        return folded[name.lower()]
    close = difflib.get_close_matches(name.lower(), list(folded), n=1)
    return folded[close[0]] if close else None


def in_order(views) -> tuple[str, ...]:
    """``views`` in the order the optimizer sees them, whatever order they were named in (the
    same set, the same copy)."""
    return tuple(sorted(views, key=VIEW_NAMES.index))


def home(instead: str) -> Path:
    """This user's home folder; where there is none (a container's ``--user 12345`` or
    ``env -i``: no HOME, no passwd entry) a ``PixcamdError`` on one line saying what to set
    ``instead`` — never Python's RuntimeError and its traceback. A HOME that is not an absolute
    path (``HOME=.``, ``HOME=``) is ignored for the passwd entry's, as a relative XDG folder is:
    it would name another folder from every working directory."""
    value = os.environ.get("HOME")
    if value is None or os.path.isabs(value):
        try:
            return Path.home()
        except RuntimeError:
            pass
    else:
        try:
            return Path(pwd.getpwuid(os.getuid()).pw_dir)
        except KeyError:
            pass
    said = "is not set" if value is None else f"is {value!r}, not an absolute path,"
    raise PixcamdError(
        f"no home folder for this user (HOME {said} and uid {os.getuid()} has no "
        f"passwd entry): {instead}"
    )


def expand_home(text: str, what: str) -> str:
    """``os.path.expanduser`` that refuses, naming ``what``, a ``~`` it cannot expand — no home
    folder, or ``~name`` for a user that does not exist here — instead of a folder literally
    named ``~`` or ``~name`` under the current one; ``~`` is ``home()``'s folder."""
    if text == "~" or text.startswith("~/"):
        base = os.fspath(home(f"{what}: {text} starts with ~; give it as an absolute path"))
        return (base.rstrip("/") + text[1:]) or "/"  # as expanduser joins a HOME of /
    path = os.path.expanduser(text)
    if path.startswith("~"):
        user = path[1:].split("/", 1)[0]
        raise PixcamdError(
            f"{what}: {text} starts with ~{user}, the home folder of a user {user} who does not "
            "exist here; give it as an absolute path"
        )
    return path


def xdg_home(variable: str) -> Path | None:
    """``$XDG_CONFIG_HOME``, ``$XDG_STATE_HOME`` or ``$XDG_CACHE_HOME`` where it is set to an
    absolute path; a relative one is ignored, as the XDG Base Directory spec has it: it would
    name another folder from every working directory (a config ``init`` wrote that ``status``
    run elsewhere never finds, a ledger made wherever the daemon was started)."""
    value = os.environ.get(variable, "")
    return Path(value) if os.path.isabs(value) else None


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/pixcamd`` (``~/.cache/pixcamd``); systemd's CACHE_DIRECTORY wins."""
    if os.environ.get("CACHE_DIRECTORY"):  # set by CacheDirectory= in the systemd unit
        return Path(os.environ["CACHE_DIRECTORY"].split(":")[0])
    base = xdg_home("XDG_CACHE_HOME") or (
        home(
            "set XDG_CACHE_HOME (KonCept512's weights are looked for in $XDG_CACHE_HOME/pixcamd), "
            "or name them with weights in the config (--weights on the command line)"
        )
        / ".cache"
    )
    return base / "pixcamd"


def default_weights_path() -> Path:
    """Where ``auto`` looks for KonCept512's weights, and ``pixcamd model fetch`` puts them."""
    return cache_dir() / WEIGHTS_FILENAME


def present(path: Path) -> bool:
    """Whether weights are at ``path`` — also when a folder on its way is closed to this user
    (reading them then says so, instead of ``auto`` quietly taking BRISQUE). ``os.stat``, not
    ``Path.is_file``: from Python 3.14 that answers False for a closed folder too."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError:
        return True


def resolve_name(name: str, weights: str | os.PathLike | None = None) -> str:
    """Turn ``auto`` into a concrete model name; reject unknown names."""
    if name == "auto":
        if weights is not None or present(default_weights_path()):
            return "koncept512"
        return "brisque"
    if name not in MODEL_NAMES:
        raise ValueError(f"unknown model {name!r}: choose one of {', '.join(CHOICES)}")
    return name
