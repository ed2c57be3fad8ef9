"""EXIF: a TIFF structure, read and patched in place.

Never re-serialised: maker notes point into the block with absolute offsets, so any re-layout
(piexif, Pillow) can break them. Orientation and the pixel dimensions are overwritten in their
existing slots, IFD1 (the thumbnail) is unlinked and its image bytes zeroed, and every other JPEG
embedded in the block (maker-note previews) is zeroed too. All offsets stay valid.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass

from pixcamd.metadata.segments import EXIF_MAX, MetadataError, embedded_jpegs

# EXIF tags touched by the patcher.
IMAGE_WIDTH, IMAGE_LENGTH = 0x0100, 0x0101
ORIENTATION = 0x0112
EXIF_IFD, GPS_IFD, INTEROP_IFD = 0x8769, 0x8825, 0xA005
PIXEL_X, PIXEL_Y = 0xA002, 0xA003
SIZE_TAGS = {  # as exiftool names them
    IMAGE_WIDTH: "ImageWidth",
    IMAGE_LENGTH: "ImageHeight",
    PIXEL_X: "ExifImageWidth",
    PIXEL_Y: "ExifImageHeight",
}
COLOR_SPACE = 0xA001  # 1 = sRGB, 0xFFFF = uncalibrated (Adobe RGB and other spaces)
STRIP_OFFSETS, STRIP_BYTE_COUNTS = 0x0111, 0x0117
THUMB_OFFSET, THUMB_LENGTH = 0x0201, 0x0202
MAKER_NOTE = 0x927C

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

    def remove_entry(self, ifd: _Ifd, tag: int, nth: int = 0) -> _Entry | None:
        """Delete the ``nth`` entry with ``tag`` in place (a directory may hold a tag twice):
        later entries and the next-IFD link move up 12 bytes."""
        found = [i for i, e in enumerate(ifd.entries) if e.tag == tag]
        if len(found) <= nth:
            return None
        index = found[nth]
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


def tiff_tag_bytes(fp, tag: int) -> bytes | None:
    """The raw bytes of IFD0's ``tag`` in a TIFF file (``tiff_tags_bytes``)."""
    return tiff_tags_bytes(fp, tag).get(tag)


def tiff_tags_bytes(fp, *tags: int) -> dict[int, bytes]:
    """The raw bytes of each of IFD0's ``tags`` in a TIFF file, whatever type its writer gave
    it, from one read of the directory. Pillow reads IPTC (33723), which Photoshop and
    exiftool store as LONGs, as one integer (it expects one value): the record is these bytes.
    A tag absent or unreadable is left out, and so is every one of a BigTIFF (whose tags
    Pillow reads as they are)."""
    entries = {}
    try:
        length = fp.seek(0, 2)
        fp.seek(0)
        head = fp.read(8)
        order = {b"II*\x00": "<", b"MM\x00*": ">"}[head[:4]]  # a BigTIFF: not read here
        fp.seek(struct.unpack(order + "I", head[4:8])[0])
        (count,) = struct.unpack(order + "H", fp.read(2))
        for _ in range(count):
            found, typ, cnt, field = struct.unpack(order + "HHI4s", fp.read(12))
            if found in tags and found not in entries:  # the first, as before
                entries[found] = (_TYPE_SIZES.get(typ, 0) * cnt, field)
    except (KeyError, struct.error, OSError):
        pass  # a directory cut short: the tags read before it
    out = {}
    for tag, (size, field) in entries.items():
        if size <= 4:
            data = field[:size]
        else:
            offset = struct.unpack(order + "I", field)[0]
            if offset + size > length:  # a count past the file's end: damaged, not read
                continue
            try:
                fp.seek(offset)
                data = fp.read(size)
            except OSError:
                continue
            if len(data) != size:
                continue
        if data:
            out[tag] = data
    return out


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
    """The directory ``parent``'s (first) ``tag`` link leads to, if it reads."""
    entry = parent.get(tag) if parent else None
    return _linked(t, entry, tag) if entry else None


def _sub_ifds(t: _Tiff, parent: _Ifd, tag: int) -> list[_Ifd]:
    """Every directory ``parent`` links with ``tag`` (once, or more in a malformed block)."""
    return [d for e in parent.entries if e.tag == tag and (d := _linked(t, e, tag)) is not None]


def _linked(t: _Tiff, entry: _Entry, tag: int) -> _Ifd | None:
    offset = t.pointer(entry)
    if not offset:
        return None
    try:
        return t.ifd(offset, _POINTER_TAGS[tag])
    except (MetadataError, struct.error):
        return None


