"""What a protected copy carries: the original's metadata as read (``PhotoMetadata``), the
documented set of tags that may differ from the original, and the copy's marker segments."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from pixcamd.metadata.exif import patch_exif, shrink_exif
from pixcamd.metadata.irb import clean_irb, irb_segments
from pixcamd.metadata.segments import (
    EXIF_HEADER,
    EXIF_MAX,
    ICC_CHUNK,
    ICC_HEADER,
    JFIF_HEADER,
    PHOTOSHOP_HEADER,
    SEGMENT_MAX,
    XMP_EXT_HEADER,
    XMP_HEADER,
    Jfif,
    MetadataError,
    marker_segment,
    parse_jfif,
)
from pixcamd.metadata.xmp import patch_xmp

# The documented changed set, in exiftool's family-1 "Group:Tag" names (exiftool -a -G1 -s):
# what may differ between an original and its protected copy. Everything else is kept.
# 1. Values patched to describe the output's pixels:
PATCHED_TAGS = frozenset(
    {
        "IFD0:Orientation",  # → 1, Horizontal (normal): the pixels are stored upright
        "IFD0:ImageWidth",  # → the output's size, where the original recorded one
        "IFD0:ImageHeight",
        "ExifIFD:ExifImageWidth",  # PixelXDimension
        "ExifIFD:ExifImageHeight",  # PixelYDimension
        "XMP-tiff:Orientation",
        "XMP-tiff:ImageWidth",
        "XMP-tiff:ImageHeight",
        "XMP-exif:ExifImageWidth",
        "XMP-exif:ExifImageHeight",
    }
)
# 2. Removed: thumbnails and previews of the unprotected photo, and the extended-XMP link.
REMOVED_TAGS = frozenset(
    {
        "XMP-xmp:ThumbnailsFormat",
        "XMP-xmp:ThumbnailsWidth",
        "XMP-xmp:ThumbnailsHeight",
        "XMP-xmp:ThumbnailsImage",
        "Photoshop:PhotoshopThumbnail",
        "Photoshop:PhotoshopBGRThumbnail",
        "XMP-xmpNote:HasExtendedXMP",
    }
)
# the EXIF thumbnail's IFD (and any chained after it); images of the original kept as base64
# text in the XMP, and a motion photo's container directory of what was appended after it
REMOVED_GROUPS = ("IFD1", "SubIFD1", "XMP-GImage", "XMP-GDepth", "XMP-Container", "XMP-Item")
# 3. Segments and trailers that are not carried at all (see docs/photo-io.md).
NOT_CARRIED_GROUPS = (
    "MPF0",  # MPO index and its secondary images
    "MPImage",
    "FlashPix",  # FPXR: can hold a preview image
    "JFXX",  # JFIF extension thumbnail
    "Adobe",  # APP14: colour transform of the old encoding
    "Ducky",  # APP12: "Save for Web" quality of the old encoding
    "AdobeCM",
    "APP",  # exiftool's APPn groups of unknown segments
    "AVI1",
    "CIFF",
    "SPIFF",
    "Meta",
    "RMETA",
    "EPPIM",
    "NITF",
    "Qualcomm",
    "MediaJukebox",
    "JPEG-HDR",
    "JUMBF",  # C2PA content credentials: signed hashes of the original's bytes
    "JSON",
    "PictureInfo",
    "GraphConv",
    "InfiniteHDR",
    "HDRGainMap",
    "MIE",  # trailers after the image data
    "PhotoMechanic",
    "CanonVRD",
    "FotoStation",
    "Samsung",
    "Trailer",
    "XMP-GImage",  # extended XMP: Google depth maps and image copies
    "XMP-GDepth",
)


def is_changed_tag(group: str, tag: str) -> bool:
    """Whether exiftool's ``[group] tag`` (family 1) is in the documented changed set."""
    key = f"{group}:{tag}"
    return (
        key in PATCHED_TAGS
        or key in REMOVED_TAGS
        or group.startswith(REMOVED_GROUPS)
        or group.startswith(NOT_CARRIED_GROUPS)
        or (group == "XMP-GCamera" and tag.startswith(("MicroVideo", "MotionPhoto")))
        or (group == "XMP-xmp" and tag.startswith("PageImage"))
    )


