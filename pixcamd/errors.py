"""Errors a user can act on: each says what went wrong and what to do about it."""


class PixcamdError(Exception):
    """Base class; the CLI prints these as one clear line instead of a traceback."""

    def lines(self) -> list[str]:
        """The message as printed, line by line (each escaped on a terminal: a line break in a
        file name is shown, never followed)."""
        return [str(self)]


class OutputUnwritable(PixcamdError):
    """stdout refused the answer — a full disk (``>/dev/full``), a descriptor closed (``>&-``):
    said in one line and exit 2, never a traceback nor a silent exit 0 (a reader that closed
    its pipe early, ``| head``, is ``BrokenPipeError``: it had enough)."""


class PhotoError(PixcamdError):
    """A file that cannot be read as a photo (missing, empty, not an image, truncated, too big)."""


class Undecodable(PhotoError):
    """The file's bytes are no image pixcamd can read (empty, not an image, truncated, damaged):
    no setting changes that, only new bytes do."""


class NotProtectable(PhotoError):
    """A photo read whole that pixcamd will not protect (an HDR one): final as soon as it is
    read — a file still arriving fails to decode before it could say so."""


class OverTheLimit(NotProtectable):
    """A photo whose header gives a size over ``max_pixels`` or past JPEG's side: refused for
    what it is, though its end may still be arriving (the daemon waits until it is quiet)."""


class ServedTooSmall(PhotoError):
    """A pipeline that would serve this photo with a side under 16 px: no destination does, and
    a quality model cannot judge it (a ``scale`` or crop meant for larger photos)."""


class TooLargeForMemory(PhotoError):
    """A photo that needs more memory than this process may ever have (the machine's, a
    service's MemoryMax=, a ulimit): final, however much is freed."""


class ServedTooLarge(PhotoError):
    """A pipeline that would serve this photo with a side longer than its encoder takes."""


class NotEnoughMemory(PixcamdError, MemoryError):
    """A photo this machine cannot protect now without running out of memory: transient (memory
    may be freed; the daemon retries it with its back-off), and said in one line."""


class WeightsError(PixcamdError):
    """Model weights that cannot be used."""


class WeightsMissing(WeightsError):
    pass


class NotACheckpoint(WeightsError):
    pass


class TruncatedCheckpoint(WeightsError):
    pass


class WrongArchitecture(WeightsError):
    pass


class DownloadError(WeightsError):
    pass


def without_path(message: str, path: str) -> str:
    """A photo's error without its own name in front (``"a.jpg: empty file"`` → ``"empty
    file"``), for lines that already start with the name."""
    prefix = f"{path}: "
    return message[len(prefix) :] if message.startswith(prefix) else message
