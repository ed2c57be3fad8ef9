"""Photo input and output on files generated here (runs where ../shared is absent).

Inputs are built with independent tools (piexif for EXIF with a thumbnail, Pillow, pillow-heif,
hand-written segments and an ICC profile); outputs are judged with Pillow, piexif and — where
installed — exiftool.
"""

from __future__ import annotations

import io
import os
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import numpy as np
import piexif
import pytest
from iccprofiles import display_p3_profile, save_nclx_heic
from PIL import Image, ImageChops, ImageCms, features

from pixcamd import output as output_module
from pixcamd.colour import icc_profile, s15
from pixcamd.errors import PhotoError
from pixcamd.metadata import embedded_jpegs, is_changed_tag, split_jpeg
from pixcamd.output import OutputError, encode_jpeg, write_jpeg
from pixcamd.photo import SRGB_PROFILE, load_photo, open_photo

UPRIGHT = {  # how a viewer turns the stored pixels for each EXIF orientation
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def tool(name: str) -> str:
    """Path of an external checker: CI must have it (.ci/run installs it); locally optional."""
    path = shutil.which(name)
    if path:
        return path
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{name} is missing in CI (.ci/run installs it)")
    pytest.skip(f"{name} not installed")


def exiftool_tags(path: Path, *args: str) -> dict[str, str]:
    out = subprocess.run(
        [tool("exiftool"), "-a", "-G1", "-s", "-m", *args, str(path)],
        capture_output=True,
        text=True,
        errors="replace",
        check=True,
    ).stdout
    tags = {}
    for line in out.splitlines():
        key, _, value = line.partition(":")
        group, _, name = key.strip().partition("]")
        tags[f"{group.strip('[ ')}:{name.strip()}"] = value.strip()
    return tags


# ---------------------------------------------------------------------------------------------
# Inputs


def pattern(width: int = 48, height: int = 32) -> Image.Image:
    """Asymmetric test image: a gradient with a red block in the top-left corner."""
    y, x = np.mgrid[0:height, 0:width]
    pixels = np.stack([x * 255 // width, y * 255 // height, (x + y) % 256], axis=-1)
    pixels[:6, :10] = (255, 0, 0)
    return Image.fromarray(pixels.astype(np.uint8), "RGB")


def segment(marker: int, payload: bytes) -> bytes:
    return bytes((0xFF, marker)) + struct.pack(">H", len(payload) + 2) + payload


def insert_segments(jpeg: bytes, *segments: bytes) -> bytes:
    """Put segments after SOI and Pillow's JFIF header."""
    pos = 2
    if jpeg[2:4] == b"\xff\xe0":
        pos += 2 + struct.unpack(">H", jpeg[4:6])[0]
    return jpeg[:pos] + b"".join(segments) + jpeg[pos:]


def jpeg_bytes(img: Image.Image, **kwargs) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, "JPEG", quality=92, **kwargs)
    return buffer.getvalue()


THUMBNAIL = jpeg_bytes(pattern(16, 12).transpose(Image.Transpose.ROTATE_90))
MAKERNOTE = b"PXCAM\x00\x01\x00" + bytes(range(256)) * 2  # opaque maker data, must stay intact


def camera_exif(orientation: int = 6, size=(48, 32), thumbnail: bytes | None = THUMBNAIL) -> bytes:
    exif = {
        "0th": {
            piexif.ImageIFD.Make: b"Pixcam",
            piexif.ImageIFD.Model: b"P-1 Mark II",
            piexif.ImageIFD.Orientation: orientation,
            piexif.ImageIFD.DateTime: b"2024:05:01 10:00:00",
            piexif.ImageIFD.Artist: b"Ada Lovelace",
        },
        "Exif": {
            piexif.ExifIFD.DateTimeOriginal: b"2024:05:01 09:59:58",
            piexif.ExifIFD.LensModel: b"Pixcam 35mm F1.8",
            piexif.ExifIFD.ExposureTime: (1, 250),
            piexif.ExifIFD.FNumber: (18, 10),
            piexif.ExifIFD.PixelXDimension: size[0],
            piexif.ExifIFD.PixelYDimension: size[1],
            piexif.ExifIFD.MakerNote: MAKERNOTE,
        },
        "GPS": {
            piexif.GPSIFD.GPSLatitudeRef: b"N",
            piexif.GPSIFD.GPSLatitude: ((48, 1), (51, 1), (2973, 100)),
            piexif.GPSIFD.GPSLongitudeRef: b"E",
            piexif.GPSIFD.GPSLongitude: ((2, 1), (17, 1), (4011, 100)),
        },
    }
    if thumbnail:
        exif["1st"] = {piexif.ImageIFD.XResolution: (72, 1), piexif.ImageIFD.YResolution: (72, 1)}
        exif["thumbnail"] = thumbnail
    return piexif.dump(exif)


XMP_THUMB = "VGhpcyBpcyBhIHRodW1ibmFpbA=="
XMP = f"""<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
<rdf:Description rdf:about="" xmlns:tiff="http://ns.adobe.com/tiff/1.0/"
 xmlns:exif="http://ns.adobe.com/exif/1.0/" xmlns:dc="http://purl.org/dc/elements/1.1/"
 xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmlns:xmpGImg="http://ns.adobe.com/xap/1.0/g/img/"
 tiff:Orientation="6" exif:GPSLatitude="48,51.4955N" exif:GPSLongitude="2,17.6685E"
 exif:PixelXDimension="48" exif:PixelYDimension="32" xmp:Rating="4">
<dc:creator><rdf:Seq><rdf:li>Ada Lovelace</rdf:li></rdf:Seq></dc:creator>
<xmp:Thumbnails><rdf:Alt><rdf:li rdf:parseType="Resource"><xmpGImg:format>JPEG</xmpGImg:format>
<xmpGImg:image>{XMP_THUMB}</xmpGImg:image></rdf:li></rdf:Alt></xmp:Thumbnails>
</rdf:Description></rdf:RDF></x:xmpmeta>
<?xpacket end="w"?>""".encode()


def iim(record: int, dataset: int, value: bytes) -> bytes:
    return struct.pack(">BBBH", 0x1C, record, dataset, len(value)) + value


def irb(resource: int, payload: bytes) -> bytes:
    return (
        b"8BIM"
        + struct.pack(">HHI", resource, 0, len(payload))
        + payload
        + b"\0" * (len(payload) % 2)
    )


IPTC = iim(2, 0, b"\x00\x04") + iim(2, 120, b"Harbour at dawn") + iim(2, 25, b"boats")
PS_THUMBNAIL = jpeg_bytes(pattern(20, 14))
APP13 = (
    b"Photoshop 3.0\x00"
    + irb(0x0404, IPTC)
    + irb(0x040C, struct.pack(">6I2H", 1, 20, 14, 60, 840, len(PS_THUMBNAIL), 24, 1) + PS_THUMBNAIL)
)
RGB_PROFILE = bytes(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB", 6500)).tobytes())


def camera_jpeg(path: Path, orientation: int = 6) -> Path:
    """A camera-like JPEG: EXIF (GPS, maker note, thumbnail), ICC, XMP, IPTC, a comment."""
    data = jpeg_bytes(pattern(), exif=camera_exif(orientation), icc_profile=RGB_PROFILE)
    data = insert_segments(
        data,
        segment(0xE1, b"http://ns.adobe.com/xap/1.0/\x00" + XMP),
        segment(0xED, APP13),
        segment(0xFE, b"shot on a tripod"),
    )
    path.write_bytes(data)
    return path


# What tells who took a photo beyond its position, as a camera (or a person) writes it:
# exiftool's name → the value, each also searched for in the copy's bytes.
IDENTIFYING = {
    "ExifIFD:SerialNumber": "PX1-0042817",
    "ExifIFD:LensSerialNumber": "L-99017",
    "ExifIFD:OwnerName": "Grace Hopper",
    "XMP-aux:SerialNumber": "PX1-0042817",
    "IPTC:City": "Porto",
}


# exiftool's groups (-G1) that describe the file and its encoding, not the photo: with the
# colour profile's (ICC…), all that a copy keeping nothing but its profile may show.
ENCODING_GROUPS = {"ExifTool", "System", "File", "JFIF", "Composite"}


# The name a camera maker's sRGB profile gives itself (as long as lcms's "sRGB built-in").
MAKERS_PROFILE = "Pixcam X1 cam"


def private_camera_jpeg(path: Path) -> Path:
    """``camera_jpeg`` with the body's and the lens's serial numbers, the owner's name (EXIF,
    XMP aux:) and a place name a person wrote (IPTC), written by exiftool — and an sRGB
    profile that names its maker (``MAKERS_PROFILE``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    camera_jpeg(path)
    data = path.read_bytes()
    name = "sRGB built-in".encode("utf-16-be")
    assert data.count(name) == 1
    path.write_bytes(data.replace(name, MAKERS_PROFILE.encode("utf-16-be")))
    subprocess.run(
        [tool("exiftool"), "-q", "-m", "-overwrite_original"]
        + [f"-{key}={value}" for key, value in IDENTIFYING.items()]
        + [str(path)],
        check=True,
    )
    return path


def app1_exif(jpeg: bytes) -> bytes:
    """The TIFF block of a JPEG's first APP1 Exif segment."""
    with Image.open(io.BytesIO(jpeg)) as img:
        return img.info["exif"][6:]


# ---------------------------------------------------------------------------------------------
# Orientation


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_orientation_comes_out_upright(tmp_path, orientation):
    stored = pattern()
    exif = Image.Exif()
    exif[0x0112] = orientation
    src = tmp_path / "in.png"  # lossless, so the pixels can be compared exactly
    stored.save(src, exif=exif.tobytes())
    photo = open_photo(src)
    expected = stored.transpose(UPRIGHT[orientation]) if orientation != 1 else stored
    assert photo.image.size == expected.size
    assert np.array_equal(np.asarray(photo.image), np.asarray(expected))
    assert photo.metadata.orientation == orientation
    out = tmp_path / "out" / "out.jpg"
    write_jpeg(photo.image, out, photo.metadata)
    with Image.open(out) as written:
        assert written.getexif().get(0x0112) == 1
        assert written.size == expected.size


def test_camera_jpeg_round_trip_keeps_metadata_and_drops_thumbnails(tmp_path):
    src = camera_jpeg(tmp_path / "camera.jpg", orientation=6)
    before = src.read_bytes()
    photo = open_photo(src)
    assert photo.image.size == (32, 48)  # rotated upright
    red = np.asarray(photo.image)[:10, -6:]  # the red corner is now top-right
    assert red[..., 0].mean() > 200 and red[..., 1].mean() < 60
    out = tmp_path / "outbox" / "camera.jpg"
    notes = write_jpeg(photo.image, out, photo.metadata)
    assert src.read_bytes() == before  # the original is never touched
    data = out.read_bytes()

    exif = piexif.load(data)
    assert exif["0th"][piexif.ImageIFD.Orientation] == 1
    assert exif["0th"][piexif.ImageIFD.Make] == b"Pixcam"
    assert exif["0th"][piexif.ImageIFD.Artist] == b"Ada Lovelace"
    assert exif["Exif"][piexif.ExifIFD.DateTimeOriginal] == b"2024:05:01 09:59:58"
    assert exif["Exif"][piexif.ExifIFD.LensModel] == b"Pixcam 35mm F1.8"
    assert exif["Exif"][piexif.ExifIFD.MakerNote] == MAKERNOTE
    assert (exif["Exif"][piexif.ExifIFD.PixelXDimension], exif["Exif"][0xA003]) == (32, 48)
    said = " | ".join([*photo.warnings, *notes])
    assert "EXIF ExifImageWidth set to 32 (the output's size)" in said  # exiftool's names
    assert exif["GPS"][piexif.GPSIFD.GPSLatitude] == ((48, 1), (51, 1), (2973, 100))
    assert not exif["1st"] and exif["thumbnail"] is None
    with Image.open(out) as written:
        assert written.info["icc_profile"] == RGB_PROFILE
        xmp = written.info["xmp"]
        assert written.info["comment"] == b"shot on a tripod"
    assert b'tiff:Orientation="1"' in xmp and b"Ada Lovelace" in xmp
    assert b'exif:PixelXDimension="32"' in xmp and b"GPSLatitude" in xmp
    assert XMP_THUMB.encode() not in data and b"Thumbnails" not in xmp
    assert IPTC in data  # IPTC byte for byte
    thumbnail = piexif.load(before)["thumbnail"]  # as piexif stored it
    assert thumbnail and thumbnail in before and PS_THUMBNAIL in before
    assert thumbnail not in data and PS_THUMBNAIL not in data
    header = data[: data.index(b"\xff\xda")]
    assert embedded_jpegs(header) == []  # no image of any kind rides in the metadata
    assert any("thumbnail" in n for n in notes) and any("Orientation 6 → 1" in n for n in notes)


def test_exif_is_patched_in_place_not_reserialised(tmp_path):
    """Same length, same offsets: only the patched values, the IFD1 link and IFD1's own bytes
    differ, so maker notes with absolute offsets stay valid."""
    src = camera_jpeg(tmp_path / "camera.jpg", orientation=8)
    photo = open_photo(src)
    before = app1_exif(src.read_bytes())
    after = app1_exif(encode_jpeg(photo.image, photo.metadata))
    assert len(after) == len(before)
    # IFD1 and its thumbnail come last in piexif's layout
    first_ifd1 = before.index(piexif.load(src.read_bytes())["thumbnail"])
    changed = [i for i in range(len(before)) if before[i] != after[i]]
    order = "<" if before[:2] == b"II" else ">"
    ifd0 = struct.unpack(order + "I", before[4:8])[0]
    n0 = struct.unpack(order + "H", before[ifd0 : ifd0 + 2])[0]
    next_link = range(ifd0 + 2 + 12 * n0, ifd0 + 6 + 12 * n0)
    tail = [i for i in changed if i not in next_link and i < first_ifd1 - 200]
    # The remaining differences are Orientation and PixelX/YDimension values (a few bytes).
    assert len(tail) <= 6, tail
    assert after.index(MAKERNOTE) == before.index(MAKERNOTE)


def test_strip_gps_removes_every_position(tmp_path):
    photo = open_photo(camera_jpeg(tmp_path / "camera.jpg"))
    data = encode_jpeg(photo.image, photo.metadata, strip_gps=True)
    exif = piexif.load(data)
    assert exif["GPS"] == {} and piexif.GPSIFD.GPSLatitude not in exif["GPS"]
    assert exif["0th"][piexif.ImageIFD.Make] == b"Pixcam"
    assert exif["Exif"][piexif.ExifIFD.MakerNote] == MAKERNOTE
    assert struct.pack(">II", 2973, 100) not in data and struct.pack("<II", 2973, 100) not in data
    with Image.open(io.BytesIO(data)) as written:
        assert b"GPS" not in written.info["xmp"]
        assert b"Ada Lovelace" in written.info["xmp"]


def test_strip_gps_leaves_no_emptied_location_structure(tmp_path):
    located = XMP.replace(
        b"</rdf:Description>",
        b'<Iptc4xmpExt:LocationShown xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/">'
        b'<rdf:Bag><rdf:li rdf:parseType="Resource"><Iptc4xmpExt:GPSLatitude>48,51.4955N'
        b"</Iptc4xmpExt:GPSLatitude><Iptc4xmpExt:GPSLongitude>2,17.6685E"
        b"</Iptc4xmpExt:GPSLongitude></rdf:li></rdf:Bag></Iptc4xmpExt:LocationShown>"
        b'<Iptc4xmpExt:LocationCreated xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/">'
        b'<rdf:Bag><rdf:li rdf:parseType="Resource"><Iptc4xmpExt:City>Paris</Iptc4xmpExt:City>'
        b"<Iptc4xmpExt:GPSLatitude>48,51.4955N</Iptc4xmpExt:GPSLatitude></rdf:li></rdf:Bag>"
        b"</Iptc4xmpExt:LocationCreated>"
        b'<Iptc4xmpExt:ArtworkOrObject xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/">'
        b'<rdf:Bag><rdf:li><rdf:Description Iptc4xmpExt:GPSLatitude="48,51.4955N"/></rdf:li>'
        b"</rdf:Bag></Iptc4xmpExt:ArtworkOrObject>"
        b"<dc:subject><rdf:Bag/></dc:subject></rdf:Description>",
    )
    data = jpeg_bytes(pattern())
    src = tmp_path / "located.jpg"
    src.write_bytes(
        insert_segments(data, segment(0xE1, b"http://ns.adobe.com/xap/1.0/\x00" + located))
    )
    photo = open_photo(src)
    with Image.open(io.BytesIO(encode_jpeg(photo.image, photo.metadata, strip_gps=True))) as out:
        xmp = out.info["xmp"]
    assert b"GPS" not in xmp and b"LocationShown" not in xmp  # held only the position: gone
    assert b"<Iptc4xmpExt:City>Paris</Iptc4xmpExt:City>" in xmp  # the place name stays
    assert b"LocationCreated" in xmp and b"Ada Lovelace" in xmp
    assert b"ArtworkOrObject" not in xmp  # its item's description held only a position
    assert b"<dc:subject><rdf:Bag/></dc:subject>" in xmp  # empty before: left as it was
    assert b"\x00" not in xmp


def test_images_of_the_original_in_xmp_and_positions_by_any_name_are_removed(tmp_path):
    """Judged by exiftool, which wrote them: a phone's portrait image (GImage) and depth map
    (GDepth), a page image and a motion photo's pointers are base64 text in the XMP — images
    of the unprotected photo, removed whatever strip_gps says; a position a drone or a
    collection writes under another name than GPS… (DJI, Darwin Core) goes with strip_gps."""
    small = tmp_path / "small.jpg"
    small.write_bytes(jpeg_bytes(pattern(40, 30)))
    src = tmp_path / "phone.jpg"
    src.write_bytes(jpeg_bytes(pattern()))
    subprocess.run(
        [tool("exiftool"), "-q", "-overwrite_original", "-XMP-GImage:ImageMimeType=image/jpeg",
         f"-XMP-GImage:ImageData<={small}", "-XMP-GDepth:Format=RangeInverse",
         "-XMP-GDepth:Mime=image/jpeg", f"-XMP-GDepth:DepthImage<={small}",
         "-XMP-xmp:PageImageFormat=JPEG", f"-XMP-xmp:PageImage<={small}",
         "-XMP-GCamera:MicroVideo=1", "-XMP-GCamera:MicroVideoOffset=12345",
         "-XMP-drone-dji:Latitude=36.448", "-XMP-drone-dji:Longitude=-116.855",
         "-XMP-drone-dji:AbsoluteAltitude=14.3", "-XMP-dwc:DecimalLatitude=36.448",
         "-XMP-dwc:DecimalLongitude=-116.855", "-XMP-dc:Title=Furnace Creek", str(src)],
        check=True,
    )  # fmt: skip
    before = exiftool_tags(src)
    assert "XMP-GImage:ImageData" in before and "XMP-drone-dji:Latitude" in before, before
    photo = open_photo(src)
    for strip_gps in (False, True):
        out = tmp_path / f"copy-{strip_gps}.jpg"
        out.write_bytes(encode_jpeg(photo.image, photo.metadata, strip_gps=strip_gps))
        tags = exiftool_tags(out)
        images = [k for k in tags if k.startswith(("XMP-GImage", "XMP-GDepth")) or "Page" in k]
        assert images == [] and "XMP-GCamera:MicroVideoOffset" not in tags, tags
        assert tags["XMP-dc:Title"] == "Furnace Creek"
        positions = [k for k in tags if k.startswith(("XMP-drone-dji", "XMP-dwc"))]
        assert (positions == []) == strip_gps, positions
        assert small.read_bytes() not in out.read_bytes()
        gone = [k for k in before if k.startswith("XMP") and k not in tags]
        # every tag removed is in the documented changed set (is_changed_tag encodes it)
        assert gone and all(is_changed_tag(*k.split(":", 1)) or strip_gps for k in gone), gone


def test_strip_all_keeps_only_the_colour_profile(tmp_path):
    photo = open_photo(camera_jpeg(tmp_path / "camera.jpg"))
    out = tmp_path / "o" / "x.jpg"
    notes = write_jpeg(photo.image, out, photo.metadata, strip_all=True)
    data = out.read_bytes()
    with Image.open(out) as written:  # an sRGB profile's own words and date go too
        assert written.info.get("icc_profile") == SRGB_PROFILE != RGB_PROFILE
        assert "exif" not in written.info and "xmp" not in written.info
        assert "comment" not in written.info
    for secret in (b"Pixcam", b"Ada Lovelace", b"Harbour", MAKERNOTE[:16], b"tripod"):
        assert secret not in data
    assert any("strip_all" in n for n in notes)


def test_exiftool_judges_the_generated_camera_jpeg(tmp_path):
    src = camera_jpeg(tmp_path / "camera.jpg", orientation=6)
    photo = open_photo(src)
    out = tmp_path / "o" / "camera.jpg"
    write_jpeg(photo.image, out, photo.metadata)
    before, after = exiftool_tags(src), exiftool_tags(out)
    assert after["IFD0:Orientation"] == "Horizontal (normal)"
    assert before["IFD0:Orientation"] == "Rotate 90 CW"
    for key in (
        "IFD0:Make",
        "IFD0:Model",
        "IFD0:Artist",
        "ExifIFD:DateTimeOriginal",
        "ExifIFD:LensModel",
        "ExifIFD:ExposureTime",
        "GPS:GPSLatitude",
        "GPS:GPSLongitude",
        "XMP-dc:Creator",
        "XMP-xmp:Rating",
        "IPTC:Caption-Abstract",
        "IPTC:Keywords",
        "ICC_Profile:ProfileDescription",
        "File:Comment",
    ):
        assert after[key] == before[key], key
    assert not [k for k in after if k.startswith("IFD1:")]
    assert "Photoshop:PhotoshopThumbnail" in before
    assert "Photoshop:PhotoshopThumbnail" not in after
    assert (after["ExifIFD:ExifImageWidth"], after["ExifIFD:ExifImageHeight"]) == ("32", "48")
    assert after["XMP-tiff:Orientation"] == "Horizontal (normal)"


# ---------------------------------------------------------------------------------------------
# Other formats


def test_png_with_alpha_exif_xmp_and_icc(tmp_path):
    rgba = pattern().convert("RGBA")
    alpha = np.full((32, 48), 255, np.uint8)
    alpha[-8:, -8:] = 0  # a transparent corner
    rgba.putalpha(Image.fromarray(alpha))
    exif = Image.Exif()
    exif[0x010F] = "PhoneCo"
    exif[0x0112] = 3
    src = tmp_path / "shot.png"
    rgba.save(src, exif=exif.tobytes(), icc_profile=RGB_PROFILE, pnginfo=_png_xmp(XMP))
    photo = open_photo(src)
    assert photo.image.mode == "RGB" and photo.image.size == (48, 32)
    # rotated 180°: the transparent corner is now top-left, composited onto white
    assert np.asarray(photo.image)[:8, :8].min() == 255
    assert any("white" in w for w in photo.warnings)
    data = encode_jpeg(photo.image, photo.metadata)
    with Image.open(io.BytesIO(data)) as written:
        assert written.getexif()[0x010F] == "PhoneCo"
        assert written.getexif()[0x0112] == 1
        assert written.info["icc_profile"] == RGB_PROFILE
        assert b"Ada Lovelace" in written.info["xmp"]


def _png_xmp(xmp: bytes):
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_itxt("XML:com.adobe.xmp", xmp.decode())
    return info


def test_png_16_bit_gray_and_rgb_reduce_to_8_bit(tmp_path):
    gray = np.array([[0, 257, 32768, 65535]], dtype=np.uint16)
    Image.fromarray(gray).save(tmp_path / "g16.png")
    image = load_photo(tmp_path / "g16.png")
    assert np.asarray(image)[0, :, 0].tolist() == [0, 1, 128, 255]

    rgb = np.array([[[65535, 0, 32896], [4660, 65535, 0]]], dtype=">u2")  # 16-bit RGB PNG
    raw = b"".join(b"\x00" + row.tobytes() for row in rgb)
    src = tmp_path / "rgb16.png"
    src.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 1, 16, 2, 0, 0, 0))
        + _png_chunk(b"IDAT", zlib.compress(raw))
        + _png_chunk(b"IEND", b"")
    )
    pixels = np.asarray(load_photo(src)).astype(int)
    assert np.abs(pixels - np.round(rgb / 257)).max() <= 1


