"""Photos in another colour space for tests and benchmarks (no profile files in the repository):
small but real ICC v2 profiles built from their published numbers — the colorants written here,
independent of ``pixcamd.colour``'s nclx arithmetic; the file format is that module's writer —
and HEICs whose colours are named by nclx code points."""

from __future__ import annotations

import struct

from pixcamd.colour import SRGB_CURVE, matrix_shaper


def display_p3_profile() -> bytes:
    """Display P3 as Apple's profile has it — every iPhone photo carries it: the P3 primaries
    adapted to D50 (Bradford), the sRGB tone curve."""
    return matrix_shaper(
        "Display P3",
        (0.51512, 0.24120, -0.00105),
        (0.29198, 0.69225, 0.04189),
        (0.15710, 0.06657, 0.78407),
        SRGB_CURVE,
    )


def adobe_rgb_profile() -> bytes:
    """Adobe RGB (1998): its primaries adapted to D50, a pure gamma of 563/256."""
    return matrix_shaper(
        "Adobe RGB (1998)",
        (0.60974, 0.31111, 0.01947),
        (0.20528, 0.62567, 0.06087),
        (0.14919, 0.06322, 0.74457),
        b"curv" + bytes(4) + struct.pack(">IH", 1, 563),
    )


def save_nclx_heic(image, path, primaries: int, transfer: int, **options) -> None:
    """``image`` as a HEIC whose colours are described by nclx code points (``primaries``,
    ``transfer``; BT.601 matrix, full range), as phones write them: no ICC profile."""
    import pillow_heif

    pillow_heif.from_pillow(image).save(
        path, color_primaries=primaries, transfer_characteristics=transfer,
        matrix_coefficients=6, full_range_flag=1, **options,
    )  # fmt: skip
