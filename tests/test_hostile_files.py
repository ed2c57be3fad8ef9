"""Files crafted to hang or crash the reader, as a sync peer could drop into the inbox: each is
protected in a process of its own with a time limit far above what it takes (a second or two)
and far below what the walks they were made against took (hours): a hang fails the test
instead of holding CI up."""

from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import piexif
from PIL import Image, ImageCms

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--model", "brisque", "--views", "center", "--steps", "20", "--platforms", "task"]


def protect(photo: Path, out: Path) -> dict:
    run = subprocess.run(
        [sys.executable, "-m", "pixcamd", "protect", "--json", str(photo), "-o", str(out), *FAST],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "Traceback" not in run.stderr, run.stderr
    return json.loads(run.stdout.splitlines()[0])


def test_nested_sois_in_the_exif_are_walked_once(tmp_path):
    """A maker note of `FF E0 00 05 FF D8 FF` repeated: each SOI starts a chain of segments to
    the end of the block, and the search for embedded JPEGs walked the rest once per SOI."""
    block = b"\xff\xe0\x00\x05\xff\xd8\xff" * 150_000  # 1 MB: hours, walked per candidate
    exif = piexif.dump({"0th": {271: b"X"}, "Exif": {37500: block}})[6:]
    png = io.BytesIO()
    Image.new("RGB", (320, 240), (120, 130, 140)).save(png, "PNG")
    data = png.getvalue()
    chunk = struct.pack(">I", len(exif)) + b"eXIf" + exif
    chunk += struct.pack(">I", zlib.crc32(b"eXIf" + exif))
    photo = tmp_path / "maker.png"
    photo.write_bytes(data[:33] + chunk + data[33:])
    report = protect(photo, tmp_path / "maker.jpg")
    assert "error" not in report and (tmp_path / "maker.jpg").is_file(), report


def test_a_flood_of_photoshop_resources_is_read_in_one_pass(tmp_path):
    """120 APP13 segments of 5,400 empty resources each: the check for trailing padding copied
    the rest of the resources once per resource."""
    resources = b"".join(b"8BIM" + struct.pack(">HBBI", 0x400, 0, 0, 0) for _ in range(5400))
    segment = b"\xff\xed" + struct.pack(">H", len(resources) + 16) + b"Photoshop 3.0\0" + resources
    jpeg = io.BytesIO()
    Image.new("RGB", (320, 240), (120, 130, 140)).save(jpeg, "JPEG")
    photo = tmp_path / "irb.jpg"
    photo.write_bytes(jpeg.getvalue()[:2] + segment * 120 + jpeg.getvalue()[2:])
    report = protect(photo, tmp_path / "irb-protected.jpg")
    assert "error" not in report and (tmp_path / "irb-protected.jpg").is_file(), report


def test_a_colour_profile_too_large_for_a_jpeg_is_left_out_with_a_note(tmp_path):
    """An sRGB profile padded to 20 MB: a JPEG holds 255 chunks of 64 KB at most. It crashed
    the copy's writing (a traceback; the daemon retried it to the end); it is now left out —
    the copy's colours are sRGB, what a viewer assumes without one."""
    profile = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    profile += bytes(20 << 20)
    struct.pack_into(">I", profile, 0, len(profile))
    photo = tmp_path / "big-icc.webp"
    Image.new("RGB", (320, 240), (120, 130, 140)).save(photo, icc_profile=bytes(profile))
    out = tmp_path / "big-icc.jpg"
    report = protect(photo, out)
    assert "error" not in report and out.is_file(), report
    notes = " ".join(report.get("metadata_notes", []))
    assert "ICC profile of 21.0 MB left out: a JPEG holds at most 255 chunks" in notes, report
    with Image.open(out) as copy:
        assert copy.info.get("icc_profile") is None