@dataclass
class PhotoMetadata:
    """Everything needed to write the protected copy's metadata, as read from the original.

    The bytes are the original's (EXIF still says the original's orientation and size); they
    are patched for the output by :func:`output_segments` at write time, against the pixels
    actually written.
    """

    source_format: str | None = None  # Pillow's format name: "JPEG", "PNG", "HEIF", ...
    orientation: int = 1  # the original's EXIF orientation, already applied to the pixels
    exif: bytes | None = None  # TIFF-structured block ("II*\0…"/"MM\0*…"), no "Exif\0\0"
    xmp: bytes | None = None  # the standard XMP packet (UTF-8)
    icc_profile: bytes | None = None  # the profile of Photo.image's pixels (None = sRGB)
    converted_to_srgb: bool = False  # Photo.image was converted to sRGB from the file's space
    photoshop: bytes | None = None  # Photoshop image resources ("8BIM…", IPTC inside)
    comments: list[bytes] = field(default_factory=list)  # JPEG COM segments
    jfif: Jfif | None = None  # None: no JFIF APP0 (as in the original camera JPEG)

    @property
    def empty(self) -> bool:
        return not (self.exif or self.xmp or self.icc_profile or self.photoshop or self.comments)


# --------------------------------------------------------------------------------------------
# Reading: a JPEG's header segments → PhotoMetadata parts


@dataclass
class JpegParts:
    exif: bytes | None = None
    xmp: bytes | None = None
    photoshop: bytes | None = None
    comments: list[bytes] = field(default_factory=list)
    jfif: Jfif | None = None
    notes: list[str] = field(default_factory=list)


_KNOWN_DROPPED = {
    (0xE0, b"JFXX\x00"): "JFIF thumbnail (JFXX)",
    (0xE1, XMP_EXT_HEADER): "extended XMP (it can hold depth maps or image copies)",
    (0xE2, b"MPF\x00"): "MPO secondary images (MPF)",
    (0xE2, b"FPXR\x00"): "FlashPix data",
    (0xEE, b"Adobe"): None,  # colour transform of the old encoding: meaningless for ours
    (0xEC, b"Ducky"): None,  # "Save for Web" quality of the old encoding
}


def jpeg_parts(segments: list[tuple[int, bytes]]) -> JpegParts:
    parts = JpegParts()
    irb = bytearray()
    dropped: dict[str, int] = {}
    for marker, payload in segments:
        if marker == 0xE0 and payload.startswith(JFIF_HEADER):
            parsed = parse_jfif(payload)
            if parsed and parts.jfif is None:
                parts.jfif, had_thumbnail = parsed
                if had_thumbnail:
                    dropped["JFIF thumbnail"] = 1
        elif marker == 0xE1 and payload.startswith(EXIF_HEADER) and parts.exif is None:
            parts.exif = payload[len(EXIF_HEADER) :]
        elif marker == 0xE1 and payload.startswith(b"Exif\x00"):
            dropped["second EXIF segment"] = 1
        elif marker == 0xE1 and payload.startswith(XMP_HEADER) and parts.xmp is None:
            parts.xmp = payload[len(XMP_HEADER) :]
        elif marker == 0xE2 and payload.startswith(ICC_HEADER):
            pass  # assembled by Pillow (info["icc_profile"])
        elif marker == 0xED and payload.startswith(PHOTOSHOP_HEADER):
            irb += payload[len(PHOTOSHOP_HEADER) :]
        elif marker == 0xFE:
            parts.comments.append(payload)
        elif 0xE0 <= marker <= 0xEF:
            name = next(
                (
                    label
                    for (m, head), label in _KNOWN_DROPPED.items()
                    if m == marker and payload.startswith(head)
                ),
                f"APP{marker - 0xE0} {_segment_label(payload)}",
            )
            if name:
                dropped[name] = dropped.get(name, 0) + 1
    if irb:
        parts.photoshop = bytes(irb)
    if dropped:
        parts.notes.append("not carried: " + ", ".join(sorted(dropped)))
    return parts