def test_32_bit_grey_beyond_16_bits_is_scaled_by_its_maximum_and_said(tmp_path):
    values = np.arange(64 * 48, dtype=np.int32).reshape(48, 64) * 1000  # up to 3 071 000
    Image.fromarray(values).save(tmp_path / "i32.tif")
    photo = open_photo(tmp_path / "i32.tif")
    grey = np.asarray(photo.image)[..., 0].astype(int)
    assert grey.min() == 0 and grey.max() == 255 and abs(grey.mean() - 127.5) < 1  # not white
    assert any("32-bit grey values up to 3.071e+06" in w for w in photo.warnings)


def test_floating_point_grey_in_0_to_1_with_an_overshoot_is_read_as_0_to_1_and_said(tmp_path):
    """A float TIFF is 0–1 by convention; a few highlights above 1 (an overshoot) made it read
    as 0–255 — the photo nearly black, unsaid."""
    values = np.tile(np.linspace(0.0, 1.0, 64, dtype=np.float32), (48, 1))
    Image.fromarray(values, "F").save(tmp_path / "plain.tif")
    values[0, :8] = 1.25  # 8 of 3072 values: a quarter of a percent
    Image.fromarray(values, "F").save(tmp_path / "over.tif")
    plain, over = open_photo(tmp_path / "plain.tif"), open_photo(tmp_path / "over.tif")
    assert not plain.warnings
    grey = np.asarray(over.image)[..., 0].astype(int)
    assert np.array_equal(grey[1:], np.asarray(plain.image)[1:, :, 0])  # as the plain one
    assert grey[0, :8].tolist() == [255] * 8 and abs(grey.mean() - 127.5) < 2  # not black
    assert any(
        "floating-point grey values up to 1.25: read as 0–1, the 0.26% above 1 clipped" in w
        for w in over.warnings
    ), over.warnings


