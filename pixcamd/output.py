"""Writing the protected copy: one JPEG writer, used by ``pixcamd protect`` and the daemon.

The pixels are encoded with exactly the Pillow call of ``pixcamd.jpeg.encode`` (same quality,
same chroma subsampling, same tables), so the scan data are byte-identical to what the checks
scored; Pillow's own header segments are then replaced by the original's metadata, made true
for the output (``pixcamd.metadata.output_segments``).

The file appears atomically: it is written to a temporary file *outside* the destination folder
where it can be (an uploader watching that folder must never see a partial or temporary file;
else a hidden ``.part`` file inside it) on the same filesystem, fsynced, renamed over the
destination, and the folders are fsynced.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import tempfile
from pathlib import Path

from PIL import Image

from pixcamd.colour import anonymous_profile
from pixcamd.errors import PixcamdError
from pixcamd.metadata import PhotoMetadata, output_segments, split_jpeg

SUBSAMPLINGS = ("4:4:4", "4:2:2", "4:2:0")
DEFAULT_QUALITY = 95
TMP_PREFIX = ".pixcamd-"
TMP_SUFFIX = ".part"


class OutputError(PixcamdError):
    """The protected copy could not be written (bad settings, folder, disk)."""


def render_jpeg(
    image: Image.Image,
    metadata: PhotoMetadata | None = None,
    quality: int = DEFAULT_QUALITY,
    subsampling: str = "4:4:4",
    *,
    strip_gps: bool = False,
    strip_all: bool = False,
) -> tuple[bytes, list[str]]:
    """The protected copy's bytes and notes on what metadata was changed or dropped."""
    if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100:
        raise OutputError(f"JPEG quality must be an integer from 1 to 100, not {quality!r}")
    if subsampling not in SUBSAMPLINGS:
        raise OutputError(f"subsampling must be one of {', '.join(SUBSAMPLINGS)}")
    buffer = io.BytesIO()
    # The same call as pixcamd.jpeg.encode: identical scan data to what the checks scored.
    image.convert("RGB").save(buffer, format="JPEG", quality=quality, subsampling=subsampling)
    _pillow_header, body = split_jpeg(buffer.getvalue())
    if strip_all and metadata is not None and metadata.icc_profile:  # its words go too
        metadata = dataclasses.replace(
            metadata, icc_profile=anonymous_profile(metadata.icc_profile)
        )
    segments, notes = output_segments(
        metadata, image.size, strip_gps=strip_gps, strip_all=strip_all
    )
    return b"\xff\xd8" + b"".join(segments) + body, notes


def encode_jpeg(
    image: Image.Image,
    metadata: PhotoMetadata | None = None,
    quality: int = DEFAULT_QUALITY,
    subsampling: str = "4:4:4",
    *,
    strip_gps: bool = False,
    strip_all: bool = False,
) -> bytes:
    """The exact bytes :func:`write_jpeg` writes for these arguments (for in-memory checks)."""
    data, _notes = render_jpeg(
        image, metadata, quality, subsampling, strip_gps=strip_gps, strip_all=strip_all
    )
    return data


def write_jpeg(
    image: Image.Image,
    dest: Path,
    metadata: PhotoMetadata | None = None,
    *,
    quality: int = DEFAULT_QUALITY,
    subsampling: str = "4:4:4",
    strip_gps: bool = False,
    strip_all: bool = False,
    tmp_dir: Path | None = None,
) -> list[str]:
    """Encode ``image`` with ``metadata`` and write it atomically to ``dest``.

    Returns notes on what metadata was changed or dropped. ``tmp_dir`` is where the temporary
    file goes: it must be on the same filesystem as ``dest`` and should be outside ``dest``'s
    folder; by default it is the folder above ``dest``'s where it can be (see
    :func:`default_tmp_dir`).
    """
    data, notes = render_jpeg(
        image, metadata, quality, subsampling, strip_gps=strip_gps, strip_all=strip_all
    )
    atomic_write(data, dest, tmp_dir)
    return notes


