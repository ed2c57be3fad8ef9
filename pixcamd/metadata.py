"""A photo's metadata, read from any input format and made ready for the protected JPEG.

What is carried (docs/photo-io.md has the reasons): EXIF, XMP, the ICC profile, IPTC (inside the
Photoshop APP13 resources), JPEG comments and the JFIF density. Everything else an input may
hold (FlashPix, MPF secondary images, JFXX thumbnails, vendor APPn segments, extended XMP) is
dropped: these segments are where unprotected copies of the photo hide.

EXIF is never re-serialised. Maker notes point into the EXIF block with absolute offsets, so any
re-layout (piexif, Pillow) can break them; instead the original TIFF-structured block is kept
byte for byte and patched in place: Orientation and the pixel dimensions are overwritten in
their existing slots, IFD1 (the thumbnail) is unlinked and its image bytes zeroed, and every
other JPEG embedded in the block (maker-note previews) is zeroed too. All offsets stay valid.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import BinaryIO

EXIF_HEADER = b"Exif\x00\x00"
XMP_HEADER = b"http://ns.adobe.com/xap/1.0/\x00"
XMP_EXT_HEADER = b"http://ns.adobe.com/xmp/extension/\x00"
ICC_HEADER = b"ICC_PROFILE\x00"
PHOTOSHOP_HEADER = b"Photoshop 3.0\x00"
JFIF_HEADER = b"JFIF\x00"

SEGMENT_MAX = 65533  # payload bytes of one JPEG marker segment (length field 65535 - 2)
EXIF_MAX = SEGMENT_MAX - len(EXIF_HEADER)
XMP_MAX = SEGMENT_MAX - len(XMP_HEADER)
ICC_CHUNK = SEGMENT_MAX - len(ICC_HEADER) - 2

# EXIF tags touched by the patcher.
IMAGE_WIDTH, IMAGE_LENGTH = 0x0100, 0x0101
ORIENTATION = 0x0112
EXIF_IFD, GPS_IFD, INTEROP_IFD = 0x8769, 0x8825, 0xA005
PIXEL_X, PIXEL_Y = 0xA002, 0xA003
STRIP_OFFSETS, STRIP_BYTE_COUNTS = 0x0111, 0x0117
THUMB_OFFSET, THUMB_LENGTH = 0x0201, 0x0202
MAKER_NOTE = 0x927C

# Photoshop image resources dropped from APP13: thumbnails (unprotected copies) and the copies of
# EXIF/XMP that Photoshop can keep there (they would contradict the patched ones).
IRB_DROPPED = {
    0x0409: "Photoshop thumbnail",
    0x040C: "Photoshop thumbnail",
    0x0422: "Photoshop copy of the EXIF",
    0x0423: "Photoshop copy of the EXIF",
    0x0424: "Photoshop copy of the XMP",
}
IRB_IPTC = 0x0404

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
REMOVED_GROUPS = ("IFD1", "SubIFD1")  # the EXIF thumbnail's IFD (and any IFD chained after it)
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
    )


@dataclass
class Jfif:
    """The JFIF APP0 header's content, without its (never carried) thumbnail."""

    version: tuple[int, int] = (1, 1)
    units: int = 0  # 0 aspect ratio only, 1 dots per inch, 2 dots per cm
    density: tuple[int, int] = (1, 1)

    def segment(self) -> bytes:
        payload = JFIF_HEADER + struct.pack(
            ">BBBHHBB", *self.version, self.units, *self.density, 0, 0
        )
        return marker_segment(0xE0, payload)


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
    photoshop: bytes | None = None  # Photoshop image resources ("8BIM…", IPTC inside)
    comments: list[bytes] = field(default_factory=list)  # JPEG COM segments
    jfif: Jfif | None = None  # None: no JFIF APP0 (as in the original camera JPEG)

    @property
    def empty(self) -> bool:
        return not (self.exif or self.xmp or self.icc_profile or self.photoshop or self.comments)


class MetadataError(ValueError):
    """A metadata block too damaged to be kept."""


# --------------------------------------------------------------------------------------------
# JPEG marker segments


def marker_segment(marker: int, payload: bytes) -> bytes:
    if len(payload) > SEGMENT_MAX:
        raise MetadataError(f"segment of {len(payload)} bytes is over the JPEG limit")
    return bytes((0xFF, marker)) + struct.pack(">H", len(payload) + 2) + payload