def test_floating_point_grey_overshoot_note_counts_a_few_values_and_skips_nan(tmp_path):
    """Five hot pixels in a 12-megapixel float TIFF were "the 0.00% above 1 clipped", and a
    NaN among the values made the note's maximum "up to nan": the count is given where the
    share rounds to nothing, the maximum is of the values that are numbers."""
    values = np.tile(np.linspace(0.0, 1.0, 4000, dtype=np.float32), (3000, 1))
    values[0, :5] = 1.1
    Image.fromarray(values, "F").save(tmp_path / "hot.tif")
    values[0, :5] = 1.0
    values[1, :4] = np.nan
    values[2, :8] = 1.5
    Image.fromarray(values, "F").save(tmp_path / "nan.tif")
    hot, nan = open_photo(tmp_path / "hot.tif"), open_photo(tmp_path / "nan.tif")
    assert any(
        "floating-point grey values up to 1.1: read as 0–1, the 5 values above 1 clipped" in w
        for w in hot.warnings
    ), hot.warnings
    assert any(
        "floating-point grey values up to 1.5: read as 0–1, the 8 values above 1 clipped" in w
        for w in nan.warnings
    ), nan.warnings


def test_floating_point_grey_far_above_1_stays_0_to_255(tmp_path):
    """A dark float photo written as 0–255 — a few stars on a black sky, under 1 % of it above
    1 — is no 0–1 photo with an overshoot: read as 0–255, not brightened 255 times."""
    values = np.full((48, 64), 0.5, dtype=np.float32)
    values[10, 10:15] = 200.0  # 5 of 3072 values
    Image.fromarray(values, "F").save(tmp_path / "stars.tif")
    photo = open_photo(tmp_path / "stars.tif")
    grey = np.asarray(photo.image)[..., 0].astype(int)
    assert grey[10, 10:15].tolist() == [200] * 5 and grey[0, 0] in (0, 1), grey[0, 0]
    assert not any("read as 0–1" in w for w in photo.warnings), photo.warnings


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def test_palette_with_transparency_and_grayscale(tmp_path):
    palette = pattern().convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    palette.info["transparency"] = 0
    palette.save(tmp_path / "p.png", transparency=0)
    image = load_photo(tmp_path / "p.png")
    assert image.mode == "RGB" and image.size == (48, 32)
    pattern().convert("L").save(tmp_path / "l.jpg")
    photo = open_photo(tmp_path / "l.jpg")
    assert photo.image.mode == "RGB"
    r, g, b = (np.asarray(photo.image)[..., i].astype(int) for i in range(3))
    assert np.array_equal(r, g) and np.array_equal(g, b)