def default_tmp_dir(folder: Path) -> Path:
    """Where the temporary file for a copy in ``folder`` goes: the folder above it where that
    is on the same filesystem and writable — an uploader watching ``folder`` then never sees a
    partial file —, else ``folder`` itself, under a hidden ``.pixcamd-….part`` name (the usual
    mark of a file still being written, as rsync's), still renamed into place in one step.
    The fallback is what ``pixcamd protect -o ~/copy.jpg`` needs where /home is not the user's
    to write, or a copy at the top of a USB stick or a tmpfs (a mount point)."""
    parent = folder.parent
    try:
        same_filesystem = parent != folder and os.stat(parent).st_dev == os.stat(folder).st_dev
    except OSError:
        same_filesystem = False
    if same_filesystem and os.access(parent, os.W_OK | os.X_OK):
        return parent
    return folder


def check_folder(folder: Path) -> None:
    """Say before any work why a copy could not be written into ``folder``: it, or the nearest
    folder above it that exists (where ``atomic_write`` would create it), must be a folder
    this process can write."""
    existing = nearest_existing(Path(os.path.abspath(folder)))
    if not existing.is_dir():
        if existing == Path(os.path.abspath(folder)):
            raise OutputError(f"{folder}: is a file, not a folder")
        raise OutputError(f"{folder}: cannot be created: {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputError(f"{folder}: cannot write there: {existing} is not writable")


def nearest_existing(path: Path) -> Path:
    """``path`` if it exists, else the nearest folder above it that does (at worst the root)."""
    # os.path.exists: a path below a folder that cannot be read is one not there, no crash
    found = (p for p in (path, *path.parents) if os.path.exists(p))
    return next(found, Path(path.anchor or "."))


def check_destination(dest: Path) -> None:
    """``check_folder`` for the copy's folder, and ``dest`` not a folder itself."""
    if Path(dest).is_dir():
        raise OutputError(f"{dest}: is a folder, not a file name")
    check_folder(Path(os.path.abspath(dest)).parent)


def atomic_write(
    data: bytes, dest: Path, tmp_dir: Path | None = None, mode: int | None = None
) -> None:
    """Write ``data`` to ``dest`` so that readers see either the old file or the complete new one.

    Temporary file in ``tmp_dir`` (default :func:`default_tmp_dir` of ``dest``'s folder), fsync,
    rename over ``dest``, fsync both folders. The destination folder is created if missing.
    The file gets ``mode``, or what a plain ``open`` would give it (:func:`plain_mode`).
    """
    dest = Path(os.path.abspath(dest))
    folder = dest.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{folder}: cannot create the folder ({exc.strerror or exc})") from exc
    if dest.is_dir():
        raise OutputError(f"{dest}: is a folder, not a file name")
    tmp_folder = Path(os.path.abspath(tmp_dir)) if tmp_dir is not None else default_tmp_dir(folder)
    if not tmp_folder.is_dir():
        raise OutputError(f"{tmp_folder}: the temporary folder does not exist")
    if os.stat(tmp_folder).st_dev != os.stat(folder).st_dev:
        raise OutputError(
            f"{tmp_folder} and {folder} are on different filesystems: the rename would not be "
            "atomic"
        )
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=TMP_PREFIX, suffix=TMP_SUFFIX, dir=tmp_folder)
    except OSError as exc:
        raise OutputError(f"{tmp_folder}: cannot create a temporary file ({exc})") from exc
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, plain_mode() if mode is None else mode)  # not mkstemp's 0600
        os.replace(tmp_name, dest)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        if isinstance(exc, OSError):
            raise OutputError(f"{dest}: cannot write ({exc.strerror or exc})") from exc
        raise
    _fsync_dir(folder)
    if tmp_folder != folder:
        _fsync_dir(tmp_folder)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:  # pragma: no cover - platforms without directory handles
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - filesystems that refuse fsync on folders
        pass
    finally:
        os.close(fd)


def plain_mode() -> int:
    """The permissions a plain ``open`` gives a new file (0666 less the umask): what a file
    made with ``mkstemp`` (0600) is set to before it is renamed into place."""
    return 0o666 & ~_umask()


def _umask() -> int:
    """The process umask, read without changing it (os.umask would race other threads)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o022
