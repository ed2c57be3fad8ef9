"""The metadata patcher's edge cases, on hand-built blocks."""

from __future__ import annotations

import struct

import pytest

from pixcamd.metadata import (
    MetadataError,
    PhotoMetadata,
    embedded_jpegs,
    exif_orientation,
    output_segments,
    patch_exif,
    patch_xmp,
    repair_exif,
)


def tiff(entries: list[tuple[int, int, int, bytes]], order: str = "<", tail: bytes = b"") -> bytes:
    """A one-IFD TIFF block: entries (tag, type, count, 4-byte value field), then ``tail``."""
    head = (b"II*\x00" if order == "<" else b"MM\x00*") + struct.pack(order + "I", 8)
    body = struct.pack(order + "H", len(entries))
    for tag, typ, count, value in entries:
        body += struct.pack(order + "HHI", tag, typ, count) + value
    return head + body + struct.pack(order + "I", 0) + tail


@pytest.mark.parametrize("order", ["<", ">"])
def test_orientation_in_a_long_is_patched_and_in_a_byte_removed(order):
    as_long = tiff([(0x0112, 4, 1, struct.pack(order + "I", 6))], order)
    assert exif_orientation(as_long) == 6
    patched, notes = patch_exif(as_long, (10, 20))
    assert exif_orientation(patched) == 1 and len(patched) == len(as_long)
    as_byte = tiff([(0x010F, 2, 4, b"Cam\x00"), (0x0112, 1, 1, b"\x08\x00\x00\x00")], order)
    patched, notes = patch_exif(as_byte, (10, 20))
    assert exif_orientation(patched) == 1  # absent
    assert b"Cam\x00" in patched and any("removed" in n for n in notes)


def test_repair_keeps_the_readable_entries():
    block = bytearray(tiff([(0x010F, 2, 4, b"Cam\x00"), (0x0112, 3, 1, b"\x03\x00\x00\x00")]))
    block[8:10] = struct.pack("<H", 500)
    with pytest.raises(MetadataError):
        exif_orientation(bytes(block))
    repaired, notes = repair_exif(bytes(block))
    assert exif_orientation(repaired) == 3
    assert notes == ["EXIF IFD0 damaged: kept its 2 readable entries of 500"]
    with pytest.raises(MetadataError):
        repair_exif(b"II*\x00" + struct.pack("<I", 4000) + bytes(20))


def _jpeg(body: bytes = b"\x12\x34" * 10, eoi: bool = True) -> bytes:
    sof = b"\xff\xc0\x00\x0b\x08\x00\x10\x00\x10\x01\x01\x11\x00"
    sos = b"\xff\xda\x00\x08\x01\x01\x00\x00\x3f\x00"
    return b"\xff\xd8" + sof + sos + body + (b"\xff\xd9" if eoi else b"")


def test_embedded_jpegs_finds_whole_and_cut_streams_but_not_noise():
    whole, cut = _jpeg(), _jpeg(eoi=False)
    data = b"noise\xff\xd8\xff\x00" + whole + b"pad" + cut
    found = embedded_jpegs(data)
    assert [data[a:b] for a, b in found] == [whole, cut[: len(cut) - 20]]
    assert embedded_jpegs(b"\xff\xd8\xff\xe0\x00\x04ab\xff\xda") == []  # no frame header


def test_a_preview_inside_the_exif_is_zeroed_in_place():
    preview = _jpeg()
    block = tiff([(0x927C, 7, len(preview), struct.pack("<I", 26))], tail=preview)
    patched, notes = patch_exif(block, (1, 1))
    assert len(patched) == len(block) and preview not in patched
    assert patched[26:] == bytes(len(preview)) and any("preview" in n for n in notes)


def test_xmp_element_form_and_utf16():
    xmp = (
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF><rdf:Description '
        'xmlns:t="http://ns.adobe.com/tiff/1.0/" xmlns:e="http://ns.adobe.com/exif/1.0/">'
        "<t:Orientation>8</t:Orientation><e:PixelXDimension>9</e:PixelXDimension>"
        "<e:GPSLatitude>1,2N</e:GPSLatitude><e:GPSAltitude/>"
        "</rdf:Description></rdf:RDF></x:xmpmeta>"
    )
    for data in (xmp.encode(), "\ufeff".encode("utf-16-be") + xmp.encode("utf-16-be")):
        patched, notes = patch_xmp(data, (640, 480), strip_gps=True)
        text = patched.decode("utf-8")
        assert "<t:Orientation>1</t:Orientation>" in text
        assert "<e:PixelXDimension>640</e:PixelXDimension>" in text
        assert "GPS" not in text and "xmpmeta" in text
        assert any("Orientation 8 → 1" in n for n in notes)
    assert patch_xmp(b"\xff\x00\xfe\x01garbage", (1, 1))[0] is None