def test_webp_metadata_is_carried(tmp_path):
    exif = Image.Exif()
    exif[0x010F] = "WebCam"
    exif[0x0112] = 6
    src = tmp_path / "p.webp"
    pattern().save(src, lossless=True, exif=exif.tobytes(), xmp=XMP, icc_profile=RGB_PROFILE)
    photo = open_photo(src)
    assert photo.image.size == (32, 48)
    data = encode_jpeg(photo.image, photo.metadata)
    with Image.open(io.BytesIO(data)) as written:
        assert written.getexif()[0x010F] == "WebCam"
        assert written.getexif()[0x0112] == 1
        assert written.info["icc_profile"] == RGB_PROFILE
        assert b"Ada Lovelace" in written.info["xmp"]


def test_tiff_exif_is_rebuilt_and_orientation_applied(tmp_path):
    exif = Image.Exif()
    exif[0x010F] = "ScanCo"
    exif[0x0112] = 8
    exif[0x8769] = {0x9003: "2001:02:03 04:05:06"}
    src = tmp_path / "p.tif"
    pattern().save(src, exif=exif.tobytes(), icc_profile=RGB_PROFILE)
    photo = open_photo(src)
    expected = pattern().transpose(UPRIGHT[8])
    assert np.array_equal(np.asarray(photo.image), np.asarray(expected))
    data = encode_jpeg(photo.image, photo.metadata)
    with Image.open(io.BytesIO(data)) as written:
        written_exif = written.getexif()
        assert written_exif[0x010F] == "ScanCo"
        assert written_exif[0x0112] == 1
        assert written_exif.get_ifd(0x8769)[0x9003] == "2001:02:03 04:05:06"
        assert 0x0111 not in written_exif  # no TIFF strip layout leaks into the EXIF
        assert written.info["icc_profile"] == RGB_PROFILE