def patch_exif(
    tiff: bytes, size: tuple[int, int], strip_gps: bool = False, srgb: bool = False
) -> tuple[bytes, list]:
    """The original EXIF block made true for the output: same length, same offsets.

    Orientation → 1; ImageWidth/ImageLength and PixelX/YDimension → ``size`` where recorded;
    with ``srgb`` (the pixels were converted to sRGB) ColorSpace → 1 where recorded;
    IFD1 unlinked and its thumbnail zeroed; every embedded JPEG (maker-note previews) zeroed;
    with ``strip_gps`` the GPS IFD pointer removed and the GPS directory zeroed.
    """
    t = _Tiff(tiff)
    ifd0 = t.ifd(t.ifd0_offset, "IFD0")
    notes = []
    width, height = size

    # a second Orientation entry (a malformed writer's) would turn upright pixels again in a
    # viewer that reads that one: only the first is kept
    while t.remove_entry(ifd0, ORIENTATION, nth=1) is not None:
        notes.append("EXIF second Orientation entry removed")
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
                notes.append(f"EXIF {SIZE_TAGS[tag]} set to {value} (the output's size)")
    entry = exif_ifd.get(COLOR_SPACE) if exif_ifd and srgb else None
    if entry is not None and t.scalar(entry) != 1 and t.set_scalar(entry, 1):
        notes.append("EXIF ColorSpace set to sRGB (the copy's colours were converted to sRGB)")

    # What must survive the zeroing below, even in a malformed block whose thumbnail or IFD1
    # pointer leads into it: the kept directories and their values (maker notes excepted, since
    # previews legitimately live inside them).
    # the GPS directory, where IFD0 links it and where a writer linked it from the Exif IFD
    # instead (exiftool follows both), each link as many times as it is there
    # (an Exif IFD linked to IFD0's own offset is IFD0: one holder, not two views of it)
    holders = [ifd0, *([exif_ifd] if exif_ifd and exif_ifd.offset != ifd0.offset else [])]
    gps = [g for h in holders for g in _sub_ifds(t, h, GPS_IFD)]
    kept_ifds = [ifd0, exif_ifd, _sub_ifd(t, exif_ifd, INTEROP_IFD)]
    kept = _ranges(t, [*kept_ifds, *([] if strip_gps else gps)])

    next_ifd = t.u32(ifd0.next_pos)
    if next_ifd:
        # a maker note is kept whole (its previews are zeroed by their JPEG markers below): a
        # chain that leads into it is not followed there
        maker = [
            t.value_range(e) for ifd in kept_ifds if ifd for e in ifd.entries if e.tag == MAKER_NOTE
        ]
        _zero_chain(t, next_ifd, kept, maker)
        t.put_u32(ifd0.next_pos, 0)
        notes.append("EXIF thumbnail (IFD1) removed: it showed the unprotected photo")

    previews = [(a, b) for a, b in embedded_jpegs(t.data) if _zero_unless_kept(t, a, b, kept)]
    if previews:
        kib = sum(end - start for start, end in previews) / 1024
        notes.append(f"{len(previews)} preview image(s) inside the EXIF zeroed ({kib:.0f} KiB)")

    if strip_gps and any(h.get(GPS_IFD) is not None for h in holders):
        for start, end in _ranges(t, gps):
            _zero_unless_kept(t, start, end, kept)
        for holder in holders:
            while t.remove_entry(holder, GPS_IFD) is not None:
                pass
        notes.append("EXIF GPS position removed (strip_gps)")
    return bytes(t.data), notes


def _zero_chain(
    t: _Tiff, offset: int, kept: list[tuple[int, int]], maker: list[tuple[int, int]]
) -> None:
    """IFD1 — the thumbnail — and every directory chained after it, unlinked by the caller:
    their images (JPEG or uncompressed strips), their values (a description, a GPS directory
    of their own) and the directories themselves zeroed, so that nothing of them can be
    recovered from the bytes. IFD1 is zeroed wherever it lies (a maker note whose count runs
    over it included: an image of the original goes before a maker note's overstated bytes);
    a link after it that leads into kept data or a maker note is not a directory of IFD1's
    chain, and nothing of a maker note is zeroed for one that is."""
    seen: set[int] = set()
    while offset and offset not in seen and len(seen) < 16:
        spared = kept if not seen else kept + maker
        if seen and any(a <= offset < b for a, b in spared):
            return
        seen.add(offset)
        try:
            ifd = t.ifd(offset, "IFD1")
        except MetadataError:
            return
        following = t.u32(ifd.next_pos)  # read before its directory is zeroed
        for start, length in _thumbnail_ranges(t, ifd):
            _zero_unless_kept(t, start, start + length, spared)
        subs = [sub for tag in (EXIF_IFD, GPS_IFD) for sub in _sub_ifds(t, ifd, tag)]
        for start, end in _ranges(t, [ifd, *subs]):  # its directory included
            _zero_unless_kept(t, start, end, spared)
        offset = following


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