def test_damaged_iptc_and_oversized_exif_are_dropped_with_a_note():
    big = tiff([(0x010F, 2, 4, b"Cam\x00")], tail=b"\x01" * 70_000)
    metadata = PhotoMetadata(source_format="PNG", exif=big, photoshop=b"8BIM\x04\x04\x00")
    segments, notes = output_segments(metadata, (4, 4))
    assert [s[:2] for s in segments] == [b"\xff\xe0"]  # only the JFIF header is left
    assert any("over the JPEG limit" in n for n in notes)
    assert any("Photoshop/IPTC segment dropped" in n for n in notes)
    zero_tail = tiff([(0x010F, 2, 4, b"Cam\x00")], tail=bytes(70_000))  # blanked bytes: cut
    segments, notes = output_segments(PhotoMetadata(exif=zero_tail), (4, 4))
    assert any(s.startswith(b"\xff\xe1") and b"Cam" in s for s in segments)


def test_a_malformed_ifd1_link_cannot_destroy_kept_data():
    block = bytearray(tiff([(0x010F, 2, 4, b"Cam\x00"), (0x0112, 3, 1, b"\x06\x00\x00\x00")]))
    block[34:38] = struct.pack("<I", 8)  # IFD0's next-IFD link points back at IFD0
    patched, notes = patch_exif(bytes(block), (1, 1))
    assert b"Cam\x00" in patched and exif_orientation(patched) == 1
    assert patched[34:38] == bytes(4) and any("IFD1" in n for n in notes)


def _ifd(entries: list[tuple[int, int, int, int | bytes]], next_ifd: int = 0) -> bytes:
    """A little-endian directory: (tag, type, count, value or 4-byte field), the next link."""
    body = struct.pack("<H", len(entries))
    for tag, typ, count, value in entries:
        field = value if isinstance(value, bytes) else struct.pack("<I", value)
        body += struct.pack("<HHI", tag, typ, count) + field
    return body + struct.pack("<I", next_ifd)


def test_gps_linked_twice_or_from_the_exif_ifd_and_data_chained_after_ifd1_are_gone():
    """Malformed writers, read as exiftool reads them: a GPS directory linked twice from IFD0
    and once from the Exif IFD, a second Orientation, and after IFD1 a description, a GPS
    directory of its own and an IFD2 of raw pixels of the original — none survives strip_gps
    in the bytes; one Orientation, 1."""
    block = bytearray(400)
    block[:8] = b"II*\x00" + struct.pack("<I", 8)
    gps = lambda ref: _ifd([(0x0001, 2, 2, ref + b"\x00\x00\x00")])  # noqa: E731
    parts = {
        8: _ifd(
            [
                (0x0112, 3, 1, 6),
                (0x0112, 3, 1, 6),
                (0x8769, 4, 1, 80),
                (0x8825, 4, 1, 100),
                (0x8825, 4, 1, 120),
            ],
            next_ifd=160,
        ),
        80: _ifd([(0x8825, 4, 1, 140)]),
        100: gps(b"N"),
        120: gps(b"S"),
        140: gps(b"E"),
        160: _ifd([(0x010E, 2, 20, 200), (0x8825, 4, 1, 224)], next_ifd=260),
        200: b"Secret Place 12 Rue\x00",
        224: gps(b"W"),
        260: _ifd([(0x0111, 4, 1, 320), (0x0117, 4, 1, 48)]),
        320: b"\xab" * 48,
    }
    for offset, data in parts.items():
        block[offset : offset + len(data)] = data
    patched, notes = patch_exif(bytes(block), (1, 1), strip_gps=True)
    assert exif_orientation(patched) == 1 and "EXIF second Orientation entry removed" in notes
    assert patched.count(b"\x12\x01\x03\x00") == 1  # one Orientation entry left
    assert b"\x25\x88" not in patched  # no GPS link anywhere
    for ref in (b"N\x00", b"S\x00", b"E\x00", b"W\x00"):
        assert b"\x01\x00\x02\x00\x02\x00\x00\x00" + ref not in patched, ref
    assert b"Secret Place" not in patched and b"\xab" * 8 not in patched
    assert "EXIF GPS position removed (strip_gps)" in notes


