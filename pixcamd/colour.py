"""Colours as platforms serve them: 8-bit sRGB.

Platforms convert what they receive to sRGB before they resize and re-encode it, so the loop, the
check and the platform must all see the sRGB numbers (docs/photo-io.md, "Colour"):

* CMYK and grayscale images with an ICC profile, and CIELab images, are converted to sRGB with
  that profile (relative colorimetric, black-point compensation) and the copy carries sRGB;
* RGB pixels with an ICC profile other than sRGB (Adobe RGB, Display P3, ...) are converted the
  same way; an sRGB profile, under any name, is carried as it is;
* a HEIC or AVIF photo describes its colours with an ICC profile or with nclx code points
  (ITU-T H.273: primaries, transfer, matrix). nclx primaries other than sRGB's (Display P3,
  BT.2020) are turned into the ICC profile they stand for (``profile_from_nclx``) and converted
  like any other; an HDR transfer (PQ, HLG) is refused: its numbers are not SDR colours, and a
  copy made from them would look washed out.
"""

from __future__ import annotations

import io
import struct
from itertools import product

import numpy as np
from PIL import Image, ImageChops, ImageCms

from pixcamd.errors import NotProtectable

SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
# lcms stamps a profile with the moment it is made: the copies a process writes would all carry
# the time it started (linking them, dating it) and no two runs the same bytes. One fixed date
# (the header's bytes 24–35; its profile ID is zero, so no checksum to redo).
SRGB_PROFILE = SRGB.tobytes()[:24] + struct.pack(">6H", 2000, 1, 1, 0, 0, 0) + SRGB.tobytes()[36:]


def _profile_space(icc: bytes) -> str | None:
    """'RGB', 'CMYK', 'GRAY', ... of an ICC profile, or None if lcms cannot read it."""
    try:
        return ImageCms.ImageCmsProfile(io.BytesIO(icc)).profile.xcolor_space.strip()
    except (OSError, ImageCms.PyCMSError, ValueError, TypeError):
        return None


def _to_srgb(img: Image.Image, icc: bytes) -> Image.Image:
    """``img`` converted from ``icc`` to sRGB: relative colorimetric with black-point
    compensation, as Photoshop's and most platforms' "convert to sRGB" do. Raises lcms' errors."""
    return ImageCms.profileToProfile(
        img,
        ImageCms.ImageCmsProfile(io.BytesIO(icc)),
        SRGB,
        renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC,
        outputMode="RGB",
        flags=ImageCms.Flags.BLACKPOINTCOMPENSATION,
    )


_CMS_ERRORS = (ImageCms.PyCMSError, OSError, ValueError)


def _colour_manage(img: Image.Image, icc: bytes, notes: list[str]) -> Image.Image | None:
    try:
        return _to_srgb(img, icc)
    except _CMS_ERRORS as exc:
        notes.append(f"colour conversion with the ICC profile failed ({exc}); converted plainly")
        return None


# The RGB cube on a 9-level grid, in one image: what an RGB profile does to colours.
_GRID = Image.fromarray(np.uint8([list(product((*range(0, 256, 32), 255), repeat=3))]), "RGB")


def _is_srgb(icc: bytes) -> bool:
    """Whether an RGB profile is sRGB under any name (cameras' "sRGB IEC61966-2.1", compact
    ones, a v4 one): converting the grid to sRGB moves no colour more than a level or two."""
    try:
        moved = ImageChops.difference(_to_srgb(_GRID, icc), _GRID)
    except _CMS_ERRORS:
        return False
    return max(high for _low, high in moved.getextrema()) <= 2


def anonymous_profile(icc: bytes) -> bytes:
    """The profile a copy with no metadata carries for ``icc`` (the profile of its pixels):
    pixcamd's own sRGB profile for any sRGB one — a camera's or an editor's names its maker, a
    copyright, a date —, ``icc`` itself otherwise (colours that could not be converted need it)."""
    return SRGB_PROFILE if icc == SRGB_PROFILE or _is_srgb(icc) else icc


def _profile_name(icc: bytes) -> str:
    try:
        name = ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(icc))).strip()
    except _CMS_ERRORS:
        name = ""
    return name or "its ICC profile"


def _flatten(img: Image.Image, notes: list[str]) -> Image.Image:
    """Composite a transparent image onto white (what a site shows it on)."""
    rgba = img.convert("RGBA")
    if rgba.getchannel("A").getextrema()[0] < 255:
        notes.append("transparent areas composited onto white (JPEG has no transparency)")
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(white, rgba).convert("RGB")


