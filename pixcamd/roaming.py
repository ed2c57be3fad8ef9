"""Roaming views: pipelines in no preset, drawn afresh each step.

A slot of each step's budget goes to the centre crop (or, for crops to another aspect, the fit)
of a random destination — another downscale, filter and quality, a full-size re-encode, a crop to
another aspect — so the perturbation cannot fit the named pipelines' exact numbers only
(expectation over transformations). Each is planned as a named pipeline's loop view is
(``pixcamd.pipeline_views``); the optimizer forgets its score once used, so it never decides the
verdict. The draws' bounds are part of the daemon's settings fingerprint.
"""

from __future__ import annotations

import math

import torch

from pixcamd.jpeg import Chain
from pixcamd.pipeline_views import DownscaledCrop, LoopView, NativeCrop, plan_loop_views
from pixcamd.platforms import Pipeline, centre_box
from pixcamd.views import VIEW_HEIGHT, VIEW_WIDTH, plan_views

ROAM_FILTERS = ("lanczos", "bicubic", "bilinear")
# Up to and above the named downscales' 75–90: a high quality after a downscale is where the
# JPEG's own artefacts help a perturbation least (measured: docs/benchmarks.md, 70–95 → 85–98).
ROAM_QUALITY = (85, 98)
# This share of roaming views re-encode the photo at its own size, at a quality drawn from
# ROAM_NATIVE_QUALITY: a destination that keeps a photo within its size limit (X-like ones up to
# 4096 px) re-encodes it at its own quality, and the task's JPEG 90 is the only full-size one
# the presets name. Without them, 3 of 10 protected photos fell to 55–60 after a full-size
# JPEG 80; with one roaming view in 8, none, the same steps and PSNR; one in 4 cost downscales
# in no preset 3 of 30 pairs (docs/benchmarks.md, "Full size, another quality").
ROAM_NATIVE_SHARE = 0.125
ROAM_NATIVE_QUALITY = (75, 95)
# This share of roaming views is a centre crop to another aspect (a square post, a profile
# grid's 3:4 thumbnail, a 1.91:1 link preview), then a downscale by a factor drawn as for the
# others (from 1: a crop at full size moves the JPEG grid off ours), JPEG in ROAM_NATIVE_QUALITY;
# the view is the crop's fit (ROAM_CROP_FIT_SHARE of them: a fit of a tighter box than the
# photo's own, which no named pipeline shows) or its centre. Without them 8 of 10 protected
# photos scored 41–59 on such a fit or crop; a quarter of the roaming views, half of them fits,
# took the pairs low from 130 to 136 of 160; with the fits off their exact box too, 3/8 and two
# thirds fits 143 (held-out crops 144, 128 before); a half 150 (145) for 5 % more steps and less
# of the downscales in no preset (docs/benchmarks.md, "Crops to another aspect").
ROAM_CROP_SHARE = 0.375
ROAM_CROP_FIT_SHARE = 2 / 3
ROAM_ASPECTS = (
    (1, 1),
    (4, 5),
    (3, 4),
    (2, 3),
    (9, 16),
    (5, 4),
    (4, 3),
    (3, 2),
    (16, 9),
    (191, 100),
)


def roaming_view(
    width: int,
    height: int,
    largest: float,
    generator: torch.Generator,
    output: tuple[int, str] = (95, "4:4:4"),
    size: tuple[int, int] = (VIEW_HEIGHT, VIEW_WIDTH),
) -> LoopView | None:
    """The centre crop of a random pipeline in no preset: a downscale by a factor drawn
    log-uniformly from 1.1 to 1.5× ``largest`` (the largest factor among the named pipelines,
    at least 2, never so far that the photo gets smaller than the view), a random filter, JPEG
    at a random quality in ``ROAM_QUALITY``; or, one draw in ``ROAM_NATIVE_SHARE``, no resize
    and JPEG at a random quality in ``ROAM_NATIVE_QUALITY``; or, ``ROAM_CROP_SHARE`` of the
    draws, a centre crop to another aspect, its fit or centre (``_roaming_crop``). They keep the
    perturbation from fitting the named pipelines' exact numbers only (expectation over
    transformations); None when the photo is too small to be downscaled at all."""
    top = min(1.5 * max(largest, 2.0), width / size[1], height / size[0])
    if top <= 1.1:
        return None
    draw = torch.rand(6, generator=generator).tolist()
    if ROAM_NATIVE_SHARE <= draw[3] < ROAM_NATIVE_SHARE + ROAM_CROP_SHARE:
        return _roaming_crop(width, height, largest, draw, output, size)
    if draw[3] < ROAM_NATIVE_SHARE:  # the photo kept at its size, re-encoded
        quality = _quality(ROAM_NATIVE_QUALITY, draw[2])
        view = plan_views(width, height, ["center"], size)[0]
        chain = Chain(*output, quality, "4:2:0")
        return NativeCrop.of(f"roaming/full-size-q{quality}", view.box, (width, height), chain)
    factor = _log_uniform(1.1, top, draw[0])
    return _downscaled_centre(width, height, factor, draw[1], draw[2], "4:2:0", output, size)