def test_removing_images_or_positions_keeps_the_fields_beside_them():
    """A phone writes one Description: fields as attributes, the container directory of its
    appended images as an element. Removing that element (images of the original) or a
    position must not take the Description — a rating, a creator tool, a city — with it."""
    import xml.dom.minidom

    packet = (
        b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
        b'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        b'<rdf:Description rdf:about="" xmlns:xmp="http://ns.adobe.com/xap/1.0/" '
        b'xmlns:GCamera="http://ns.google.com/photos/1.0/camera/" '
        b'xmlns:Container="http://ns.google.com/photos/1.0/container/" '
        b'xmlns:Item="http://ns.google.com/photos/1.0/container/item/" '
        b'xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/" '
        b'xmp:Rating="5" xmp:CreatorTool="Pixel 8" GCamera:MotionPhoto="1">'
        b'<Container:Directory><rdf:Seq><rdf:li rdf:parseType="Resource"><Container:Item '
        b'Item:Mime="video/mp4" Item:Length="1234"/></rdf:li></rdf:Seq></Container:Directory>'
        b'<Iptc4xmpExt:LocationShown><rdf:Bag><rdf:li rdf:parseType="Resource" '
        b'Iptc4xmpExt:City="Paris"><Iptc4xmpExt:GPSLatitude>48,51.4955N'
        b"</Iptc4xmpExt:GPSLatitude></rdf:li></rdf:Bag></Iptc4xmpExt:LocationShown>"
        b"</rdf:Description></rdf:RDF></x:xmpmeta>"
    )
    for strip_gps in (False, True):
        data, notes = patch_xmp(packet, (4, 4), strip_gps=strip_gps)
        assert any("images of the original" in n for n in notes), notes
        xml.dom.minidom.parseString(data)  # still XML
        assert b'xmp:Rating="5"' in data and b'xmp:CreatorTool="Pixel 8"' in data, data
        assert (
            b"Container:" not in data.replace(b"xmlns:Container", b"")
            and b"MotionPhoto" not in data
        )
        assert b'Iptc4xmpExt:City="Paris"' in data, data
        assert (b"GPSLatitude" not in data) == strip_gps


def test_a_chain_after_ifd1_never_reaches_into_a_kept_maker_note_or_ifd0():
    """IFD1's next link leading into the maker note (kept whole: only its previews are
    zeroed) is not followed there; an Exif IFD linked at IFD0's own offset is IFD0, whose
    GPS link is removed once, the entries after it intact."""
    block = bytearray(600)
    block[:8] = b"II*\x00" + struct.pack("<I", 8)
    parts = {
        8: _ifd([(0x010F, 2, 4, b"Cam\x00"), (0x8769, 4, 1, 40)], next_ifd=200),
        40: _ifd([(0x927C, 7, 100, 300)]),
        200: _ifd([(0x0201, 4, 1, 260), (0x0202, 4, 1, 20)], next_ifd=300),  # → the maker note
        260: b"\xff\xd8" + b"\x11" * 16 + b"\xff\xd9",
        300: _ifd([(0x0006, 2, 16, 330)]),
        330: b"Canon EOS 5D MkI",
    }
    for offset, data in parts.items():
        block[offset : offset + len(data)] = data
    patched, _ = patch_exif(bytes(block), (1, 1))
    assert patched[300:400] == block[300:400]  # the maker note, byte for byte
    assert patched[260:280] == bytes(20)  # the thumbnail, zeroed
    # a maker note whose count runs over IFD1: IFD1's image of the original goes all the same
    block = bytearray(700)
    block[:8] = b"II*\x00" + struct.pack("<I", 8)
    parts = {
        8: _ifd([(0x010F, 2, 4, b"Cam\x00"), (0x8769, 4, 1, 40)], next_ifd=400),
        40: _ifd([(0x927C, 7, 600, 100)]),  # 100..700, the real note 100..154
        100: b"MAKERNOTE" * 6,
        400: _ifd([(0x0111, 4, 1, 500), (0x0117, 4, 1, 96), (0x010E, 2, 20, 460)]),
        460: b"Secret description\x00\x00",
        500: b"\xaa" * 96,  # uncompressed thumbnail pixels of the original
    }
    for offset, data in parts.items():
        block[offset : offset + len(data)] = data
    patched, _ = patch_exif(bytes(block), (1, 1))
    assert b"\xaa" * 8 not in patched and b"Secret" not in patched
    assert patched[100:154] == block[100:154]
    looped = tiff([(0x010F, 2, 4, b"Cam\x00"), (0x8769, 4, 1, b"\x08\x00\x00\x00"),
                   (0x8825, 4, 1, b"\x40\x00\x00\x00"), (0x0131, 2, 4, b"SW1\x00")],
                  tail=bytes(40))  # fmt: skip
    patched, _ = patch_exif(looped, (1, 1), strip_gps=True)
    assert b"SW1\x00" in patched and b"Cam\x00" in patched, patched
    assert patched[8:10] == struct.pack("<H", 3)  # Make, Exif link, Software: GPS gone once


def test_a_tiff_tag_s_raw_bytes_are_read_only_within_the_file(tmp_path):
    """tiff_tag_bytes reads IPTC as its raw bytes — and a count that runs past the file's end
    (damaged) is not read at all: no allocation of its claimed size."""
    import io

    from pixcamd.metadata import tiff_tag_bytes

    record = b"\x1c\x02\x78\x00\x05hello\x00\x00"  # 12 bytes: three LONGs
    good = tiff([(0x83BB, 4, 3, struct.pack("<I", 26))], tail=record)
    assert tiff_tag_bytes(io.BytesIO(good), 0x83BB) == record
    assert tiff_tag_bytes(io.BytesIO(good), 0x8649) is None  # absent
    damaged = tmp_path / "damaged.tif"  # a real file: its read would allocate the claim
    damaged.write_bytes(tiff([(0x83BB, 12, 0xFFFFFFFF, struct.pack("<I", 26))], tail=record))
    with damaged.open("rb") as fp:
        assert tiff_tag_bytes(fp, 0x83BB) is None