def to_rgb(
    img: Image.Image, icc: bytes | None, notes: list[str]
) -> tuple[Image.Image, bytes | None]:
    """8-bit RGB pixels and the ICC profile they are in (None: sRGB, untagged)."""
    space = _profile_space(icc) if icc else None
    if icc and space is None:
        notes.append("ICC profile unreadable, dropped (colours are read as sRGB)")
        icc = None
    mode = img.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        # 16-bit (or wider) grayscale: scale to 8 bits with rounding instead of clipping at 255.
        array = np.asarray(img, dtype=np.float64)
        peak = 65535.0 if mode.startswith("I;16") or array.max() > 255 else 255.0
        above = int(np.count_nonzero(array > 1.0)) if mode == "F" else array.size
        over = above / array.size
        if above == 0:  # floating point: 0–1 by convention
            peak = 1.0
        elif over <= 0.01 and (top := float(np.nanmax(array))) <= 4.0:
            # 0–1 with an overshoot (a highlight): read as 0–1, not as 0–255 (which would leave
            # the photo nearly black); values far above 1 are no overshoot (stars on a black
            # sky written as 0–255: read as such). The maximum of the numbers: a NaN is none
            peak = 1.0
            share = f"{over:.2%}" if over >= 0.00005 else f"{above} value{'s' * (above > 1)}"
            notes.append(
                f"floating-point grey values up to {top:g}: read as 0–1, the {share} above 1 "
                "clipped"
            )  # a few in millions are counted, not "0.00 %"
        elif array.max() > 65535:  # 32-bit values of no known range: clipping would whiten them
            peak = float(array.max())
            notes.append(
                f"32-bit grey values up to {peak:g}, beyond any 16-bit range: scaled by their "
                "maximum"
            )
        img = Image.fromarray(np.round(np.clip(array / peak, 0, 1) * 255).astype(np.uint8), "L")
        mode = "L"
    if mode == "1":
        img, mode = img.convert("L"), "L"
    if mode in ("RGBA", "RGBa", "LA", "La", "PA") or (mode == "P" and "transparency" in img.info):
        gray = mode in ("LA", "La")
        img = _flatten(img, notes)
        if gray:
            img = img.convert("L")
        mode = img.mode
    if mode == "P":
        img, mode = img.convert("RGB"), "RGB"
    if mode == "LAB":
        return ImageCms.profileToProfile(
            img, ImageCms.createProfile("LAB"), SRGB, outputMode="RGB"
        ), SRGB_PROFILE
    if mode == "CMYK":
        if icc and space == "CMYK":
            managed = _colour_manage(img, icc, notes)
            if managed is not None:
                return managed, SRGB_PROFILE
        elif icc:
            notes.append(f"{space} ICC profile on a CMYK image ignored")
        else:
            notes.append("CMYK without an ICC profile: converted with a plain formula")
        return img.convert("RGB"), None
    if mode == "L" and icc and space == "GRAY":
        managed = _colour_manage(img, icc, notes)
        if managed is not None:
            return managed, SRGB_PROFILE
        return img.convert("RGB"), None
    rgb = img if mode == "RGB" else img.convert("RGB")
    if icc and space != "RGB":
        notes.append(f"{space} ICC profile does not match the {mode} pixels; dropped")
        icc = None
    if icc and not _is_srgb(icc):
        try:
            converted = _to_srgb(rgb, icc)
        except _CMS_ERRORS as exc:
            notes.append(
                f"colours could not be converted from {_profile_name(icc)} to sRGB ({exc}): "
                "the copy keeps that profile, and a platform that converts it may weaken "
                "the protection"
            )
            return rgb, icc
        notes.append(
            f"colours converted from {_profile_name(icc)} to sRGB: platforms serve sRGB, and "
            "the protection is judged on the pixels they serve"
        )
        return converted, SRGB_PROFILE
    return rgb, icc


# --- nclx (ITU-T H.273 code points), as HEIC and AVIF files may describe their colours ---

# Primaries that are sRGB's (BT.709) or left unspecified: the numbers are read as sRGB already.
SRGB_PRIMARIES = (1, 2)
PRIMARIES = {
    4: "BT.470 M",
    5: "BT.601 625-line",
    6: "BT.601 525-line",
    7: "SMPTE 240M",
    8: "generic film",
    9: "BT.2020",
    10: "CIE XYZ",
    11: "DCI-P3",
    12: "Display P3",
    22: "EBU 3213",
}
HDR_TRANSFERS = {16: "PQ (SMPTE 2084)", 18: "HLG (ARIB STD-B67)"}
D50 = (0.9642, 1.0, 0.8249)
_BRADFORD = np.array(
    [[0.8951, 0.2664, -0.1614], [-0.7502, 1.7135, 0.0367], [0.0389, -0.0685, 1.0296]]
)


