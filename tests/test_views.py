"""Views: the task's centre crop, a thumbnailer's resize, and tiles that cover the photo."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from pixcamd.photo import to_image, to_tensor
from pixcamd.views import make_views, parse_views


def photo(width: int, height: int, seed: int = 0) -> Image.Image:
    """A textured test photo: smooth gradients plus noise, so crops and resizes are visible."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x / width, y / height, (x + y) / (width + height)], axis=-1) * 200
    noisy = base + rng.normal(0, 20, base.shape)
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8), "RGB")


def test_center_is_the_task_crop_at_native_resolution():
    img = photo(1001, 777)
    views, batch = make_views(to_tensor(img), ["center"])
    left, top = (1001 - 512) // 2, (777 - 384) // 2
    assert views[0].box == (left, top, 512, 384)
    expected = to_tensor(img.crop((left, top, left + 512, top + 384)))
    assert torch.equal(batch, expected)


@pytest.mark.parametrize("size", [(2048, 1536), (3000, 1500), (1200, 2000)])
def test_resize_matches_a_thumbnailer(size):
    img = photo(*size)
    views, batch = make_views(to_tensor(img), ["resize"])
    thumb = to_tensor(ImageOps.fit(img, (512, 384), Image.Resampling.BICUBIC))
    assert batch.shape == (1, 3, 384, 512)
    # Antialiased bicubic in torch vs Pillow: the same filter, up to rounding and box edges.
    assert (batch - thumb).abs().mean() < 2 / 255
    box_w, box_h = views[0].box[2:]
    assert abs(box_w / box_h - 4 / 3) < 0.01


@pytest.mark.parametrize(("width", "height"), [(4352, 2448), (2560, 3837), (1030, 390), (512, 384)])
def test_tiles_cover_every_pixel_on_the_jpeg_grid(width, height):
    views, batch = make_views(torch.zeros(1, 3, height, width), ["tiles"])
    assert len(views) == math.ceil(width / 512) * math.ceil(height / 384)
    assert batch.shape[1:] == (3, 384, 512)
    covered = np.zeros((height, width), bool)
    lefts, tops = set(), set()
    for v in views:
        left, top, w, h = v.box
        covered[top : top + h, left : left + w] = True
        lefts.add(left)
        tops.add(top)
        assert v.label == f"tile@{left},{top}"
    assert covered.all()
    for origins, last in ((sorted(lefts), width - 512), (sorted(tops), height - 384)):
        assert origins[-1] == last
        assert all(o % 16 == 0 for o in origins[:-1])


@pytest.mark.parametrize(("width", "height"), [(300, 200), (100, 900), (511, 384), (64, 48)])
def test_photos_smaller_than_a_view_are_enlarged_never_a_crash(width, height):
    views, batch = make_views(to_tensor(photo(width, height)), ["center", "resize", "tiles"])
    assert batch.shape[1:] == (3, 384, 512)
    assert batch.min() >= 0 and batch.max() <= 1
    assert [v.label for v in views][:2] == ["center", "resize"]


def test_a_photo_of_exactly_view_size_is_every_view():
    t = to_tensor(photo(512, 384))
    _, batch = make_views(t, ["center", "resize", "tiles"])
    assert batch.shape[0] == 3
    for view in batch:
        assert torch.equal(view, t[0])


def test_gradients_reach_the_full_resolution_photo():
    t = to_tensor(photo(1600, 1000)).requires_grad_(True)
    _, batch = make_views(t, ["center", "resize"])
    batch[1].sum().backward()
    # The 4:3 box of a 1600×1000 photo spans columns 133…1466: far outside the centre crop.
    assert t.grad is not None and (t.grad[..., 140:200] != 0).any()
    assert (t.grad[..., :130] == 0).all()


def test_round_trip_to_an_image_is_lossless():
    img = photo(64, 48)
    assert np.array_equal(np.asarray(to_image(to_tensor(img))), np.asarray(img))


@pytest.mark.parametrize("text", ["", "center,", "middle", "center,thumb"])
def test_unknown_views_are_refused(text):
    with pytest.raises(ValueError, match="choose from center, resize, tiles"):
        parse_views(text)


def test_parse_views_keeps_order_and_drops_repeats():
    assert parse_views("resize, center,resize") == ("resize", "center")
    assert parse_views("Resize,CENTRE,center") == ("resize", "center")
