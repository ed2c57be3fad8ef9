"""A photo's metadata, read from any input format and made ready for the protected JPEG.

What is carried (docs/photo-io.md has the reasons): EXIF, XMP, the ICC profile, IPTC (inside the
Photoshop APP13 resources), JPEG comments and the JFIF density. Everything else an input may
hold (FlashPix, MPF secondary images, JFXX thumbnails, vendor APPn segments, extended XMP) is
dropped: these segments are where unprotected copies of the photo hide.

One module per block, below the one that puts them together:

* ``segments`` — JPEG marker segments, the JFIF header, JPEG streams hidden in other blocks;
* ``exif`` — the TIFF structure, never re-serialised: patched in place so maker notes' absolute
  offsets stay valid;
* ``xmp`` — targeted edits of the packet's text;
* ``irb`` — Photoshop image resources, where IPTC lives;
* ``carry`` — ``PhotoMetadata``, the documented set of tags a copy may change, and the reading
  and writing of a JPEG's header segments.
"""

from pixcamd.metadata.carry import (
    PhotoMetadata,
    is_changed_tag,
    jpeg_parts,
    output_segments,
)
from pixcamd.metadata.exif import (
    EXIF_IFD,
    GPS_IFD,
    ORIENTATION,
    check_exif,
    exif_orientation,
    patch_exif,
    repair_exif,
    tiff_tag_bytes,
    tiff_tags_bytes,
)
from pixcamd.metadata.irb import iptc_as_irb, parse_irb
from pixcamd.metadata.segments import (
    EXIF_HEADER,
    Jfif,
    MetadataError,
    embedded_jpegs,
    read_jpeg_segments,
    split_jpeg,
)
from pixcamd.metadata.xmp import patch_xmp

__all__ = [
    "EXIF_HEADER",
    "EXIF_IFD",
    "GPS_IFD",
    "ORIENTATION",
    "Jfif",
    "MetadataError",
    "PhotoMetadata",
    "check_exif",
    "embedded_jpegs",
    "exif_orientation",
    "iptc_as_irb",
    "is_changed_tag",
    "jpeg_parts",
    "output_segments",
    "parse_irb",
    "patch_exif",
    "patch_xmp",
    "read_jpeg_segments",
    "repair_exif",
    "split_jpeg",
    "tiff_tag_bytes",
    "tiff_tags_bytes",
]
