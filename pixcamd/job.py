"""One photo's work, wherever it runs: the file's bytes in, the protected copy's bytes out.

``protect_photo`` is what a folder run's executor (this process, or a Ray actor on another
machine) does for each photo: decode the bytes, ``protect()``, encode the copy with the photo's
metadata, and judge those exact bytes as every platform pipeline will serve them. It touches no
file and no ledger, so the caller — the CLI or the daemon — stays the only writer of the outbox
and of the record of what was done.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pixcamd.protect
from pixcamd.check import judge
from pixcamd.devices import check_memory
from pixcamd.errors import NotEnoughMemory, PixcamdError
from pixcamd.output import render_jpeg
from pixcamd.photo import DEFAULT_MAX_PIXELS, open_photo
from pixcamd.platforms import MAX_SIDE
from pixcamd.settings import Settings, view_workers
from pixcamd.views import check_cover


def open_source(name, max_pixels: int = DEFAULT_MAX_PIXELS, data: bytes | None = None):
    """The photo as a protection reads it (``pixcamd.photo.open_photo``): its copy is a JPEG of
    its size, so a side JPEG cannot hold is refused from the header — before the decode, not
    after the work (the daemon's settle check reads a photo the same way)."""
    return open_photo(name, max_pixels=max_pixels, data=data, max_jpeg_side=MAX_SIDE["jpeg"])


@dataclass
class Outcome:
    """What came of one photo. ``data`` is the copy to publish: None when it is held back."""

    data: bytes | None
    protected: bool
    report: dict  # protect()'s summary; worst and protected_on from the copy's own check
    notes: list[str] = field(default_factory=list)  # metadata changed or removed in the copy
    warnings: list[str] = field(default_factory=list)  # what the decoder said about the input
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def verdict(self) -> str:
        return self.report["verdict"]


@dataclass(frozen=True)
class JobOptions:
    """How every photo of a run is protected, wherever it runs."""

    settings: Settings
    strip_gps: bool = True
    strip_metadata: bool = False  # every tag but the colour profile, GPS too whatever strip_gps
    keep_unprotected: bool = False  # return the copy whatever the verdict (to ship or hold it)
    max_pixels: int = DEFAULT_MAX_PIXELS


def protect_photo(
    data: bytes,
    name: str,
    models: list,
    options: JobOptions,
    progress: Callable[[int, float], None] | None = None,
) -> Outcome:
    """Protect the photo whose file holds ``data`` (``name`` is only for messages).

    Raises ``PhotoError`` for a file that is not a readable photo. The copy's bytes come back
    when it is protected — judged on those bytes, decoded as any viewer would — or, with
    ``options.keep_unprotected``, whatever the verdict (the caller decides where an unprotected
    copy may go)."""
    settings = options.settings
    timings: dict[str, float] = {}
    started = tick = time.perf_counter()

    def lap(what: str) -> None:
        nonlocal tick
        now = time.perf_counter()
        timings[what] = round(now - tick, 3)
        tick = now

    photo = open_source(name, options.max_pixels, data)
    lap("decode")
    width, height = photo.image.size
    # a thin strip is enlarged to cover each model's view: counted at that size
    pixels = max(check_cover(width, height, m.view_size) for m in models)
    check_memory(pixels, [m.name for m in models], settings.device)
    try:
        result = pixcamd.protect.protect(photo.image, models, settings, progress=progress)
    except (MemoryError, RuntimeError) as exc:
        # the estimate is an estimate: an allocation refused mid-way (a ulimit, others'
        # memory grown meanwhile) is said in words and retried, as the check's refusal is
        if isinstance(exc, PixcamdError) or not _out_of_memory(exc):
            raise
        raise NotEnoughMemory(
            f"ran out of memory mid-way through its {width * height / 1e6:.1f} MP: free memory "
            "and retry it (the daemon does, later)"
        ) from None
    lap("protect")
    report = result.summary()
    report["psnr"] = None if math.isinf(result.psnr) else result.psnr
    protected, copy, notes = result.protected, None, []
    if protected or options.keep_unprotected:
        copy, notes = render_jpeg(
            result.image,
            photo.metadata,
            quality=settings.output_quality,
            subsampling=settings.output_subsampling,
            strip_gps=options.strip_gps,
            strip_all=options.strip_metadata,
        )
        lap("write")
        if protected:
            # The proof is the copy itself, read back as a viewer would read the file.
            pixels = open_photo(name, data=copy).image
            workers = view_workers(settings)
            check = judge(pixels, models, settings.views, settings.platforms, workers)
            lap("verify")
            report.update(worst=check.worst(), protected_on=check.protected_on)
            report["file_check"] = check.scores
            if not check.all_low:
                protected = False
                report["verdict"] = "unprotected"
                if not options.keep_unprotected:
                    copy = None
    # what the decoder changed in the input travels with the report, as the metadata notes do
    report.update(protected=protected, metadata_notes=notes, warnings=list(photo.warnings))
    timings["total"] = round(time.perf_counter() - started, 3)
    return Outcome(copy, protected, report, notes, photo.warnings, timings)


def _out_of_memory(exc: BaseException) -> bool:
    """Python's MemoryError, or torch's CPU allocator refusing (a RuntimeError) — not a GPU's
    out-of-memory, which the daemon answers by stepping its batch down."""
    return isinstance(exc, MemoryError) or "can't allocate memory" in str(exc)