def read_jpeg_segments(fp: BinaryIO, limit: int = 32 << 20) -> tuple[list[tuple[int, bytes]], str]:
    """The marker segments before the first scan: [(marker, payload)], and a problem or ""."""
    segments: list[tuple[int, bytes]] = []
    if fp.read(2) != b"\xff\xd8":
        return segments, "no JPEG start-of-image marker"
    total = 0
    while True:
        byte = fp.read(1)
        if not byte:
            return segments, "the file ends inside the JPEG header"
        if byte != b"\xff":
            return segments, "unexpected bytes between JPEG segments"
        marker = fp.read(1)
        while marker == b"\xff":  # fill bytes
            marker = fp.read(1)
        if not marker:
            return segments, "the file ends inside the JPEG header"
        m = marker[0]
        if m in (0xDA, 0xD9):  # start of scan / end of image: header done
            return segments, ""
        if m == 0x01 or 0xD0 <= m <= 0xD7:  # standalone markers
            continue
        size = fp.read(2)
        if len(size) < 2:
            return segments, "the file ends inside the JPEG header"
        length = struct.unpack(">H", size)[0]
        if length < 2:
            return segments, f"JPEG segment 0x{m:02X} has an invalid length"
        payload = fp.read(length - 2)
        if len(payload) < length - 2:
            return segments, "the file ends inside the JPEG header"
        total += length
        if total > limit:
            return segments, "the JPEG header is implausibly large"
        segments.append((m, payload))


def split_jpeg(data: bytes) -> tuple[list[tuple[int, bytes]], bytes]:
    """An encoded JPEG's leading APPn/COM segments and the rest (tables, frame, scans)."""
    if data[:2] != b"\xff\xd8":
        raise ValueError("not a JPEG stream")
    pos, segments = 2, []
    while data[pos] == 0xFF and (0xE0 <= data[pos + 1] <= 0xEF or data[pos + 1] == 0xFE):
        length = struct.unpack(">H", data[pos + 2 : pos + 4])[0]
        segments.append((data[pos + 1], data[pos + 4 : pos + 2 + length]))
        pos += 2 + length
    return segments, data[pos:]


def parse_jfif(payload: bytes) -> tuple[Jfif, bool] | None:
    """(JFIF, had a thumbnail) from an APP0 payload, or None if it is not a JFIF header."""
    if not payload.startswith(JFIF_HEADER) or len(payload) < 14:
        return None
    major, minor, units, xd, yd, tw, th = struct.unpack(">BBBHHBB", payload[5:14])
    if xd == 0 or yd == 0:
        xd = yd = 1
    return Jfif((major, minor), units if units <= 2 else 0, (xd, yd)), tw * th > 0


def embedded_jpegs(data: bytes | bytearray) -> list[tuple[int, int]]:
    """(start, end) of every structurally valid JPEG stream inside ``data`` (SOI … EOI).

    A candidate must have a chain of well-formed marker segments from SOI through a frame header
    to SOS: random bytes inside a maker note do not pass that by chance. It ends at its EOI, or,
    cut short, at the end of its scan header.
    """
    found = []
    pos = 0
    while True:
        start = data.find(b"\xff\xd8\xff", pos)
        if start < 0:
            return found
        end = _jpeg_stream_end(data, start)
        if end:
            found.append((start, end))
            pos = end
        else:
            pos = start + 2


def _jpeg_stream_end(data: bytes | bytearray, start: int) -> int:
    pos, seen_frame = start + 2, False
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return 0
        m = data[pos + 1]
        if m == 0xFF:
            pos += 1
            continue
        if not (0xC0 <= m <= 0xFE) or m in (0xD8, 0xD9) or 0xD0 <= m <= 0xD7:
            return 0
        length = struct.unpack(">H", data[pos + 2 : pos + 4])[0]
        if length < 2 or pos + 2 + length > len(data):
            return 0
        if m in (0xC0, 0xC1, 0xC2, 0xC3, 0xC9, 0xCA, 0xCB):
            seen_frame = True
        if m == 0xDA:
            if not seen_frame:
                return 0
            eoi = data.find(b"\xff\xd9", pos + 2 + length)
            # A stream cut short (no EOI) ends, for our purposes, with its scan header: without
            # its tables the rest is undecodable, and the bytes after it may be something else.
            return eoi + 2 if eoi >= 0 else pos + 2 + length
        pos += 2 + length
    return 0


