"""Small but real ICC v2 profiles built from their published numbers, for tests and benchmarks
that need a photo in another colour space (no profile files in the repository)."""

from __future__ import annotations

import struct

D50 = (0.9642, 1.0, 0.8249)


def s15(x: float) -> bytes:
    """ICC's s15Fixed16Number."""
    return struct.pack(">i", round(x * 65536))


def xyz(x: float, y: float, z: float) -> bytes:
    return b"XYZ " + bytes(4) + s15(x) + s15(y) + s15(z)


def icc_profile(kind: bytes, name: str, tags: list[tuple[bytes, bytes]]) -> bytes:
    """An ICC v2 profile: ``kind`` = device class + colour space + PCS (12 bytes), a
    description, the D50 white, then ``tags``."""
    text = name.encode() + b"\x00"
    desc = b"desc" + bytes(4) + struct.pack(">I", len(text)) + text + bytes(8 + 3 + 67)
    tags = [(b"desc", desc), (b"wtpt", xyz(*D50)), *tags]
    offset = 128 + 4 + 12 * len(tags)
    table, body = struct.pack(">I", len(tags)), b""
    for sig, data in tags:
        data += bytes(-len(data) % 4)
        table += sig + struct.pack(">II", offset + len(body), len(data))
        body += data
    header = struct.pack(">I", offset + len(body)) + b"lcms" + struct.pack(">I", 0x02100000)
    header += kind + struct.pack(">6H", 2024, 1, 1, 0, 0, 0) + b"acsp" + bytes(28)
    header += s15(D50[0]) + s15(D50[1]) + s15(D50[2]) + b"test"
    return header + bytes(128 - len(header)) + table + body


def _matrix_shaper(name: str, red, green, blue, curve: bytes) -> bytes:
    return icc_profile(
        b"mntrRGB XYZ ",
        name,
        [
            (b"rXYZ", xyz(*red)),
            (b"gXYZ", xyz(*green)),
            (b"bXYZ", xyz(*blue)),
            (b"rTRC", curve),
            (b"gTRC", curve),
            (b"bTRC", curve),
        ],
    )


def display_p3_profile() -> bytes:
    """Display P3 as Apple's profile has it — every iPhone photo carries it: the P3 primaries
    adapted to D50 (Bradford), the sRGB tone curve."""
    srgb_curve = b"para" + bytes(4) + struct.pack(">HH", 3, 0)
    srgb_curve += b"".join(s15(v) for v in (2.4, 1 / 1.055, 0.055 / 1.055, 1 / 12.92, 0.04045))
    return _matrix_shaper(
        "Display P3",
        (0.51512, 0.24120, -0.00105),
        (0.29198, 0.69225, 0.04189),
        (0.15710, 0.06657, 0.78407),
        srgb_curve,
    )


def adobe_rgb_profile() -> bytes:
    """Adobe RGB (1998): its primaries adapted to D50, a pure gamma of 563/256."""
    return _matrix_shaper(
        "Adobe RGB (1998)",
        (0.60974, 0.31111, 0.01947),
        (0.20528, 0.62567, 0.06087),
        (0.14919, 0.06322, 0.74457),
        b"curv" + bytes(4) + struct.pack(">IH", 1, 563),
    )
