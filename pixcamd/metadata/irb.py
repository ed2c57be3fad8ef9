"""Photoshop image resources (APP13), where IPTC lives."""

from __future__ import annotations

import struct
from collections.abc import Iterable

from pixcamd.metadata.segments import PHOTOSHOP_HEADER, SEGMENT_MAX, MetadataError, marker_segment

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


def parse_irb(data: bytes) -> list[tuple[int, bytes, bytes]]:
    """[(resource id, name, payload)] of Photoshop image resources; MetadataError if broken."""
    resources, pos = [], 0
    while pos < len(data):
        if data[pos] == 0 and not any(memoryview(data)[pos:]):  # trailing padding (no copy)
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
