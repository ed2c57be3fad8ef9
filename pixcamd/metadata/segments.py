"""JPEG marker segments: reading an input's header segments, writing the copy's, finding the
JPEG streams that hide inside other blocks (maker-note previews), and the JFIF header."""

from __future__ import annotations

import struct
from dataclasses import dataclass
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


class MetadataError(ValueError):
    """A metadata block too damaged to be kept."""


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
    # (position, frame seen) where a walk from an earlier candidate failed: a later one that
    # reaches it fails the same way, so every position is walked once — a maker note of nested
    # SOIs each chaining to the next no longer costs a walk of the rest per candidate
    dead: set[tuple[int, bool]] = set()
    while True:
        start = data.find(b"\xff\xd8\xff", pos)
        if start < 0:
            return found
        end = _jpeg_stream_end(data, start, dead)
        if end:
            found.append((start, end))
            pos = end
        else:
            pos = start + 2


def _jpeg_stream_end(data: bytes | bytearray, start: int, dead: set) -> int:
    walked: list[tuple[int, bool]] = []
    end = _walk(data, start, dead, walked)
    if not end:
        dead.update(walked)
    return end


def _walk(data: bytes | bytearray, start: int, dead: set, walked: list) -> int:
    pos, seen_frame = start + 2, False
    while pos + 4 <= len(data):
        if (pos, seen_frame) in dead:
            return 0
        walked.append((pos, seen_frame))
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
