"""Small but real ICC v2 profiles built from their published numbers, for tests and benchmarks
that need a photo in another colour space (no profile files in the repository). The colorants
are the published ones, written here, independent of ``pixcamd.colour``'s nclx arithmetic; the
file format is that module's writer."""

from __future__ import annotations

import struct

from pixcamd.colour import SRGB_CURVE, icc_profile, matrix_shaper, s15, xyz

__all__ = ["adobe_rgb_profile", "display_p3_profile", "icc_profile", "s15", "xyz"]


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
