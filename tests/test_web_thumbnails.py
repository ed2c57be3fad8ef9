"""The photo list's thumbnails of large JPEGs, decoded small by libjpeg itself: over real HTTP
on 127.0.0.1 (the world's failed photo, which has no copy, replaced by the file under test),
against the whole decode's thumbnail as the page made it before — upright, the same size, the
same sRGB colours — and a broken file refused with the same words."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import piexif
import pytest
from iccprofiles import display_p3_profile
from PIL import Image
from web_support import Client, ids, serving

from pixcamd.errors import PhotoError
from pixcamd.photo import load_photo
from pixcamd.web.files import THUMB_SIDE

# Six colour fields, two across and three down, in the photo as a person sees it: any turn or
# flip of the picture moves at least one of them.
FIELDS = [
    (200, 40, 40), (40, 160, 60),
    (50, 70, 200), (230, 190, 40),
    (120, 120, 120), (40, 200, 210),
]  # fmt: skip


def upright_fields(width: int = 4000, height: int = 6000) -> Image.Image:
    """The fields, each with a gentle ramp across it (smooth: resampling moves it little)."""
    x = np.arange(width)
    pixels = np.zeros((height, width, 3), np.float32)
    for n, colour in enumerate(FIELDS):
        row, col = divmod(n, 2)
        top, left = row * height // 3, col * width // 2
        pixels[top : top + height // 3, left : left + width // 2] = colour
    pixels += ((x % 400) / 400 * 20 - 10)[None, :, None]
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")


def sideways_jpeg(path: Path, **options) -> Path:
    """A 24 MP camera JPEG stored on its side (6000×4000) with EXIF orientation 6, as a camera
    held upright writes it."""
    stored = upright_fields().transpose(Image.Transpose.ROTATE_90)  # orientation 6 undoes it
    exif = piexif.dump({"0th": {piexif.ImageIFD.Orientation: 6}})
    stored.save(path, quality=92, exif=exif, **options)
    return path


def whole_decode_thumbnail(path: Path) -> Image.Image:
    """The thumbnail as the page made it before: the whole photo decoded, then shrunk."""
    image = load_photo(path)
    image.thumbnail((THUMB_SIDE, THUMB_SIDE))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=80)
    return Image.open(buffer).convert("RGB")


def grid(image: Image.Image) -> np.ndarray:
    """16×16 cell means: colours compared where a resampler's edges do not count."""
    return np.asarray(image.resize((16, 16), Image.Resampling.BOX), dtype=float)


class Page:
    """The page served against a world; ``thumbnail`` puts a file in place of the failed
    photo (a new file: a new cache key) and asks for its thumbnail."""

    def __init__(self, config, web: Client):
        self.inbox, self.web, self.id = config.inbox, web, ids(config)["bad.jpg"]

    def thumbnail(self, source: Path) -> tuple[int, bytes]:
        staged = self.inbox / ".staged"
        staged.write_bytes(source.read_bytes())
        os.replace(staged, self.inbox / "bad.jpg")
        status, headers, body = self.web.get(f"/photos/{self.id}/thumb.jpg")
        assert status != 200 or headers["content-type"] == "image/jpeg"
        return status, body


@pytest.fixture
def page(world):
    with serving(world) as server:
        yield Page(world, Client(server.url))


def picture(body: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(body))
    image.load()
    return image.convert("RGB")


def test_a_large_jpeg_is_decoded_small_upright_and_as_the_whole_photo(tmp_path):
    path = sideways_jpeg(tmp_path / "camera.jpg")
    small = load_photo(path, reduce_to=2 * THUMB_SIDE)
    # 1/8 of the upright 4000×6000: the long side still twice the thumbnail's
    assert small.size == (500, 750)
    whole = load_photo(path)
    assert whole.size == (4000, 6000)
    shrunk = whole.resize(small.size, Image.Resampling.BOX)
    assert np.abs(grid(small) - grid(shrunk)).max() <= 2  # upright: the fields in place
    # a reduced decode as large as the photo's own is the whole photo
    assert load_photo(path, reduce_to=4000).size == (4000, 6000)
    upright_fields(400, 600).save(tmp_path / "camera.png")  # other formats: decoded whole
    assert load_photo(tmp_path / "camera.png", reduce_to=THUMB_SIDE).size == (400, 600)


def test_the_thumbnail_of_a_turned_24_mp_jpeg_is_upright_and_full_size(page, tmp_path):
    path = sideways_jpeg(tmp_path / "camera.jpg")
    status, body = page.thumbnail(path)
    thumb = picture(body)
    assert status == 200 and thumb.size == (213, THUMB_SIDE)
    before = whole_decode_thumbnail(path)
    assert before.size == thumb.size
    assert np.abs(grid(thumb) - grid(before)).max() <= 2
    for n, colour in enumerate(FIELDS):  # each field where a person sees it
        row, col = divmod(n, 2)
        centre = thumb.getpixel((round((col + 0.5) * 213 / 2), round((row + 0.5) * 320 / 3)))
        assert np.abs(np.subtract(centre, colour)).max() <= 6, (n, centre, colour)