def _segment_label(payload: bytes) -> str:
    head = payload[:16].split(b"\x00")[0]
    text = "".join(chr(c) if 32 <= c < 127 else "?" for c in head[:12])
    return f'"{text}"' if text else "(unnamed)"


# --------------------------------------------------------------------------------------------
# Writing: PhotoMetadata → the output's marker segments


def output_segments(
    metadata: PhotoMetadata | None,
    size: tuple[int, int],
    *,
    strip_gps: bool = False,
    strip_all: bool = False,
) -> tuple[list[bytes], list[str]]:
    """The APPn/COM segments of the protected copy, in order, and notes on what changed."""
    md = metadata or PhotoMetadata()
    segments: list[bytes] = []
    notes: list[str] = []
    if md.jfif is not None or md.source_format != "JPEG":
        segments.append((md.jfif or Jfif()).segment())
    if strip_all and (md.exif or md.xmp or md.photoshop or md.comments):  # not a profile alone
        notes.append("all metadata removed (strip_all); only the colour profile kept")
    if md.exif and not strip_all:
        segments += _exif_segment(md.exif, size, strip_gps, md.converted_to_srgb, notes)
    if md.xmp and not strip_all:
        xmp, xmp_notes = patch_xmp(md.xmp, size, strip_gps)
        notes += xmp_notes
        if xmp:
            segments.append(marker_segment(0xE1, XMP_HEADER + xmp))
    if md.icc_profile:
        try:
            segments += icc_segments(md.icc_profile)
        except MetadataError:  # a profile this large was judged sRGB: pixels converted are
            notes.append(  # given the small sRGB profile, so the copy needs none
                f"ICC profile of {len(md.icc_profile) / 1e6:.1f} MB left out: a JPEG holds at "
                "most 255 chunks of one (the copy's colours are sRGB, what a viewer assumes "
                "without a profile)"
            )
    if md.photoshop and not strip_all:
        try:
            resources, irb_notes = clean_irb(md.photoshop)
        except MetadataError as exc:
            notes.append(f"Photoshop/IPTC segment dropped: {exc}")
        else:
            notes += irb_notes
            app13, more = irb_segments(resources)
            segments += app13
            notes += more
    if not strip_all:
        segments += [marker_segment(0xFE, c) for c in md.comments if len(c) <= SEGMENT_MAX]
    return segments, notes


def _exif_segment(exif: bytes, size, strip_gps: bool, srgb: bool, notes: list[str]) -> list[bytes]:
    try:
        patched, exif_notes = patch_exif(exif, size, strip_gps, srgb)
    except (MetadataError, struct.error) as exc:
        notes.append(f"EXIF dropped: {exc}")
        return []
    notes += exif_notes
    fitted = shrink_exif(patched)
    if fitted is None:
        notes.append(f"EXIF of {len(patched)} bytes is over the JPEG limit of {EXIF_MAX}; dropped")
        return []
    return [marker_segment(0xE1, EXIF_HEADER + fitted)]


def icc_segments(profile: bytes) -> list[bytes]:
    chunks = [profile[i : i + ICC_CHUNK] for i in range(0, len(profile), ICC_CHUNK)]
    if len(chunks) > 255:
        raise MetadataError("ICC profile too large for JPEG")
    return [
        marker_segment(0xE2, ICC_HEADER + bytes((i + 1, len(chunks))) + chunk)
        for i, chunk in enumerate(chunks)
    ]