# A view of its own each step near full size: a downscale by a factor drawn log-uniformly from
# NEAR_FULL (a destination that fits a photo a little smaller than it is — Mastodon's 8.3 MP, a
# 2048-px fit of a 2400-px photo), JPEG in ROAM_QUALITY, a quarter of them at 4:4:4 (libvips
# keeps full chroma at quality 90 and above). The roaming draws start at 1.1 and mostly go far
# below, and the fine grain that protects the full-size views is resampled away by a downscale
# of a few per cent: without this view, protected photos were low at scales 0.98–0.6 at JPEG 90
# on half the photos (docs/benchmarks.md, "Near full size").
NEAR_FULL = (1.02, 1.7)
NEAR_FULL_444_SHARE = 0.25


def near_full_view(
    width: int,
    height: int,
    generator: torch.Generator,
    output: tuple[int, str] = (95, "4:4:4"),
    size: tuple[int, int] = (VIEW_HEIGHT, VIEW_WIDTH),
) -> LoopView | None:
    """The centre crop of a random downscale near full size (``NEAR_FULL``; never so far that
    the photo gets smaller than the view), a random filter, JPEG at a random quality in
    ``ROAM_QUALITY``; None when the photo is too small to be downscaled that little."""
    top = min(NEAR_FULL[1], width / size[1], height / size[0])
    if top <= NEAR_FULL[0]:
        return None
    draw = torch.rand(4, generator=generator).tolist()
    factor = _log_uniform(NEAR_FULL[0], top, draw[0])
    subsampling = "4:4:4" if draw[3] < NEAR_FULL_444_SHARE else "4:2:0"
    return _downscaled_centre(width, height, factor, draw[1], draw[2], subsampling, output, size)


def _downscaled_centre(
    width: int,
    height: int,
    factor: float,
    filter_draw: float,
    quality_draw: float,
    subsampling: str,
    output: tuple[int, str],
    size: tuple[int, int],
) -> LoopView:
    """The centre crop of the photo downscaled by ``factor`` (never below the view size), the
    filter and the JPEG quality in ``ROAM_QUALITY`` picked by two draws in [0, 1)."""
    served = (max(size[1], round(width / factor)), max(size[0], round(height / factor)))
    filter_name = _pick(ROAM_FILTERS, filter_draw)
    quality = _quality(ROAM_QUALITY, quality_draw)
    chain = Chain(None, "4:4:4", quality, subsampling)
    view = plan_views(*served, ["center"], size)[0]
    chroma = "" if subsampling == "4:2:0" else f"-{subsampling.replace(':', '')}"
    label = f"roaming/{served[0]}x{served[1]}-q{quality}{chroma}-{filter_name}"
    return DownscaledCrop.of(label, view, (width, height), served, filter_name, chain, output)


def _roaming_crop(
    width: int,
    height: int,
    largest: float,
    draw: list[float],
    output: tuple[int, str],
    size: tuple[int, int],
) -> LoopView | None:
    """A centre crop to one of ``ROAM_ASPECTS`` (not the photo's own), downscaled, re-encoded;
    its centre or its fit, planned as a named pipeline's view is."""
    aspects = [a for a in ROAM_ASPECTS if abs(math.log(a[0] * height / (a[1] * width))) > 0.05]
    aspect = _pick(aspects, draw[4])
    box = centre_box(width, height, aspect)
    top = min(1.5 * max(largest, 2.0), box[2] / size[1], box[3] / size[0])
    if top < 1.0:  # a strip too thin for the view
        return None
    factor = _log_uniform(1.0, top, draw[0]) if top > 1.0 else 1.0
    factor = 1.0 if factor < 1.05 else factor  # nearly native: the crop's own JPEG grid
    quality = _quality(ROAM_NATIVE_QUALITY, draw[2])
    filter_name = _pick(ROAM_FILTERS, draw[1])
    pipeline = Pipeline("roaming", "scale", 1.0 / factor, filter_name, quality, crop=aspect)
    which = "resize" if draw[5] < ROAM_CROP_FIT_SHARE else "center"
    view = plan_loop_views(width, height, [which], (pipeline,), output, size)[0]
    served = pipeline.output_size(width, height)
    view.label = (
        f"roaming/crop{aspect[0]}:{aspect[1]}-{served[0]}x{served[1]}-q{quality}-{filter_name}"
        f"/{which}"
    )
    view.stands_for = []
    return view


def _log_uniform(low: float, high: float, draw: float) -> float:
    """The factor a draw in [0, 1) picks between ``low`` and ``high``, evenly on a log scale: as
    many draws between 1.1 and 1.2 as between 2.2 and 2.4."""
    return math.exp(math.log(low) + draw * (math.log(high) - math.log(low)))


def _quality(bounds: tuple[int, int], draw: float) -> int:
    """The JPEG quality a draw in [0, 1) picks within ``bounds`` (low, high), evenly."""
    low, high = bounds
    return round(low + draw * (high - low))


def _pick(options, draw: float):
    """The option a draw in [0, 1) picks, each as likely."""
    return options[min(int(draw * len(options)), len(options) - 1)]