def test_the_thumbnail_of_a_display_p3_jpeg_has_the_whole_decode_s_srgb_colours(page, tmp_path):
    path = sideways_jpeg(tmp_path / "iphone.jpg", icc_profile=display_p3_profile())
    status, body = page.thumbnail(path)
    thumb, before = picture(body), whole_decode_thumbnail(path)
    assert status == 200 and thumb.size == before.size == (213, THUMB_SIDE)
    assert np.abs(grid(thumb) - grid(before)).max() <= 2
    # and those are converted colours: the file's own numbers are well away from them
    raw = Image.open(path)
    raw = raw.transpose(Image.Transpose.ROTATE_270).resize(thumb.size, Image.Resampling.BOX)
    assert np.abs(grid(raw) - grid(before)).max() >= 15


def _cut(data: bytes) -> bytes:
    return data[: len(data) // 2]


@pytest.mark.parametrize(
    ("name", "damage", "said"),
    [
        ("half.jpg", _cut, "the file is truncated, its data ends early"),
        # closed with an end marker: libjpeg alone would decode the rest grey, scaled or not
        ("closed.jpg", lambda d: _cut(d) + b"\xff\xd9", "premature end"),
        ("progressive.jpg", lambda d: d[: -len(d) // 3] + b"\xff\xd9", "the file is truncated"),
    ],
)
def test_the_thumbnail_of_a_cut_24_mp_jpeg_is_refused_as_the_photo_is(
    page, tmp_path, name, damage, said
):
    whole = sideways_jpeg(tmp_path / "whole.jpg", progressive=name.startswith("progressive"))
    path = tmp_path / name
    path.write_bytes(damage(whole.read_bytes()))
    with pytest.raises(PhotoError, match=said) as refused:
        load_photo(path)
    with pytest.raises(type(refused.value)) as small:
        load_photo(path, reduce_to=2 * THUMB_SIDE)
    assert str(small.value) == str(refused.value)
    status, body = page.thumbnail(path)
    # the page names its own copy of the file; the words after the name are the photo's
    words = str(refused.value).split(": ", 1)[1]
    assert status == 422 and body.decode().endswith(f": {words}\n"), body


def test_real_camera_jpegs_get_the_thumbnail_of_their_whole_decode(page, corpus_dir):
    names = ["photos/seeding_by_Clements_Engelhardt.jpg", "photos/Dragonfly_by_Bolly.jpg"]
    names += ["photos/Wine_by_Jakkub_Mede.jpg", "camera/plasma_Kite.jpg"]  # upright; ICC
    for name in names:
        path = corpus_dir / name
        status, body = page.thumbnail(path)
        thumb, before = picture(body), whole_decode_thumbnail(path)
        assert status == 200 and max(thumb.size) == max(before.size) == THUMB_SIDE, name
        # the short side rounded from the reduced decode's size: 213.5 px may come out 213
        assert abs(min(thumb.size) - min(before.size)) <= 1, name
        cells = np.abs(grid(thumb) - grid(before))
        assert cells.mean() <= 1 and cells.max() <= 6, (name, cells.mean(), cells.max())


def test_a_cache_of_the_page_s_images_open_to_others_is_closed_at_its_next_image(world):
    """A web-cache made 0755 before pixcamd made it its user's alone (an upgrade), its images
    the inbox's pixels: closed at the page's next image, and what is made in it with it."""
    cache = world.state_dir / "web-cache"
    cache.mkdir(mode=0o755, exist_ok=True)
    os.chmod(cache, 0o755)
    with serving(world) as server:
        status, _, body = Client(server.url).get(f"/photos/{ids(world)['noise.jpg']}/thumb.jpg")
    assert status == 200, body
    assert [p.stat().st_mode & 0o777 for p in cache.iterdir()]  # made there
    assert cache.stat().st_mode & 0o777 == 0o700


def test_a_cache_left_open_is_closed_when_the_page_starts_though_no_image_is_made(world):
    """An older pixcamd's web-cache, 0755 with its images in it: every image the page serves
    from it was made before, so it was closed only once a new photo's image was made — until
    then any account on the machine could read the full-size originals in it."""
    cache = world.state_dir / "web-cache"
    thumb = f"/photos/{ids(world)['noise.jpg']}/thumb.jpg"
    with serving(world) as server:
        assert Client(server.url).get(thumb)[0] == 200
    made = {p.name: p.stat().st_ino for p in cache.iterdir()}
    os.chmod(cache, 0o755)  # as an older pixcamd left it
    with serving(world) as server:
        status, _, body = Client(server.url).get(thumb)
    assert status == 200, body
    assert {p.name: p.stat().st_ino for p in cache.iterdir()} == made  # served, not made again
    assert cache.stat().st_mode & 0o777 == 0o700