# --------------------------------------------------------------------------------------------
# EXIF: a TIFF structure, read and patched in place

_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4}
_POINTER_TAGS = {EXIF_IFD: "ExifIFD", GPS_IFD: "GPS", INTEROP_IFD: "InteropIFD"}


@dataclass
class _Entry:
    tag: int
    type: int
    count: int
    pos: int  # of the 12-byte entry
    data_pos: int  # where the value's bytes are (pos + 8 when they fit inline)
    size: int  # bytes of the value (0 for an unknown type)


@dataclass
class _Ifd:
    offset: int
    entries: list[_Entry]

    @property
    def next_pos(self) -> int:
        return self.offset + 2 + 12 * len(self.entries)

    def get(self, tag: int) -> _Entry | None:
        return next((e for e in self.entries if e.tag == tag), None)


class _Tiff:
    def __init__(self, data: bytes):
        if len(data) < 8 or data[:4] not in (b"II*\x00", b"MM\x00*"):
            raise MetadataError("no TIFF header")
        self.data = bytearray(data)
        self.order = "<" if data[:2] == b"II" else ">"
        self.ifd0_offset = self.u32(4)

    def u16(self, pos: int) -> int:
        return struct.unpack_from(self.order + "H", self.data, pos)[0]

    def u32(self, pos: int) -> int:
        return struct.unpack_from(self.order + "I", self.data, pos)[0]

    def put_u16(self, pos: int, value: int) -> None:
        struct.pack_into(self.order + "H", self.data, pos, value)

    def put_u32(self, pos: int, value: int) -> None:
        struct.pack_into(self.order + "I", self.data, pos, value)

    def ifd(self, offset: int, name: str) -> _Ifd:
        n = len(self.data)
        if offset < 8 or offset + 2 > n:
            raise MetadataError(f"{name} offset {offset} is outside the EXIF block")
        count = self.u16(offset)
        if offset + 2 + 12 * count + 4 > n:
            raise MetadataError(f"{name} directory ({count} entries) does not fit the block")
        entries = []
        for i in range(count):
            pos = offset + 2 + 12 * i
            tag, typ, cnt = struct.unpack_from(self.order + "HHI", self.data, pos)
            size = _TYPE_SIZES.get(typ, 0) * cnt
            data_pos = pos + 8 if size <= 4 else self.u32(pos + 8)
            entries.append(_Entry(tag, typ, cnt, pos, data_pos, size))
        return _Ifd(offset, entries)

    def scalar(self, entry: _Entry) -> int | None:
        """The first value of a BYTE/SHORT/LONG entry, or None."""
        if entry.count < 1 or entry.data_pos + 4 > len(self.data):
            return None
        if entry.type in (3, 8):
            return self.u16(entry.data_pos)
        if entry.type in (4, 9, 13):
            return self.u32(entry.data_pos)
        if entry.type in (1, 7):
            return self.data[entry.data_pos]
        return None

    def pointer(self, entry: _Entry) -> int | None:
        """A sub-IFD offset. Lenient like exiftool: a pointer stored with a wrong type (say a
        string) still has the offset in its value field."""
        if entry.type in (3, 4, 13):
            return self.scalar(entry)
        return self.u32(entry.pos + 8)

    def set_scalar(self, entry: _Entry, value: int) -> bool:
        if entry.count != 1 or entry.data_pos != entry.pos + 8:
            return False
        if entry.type == 3 and value <= 0xFFFF:
            self.put_u16(entry.data_pos, value)
        elif entry.type == 4:
            self.put_u32(entry.data_pos, value)
        else:
            return False
        return True

    def value_range(self, entry: _Entry) -> tuple[int, int]:
        return entry.data_pos, entry.data_pos + entry.size

    def zero(self, start: int, end: int) -> None:
        start, end = max(0, start), min(len(self.data), end)
        if end > start:
            self.data[start:end] = bytes(end - start)

    def remove_entry(self, ifd: _Ifd, tag: int) -> _Entry | None:
        """Delete one entry in place: later entries and the next-IFD link move up 12 bytes."""
        index = next((i for i, e in enumerate(ifd.entries) if e.tag == tag), None)
        if index is None:
            return None
        removed = ifd.entries[index]
        old_end = ifd.next_pos + 4
        tail = bytes(self.data[removed.pos + 12 : old_end])
        self.data[removed.pos : removed.pos + len(tail)] = tail
        self.zero(old_end - 12, old_end)
        self.put_u16(ifd.offset, len(ifd.entries) - 1)
        del ifd.entries[index]
        for e in ifd.entries[index:]:
            e.pos -= 12
            if e.data_pos == e.pos + 20:
                e.data_pos = e.pos + 8
        return removed