def test_iptc_a_tiff_stores_as_longs_is_carried(tmp_path):
    """Photoshop and exiftool store a TIFF's IPTC (tag 33723) as LONGs: its bytes are the
    record, carried into the copy (they were read as a count of zero bytes: the caption and
    keywords lost)."""
    src = tmp_path / "scan.tif"
    pattern().save(src)
    subprocess.run(
        [tool("exiftool"), "-q", "-overwrite_original", "-IPTC:Caption-Abstract=Harbour at dusk",
         "-IPTC:Keywords=harbour", "-IPTC:City=Porto", str(src)],
        check=True,
    )  # fmt: skip
    with Image.open(src) as tif:
        assert tif.tag_v2.tagtype[33723] == 4  # as exiftool wrote it: LONG
    photo = open_photo(src)
    out = tmp_path / "copy.jpg"
    out.write_bytes(encode_jpeg(photo.image, photo.metadata))
    tags = exiftool_tags(out)
    assert tags.get("IPTC:Caption-Abstract") == "Harbour at dusk", tags
    assert tags.get("IPTC:Keywords") == "harbour" and tags.get("IPTC:City") == "Porto"


def test_heic_from_a_phone(tmp_path):
    pillow_heif = pytest.importorskip("pillow_heif")
    exif = Image.Exif()
    exif[0x010F] = "Apple"
    exif[0x0110] = "iPhone 15"
    exif[0x0112] = 6
    src = tmp_path / "IMG_0001.HEIC"
    pillow_heif.from_pillow(pattern(64, 48)).save(src, quality=95, exif=exif.tobytes(), xmp=XMP)
    photo = open_photo(src)
    assert photo.metadata.source_format == "HEIF"
    assert photo.image.size == (48, 64)  # upright, rotated once (by libheif, not twice)
    corner = np.asarray(photo.image)[:10, -6:]
    assert corner[..., 0].mean() > 180 and corner[..., 1].mean() < 90
    data = encode_jpeg(photo.image, photo.metadata)
    with Image.open(io.BytesIO(data)) as written:
        assert written.getexif()[0x0110] == "iPhone 15"
        assert written.getexif()[0x0112] == 1
        assert b"Ada Lovelace" in written.info["xmp"]


