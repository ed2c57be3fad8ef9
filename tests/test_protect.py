"""``protect()`` on real pixels, judged by a real Pillow JPEG-90 of the encoded output."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from tinybiqa import synthetic_photo

from pixcamd.protect import Settings, protect
from pixcamd.scoring import score_image


def judged_after_jpeg90(result, model, views) -> dict[str, float]:
    """Score the output bytes as a platform + BIQA would, independently of protect()."""
    with Image.open(io.BytesIO(result.output_jpeg)) as f:
        assert f.format == "JPEG"
        written = f.convert("RGB")
    return {v.view: v.score for v in score_image(written, model, views, jpeg_quality=90).views}


@pytest.fixture(scope="module")
def dragonfly_crop(corpus_dir):
    with Image.open(corpus_dir / "photos" / "Dragonfly_by_Bolly.jpg") as img:
        left, top = (img.width - 1024) // 2, (img.height - 768) // 2
        return img.convert("RGB").crop((left, top, left + 1024, top + 768))


def test_protects_a_real_photo_against_brisque(dragonfly_crop, brisque):
    views = ("center", "resize")
    before = {v.view: v.score for v in score_image(dragonfly_crop, brisque, views).views}
    assert all(s < brisque.threshold for s in before.values())  # judged good to start with
    result = protect(dragonfly_crop, [brisque], Settings(views=views, platform_checks=False))
    assert result.protected and result.verdict == "protected"
    assert result.image.size == dragonfly_crop.size
    after = judged_after_jpeg90(result, brisque, views)
    assert all(s > brisque.threshold for s in after.values()), after
    assert after == pytest.approx(result.after_jpeg["brisque"], abs=1e-3)
    assert result.psnr > 36 and result.ssim > 0.95
    assert result.linf <= round(result.epsilon) + 1


def test_protects_against_a_trained_network(tiny_biqa):
    photo = synthetic_photo(1024, 768, 103)
    result = protect(photo, [tiny_biqa], Settings(views=("center",), platform_checks=False))
    assert result.before["tiny"]["center"] > 50
    assert result.protected
    after = judged_after_jpeg90(result, tiny_biqa, ("center",))
    assert after["center"] <= 50
    assert result.image.size == photo.size
    assert result.psnr > 30


def test_several_models_must_all_agree(tiny_biqa, brisque):
    photo = synthetic_photo(640, 480, 104)
    settings = Settings(views=("center",), platform_checks=False, epsilon_cap=12 / 255)
    result = protect(photo, [tiny_biqa, brisque], settings)
    assert set(result.after_jpeg) == {"tiny", "brisque"}
    verdicts = [
        judged_after_jpeg90(result, tiny_biqa, ("center",))["center"] <= 50,
        judged_after_jpeg90(result, brisque, ("center",))["center"] >= brisque.threshold,
    ]
    assert result.protected == all(verdicts)
    assert result.protected


def test_zero_budget_reports_unprotected_and_changes_nothing(tiny_biqa):
    photo = synthetic_photo(640, 480, 7)
    settings = Settings(views=("center",), epsilon=0.0, epsilon_cap=0.0, platform_checks=False)
    result = protect(photo, [tiny_biqa], settings)
    assert result.before["tiny"]["center"] > 50  # it had work to do
    assert not result.protected and result.verdict == "unprotected"
    assert np.array_equal(np.asarray(result.image), np.asarray(photo))
    assert result.steps == 0 and result.linf == 0


def test_same_seed_same_output(tiny_biqa):
    photo = synthetic_photo(640, 480, 11)
    settings = Settings(views=("center",), steps=6, epsilon_cap=4 / 255, platform_checks=False)
    first = protect(photo, [tiny_biqa], settings)
    second = protect(photo, [tiny_biqa], settings)
    assert first.output_jpeg == second.output_jpeg
    other = protect(photo, [tiny_biqa], Settings(**{**settings.__dict__, "seed": 1}))
    assert other.output_jpeg != first.output_jpeg


def test_a_photo_already_judged_low_passes_through_untouched(brisque):
    noisy = np.random.default_rng(0).integers(0, 256, (500, 700, 3), dtype=np.uint8)
    photo = Image.fromarray(noisy, "RGB")
    result = protect(photo, [brisque], Settings(platform_checks=False))
    assert result.untouched and result.protected
    assert result.verdict == "already low quality"
    assert result.steps == 0
    assert np.array_equal(np.asarray(result.image), noisy)


def test_small_photos_are_protected_at_their_own_size(brisque):
    photo = synthetic_photo(300, 200, 12)
    result = protect(photo, [brisque], Settings(platform_checks=False))
    assert result.image.size == (300, 200)
    assert result.protected


def test_escalation_is_reported_honestly(tiny_biqa):
    photo = synthetic_photo(640, 480, 13)
    hard = Settings(views=("center",), steps=2, targets={"tiny": 0.5}, platform_checks=False)
    result = protect(photo, [tiny_biqa], hard)
    assert result.epsilon == pytest.approx(8.0)  # went all the way to the cap
    assert result.steps == 2 * len(hard.schedule())
    assert not result.margin_met
    assert result.protected == all(s <= 50 for s in result.after_jpeg["tiny"].values())


def test_platform_transforms_are_recorded(tiny_biqa):
    photo = synthetic_photo(2400, 1800, 14)
    result = protect(photo, [tiny_biqa], Settings(views=("center",), steps=3, epsilon_cap=4 / 255))
    assert set(result.platform) == {"jpeg85", "long2048_jpeg85", "long1080_jpeg85"}
    assert set(result.platform["long1080_jpeg85"]["tiny"]) == {"center"}


def test_targets_on_the_wrong_side_are_refused(brisque):
    with pytest.raises(ValueError, match="good-quality side"):
        protect(synthetic_photo(640, 480, 1), [brisque], Settings(targets={"brisque": 20.0}))
