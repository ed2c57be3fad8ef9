"""XMP: targeted edits of the packet's text (a parse/serialise round trip would rewrite it)."""

from __future__ import annotations

import bisect
import re

from pixcamd.metadata.segments import XMP_MAX

NS_TIFF = "http://ns.adobe.com/tiff/1.0/"
NS_EXIF = "http://ns.adobe.com/exif/1.0/"
NS_XMP = "http://ns.adobe.com/xap/1.0/"
NS_XMP_NOTE = "http://ns.adobe.com/xmp/note/"
NS_XMP_GIMG = "http://ns.adobe.com/xap/1.0/g/img/"  # xmpGImg:image, a base64 JPEG
# Images of the original carried as base64 text — a phone's portrait-mode photo (GImage) and
# depth map (GDepth) — and the pointers into a trailer no copy carries (motion photos, the
# container directory of the images appended after the photo): never in a protected copy.
NS_GOOGLE_IMAGES = (
    "http://ns.google.com/photos/1.0/image/",
    "http://ns.google.com/photos/1.0/depthmap/",
    "http://ns.google.com/photos/1.0/container/",
    "http://ns.google.com/photos/1.0/container/item/",
)
NS_GCAMERA = "http://ns.google.com/photos/1.0/camera/"
# (namespace, property names) removed as images of the original or pointers to them
IMAGE_PROPERTIES = (
    (NS_XMP_GIMG, "image"),  # an xmpGImg:image anywhere (page images are said on their own)
    *((uri, r"[\w.-]+") for uri in NS_GOOGLE_IMAGES),
    (NS_GCAMERA, r"(?:MicroVideo|MotionPhoto)\w*"),
)
# Where a position is, whatever a namespace calls it: EXIF's GPS…, DJI's Latitude, Darwin
# Core's decimalLatitude, a camera pose's EarthPosLatitude (exiftool's Location group)
POSITION_NAMES = r"(?:(?:GPS|Gps|gps)\w*|\w*(?:[Ll]atitude|[Ll]ongitude|[Aa]ltitude)\w*)"


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


def _remove_properties(
    text: str, prefix_pattern: str, name_pattern: str, mark: str = ""
) -> tuple[str, int]:
    """Remove properties (attribute or element form) whose qualified name matches; an element
    leaves ``mark`` in its place (``_prune_emptied`` finds what it emptied by it)."""
    qname = f"{prefix_pattern}:{name_pattern}"
    n_total = 0
    # [^<>] rather than [^>]: a start that cannot close its tag stops at the next tag, so a
    # packet of many unclosed starts costs linear time, not quadratic
    for pattern, by in (
        (rf"\s{qname}\s*=\s*([\"']).*?\1", ""),  # attribute
        (rf"<({qname})\b[^<>]*?/>", mark),  # empty element
    ):
        text, n = re.subn(pattern, by, text, flags=re.DOTALL)
        n_total += n
    text, n = _remove_elements(text, qname, mark)
    return text, n_total + n


def _remove_elements(text: str, qname: str, mark: str) -> tuple[str, int]:
    """Elements with content, each from its start tag to the first end tag of its name after
    it (what ``<q>.*?</q>`` matches for a well-formed name), found in one pass over the starts
    and the ends: a regex scan from every start that never closes took quadratic time on a
    crafted packet."""
    starts = list(re.finditer(rf"<({qname})\b[^<>]*?>", text))
    if not starts:
        return text, 0
    ends: dict[str, list[tuple[int, int]]] = {}
    for end in re.finditer(rf"</({qname})\s*>", text):
        ends.setdefault(end.group(1), []).append((end.start(), end.end()))
    out, pos, n = [], 0, 0
    for start in starts:
        closing = ends.get(start.group(1), [])
        i = bisect.bisect_left(closing, (start.end(), 0))
        if start.start() < pos or i == len(closing):
            continue  # inside one already removed, or never closed
        out += [text[pos : start.start()], mark]
        pos = closing[i][1]
        n += 1
    return "".join(out) + text[pos:], n


GONE = "\x00"  # where a property was removed (no XMP text holds a NUL)
# attributes that are structure, not fields: an element with only these is empty of fields
_STRUCTURAL = (
    r"""(?:\s+(?:rdf:about|rdf:parseType|xmlns(?::[\w.-]+)?)\s*=\s*(?:"[^"]*"|'[^']*'))*\s*"""
)
_ONLY_GONE = r"\s*\x00(?:\s*\x00)*\s*"  # one way to match: no backtracking blow-up
_EMPTIED = (
    # a description whose only fields, attributes, were removed: <rdf:Description/>
    r"<rdf:Description\s*/>",
    # an element that held nothing but removed properties (an IPTC LocationShown item, then its
    # rdf:Bag, then the LocationShown itself); never the packet's own rdf:RDF or x:xmpmeta
    # — and only one without fields of its own in attributes (a Description holding a rating
    # and a creator tool beside a removed element keeps them, and itself)
    rf"<(?!rdf:RDF\b|x:xmpmeta\b)([\w.-]+:[\w.-]+)\b{_STRUCTURAL}>{_ONLY_GONE}</\1\s*>",
)


PRUNE_LEVELS = 32  # XMP nests a few levels; a crafted packet nests thousands (a pass each)


def _prune_emptied(text: str) -> str:
    """What removing properties left empty (IPTC's LocationShown / LocationCreated items that
    held only coordinates), inside out, so no empty structure remains where a position was;
    structures that were empty before are left as they were. The marks go too."""
    for _ in range(PRUNE_LEVELS):
        pruned = text
        for pattern in _EMPTIED:
            pruned = re.sub(pattern, GONE, pruned, flags=re.DOTALL)
        if pruned == text:
            break
        text = pruned
    return text.replace(GONE, "")


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
        text, n = _remove_properties(text, re.escape(prefix), "PageInfo", GONE)
        if n:
            notes.append(
                "XMP page images (xmp:PageInfo) removed: they showed the unprotected photo"
            )
    images = 0
    for uri, names in IMAGE_PROPERTIES:
        for prefix in _prefixes(text, uri):
            text, n = _remove_properties(text, re.escape(prefix), names, GONE)
            images += n
    if images:
        notes.append(
            f"XMP images of the original and pointers to them removed (portrait, depth map, "
            f"motion photo: {images} properties): they showed the unprotected photo"
        )
    for prefix in _prefixes(text, NS_XMP_NOTE):
        text, n = _remove_properties(text, re.escape(prefix), "HasExtendedXMP")
        if n:
            notes.append("XMP HasExtendedXMP removed (it points at the extended XMP left out)")
    if strip_gps:
        text, n = _remove_properties(text, r"[\w.-]+", POSITION_NAMES, GONE)
        if n:
            notes.append(f"XMP GPS properties removed (strip_gps): {n}")
    if GONE in text:
        text = _prune_emptied(text)
    data = text.encode("utf-8")
    if len(data) > XMP_MAX:  # drop the packet's whitespace padding before giving up
        data = re.sub(rb"(</x:xmpmeta>)\s+(<\?xpacket end)", rb"\1\n\2", data)
    if len(data) > XMP_MAX:
        return None, [*notes, f"XMP of {len(data)} bytes is over the JPEG limit and was dropped"]
    return data, notes