def repair_exif(tiff: bytes) -> tuple[bytes, list[str]]:
    """An EXIF block whose IFD0 entry count overstates its entries, cut to the readable ones.

    Keeps the first entries that have a valid type and whose values lie inside the block (as
    exiv2 reads them) and ends IFD0 there; raises MetadataError when nothing is readable.
    """
    t = _Tiff(tiff)
    try:
        t.ifd(t.ifd0_offset, "IFD0")
        return tiff, []
    except MetadataError:
        pass
    offset, n = t.ifd0_offset, len(t.data)
    if offset < 8 or offset + 2 > n:
        raise MetadataError(f"IFD0 offset {offset} is outside the EXIF block")
    count, kept = t.u16(offset), 0
    while kept < count and offset + 2 + 12 * (kept + 1) + 4 <= n:
        pos = offset + 2 + 12 * kept
        _tag, typ, cnt = struct.unpack_from(t.order + "HHI", t.data, pos)
        size = _TYPE_SIZES.get(typ, 0) * cnt
        if size == 0 or (size > 4 and t.u32(pos + 8) + size > n):
            break
        kept += 1
    if kept == 0:
        raise MetadataError("IFD0 has no readable entry")
    t.put_u16(offset, kept)
    t.put_u32(offset + 2 + 12 * kept, 0)
    return bytes(t.data), [f"EXIF IFD0 damaged: kept its {kept} readable entries of {count}"]


def exif_orientation(tiff: bytes) -> int:
    """IFD0's Orientation (1-8), 1 when absent; raises MetadataError if IFD0 is unreadable."""
    t = _Tiff(tiff)
    entry = t.ifd(t.ifd0_offset, "IFD0").get(ORIENTATION)
    value = t.scalar(entry) if entry else 1
    return value if value in range(1, 9) else 1


def check_exif(tiff: bytes) -> list[str]:
    """Problems a reader should know about; raises MetadataError if the EXIF cannot be kept."""
    t = _Tiff(tiff)
    ifd0 = t.ifd(t.ifd0_offset, "IFD0")
    problems = []
    entry = ifd0.get(ORIENTATION)
    if entry is not None and t.scalar(entry) not in range(1, 9):
        problems.append(f"EXIF Orientation value {t.scalar(entry)} is invalid; treated as 1")
    for tag, name in _POINTER_TAGS.items():
        holder = ifd0 if tag != INTEROP_IFD else _sub_ifd(t, ifd0, EXIF_IFD)
        pointer = holder.get(tag) if holder else None
        if pointer is not None and _sub_ifd(t, holder, tag) is None:
            problems.append(f"EXIF {name} is unreadable and is kept as it was")
    return problems


def _sub_ifd(t: _Tiff, parent: _Ifd | None, tag: int) -> _Ifd | None:
    entry = parent.get(tag) if parent else None
    offset = t.pointer(entry) if entry else None
    if not offset:
        return None
    try:
        return t.ifd(offset, _POINTER_TAGS[tag])
    except (MetadataError, struct.error):
        return None