def cmyk_profile() -> bytes:
    """A small but real ICC v2 CMYK profile (lut16 A2B0) whose cyan is a deep blue, unlike the
    naive formula's (0, 255, 255): the test can tell a colour-managed conversion apart."""
    lab = ImageCms.buildTransform(
        ImageCms.createProfile("sRGB"), ImageCms.createProfile("LAB"), "RGB", "LAB"
    )
    corners = []
    for c in (0, 1):
        for m in (0, 1):
            for y in (0, 1):
                for k in (0, 1):
                    r, g, b = ((1 - c) * (1 - m), (1 - c / 2) * (1 - y), 1 - m)
                    corners.append([round(255 * v * (1 - k)) for v in (r, g, b)])
    labs = np.asarray(
        ImageCms.applyTransform(Image.fromarray(np.uint8([corners]), "RGB"), lab)
    ).reshape(-1, 3)
    signed = labs.view(np.int8).astype(int)  # Pillow keeps a* and b* as signed bytes
    labs = np.column_stack([labs[:, 0].astype(int), signed[:, 1:] + 128])
    clut = b"".join(
        struct.pack(">3H", round(L / 255 * 65280), a * 256, b * 256) for L, a, b in labs
    )
    identity = b"".join(s15(v) for v in (1, 0, 0, 0, 1, 0, 0, 0, 1))
    curves_in, curves_out = struct.pack(">2H", 0, 65535) * 4, struct.pack(">2H", 0, 65535) * 3
    lut = b"mft2" + bytes(4) + bytes((4, 3, 2, 0)) + identity + struct.pack(">HH", 2, 2)
    lut += curves_in + clut + curves_out
    return icc_profile(b"prtrCMYKLab ", "Test CMYK", [(b"A2B0", lut)])


def _p3_to_srgb(pixels: np.ndarray) -> np.ndarray:
    """The textbook conversion, independent of lcms: sRGB curve off, the linear P3 → sRGB
    matrix (both D65), clip, curve on."""
    v = pixels / 255.0
    linear = np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)
    matrix = np.array([[1.2249, -0.2249, 0.0], [-0.0421, 1.0421, 0.0], [-0.0196, -0.0786, 1.0983]])
    out = np.clip(linear @ matrix.T, 0, 1)
    out = np.where(out <= 0.0031308, out * 12.92, 1.055 * out ** (1 / 2.4) - 0.055)
    return np.round(out * 255)


def test_a_wide_gamut_photo_is_converted_to_srgb_and_tagged_so(tmp_path):
    # An iPhone's Display P3 photo: platforms convert it to sRGB before they serve it, so the
    # protection must be found (and judged) on the sRGB pixels, and the copy carry sRGB.
    colours = [(255, 0, 0), (0, 200, 0), (30, 60, 230), (250, 180, 20), (128, 128, 128)]
    image = Image.fromarray(np.uint8([[c for c in colours for _ in range(8)]] * 6), "RGB")
    image.save(tmp_path / "iphone.png", icc_profile=display_p3_profile())
    photo = open_photo(tmp_path / "iphone.png")
    got = np.asarray(photo.image, dtype=float)[3, ::8]
    assert np.abs(got - _p3_to_srgb(np.array(colours, dtype=float))).max() <= 2
    assert np.abs(got - np.array(colours)).max() >= 15  # converted: P3 numbers are not sRGB
    assert photo.metadata.icc_profile == SRGB_PROFILE
    assert any("converted from Display P3 to sRGB" in w for w in photo.warnings)
    # what a converting platform does to the copy changes nothing: it is sRGB already
    data = encode_jpeg(photo.image, photo.metadata, quality=100)
    with Image.open(io.BytesIO(data)) as written:
        assert written.info["icc_profile"] == SRGB_PROFILE
        served = ImageCms.profileToProfile(
            written, ImageCms.ImageCmsProfile(io.BytesIO(written.info["icc_profile"])),
            ImageCms.createProfile("sRGB"), outputMode="RGB",
        )  # fmt: skip
        moved = ImageChops.difference(served, written.convert("RGB")).getextrema()
        assert max(high for _low, high in moved) <= 1
    # an sRGB profile under another name is carried as it is, pixels untouched
    image.save(tmp_path / "camera.png", icc_profile=RGB_PROFILE)
    same = open_photo(tmp_path / "camera.png")
    assert same.metadata.icc_profile == RGB_PROFILE and same.warnings == []
    assert np.array_equal(np.asarray(same.image), np.asarray(image))


def _nclx_file(tmp_path: Path, kind: str, primaries: int, transfer: int = 13) -> Path:
    """Flat 16×16 colour blocks (they survive the codec) in a HEIC or AVIF whose colours are
    described by nclx code points, as phones and AVIF exporters write them (no ICC profile)."""
    colours = [(255, 0, 0), (0, 200, 0), (30, 60, 230), (250, 180, 20), (128, 128, 128)]
    image = Image.fromarray(np.uint8([[c for c in colours for _ in range(16)]] * 16), "RGB")
    path = tmp_path / f"p{primaries}-t{transfer}.{kind}"
    if kind == "heic":
        pytest.importorskip("pillow_heif")
        save_nclx_heic(image, path, primaries, transfer, quality=-1, chroma=444)
        return path
    if not features.check("avif"):
        pytest.skip("this Pillow has no AVIF codec")
    buffer = io.BytesIO()
    image.save(buffer, "AVIF", quality=100, subsampling="4:4:4")
    data = buffer.getvalue()
    at = data.index(b"colrnclx") + 8  # libavif writes sRGB's code points; name others instead
    assert data[at : at + 4] == struct.pack(">HH", 1, 13)
    path.write_bytes(data[:at] + struct.pack(">HH", primaries, transfer) + data[at + 4 :])
    return path


@pytest.mark.parametrize("kind", ["heic", "avif"])
def test_a_p3_heic_or_avif_described_by_nclx_is_converted_to_srgb(tmp_path, kind):
    # HEIC and AVIF files may say "Display P3" with nclx code points instead of an ICC profile;
    # read as sRGB numbers, the copy's colours (and its protection) would be off as an
    # untagged P3 PNG's were
    plain = open_photo(_nclx_file(tmp_path, kind, primaries=1))  # sRGB's: left as decoded
    assert plain.metadata.icc_profile is None and plain.warnings == []
    decoded = np.asarray(plain.image, dtype=float)[8, 8::16]
    p3 = open_photo(_nclx_file(tmp_path, kind, primaries=12))  # the same numbers, said to be P3
    got = np.asarray(p3.image, dtype=float)[8, 8::16]
    assert np.abs(got - _p3_to_srgb(decoded)).max() <= 2
    assert np.abs(got - decoded).max() >= 15  # converted
    # and as Apple's own Display P3 profile (its published colorants) converts them
    apple = ImageCms.profileToProfile(
        plain.image, ImageCms.ImageCmsProfile(io.BytesIO(display_p3_profile())),
        ImageCms.createProfile("sRGB"), outputMode="RGB",
        renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC,
    )  # fmt: skip
    assert ImageChops.difference(apple, p3.image).getextrema()[0][1] <= 1
    assert p3.metadata.icc_profile == SRGB_PROFILE and p3.metadata.converted_to_srgb
    assert any("converted from Display P3 (nclx) to sRGB" in w for w in p3.warnings)
    with Image.open(io.BytesIO(encode_jpeg(p3.image, p3.metadata))) as written:
        assert written.info["icc_profile"] == SRGB_PROFILE