def s15(x: float) -> bytes:
    """ICC's s15Fixed16Number."""
    return struct.pack(">i", round(x * 65536))


def xyz(x: float, y: float, z: float) -> bytes:
    return b"XYZ " + bytes(4) + s15(x) + s15(y) + s15(z)


def _para(*g: float) -> bytes:
    """An ICC parametric curve: ``g`` alone is a pure gamma, five numbers are type 3 (a linear
    toe, then a power: the sRGB and BT.709 curves)."""
    kind = 0 if len(g) == 1 else 3
    return b"para" + bytes(4) + struct.pack(">HH", kind, 0) + b"".join(s15(v) for v in g)


SRGB_CURVE = _para(2.4, 1 / 1.055, 0.055 / 1.055, 1 / 12.92, 0.04045)
# The transfer an nclx names, as the curve that decodes its numbers to light. Our decision: an
# SDR still is read with sRGB's curve whatever SDR code point its encoder wrote (BT.709's 1,
# BT.601's 6, BT.2020's 14 and 15 are camera curves that differ from it in the deepest shadows
# only, and such photos are made on and for sRGB displays); only the pure powers and linear
# light are read otherwise.
TRANSFERS = {4: _para(2.2), 5: _para(2.8), 8: _para(1.0)}


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
    header += s15(D50[0]) + s15(D50[1]) + s15(D50[2]) + b"pxcd"
    return header + bytes(128 - len(header)) + table + body


def matrix_shaper(name: str, red, green, blue, curve: bytes) -> bytes:
    """An RGB display profile from its colorants (XYZ, adapted to D50) and one tone curve."""
    tags = [(b"rXYZ", xyz(*red)), (b"gXYZ", xyz(*green)), (b"bXYZ", xyz(*blue))]
    tags += [(b"rTRC", curve), (b"gTRC", curve), (b"bTRC", curve)]
    return icc_profile(b"mntrRGB XYZ ", name, tags)


def colorants(red, green, blue, white) -> np.ndarray:
    """The columns of the RGB → XYZ matrix of primaries and white given as CIE xy, adapted to
    the ICC's D50 white (Bradford), as ICC colorant tags hold them."""

    def column(x: float, y: float) -> np.ndarray:
        return np.array([x / y, 1.0, (1 - x - y) / y])

    primaries = np.stack([column(*red), column(*green), column(*blue)], axis=1)
    white_xyz = column(*white)
    rgb_to_xyz = primaries * np.linalg.solve(primaries, white_xyz)  # each column scaled
    cone = _BRADFORD @ white_xyz
    adapt = np.linalg.inv(_BRADFORD) @ np.diag((_BRADFORD @ np.array(D50)) / cone) @ _BRADFORD
    return adapt @ rgb_to_xyz


def profile_from_nclx(nclx: dict) -> bytes | None:
    """The ICC profile an nclx colour description (pillow-heif's ``info["nclx_profile"]``:
    code points and the primaries' chromaticities libheif derives from them) stands for, or None
    when its numbers are read as sRGB already. Raises ``NotProtectable`` for an HDR transfer."""
    transfer = int(nclx.get("transfer_characteristics", 2))
    if transfer in HDR_TRANSFERS:
        raise NotProtectable(
            f"an HDR photo ({HDR_TRANSFERS[transfer]} transfer): pixcamd protects SDR photos "
            "only; export an SDR copy (JPEG, or HEIC/AVIF without HDR) and protect that"
        )
    primaries = int(nclx.get("color_primaries", 2))
    if primaries in SRGB_PRIMARIES:
        return None
    try:
        xy = [
            (float(nclx[f"color_primary_{c}_x"]), float(nclx[f"color_primary_{c}_y"]))
            for c in ("red", "green", "blue", "white")
        ]
        matrix = colorants(*xy)
    except (KeyError, TypeError, ValueError, ZeroDivisionError, np.linalg.LinAlgError):
        return None  # no usable chromaticities: read as sRGB, as before nclx was looked at
    if not np.isfinite(matrix).all():
        return None
    name = f"{PRIMARIES.get(primaries, f'nclx primaries {primaries}')} (nclx)"
    profile = matrix_shaper(name, *matrix.T.tolist(), TRANSFERS.get(transfer, SRGB_CURVE))
    return None if _is_srgb(profile) else profile  # a code point for sRGB's own primaries