def patch_exif(tiff: bytes, size: tuple[int, int], strip_gps: bool = False) -> tuple[bytes, list]:
    """The original EXIF block made true for the output: same length, same offsets.

    Orientation → 1; ImageWidth/ImageLength and PixelX/YDimension → ``size`` where recorded;
    IFD1 unlinked and its thumbnail zeroed; every embedded JPEG (maker-note previews) zeroed;
    with ``strip_gps`` the GPS IFD pointer removed and the GPS directory zeroed.
    """
    t = _Tiff(tiff)
    ifd0 = t.ifd(t.ifd0_offset, "IFD0")
    notes = []
    width, height = size

    entry = ifd0.get(ORIENTATION)
    if entry is not None:
        old = t.scalar(entry)
        if old != 1 and t.set_scalar(entry, 1):
            notes.append(f"EXIF Orientation {old} → 1 (the pixels are stored upright)")
        elif old != 1:  # an odd encoding we cannot overwrite: drop it (absent means upright)
            t.remove_entry(ifd0, ORIENTATION)
            notes.append(f"EXIF Orientation {old} removed (the pixels are stored upright)")
    exif_ifd = _sub_ifd(t, ifd0, EXIF_IFD)
    for ifd, tags in ((ifd0, (IMAGE_WIDTH, IMAGE_LENGTH)), (exif_ifd, (PIXEL_X, PIXEL_Y))):
        for tag, value in zip(tags, (width, height), strict=True):
            entry = ifd.get(tag) if ifd else None
            if entry is not None and t.scalar(entry) != value and t.set_scalar(entry, value):
                notes.append(f"EXIF 0x{tag:04X} set to {value} (the output's size)")

    # What must survive the zeroing below, even in a malformed block whose thumbnail or IFD1
    # pointer leads into it: the kept directories and their values (maker notes excepted, since
    # previews legitimately live inside them).
    gps = _sub_ifd(t, ifd0, GPS_IFD)
    kept_ifds = [ifd0, exif_ifd, _sub_ifd(t, exif_ifd, INTEROP_IFD)]
    kept = _ranges(t, [*kept_ifds, None if strip_gps else gps])

    next_ifd = t.u32(ifd0.next_pos)
    if next_ifd:
        try:
            ifd1 = t.ifd(next_ifd, "IFD1")
        except MetadataError:
            ifd1 = None
        if ifd1 is not None:
            for start, length in _thumbnail_ranges(t, ifd1):
                _zero_unless_kept(t, start, start + length, kept)
            _zero_unless_kept(t, ifd1.offset, ifd1.next_pos + 4, kept)
        t.put_u32(ifd0.next_pos, 0)
        notes.append("EXIF thumbnail (IFD1) removed: it showed the unprotected photo")

    previews = [(a, b) for a, b in embedded_jpegs(t.data) if _zero_unless_kept(t, a, b, kept)]
    if previews:
        kib = sum(end - start for start, end in previews) / 1024
        notes.append(f"{len(previews)} preview image(s) inside the EXIF zeroed ({kib:.0f} KiB)")

    if strip_gps and ifd0.get(GPS_IFD) is not None:
        for start, end in _ranges(t, [gps]):
            _zero_unless_kept(t, start, end, kept)
        t.remove_entry(ifd0, GPS_IFD)
        notes.append("EXIF GPS position removed (strip_gps)")
    return bytes(t.data), notes


def _ranges(t: _Tiff, ifds: list[_Ifd | None]) -> list[tuple[int, int]]:
    """Byte ranges of these directories and their out-of-line values, maker notes excepted."""
    ranges = []
    for ifd in ifds:
        if ifd is None:
            continue
        ranges.append((ifd.offset, ifd.next_pos + 4))
        ranges += [t.value_range(e) for e in ifd.entries if e.size > 4 and e.tag != MAKER_NOTE]
    return ranges


def _zero_unless_kept(t: _Tiff, start: int, end: int, kept: list[tuple[int, int]]) -> bool:
    if end <= start or any(start < b and a < end for a, b in kept):
        return False
    t.zero(start, end)
    return True


def _thumbnail_ranges(t: _Tiff, ifd: _Ifd) -> Iterable[tuple[int, int]]:
    offset, length = ifd.get(THUMB_OFFSET), ifd.get(THUMB_LENGTH)
    if offset is not None and length is not None:
        yield t.scalar(offset) or 0, t.scalar(length) or 0
    offsets, counts = ifd.get(STRIP_OFFSETS), ifd.get(STRIP_BYTE_COUNTS)
    if offsets is not None and counts is not None:
        yield from zip(_values(t, offsets), _values(t, counts), strict=False)


def _values(t: _Tiff, entry: _Entry) -> list[int]:
    fmt = {3: "H", 4: "I"}.get(entry.type)
    if fmt is None or entry.data_pos + entry.size > len(t.data):
        return []
    return list(struct.unpack_from(f"{t.order}{entry.count}{fmt}", t.data, entry.data_pos))


def shrink_exif(tiff: bytes, limit: int = EXIF_MAX) -> bytes | None:
    """A patched block cut to ``limit`` bytes, if only zeroed bytes lie beyond; else None."""
    if len(tiff) <= limit:
        return tiff
    if any(tiff[limit:]):
        return None
    return tiff[:limit].rstrip(b"\x00") or None


# --------------------------------------------------------------------------------------------
# XMP: targeted edits of the packet's text (a parse/serialise round trip would rewrite it)