def test_nclx_primaries_that_are_srgb_s_own_build_no_profile():
    from pixcamd.colour import profile_from_nclx

    bt709 = {"red": (0.64, 0.33), "green": (0.30, 0.60), "blue": (0.15, 0.06)}
    nclx = {
        f"color_primary_{c}_{a}": v
        for c, xy in bt709.items()
        for a, v in zip("xy", xy, strict=True)
    }
    nclx |= {"color_primary_white_x": 0.3127, "color_primary_white_y": 0.3290}
    # a code point other than 1 whose chromaticities are sRGB's: nothing to convert, no profile
    assert profile_from_nclx({**nclx, "color_primaries": 0, "transfer_characteristics": 13}) is None
    p3 = {**nclx, "color_primary_red_x": 0.680, "color_primary_red_y": 0.320}
    p3 |= {"color_primary_green_x": 0.265, "color_primary_green_y": 0.690}
    assert profile_from_nclx({**p3, "color_primaries": 12}) is not None
    assert profile_from_nclx({"color_primaries": 12}) is None  # no chromaticities given


@pytest.mark.parametrize("kind", ["heic", "avif"])
def test_an_hdr_heic_or_avif_is_refused_by_name(tmp_path, kind):
    path = _nclx_file(tmp_path, kind, primaries=9, transfer=16)  # BT.2020 primaries, PQ
    before = _fingerprint(path)
    with pytest.raises(PhotoError, match=r"an HDR photo \(PQ \(SMPTE 2084\) transfer\)"):
        open_photo(path)
    assert _fingerprint(path) == before
    # a BT.2020 SDR photo is converted like a P3 one
    sdr = open_photo(_nclx_file(tmp_path, kind, primaries=9, transfer=14))
    assert any("converted from BT.2020 (nclx) to sRGB" in w for w in sdr.warnings)


def test_cmyk_is_converted_to_srgb_with_its_profile(tmp_path):
    cmyk = Image.new("CMYK", (16, 8), (255, 0, 0, 0))  # pure cyan ink
    cmyk.paste((0, 0, 0, 0), (8, 0, 16, 8))  # and bare paper
    cmyk.save(tmp_path / "managed.jpg", quality=100, icc_profile=cmyk_profile())
    cmyk.save(tmp_path / "plain.jpg", quality=100)
    managed = open_photo(tmp_path / "managed.jpg")
    plain = open_photo(tmp_path / "plain.jpg")
    cyan, paper = np.asarray(managed.image)[4, 2], np.asarray(managed.image)[4, 12]
    assert paper.min() >= 250  # white stays white
    assert cyan[2] > 200 and cyan[1] < 170  # the profile's blue-ish cyan, not (0, 255, 255)
    assert np.asarray(plain.image)[4, 2, 1] > 240  # naive formula
    assert any("CMYK without an ICC profile" in w for w in plain.warnings)
    assert managed.metadata.icc_profile == SRGB_PROFILE  # the copy is tagged sRGB
    with Image.open(io.BytesIO(encode_jpeg(managed.image, managed.metadata))) as written:
        assert written.mode == "RGB" and written.info["icc_profile"] == SRGB_PROFILE


# ---------------------------------------------------------------------------------------------
# Bad input: a clear, specific error, and the original untouched


