"""The daemon's configuration schema: every key with its default, its documentation and its
parser — the one source of config.example.toml (``config_toml.render_example``), of the validation
(``config.validate``) and of ``pixcamd config check``.

Each key's parser (``pixcamd.daemon.values``, here ``read.…``) takes the raw TOML value and
returns the effective value or raises ``ValueError`` with the problem in words;
``config.validate`` prefixes each problem with the file and key and reports them all at once.
Checks that need several keys at once live in ``pixcamd.daemon.config``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pixcamd.daemon import values as read
from pixcamd.defaults import (
    DEFAULT_MODE,
    DEFAULT_VIEWS,
    EPSILON,
    EPSILON_CAP,
    MODES,
    OUTPUT_QUALITY,
    STEPS,
    STRENGTH,
    VIEW_NAMES,
)
from pixcamd.platforms import DEFAULT_PLATFORMS, PRESETS

# Sync tools' temporary and bookkeeping files; matched against every part of the path relative to
# the inbox, so a pattern naming a folder (.stversions, @eaDir) also hides everything inside it.
DEFAULT_IGNORE = (
    ".*",  # dotfiles and dot-folders (covers most of the names below; listed for clarity)
    ".syncthing.*.tmp",  # Syncthing temp file
    "~syncthing~*",  # Syncthing temp file (Windows-style name)
    "*.~*",  # Nextcloud / ownCloud partial download
    ".*.??????",  # rsync temp file: .name.XXXXXX (also a dotfile)
    "*.part",  # Firefox, KIO, curl partial downloads
    "*.crdownload",  # Chromium partial download
    ".stfolder",  # Syncthing folder marker
    ".stversions",  # Syncthing versioning folder
    "@eaDir",  # Synology thumbnails
    ".DS_Store",  # macOS Finder
    "._*",  # macOS resource forks (AppleDouble)
    "Thumbs.db",  # Windows thumbnails
    "desktop.ini",  # Windows folder settings
)
DEFAULT_EXTENSIONS = (
    ".jpg",
    ".jpeg",
    ".jpe",
    ".jfif",
    ".png",
    ".webp",
    ".tif",
    ".tiff",
    ".heic",
    ".heif",
    ".hif",  # HEIF from Canon, Fujifilm and Sony cameras
    ".mpo",  # a camera's multi-picture JPEG (stereo, or with a preview): its first picture
    ".avif",  # every format pixcamd reads (docs/photo-io.md): none is left out unseen
    ".gif",
    ".bmp",
)


@dataclass(frozen=True)
class Option:
    key: str
    section: str  # heading in config.example.toml
    default: Any
    doc: str
    parse: Callable[[Any], Any]
    example: Any = None  # shown in config.example.toml instead of the default, when given


SCHEMA: tuple[Option, ...] = (
    Option(
        "inbox",
        "Folders",
        "",
        "Folder to watch, recursively (your synced camera folder). Required. Relative paths in "
        "this file are relative to the file's own folder; ~ is expanded.",
        read.path(True),
        example="/srv/pixcamd/inbox",
    ),
    Option(
        "outbox",
        "Folders",
        "",
        "Folder the protected copies go to, mirroring the inbox's sub-folders (IMG_1.heic → "
        "IMG_1.jpg). Required; must not be inside the inbox nor contain it. Files appear there "
        "only complete, by an atomic rename.",
        read.path(True),
        example="/srv/pixcamd/outbox",
    ),
    Option(
        "state_dir",
        "Folders",
        "",
        'Ledger (SQLite), lock and working files. "" = $STATE_DIRECTORY (systemd) or '
        "$XDG_STATE_HOME/pixcamd (~/.local/state/pixcamd).",
        read.path(False),
    ),
    Option(
        "tmp_dir",
        "Folders",
        "",
        "Where copies are written and checked before they are renamed into the outbox; it must "
        "be on the same mount as the outbox and hold none of the other folders; what a dead "
        'attempt left there is deleted at start-up. "" = <state_dir>/tmp '
        "when that is on the outbox's mount, else a hidden folder beside the outbox "
        "(<outbox>/../.pixcamd-tmp-<outbox's name>). One daemon per temp folder.",
        read.path(False),
    ),
    Option(
        "log_file",
        "Folders",
        "",
        'Status log, one JSON object per line. "" = $LOGS_DIRECTORY/pixcamd.jsonl (systemd) or '
        "<state_dir>/pixcamd.jsonl. Human-readable lines go to stderr (the journal) as well.",
        read.path(False),
    ),
    Option(
        "model",
        "Quality model",
        ["auto"],
        "Quality model(s) to fool: auto, koncept512, brisque, or a list of several (protected "
        "only when every one agrees). auto = KonCept512 when its weights are installed "
        "(`pixcamd model fetch`), otherwise the embedded BRISQUE — said loudly at start-up and "
        "recorded per photo.",
        read.models,
    ),
    Option(
        "weights",
        "Quality model",
        "",
        'KonCept512.pth to use; "" = the cache folder ($CACHE_DIRECTORY or ~/.cache/pixcamd).',
        read.path(False),
    ),
    Option(
        "device",
        "Quality model",
        "auto",
        "auto (a CUDA GPU when there is one, else the CPU), cpu, cuda or cuda:N. On GPU "
        "out-of-memory a photo is retried with smaller batches, then on the CPU.",
        read.device,
    ),
    Option(
        "threads",
        "Quality model",
        0,
        "CPU threads for torch, and at most this many of a step's views evaluated at once; "
        "0 = torch's default (all cores).",
        read.number(0, 1024, integer=True),
    ),
    Option(
        "priority",
        "Quality model",
        "background",
        '"background" = the daemon only takes CPU time nothing else wants (nice 19 and the '
        "idle CPU scheduling class), so it can use every core and the desktop stays "
        'responsive; "normal" = like any program (a dedicated server). systemd units set '
        "their own priority.",
        read.choice("background", "normal"),
    ),
    Option(
        "mode",
        "Protection",
        DEFAULT_MODE,
        '"invisible": a perturbation too small to see. "enhance": a colour filter (tone '
        "curves, contrast, saturation) a person reads as an edit, kept from looking flatter, "
        'duller or tinted. "auto": the filter, plus the invisible perturbation only where the '
        "filter falls short. The filter is recorded per photo in words and parameters.",
        read.choice(*MODES),
    ),
    Option(
        "enhance_strength",
        "Protection",
        STRENGTH,
        "enhance/auto: largest change of the filter's tone curves in 8-bit grey levels; its "
        "contrast and saturation ranges scale with it.",
        read.number(0, 64, " grey levels"),
    ),
    Option(
        "views",
        "Protection",
        list(DEFAULT_VIEWS),
        f"Views to protect, from {', '.join(VIEW_NAMES)} (see README).",
        read.views,
    ),
    Option(
        "platforms",
        "Protection",
        list(DEFAULT_PLATFORMS),
        "Where your photos go: each is a platform pipeline (a downscale, maybe a centre crop, "
        "then the platform's JPEG, WebP or AVIF) "
        "and a photo is protected only when every view is judged low quality after every one. "
        "Presets: "
        + ", ".join(f"{n} ({p.describe()})" for n, p in PRESETS.items())
        + ". Also your own, named in [pipelines.NAME] at the end of this file, or written inline "
        'as e.g. "long1600-q75", "width1080-q80-bicubic-444", "mp8.3-q90-444" (fitted in 8.3 '
        'megapixels), "long2048-webp80" (WebP), "long1600-avif60" (AVIF) or '
        '"crop1:1-long1080-q80" (a square crop first). Names are read whatever their case. See '
        "docs/platforms.md.",
        read.platform_names,
    ),
    Option(
        "epsilon",
        "Protection",
        EPSILON,
        "Largest change per pixel in 8-bit grey levels before escalation, in strong texture; "
        "smoother areas get less, down to a sixth of it where the photo is flat.",
        read.number(0, 64, " grey levels"),
    ),
    Option(
        "epsilon_cap",
        "Protection",
        EPSILON_CAP,
        "Escalation never exceeds this many grey levels (in strong texture; flat areas a sixth "
        "of it).",
        read.number(0, 64, " grey levels"),
    ),
    Option(
        "target",
        "Protection",
        {},
        "Score to reach after every platform pipeline: one number for a single model, or a table "
        "{ koncept512 = 30, brisque = 80 }. {} = each model's default (KonCept512 30, "
        "BRISQUE 80).",
        read.targets,
    ),
    Option(
        "steps",
        "Protection",
        STEPS,
        "Optimizer steps per round before escalating.",
        read.number(1, 100000, integer=True),
    ),
    Option(
        "seed",
        "Protection",
        0,
        "Random seed (same seed, same output).",
        read.number(0, 2**31, integer=True),
    ),
    Option(
        "max_pixels",
        "Protection",
        200_000_000,
        "Photos with more pixels are refused (failed) instead of exhausting memory. Protecting "
        "takes about 0.5 GB plus 0.11 GB per megapixel (24 MP: 2.9 GB, 48 MP: 5.5 GB with "
        "BRISQUE; KonCept512 up to 0.8 GB more); a photo is refused when it comes if the memory "
        "left is under 0.6 GB plus 0.115 GB per megapixel (24 MP: 3.4 GB, 48 MP: 6.1 GB; "
        "KonCept512 0.8 GB more; the "
        "margin spares the daemon the kernel's out-of-memory killer), so on a small machine "
        "lower this to refuse such photos at once.",
        read.number(1, 10**10, " pixels", integer=True),
    ),
    Option(
        "output_quality",
        "Output",
        OUTPUT_QUALITY,
        "JPEG quality of the protected copies (4:4:4 chroma).",
        read.number(1, 100, integer=True),
    ),
    Option(
        "strip_gps",
        "Output",
        True,
        "Remove GPS position tags from the copies (they go public); other metadata is kept "
        "(camera and lens serial numbers, the owner's name, captions and place names a person "
        "wrote) unless strip_metadata is true (false with it is refused: they contradict).",
        read.boolean,
    ),
    Option(
        "strip_metadata",
        "Output",
        False,
        "Remove all metadata from the copies: EXIF (GPS included: strip_gps = false with it is "
        "refused), "
        "XMP, IPTC, maker notes and comments; only the colour profile (and the JFIF pixel "
        "density) is kept. false = the copies keep the photo's metadata, as strip_gps says.",
        read.boolean,
    ),
    Option(
        "on_unprotected",
        "Output",
        "hold",
        'Photos that cannot be protected: "hold" = never in the outbox; state unprotected, '
        'listed by `pixcamd status` (and a copy in hold_dir if set). "ship" = write them to '
        "the outbox anyway, with a warning in the log and the ledger.",
        read.choice("hold", "ship"),
    ),
    Option(
        "hold_dir",
        "Output",
        "",
        'With on_unprotected = "hold": write the best attempt here (mirrored path) for you to '
        'review. "" = write nothing. Must not be inside the inbox or the outbox.',
        read.path(False),
    ),
    Option(
        "settle_time",
        "Watching",
        5.0,
        "Seconds a file must stay unchanged (size and mtime, seen twice) before it is decoded "
        "and queued: a file still being written is never processed.",
        read.number(0.05, 3600, " s"),
    ),
    Option(
        "settle_timeout",
        "Watching",
        120.0,
        "A file unchanged this long that still does not decode is queued anyway and fails with "
        "the decoder's reason (a corrupt file, not one being written).",
        read.number(0.05, 86400, " s"),
    ),
    Option(
        "rescan_interval",
        "Watching",
        600.0,
        "Seconds between full rescans of the inbox for what the watcher missed (network "
        "filesystems, inotify overflow, downtime); 0 = only the start-up scan.",
        read.number(0, 7 * 86400, " s"),
    ),
    Option(
        "extensions",
        "Watching",
        list(DEFAULT_EXTENSIONS),
        "File name extensions taken as photos (case-insensitive); other files are left alone.",
        read.extensions,
    ),
    Option(
        "ignore",
        "Watching",
        list(DEFAULT_IGNORE),
        "Glob patterns of names to ignore, matched against each file and folder name under the "
        "inbox (a matching folder hides its contents). The default covers sync tools' temp "
        "files: Syncthing, Nextcloud, rsync, browsers, macOS, Windows, Synology.",
        read.patterns,
    ),
    Option(
        "max_attempts",
        "Retries",
        5,
        "Attempts per photo before it is marked failed for good (transient failures: disk "
        "full, out of memory, a crash mid-photo).",
        read.number(1, 1000, integer=True),
    ),
    Option(
        "retry_backoff",
        "Retries",
        30.0,
        "Seconds before the first retry; doubled on each further attempt.",
        read.number(0, 86400, " s"),
    ),
    Option(
        "retry_backoff_max",
        "Retries",
        3600.0,
        "Longest wait between retries, in seconds.",
        read.number(0, 7 * 86400, " s"),
    ),
    Option(
        "executor",
        "Cluster",
        "local",
        'Where photos are protected: "local" = in the daemon; "ray" = on the Ray cluster at '
        "ray_address (pip install 'pixcamd[ray]'). The daemon stays the only writer of the "
        "outbox and the ledger either way.",
        read.choice("local", "ray"),  # LocalExecutor here, RayExecutor on a cluster
    ),
    Option(
        "ray_address",
        "Cluster",
        "127.0.0.1:6379",
        'With executor = "ray": the head node, host:port (started with `ray start --head '
        '--node-ip-address 127.0.0.1`), or "local" for a private Ray on this machine. A Ray '
        "cluster runs whatever code reaches it: start it with RAY_AUTH_MODE=token and keep it "
        "on loopback or a trusted network (docs/folder-runs.md).",
        read.string,
    ),
    Option(
        "ray_workers",
        "Cluster",
        0,
        "Workers on the cluster; 0 = one per GPU, or the cluster's CPUs ÷ ray_threads.",
        read.number(0, 4096, integer=True),
    ),
    Option(
        "ray_threads",
        "Cluster",
        1,
        "CPU threads per worker (without GPUs).",
        read.number(1, 256, integer=True),
    ),
    Option(
        "ray_fallback",
        "Cluster",
        "wait",
        'When the cluster goes away: "wait" = keep the queue for when it returns (said loudly '
        'in the log, tried again every 15 s); "local" = protect here meanwhile.',
        read.choice("wait", "local"),
    ),
    Option(
        "grace_time",
        "Service",
        30.0,
        "On SIGTERM/SIGINT, seconds the current photo may take to finish; after that it is "
        "abandoned cleanly (nothing written, queued again). Keep the stop timeout above it + "
        "10 s: systemd's TimeoutStopSec, a container engine's (docker run --stop-timeout, "
        "compose's stop_grace_period, Kubernetes' terminationGracePeriodSeconds; docker's "
        "default is 10 s) — or lower grace_time under it (docs/daemon.md, Containers).",
        read.number(0, 3600, " s"),
    ),
    Option(
        "log_level",
        "Service",
        "info",
        "Which events the daemon writes to stderr (the journal, a container's log): "
        '"info" = every one, about five lines a photo; "warning" = what needs a look (a photo '
        'failed, held back or undecodable, a reload refused) and the errors; "error" = those '
        "alone (a folder, the outbox's disk or the cluster gone, and back; a start refused). "
        "log_file and the ledger keep every event whatever this says: they are the record (the "
        "ledger is what `pixcamd status`, --follow and the web page show; the file is for "
        "scripts and log collectors). A reload applies it.",
        read.choice("info", "warning", "error"),  # the levels events.EventLog writes
    ),
    Option(
        "web",
        "Web page",
        "127.0.0.1:8765",
        "Address of the local web page (`pixcamd run` serves it; `pixcamd web` alone): "
        'host:port, e.g. "127.0.0.1:8765", "[::1]:8765", "localhost:8765"; "" = no web page. '
        "Any address other than loopback is refused unless web_token is set.",
        read.string,
    ),
    Option(
        "web_token",
        "Web page",
        "",
        "Password of the web page (HTTP Basic, any user name; or Authorization: Bearer TOKEN). "
        '"" = none, only allowed on a loopback address. Required to serve on the network; '
        "keep the config file private when it holds one: chmod 600 for your own, root:pixcamd "
        "and chmod 640 for the system service's (its user must read it).",
        read.string,
    ),
    # Tables must come after every plain key in a TOML file: keep this one last.
    Option(
        "pipelines",
        "Your own platforms",
        {},
        "Platform pipelines of your own, one table each under a name of its own (not a "
        "preset's, nor an inline spec such as long1600-q75), then named in `platforms`. resize: "
        '"none", "long 2048" (long side), "width 1080", "height 1080", "scale 0.5" or "mp 8.3" '
        "(fitted in 8.3 megapixels) — only ever down, a smaller photo is left at its size; "
        "filter: lanczos (default), bicubic, bilinear, hamming, box, nearest; quality "
        "(required): the JPEG (or WebP, AVIF) quality 1–100; "
        'subsampling: "4:2:0" (default), "4:2:2" or "4:4:4"; codec: "jpeg" (default), "webp" '
        '(lossy WebP at that quality, always 4:2:0) or "avif"; crop: a centre crop to an aspect '
        'first, e.g. "1:1" for a square post or "1.91:1" for a link preview; crop_after_resize: '
        "true to crop the resized photo instead (a grid's thumbnail of the served copy). Words "
        "are read whatever their case.",
        read.pipelines,
        example={"myblog": {"resize": "long 1600", "filter": "lanczos", "quality": 80}},
    ),
)
KEYS = {o.key: o for o in SCHEMA}