NS_TIFF = "http://ns.adobe.com/tiff/1.0/"
NS_EXIF = "http://ns.adobe.com/exif/1.0/"
NS_XMP = "http://ns.adobe.com/xap/1.0/"
NS_XMP_NOTE = "http://ns.adobe.com/xmp/note/"


def _prefixes(text: str, uri: str) -> list[str]:
    return re.findall(r"xmlns:([\w.-]+)\s*=\s*[\"']" + re.escape(uri) + r"[\"']", text)


def _set_property(text: str, prefix: str, name: str, value: str) -> tuple[str, str | None]:
    """Set a simple property written as an attribute or an element; (text, old value)."""
    qname = re.escape(f"{prefix}:{name}")
    match = re.search(rf"(\s{qname}\s*=\s*)([\"'])(.*?)\2", text, re.DOTALL)
    if match:
        quote = match.group(2)
        new = match.group(1) + quote + value + quote
        return text[: match.start()] + new + text[match.end() :], match.group(3)
    match = re.search(rf"(<{qname}\s*>)([^<]*)(</{qname}\s*>)", text)
    if match:
        new = match.group(1) + value + match.group(3)
        return text[: match.start()] + new + text[match.end() :], match.group(2).strip()
    return text, None


def _remove_properties(text: str, prefix_pattern: str, name_pattern: str) -> tuple[str, int]:
    """Remove properties (attribute or element form) whose qualified name matches."""
    qname = f"{prefix_pattern}:{name_pattern}"
    n_total = 0
    for pattern in (
        rf"\s{qname}\s*=\s*([\"']).*?\1",  # attribute
        rf"<({qname})\b[^>]*?/>",  # empty element
        rf"<({qname})\b[^>]*?>.*?</\1\s*>",  # element with content
    ):
        text, n = re.subn(pattern, "", text, flags=re.DOTALL)
        n_total += n
    return text, n_total


def _xmp_text(xmp: bytes) -> str | None:
    """The packet as text. JPEG requires UTF-8, but UTF-16/32 packets exist: they are read and
    written back as UTF-8."""
    encodings = ["utf-8"]
    if xmp[:4] in (b"\x00\x00\xfe\xff", b"\xff\xfe\x00\x00") or xmp[:2] == b"\x00\x00":
        encodings = ["utf-32"] if xmp[:4] in (b"\x00\x00\xfe\xff", b"\xff\xfe\x00\x00") else []
        encodings.append("utf-32-be")
    elif xmp[:2] in (b"\xfe\xff", b"\xff\xfe"):
        encodings = ["utf-16"]
    elif xmp[:1] == b"\x00":
        encodings = ["utf-16-be"]
    elif xmp[1:2] == b"\x00":
        encodings = ["utf-16-le", "utf-32-le"]
    for encoding in encodings:
        try:
            return xmp.decode(encoding).lstrip("\ufeff")
        except UnicodeDecodeError:
            continue
    return None


def patch_xmp(
    xmp: bytes, size: tuple[int, int], strip_gps: bool = False
) -> tuple[bytes | None, list]:
    """The XMP packet made true for the output; (None, notes) if it cannot be kept."""
    notes: list[str] = []
    text = _xmp_text(xmp)
    if text is None:
        return None, ["XMP is not Unicode text and was dropped"]
    width, height = size
    for prefix in _prefixes(text, NS_TIFF):
        text, old = _set_property(text, prefix, "Orientation", "1")
        if old not in (None, "1"):
            notes.append(f"XMP tiff:Orientation {old} → 1")
        for name, value in (("ImageWidth", width), ("ImageLength", height)):
            text, _ = _set_property(text, prefix, name, str(value))
    for prefix in _prefixes(text, NS_EXIF):
        for name, value in (("PixelXDimension", width), ("PixelYDimension", height)):
            text, _ = _set_property(text, prefix, name, str(value))
    for prefix in _prefixes(text, NS_XMP):
        text, n = _remove_properties(text, re.escape(prefix), "Thumbnails")
        if n:
            notes.append("XMP thumbnail removed: it showed the unprotected photo")
    for prefix in _prefixes(text, NS_XMP_NOTE):
        text, n = _remove_properties(text, re.escape(prefix), "HasExtendedXMP")
        if n:
            notes.append("extended XMP not carried (it can hold depth maps or image copies)")
    if strip_gps:
        text, n = _remove_properties(text, r"[\w.-]+", r"(?:GPS|Gps)[\w]*")
        if n:
            notes.append(f"XMP GPS properties removed (strip_gps): {n}")
    data = text.encode("utf-8")
    if len(data) > XMP_MAX:  # drop the packet's whitespace padding before giving up
        data = re.sub(rb"(</x:xmpmeta>)\s+(<\?xpacket end)", rb"\1\n\2", data)
    if len(data) > XMP_MAX:
        return None, [*notes, f"XMP of {len(data)} bytes is over the JPEG limit and was dropped"]
    return data, notes