def _fingerprint(path: Path) -> tuple:
    stat = path.stat()
    return path.read_bytes(), stat.st_mtime_ns, stat.st_mode


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.jpg", b"", r"empty file \(0 bytes\)"),
        ("notes.jpg", b"shopping list: eggs, milk\n" * 4, "not an image: the file holds text"),
        ("noise.jpg", bytes(range(7, 250)) * 3, "not an image file"),
        ("half.jpg", jpeg_bytes(pattern(300, 200))[:1500], "truncated"),
        ("headers.jpg", jpeg_bytes(pattern(300, 200))[:300], "the file is truncated"),
        # cut, then closed with an end marker: Pillow alone decodes the rest as grey
        ("cut.jpg", jpeg_bytes(pattern(300, 200))[:1500] + b"\xff\xd9", "premature end"),
        (
            "cut_progressive.jpg",
            jpeg_bytes(pattern(300, 200), progressive=True)[:-600] + b"\xff\xd9",
            "the file is truncated",
        ),
        (
            "odd.tif",
            b"II*\x00" + bytes(100),
            "a TIFF that cannot be decoded here: damaged, or of a kind",
        ),
        ("broken.jpg", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(40), "damaged JPEG"),
    ],
)
def test_bad_files_get_a_specific_error_and_stay_untouched(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    before = _fingerprint(path)
    with pytest.raises(PhotoError, match=message):
        open_photo(path)
    assert _fingerprint(path) == before


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(PhotoError, match="no such file"):
        open_photo(tmp_path / "nope.jpg")
    with pytest.raises(PhotoError, match="not a regular file"):
        open_photo(tmp_path)


def test_enormous_dimensions_are_refused_before_decoding(tmp_path):
    data = bytearray(jpeg_bytes(pattern(16, 16)))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", 60000, 60000)  # 3.6 gigapixels claimed
    path = tmp_path / "bomb.jpg"
    path.write_bytes(bytes(data))
    with pytest.raises(PhotoError, match="3,600,000,000 pixels is over the limit"):
        open_photo(path)
    pattern(100, 100).save(tmp_path / "small.png")
    with pytest.raises(PhotoError, match="over the limit of 5,000 pixels"):
        open_photo(tmp_path / "small.png", max_pixels=5000)
    assert open_photo(tmp_path / "small.png", max_pixels=10_000).image.size == (100, 100)


def test_a_webp_cut_short_is_said_to_be_truncated(tmp_path):
    whole = io.BytesIO()
    pattern(300, 200).save(whole, "WEBP", quality=80)
    path = tmp_path / "cut.webp"
    path.write_bytes(whole.getvalue()[: len(whole.getvalue()) // 2])
    with pytest.raises(PhotoError, match="the file is truncated, its data ends early"):
        open_photo(path)


def test_a_size_claim_larger_than_the_data_is_refused_as_truncated(tmp_path):
    data = bytearray(jpeg_bytes(pattern(64, 48)))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", 6000, 8000)  # 48 MP claimed, 64×48 px of data
    path = tmp_path / "claim.jpg"
    path.write_bytes(bytes(data))
    with pytest.raises(PhotoError, match="the file is truncated"):
        open_photo(path)


def test_broken_exif_keeps_the_pixels_and_the_rest(tmp_path):
    exif = bytearray(camera_exif(orientation=1, thumbnail=None))
    order = "<" if exif[6:8] == b"II" else ">"
    ifd0 = 6 + struct.unpack(order + "I", exif[10:14])[0]
    exif[ifd0 : ifd0 + 2] = struct.pack(order + "H", 900)  # IFD0 claims 900 entries
    data = jpeg_bytes(pattern(), exif=bytes(exif), icc_profile=RGB_PROFILE)
    data = insert_segments(data, segment(0xE1, b"http://ns.adobe.com/xap/1.0/\x00" + XMP))
    path = tmp_path / "bad_exif.jpg"
    path.write_bytes(data)
    photo = open_photo(path)
    assert photo.image.size == (48, 32)
    assert any("EXIF IFD0 damaged" in w for w in photo.warnings)
    written = encode_jpeg(photo.image, photo.metadata)
    with Image.open(io.BytesIO(written)) as out:
        assert out.info["icc_profile"] == RGB_PROFILE
        assert b"Ada Lovelace" in out.info["xmp"]
        assert out.getexif()[0x010F] == "Pixcam"  # the readable entries were kept

    exif[10:14] = struct.pack(order + "I", 10**6)  # IFD0 outside the block: nothing to keep
    path.write_bytes(jpeg_bytes(pattern(), exif=bytes(exif)))
    photo = open_photo(path)
    assert any(w.startswith("EXIF unreadable, dropped") for w in photo.warnings)
    with Image.open(io.BytesIO(encode_jpeg(photo.image, photo.metadata))) as out:
        assert "exif" not in out.info


# ---------------------------------------------------------------------------------------------
# Output


def test_encoding_matches_the_checked_pixels():
    """The writer's scan data are the ones pixcamd.jpeg.encode produced for the checks."""
    from pixcamd.jpeg import encode

    image = pattern(64, 40)
    for quality, subsampling in ((95, "4:4:4"), (90, "4:2:0")):
        ours = encode_jpeg(image, None, quality, subsampling)
        assert split_jpeg(ours)[1] == split_jpeg(encode(image, quality, subsampling))[1]


def test_quality_and_subsampling_are_validated_and_applied(tmp_path):
    image = pattern()
    with pytest.raises(OutputError, match="quality"):
        encode_jpeg(image, quality=0)
    with pytest.raises(OutputError, match="subsampling"):
        encode_jpeg(image, subsampling="4:1:1")
    with Image.open(io.BytesIO(encode_jpeg(image, subsampling="4:2:0"))) as img:
        assert img.layer[0][1:3] == (2, 2)
    with Image.open(io.BytesIO(encode_jpeg(image))) as img:
        assert img.layer[0][1:3] == (1, 1)  # default 4:4:4


def test_write_is_atomic_and_never_shows_a_temp_file_in_the_outbox(tmp_path, monkeypatch):
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    dest = outbox / "photo.jpg"
    dest.write_bytes(b"previous version")
    seen = []
    real_replace = os.replace

    def spy(src, dst):
        seen.append((Path(src), sorted(p.name for p in outbox.iterdir())))
        return real_replace(src, dst)

    monkeypatch.setattr(output_module.os, "replace", spy)
    write_jpeg(pattern(), dest)
    (tmp_file, outbox_listing) = seen[0]
    assert tmp_file.parent == tmp_path  # the folder above the outbox
    assert outbox_listing == ["photo.jpg"]
    assert dest.read_bytes()[:2] == b"\xff\xd8"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["outbox"]  # temp file gone
    assert dest.stat().st_mode & 0o777 == 0o666 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_failed_write_leaves_the_old_file_and_no_debris(tmp_path, monkeypatch):
    dest = tmp_path / "outbox" / "photo.jpg"
    dest.parent.mkdir()
    dest.write_bytes(b"previous version")

    def broken_fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(output_module.os, "fsync", broken_fsync)
    with pytest.raises(OutputError, match="No space left"):
        write_jpeg(pattern(), dest)
    assert dest.read_bytes() == b"previous version"
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["outbox", "photo.jpg"]


def test_tmp_dir_option_and_its_checks(tmp_path):
    staging = tmp_path / "staging"
    staging.mkdir()
    dest = tmp_path / "new" / "deep" / "photo.jpg"  # missing folders are created
    write_jpeg(pattern(), dest, tmp_dir=staging)
    assert dest.is_file() and list(staging.iterdir()) == []
    with pytest.raises(OutputError, match="does not exist"):
        write_jpeg(pattern(), dest, tmp_dir=tmp_path / "missing")
    with pytest.raises(OutputError, match="is a folder"):
        write_jpeg(pattern(), tmp_path / "new")


def test_a_staging_folder_on_another_filesystem_is_refused(tmp_path):
    shm = Path("/dev/shm")
    if (
        not (shm.is_dir() and os.access(shm, os.W_OK))
        or shm.stat().st_dev == tmp_path.stat().st_dev
    ):
        pytest.skip("no writable /dev/shm on another filesystem than the temp folder")
    with pytest.raises(OutputError, match="different filesystems"):
        write_jpeg(pattern(), tmp_path / "photo.jpg", tmp_dir=shm)


def test_plain_image_without_metadata():
    data = encode_jpeg(pattern())
    with Image.open(io.BytesIO(data)) as img:
        assert img.size == (48, 32) and "exif" not in img.info
        assert img.info["jfif_version"] == (1, 1)


def test_an_avif_is_turned_upright_by_its_exif(tmp_path):
    if not features.check("avif"):  # Image.SAVE lists AVIF only once Pillow loaded its plugins
        pytest.skip("this Pillow cannot write AVIF")
    exif = Image.Exif()
    exif[0x0112] = 8
    pattern(64, 48).save(tmp_path / "p.avif", quality=90, exif=exif.tobytes())
    photo = open_photo(tmp_path / "p.avif")
    assert photo.image.size == (48, 64)  # turned once, by us, from the EXIF
    corner = np.asarray(photo.image)[-10:, :6]  # orientation 8: top-left → bottom-left
    assert corner[..., 0].mean() > 180 and corner[..., 1].mean() < 90


def test_gif_and_bmp(tmp_path):
    frames = [pattern(), pattern().transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:])
    gif = open_photo(tmp_path / "a.gif")
    assert gif.image.size == (48, 32) and any("1 further frames" in w for w in gif.warnings)
    pattern().save(tmp_path / "p.bmp")
    assert np.array_equal(np.asarray(load_photo(tmp_path / "p.bmp")), np.asarray(pattern()))
    pattern().save(tmp_path / "dpi.png", dpi=(300, 300))
    with Image.open(io.BytesIO(encode_jpeg(*_open(tmp_path / "dpi.png")))) as img:
        assert img.info["dpi"] == (300, 300)


def _open(path: Path):
    photo = open_photo(path)
    return photo.image, photo.metadata