# --------------------------------------------------------------------------------------------
# Photoshop image resources (APP13), where IPTC lives


def parse_irb(data: bytes) -> list[tuple[int, bytes, bytes]]:
    """[(resource id, name, payload)] of Photoshop image resources; MetadataError if broken."""
    resources, pos = [], 0
    while pos < len(data):
        if not any(data[pos:]):  # trailing padding
            break
        if pos + 12 > len(data) or data[pos : pos + 4] not in (b"8BIM", b"PHUT", b"AgHg", b"DCSR"):
            raise MetadataError("Photoshop resources are damaged")
        rid = struct.unpack_from(">H", data, pos + 4)[0]
        name_len = data[pos + 6]
        name_end = pos + 7 + name_len + ((name_len + 1) & 1)
        if name_end + 4 > len(data):
            raise MetadataError("Photoshop resources are damaged")
        size = struct.unpack_from(">I", data, name_end)[0]
        start = name_end + 4
        if start + size > len(data):
            raise MetadataError("Photoshop resource runs past its segment")
        resources.append(
            (rid, bytes(data[pos + 7 : pos + 7 + name_len]), data[start : start + size])
        )
        pos = start + size + (size & 1)
    return resources


def build_irb(resources: Iterable[tuple[int, bytes, bytes]]) -> bytes:
    out = bytearray()
    for rid, name, payload in resources:
        out += b"8BIM" + struct.pack(">HB", rid, len(name)) + name
        if (len(name) + 1) & 1:
            out += b"\x00"
        out += struct.pack(">I", len(payload)) + payload
        if len(payload) & 1:
            out += b"\x00"
    return bytes(out)


def iptc_as_irb(iim: bytes) -> bytes:
    """Raw IPTC-IIM records (PNG/TIFF) wrapped as the Photoshop resource JPEG uses."""
    return build_irb([(IRB_IPTC, b"", iim)])


def clean_irb(irb: bytes) -> tuple[list[tuple[int, bytes, bytes]], list[str]]:
    resources, notes = [], []
    for rid, name, payload in parse_irb(irb):
        if rid in IRB_DROPPED:
            notes.append(f"{IRB_DROPPED[rid]} (APP13 resource 0x{rid:04X}) removed")
        else:
            resources.append((rid, name, payload))
    return resources, notes


def irb_segments(resources: list[tuple[int, bytes, bytes]]) -> tuple[list[bytes], list[str]]:
    """APP13 segments holding ``resources``, split between resources when over 64 KiB."""
    segments, notes, chunk = [], [], b""
    room = SEGMENT_MAX - len(PHOTOSHOP_HEADER)
    for resource in resources:
        data = build_irb([resource])
        if len(data) > room:
            notes.append(f"Photoshop resource 0x{resource[0]:04X} is too large and was dropped")
            continue
        if len(chunk) + len(data) > room:
            segments.append(marker_segment(0xED, PHOTOSHOP_HEADER + chunk))
            chunk = b""
        chunk += data
    if chunk:
        segments.append(marker_segment(0xED, PHOTOSHOP_HEADER + chunk))
    return segments, notes


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
    (0xE1, XMP_EXT_HEADER): "extended XMP",
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
    if strip_all and not md.empty:
        notes.append("all metadata removed (strip_all); only the colour profile kept")
    if md.exif and not strip_all:
        segments += _exif_segment(md.exif, size, strip_gps, notes)
    if md.xmp and not strip_all:
        xmp, xmp_notes = patch_xmp(md.xmp, size, strip_gps)
        notes += xmp_notes
        if xmp:
            segments.append(marker_segment(0xE1, XMP_HEADER + xmp))
    if md.icc_profile:
        segments += icc_segments(md.icc_profile)
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


def _exif_segment(exif: bytes, size, strip_gps: bool, notes: list[str]) -> list[bytes]:
    try:
        patched, exif_notes = patch_exif(exif, size, strip_gps)
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
