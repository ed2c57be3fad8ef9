"""Platform pipelines through their public interface: the sizes they serve (never larger), the
real Pillow resize + JPEG they apply, inline specs, presets, clear errors for bad specs (also on
the command line), and ``pixcamd score --platforms`` against a computation done by hand."""

from __future__ import annotations

import dataclasses
import io
import json
import random
import re

import numpy as np
import pytest
from conftest import ROOT
from PIL import Image, ImageOps, features
from tinybiqa import synthetic_photo

from pixcamd.cli import main
from pixcamd.errors import ServedTooLarge, ServedTooSmall
from pixcamd.photo import to_tensor
from pixcamd.platform_specs import from_table, parse_inline, parse_platforms
from pixcamd.platforms import DEFAULT_PLATFORMS, PRESETS, Pipeline, PipelineError
from pixcamd.scoring import score_views
from pixcamd.views import make_views

PILLOW_FILTERS = {
    "lanczos": Image.Resampling.LANCZOS,
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
    "hamming": Image.Resampling.HAMMING,
    "box": Image.Resampling.BOX,
    "nearest": Image.Resampling.NEAREST,
}
PILLOW_SUBSAMPLING = {"4:4:4": 0, "4:2:2": 1, "4:2:0": 2}


def round_trip(img: Image.Image, fmt: str, **options) -> Image.Image:
    """Pillow's encode of ``img`` as ``fmt``, decoded — written out here, not through pixcamd."""
    buffer = io.BytesIO()
    img.save(buffer, fmt, **options)
    with Image.open(io.BytesIO(buffer.getvalue())) as decoded:
        assert decoded.format == fmt
        return decoded.convert("RGB")


def jpeg_by_hand(img: Image.Image, quality: int, subsampling: str = "4:2:0") -> Image.Image:
    return round_trip(img, "JPEG", quality=quality, subsampling=PILLOW_SUBSAMPLING[subsampling])


def webp_by_hand(img: Image.Image, quality: int) -> Image.Image:
    return round_trip(img, "WEBP", quality=quality)


def avif_by_hand(img: Image.Image, quality: int, subsampling: str) -> Image.Image:
    """libavif at Pillow's default speed, on one thread (its bitstream depends on the count)."""
    if not features.check("avif"):
        pytest.skip("this Pillow was built without AVIF")
    return round_trip(img, "AVIF", quality=quality, subsampling=subsampling, max_threads=1)


# ---- sizes -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "size", "served"),
    [
        ("long2048-q85", (4000, 3000), (2048, 1536)),
        ("long2048-q85", (3000, 4000), (1536, 2048)),
        ("long2048-q85", (2048, 1000), (2048, 1000)),  # exactly the rule: kept
        ("long2048-q85", (1600, 1200), (1600, 1200)),  # smaller: never enlarged
        ("width1080-q80", (4032, 3024), (1080, 810)),
        ("width1080-q80", (3024, 4032), (1080, 1440)),  # portrait: the width still decides
        ("width1080-q80", (700, 520), (700, 520)),
        ("height1080-q80", (4000, 3000), (1440, 1080)),
        ("height1080-q80", (1920, 1000), (1920, 1000)),
        ("scale0.5-q85", (1000, 750), (500, 375)),
        ("scale0.25-q85", (4000, 3000), (1000, 750)),
        ("scale1-q85", (640, 480), (640, 480)),
        ("none-q90", (9000, 6000), (9000, 6000)),
        # Mastodon's numbers: 3840×2160 worth of pixels, each side rounded from the area
        ("mp8.2944-q90", (4032, 3024), (3326, 2494)),
        ("mp8.2944-q90", (3024, 4032), (2494, 3326)),
        ("mp8.2944-q90", (6000, 1000), (6000, 1000)),  # 6 MP: within it, kept
        ("mp8.2944-q90", (8000, 2000), (5760, 1440)),
        ("mp2-q80", (3000, 2000), (1732, 1155)),
    ],
)
def test_output_size_follows_the_rule_and_never_enlarges(spec, size, served):
    assert parse_inline(spec).output_size(*size) == served


def too_small(exc: ServedTooSmall) -> int:
    """The smaller side of the served size a ``ServedTooSmall`` names."""
    w, h = re.search(r"photo at (\d+)×(\d+):", str(exc)).groups()
    return min(int(w), int(h))


def test_output_size_never_enlarges_and_keeps_the_aspect_on_any_size():
    rng = random.Random(11)
    pipelines = [
        parse_inline(s)
        for s in (
            "long2048-q85",
            "long640-q80",
            "width1080-q80",
            "height720-q80",
            "scale0.3-q80",
            "mp1.5-q80",
        )
    ]
    for _ in range(300):
        width, height = rng.randint(16, 6000), rng.randint(16, 6000)
        for pipeline in pipelines:
            try:
                w, h = pipeline.output_size(width, height)
            except ServedTooSmall as exc:  # said only for what no destination serves
                strip = max(width, height) > 20 * min(width, height)
                assert too_small(exc) < 16 and (strip or pipeline.resize in ("scale", "mp"))
                continue
            assert 1 <= w <= width and 1 <= h <= height, (pipeline.spec(), width, height)
            if (w, h) != (width, height):  # a downscale keeps the aspect, up to rounding
                assert abs(w / width - h / height) <= 1 / min(w, h), (pipeline.spec(), w, h)
            if pipeline.resize == "mp":  # within the area, up to each side's rounding
                assert w * h <= 1.5e6 + (w + h) / 2 + 1, (width, height, w, h)


# ---- the real pipeline -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def camera_photo(corpus_dir) -> Image.Image:
    """A real camera file (1680×1050), upright, as every scorer decodes it."""
    with Image.open(corpus_dir / "camera" / "mate_Dune.jpg") as f:
        photo = ImageOps.exif_transpose(f).convert("RGB")
    assert photo.size == (1680, 1050)
    return photo


@pytest.mark.parametrize(
    ("spec", "served"),
    [
        ("task", (1680, 1050)),
        ("facebook", (1680, 1050)),  # long side 2048: larger than the photo, JPEG only
        ("instagram", (1080, 675)),
        ("whatsapp", (1600, 1000)),
        ("height720-q70-bicubic-444", (1152, 720)),
        ("scale0.5-q85-box-422", (840, 525)),
        ("long1600-webp75", (1600, 1000)),
        ("none-webp90-bicubic", (1680, 1050)),
        ("long1600-avif60", (1600, 1000)),
        ("none-avif75-444", (1680, 1050)),
        ("mastodon", (1680, 1050)),  # 1.8 MP: within its 8.3, re-encoded at full size, 4:4:4
        ("mp1-q85", (1265, 791)),  # √(10⁶ × 1680/1050) = 1264.9, √(10⁶ × 1050/1680) = 790.6
    ],
)
def test_apply_is_pillows_resize_then_pillows_jpeg_webp_or_avif(camera_photo, spec, served):
    (pipeline,) = parse_platforms(spec)
    out = pipeline.apply(camera_photo)
    assert out.mode == "RGB" and out.size == served
    resized = camera_photo
    if served != camera_photo.size:
        resized = camera_photo.resize(served, PILLOW_FILTERS[pipeline.filter])
    if pipeline.codec != "jpeg":
        if pipeline.codec == "webp":
            by_hand = webp_by_hand(resized, pipeline.quality)
        else:
            by_hand = avif_by_hand(resized, pipeline.quality, pipeline.subsampling)
        jpeg = jpeg_by_hand(resized, pipeline.quality)  # not a JPEG at that quality
        assert not np.array_equal(np.asarray(out), np.asarray(jpeg))
    else:
        by_hand = jpeg_by_hand(resized, pipeline.quality, pipeline.subsampling)
    assert np.array_equal(np.asarray(out), np.asarray(by_hand))
    assert not np.array_equal(np.asarray(out), np.asarray(resized))  # it was re-encoded


@pytest.mark.parametrize(
    ("spec", "box", "served"),
    [
        # a square post: the centre 1050×1050 of the 1680×1050 photo, then long side 1000
        ("crop1:1-long1000-q80", (315, 0, 1365, 1050), (1000, 1000)),
        # a profile grid: the photo served 1080 wide (1080×675), then its centre 3:4
        ("width1080-crop3:4-q80", None, (506, 675)),
        ("crop4:5-q85", (420, 0, 1260, 1050), (840, 1050)),  # at full size: a crop, re-encoded
        ("crop16:9-width1280-q80-bicubic", (0, 52, 1680, 997), (1280, 720)),
    ],
)
def test_a_crop_to_another_aspect_is_pillows_centre_crop_before_or_after_the_resize(
    camera_photo, spec, box, served
):
    (pipeline,) = parse_platforms(spec)
    out = pipeline.apply(camera_photo)
    assert out.size == served == pipeline.output_size(*camera_photo.size)
    resample = PILLOW_FILTERS[pipeline.filter]
    if box is not None:  # the crop first, by hand
        cropped = camera_photo.crop(box)
        by_hand = cropped.resize(served, resample) if cropped.size != served else cropped
    else:  # the resize first, then the centre of what is served
        resized = camera_photo.resize((1080, 675), resample)
        by_hand = resized.crop((287, 0, 793, 675))
    by_hand = jpeg_by_hand(by_hand, pipeline.quality)
    assert np.array_equal(np.asarray(out), np.asarray(by_hand))


def test_a_crop_serves_the_size_it_says_and_never_enlarges_on_any_size():
    rng = random.Random(3)
    specs = ["crop1:1-long1080-q80", "width1080-crop3:4-q80", "crop191:100-width1200-q85"]
    for _ in range(200):
        width, height = rng.randint(16, 6000), rng.randint(16, 6000)
        for spec in specs:
            (pipeline,) = parse_platforms(spec)
            try:
                (left, top, w, h), served = pipeline.geometry(width, height)
            except ServedTooSmall as exc:  # a strip of a photo: no destination serves it
                assert too_small(exc) < 16 and max(width, height) > 20 * min(width, height)
                continue
            assert pipeline.output_size(width, height) == served
            assert left >= 0 and top >= 0 and left + w <= width and top + h <= height
            assert served[0] <= w + 1 and served[1] <= h + 1  # a crop is never enlarged
            aspect = pipeline.crop[0] / pipeline.crop[1]
            if min(served) >= 100:  # the aspect asked for, up to rounding
                assert served[0] / served[1] == pytest.approx(aspect, rel=0.03), (spec, width)
        image = Image.new("RGB", (width, height))
        for spec in specs:
            (pipeline,) = parse_platforms(spec)
            try:
                served = pipeline.output_size(width, height)
            except ServedTooSmall:
                with pytest.raises(ServedTooSmall):
                    pipeline.apply(image)  # the real pipeline refuses it alike
                continue
            assert pipeline.apply(image).size == served


def test_apply_never_enlarges_a_small_photo_and_as_is_changes_nothing():
    small = synthetic_photo(300, 200, 3)
    for name in DEFAULT_PLATFORMS:
        out = PRESETS[name].apply(small)
        assert out.size == (300, 200)
        assert np.array_equal(
            np.asarray(out), np.asarray(jpeg_by_hand(small, PRESETS[name].quality))
        )
    untouched = PRESETS["as-is"].apply(small)
    assert np.array_equal(np.asarray(untouched), np.asarray(small))


# ---- specs and presets -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "fields"),
    [
        ("long1600-q75", ("long", 1600, "lanczos", 75, "4:2:0")),
        ("width1080-q80-bicubic-444", ("width", 1080, "bicubic", 80, "4:4:4")),
        ("height720-q70-422", ("height", 720, "lanczos", 70, "4:2:2")),
        ("scale0.5-q85", ("scale", 0.5, "lanczos", 85, "4:2:0")),
        ("mp8.3-q90-444", ("mp", 8.3, "lanczos", 90, "4:4:4")),
        ("none-q90", ("none", 0, "lanczos", 90, "4:2:0")),
        ("long2048-q100-nearest", ("long", 2048, "nearest", 100, "4:2:0")),
        ("long16-q1", ("long", 16, "lanczos", 1, "4:2:0")),  # the limits themselves are fine
    ],
)
def test_inline_specs_parse_and_spec_round_trips(spec, fields):
    (pipeline,) = parse_platforms(spec)
    assert pipeline.name == spec
    p = pipeline
    assert (p.resize, p.size, p.filter, p.quality, p.subsampling) == fields
    assert pipeline.spec() == spec
    assert parse_inline(pipeline.spec(), name=spec) == pipeline


@pytest.mark.parametrize(
    ("spec", "fields", "words"),
    [
        ("long2048-webp80", ("long", 2048, "lanczos", 80), "long side 2048 px (lanczos), WebP 80"),
        ("width1080-webp75-bicubic", ("width", 1080, "bicubic", 75), "WebP 75"),
        ("none-webp90", ("none", 0, "lanczos", 90), "full size, WebP 90"),
    ],
)
def test_webp_specs_parse_describe_and_round_trip(spec, fields, words):
    (pipeline,) = parse_platforms(spec)
    p = pipeline
    assert (p.resize, p.size, p.filter, p.quality, p.codec) == (*fields, "webp")
    assert p.spec() == spec and words in p.describe() and "JPEG" not in p.describe()
    assert parse_inline(spec.upper()) == dataclasses.replace(pipeline, name=spec.upper())
    assert all(p.codec == "jpeg" for p in PRESETS.values())  # q… stays JPEG
    assert parse_inline("long2048-q80").codec == "jpeg"


@pytest.mark.parametrize(
    ("spec", "fields", "words"),
    [
        ("long1600-avif60", ("long", 1600, 60, "4:2:0"), "long side 1600 px (lanczos), AVIF 60"),
        ("width1080-avif50-bicubic-444", ("width", 1080, 50, "4:4:4"), "AVIF 50 4:4:4"),
        ("none-avif75", ("none", 0, 75, "4:2:0"), "full size, AVIF 75 4:2:0"),
    ],
)
def test_avif_specs_parse_describe_and_round_trip(spec, fields, words):
    (p,) = parse_platforms(spec)
    assert (p.resize, p.size, p.quality, p.subsampling, p.codec) == (*fields, "avif")
    assert p.spec() == spec and words in p.describe() and "JPEG" not in p.describe()
    assert parse_inline(spec.upper()) == dataclasses.replace(p, name=spec.upper())


def test_an_avif_pipeline_without_pillows_avif_is_refused_saying_why(monkeypatch):
    from pixcamd import platforms

    real = platforms.features.check
    monkeypatch.setattr(platforms.features, "check", lambda name: name != "avif" and real(name))
    with pytest.raises(PipelineError, match="this Pillow cannot write AVIF"):
        parse_platforms("task,long1600-avif60")
    assert parse_platforms("long1600-webp60")[0].codec == "webp"  # the others still read


@pytest.mark.parametrize(
    ("spec", "crop", "after", "words"),
    [
        ("crop1:1-long1080-q80", (1, 1), False, "centre crop 1:1, then long side 1080 px"),
        ("width1080-crop3:4-q80", (3, 4), True, "width 1080 px (lanczos), then centre crop 3:4"),
        ("crop4:5-q85", (4, 5), False, "centre crop 4:5 at full size, JPEG 85"),
        ("crop191:100-width1200-q85", (191, 100), False, "centre crop 191:100, then width 1200"),
    ],
)
def test_crop_specs_parse_describe_and_round_trip(spec, crop, after, words):
    (pipeline,) = parse_platforms(spec)
    assert (pipeline.crop, pipeline.crop_after_resize) == (crop, after)
    assert pipeline.spec() == spec and words in pipeline.describe()
    assert parse_inline(spec, name=spec) == pipeline
    # the token's place says the order; "x" reads as ":"
    assert parse_inline(spec.replace(":", "x")).spec() == spec
    assert parse_inline("crop4:5-none-q85").spec() == "crop4:5-q85"
    assert parse_inline("none-crop4:5-q85").crop_after_resize is False  # no resize: one order


def test_specs_are_normalised_in_any_order_and_case():
    pipeline = parse_inline("Q75-BICUBIC-LONG1600-4:4:4")
    assert pipeline.spec() == "long1600-q75-bicubic-444"
    assert (pipeline.resize, pipeline.size, pipeline.quality) == ("long", 1600, 75)
    assert parse_inline("q85").spec() == "none-q85"  # no resize rule: full size


def test_presets_exist_with_the_documented_numbers():
    numbers = {n: (p.resize, p.size, p.quality, p.subsampling) for n, p in PRESETS.items()}
    assert numbers == {
        "task": ("none", 0, 90, "4:2:0"),  # the task: Pillow JPEG-90 of the full photo
        "facebook": ("long", 2048, 85, "4:2:0"),
        "instagram": ("width", 1080, 80, "4:2:0"),
        "whatsapp": ("long", 1600, 75, "4:2:0"),
        "telegram": ("long", 1280, 87, "4:2:0"),
        "bluesky": ("long", 2000, 90, "4:2:0"),
        "mastodon": ("mp", 8.2944, 90, "4:4:4"),
        "wordpress": ("long", 2560, 82, "4:2:0"),
        "web": ("long", 2560, 90, "4:2:0"),
        "as-is": ("none", 0, None, "4:2:0"),
    }
    assert all(p.name == n for n, p in PRESETS.items())
    assert all(p.filter == "lanczos" for n, p in PRESETS.items() if n != "wordpress")
    assert PRESETS["wordpress"].filter == "bilinear"  # Imagick's triangle filter
    assert DEFAULT_PLATFORMS == ("task", "facebook", "instagram", "whatsapp", "bluesky", "web")
    assert PRESETS["instagram"].describe() == "width 1080 px (lanczos), JPEG 80 4:2:0"
    assert PRESETS["as-is"].describe() == "full size, no re-encode"
    assert PRESETS["mastodon"].describe() == "at most 8.2944 megapixels (lanczos), JPEG 90 4:4:4"
    for name, preset in PRESETS.items():  # each spec reads back as the same pipeline
        (again,) = parse_platforms(preset.spec())
        assert dataclasses.replace(again, name=name) == preset
    # the config example (generated from the schema) documents every preset in words
    example = " ".join(
        line.removeprefix("#").strip()
        for line in (ROOT / "config.example.toml").read_text().splitlines()
    )
    for name, preset in PRESETS.items():
        assert f"{name} ({preset.describe()})" in example


def test_the_docs_table_of_presets_and_inline_examples_match_the_code():
    docs = (ROOT / "docs" / "platforms.md").read_text()
    rows = re.findall(r"^\| `([a-z-]+)` \| ([^|]+) \| ([^|]+) \|", docs, re.MULTILINE)
    assert [name for name, _, _ in rows] == list(PRESETS)
    for name, resize, jpeg in rows:
        p = PRESETS[name]
        if p.resize == "none":
            assert resize.strip() == "none", name
        else:
            rule = {"long": "long side", "mp": "megapixels"}.get(p.resize, p.resize)
            assert resize.strip() == f"{rule} {p.size:g}, {p.filter.capitalize()}", name
        expected = "none" if p.quality is None else f"{p.quality}, {p.subsampling}"
        assert jpeg.strip() == expected, name
    assert f"The default set is `{', '.join(DEFAULT_PLATFORMS)}`" in docs
    examples = re.findall(
        r"^([a-z0-9.:-]+-(?:q|webp|avif)\d+[a-z0-9-]*) {2,}(.+)$", docs, re.MULTILINE
    )
    assert len(examples) >= 9
    for spec, words in examples:  # every inline example reads, and reads back the same
        (pipeline,) = parse_platforms(spec)
        assert pipeline.spec() == spec
        described = pipeline.describe()
        for number in re.findall(r"\d[\d:]*", words):  # sizes, qualities, chroma
            assert number in described, (spec, words)
        assert all(f in (pipeline.filter,) for f in PILLOW_FILTERS if f in words.lower())


def test_platform_lists_mix_presets_custom_and_inline_keep_order_drop_repeats():
    mine = Pipeline("myblog", "long", 1200, quality=70)
    pipelines = parse_platforms("instagram, myblog,task,long1600-q75,instagram", {"myblog": mine})
    assert [p.name for p in pipelines] == ["instagram", "myblog", "task", "long1600-q75"]
    assert pipelines[1] is mine and pipelines[0] is PRESETS["instagram"]
    assert parse_platforms(["task", "scale0.5-q85"])[1].size == 0.5
    # a preset's name in any case, as an inline spec's letters: one pipeline, its own name
    assert parse_platforms("Instagram,INSTAGRAM,Long1600-Q75") == (
        PRESETS["instagram"],
        parse_platforms("long1600-q75")[0],
    )


@pytest.mark.parametrize("first", ["bicubic", "Bicubic", "q80", "444", "width1080"])
def test_an_inline_spec_reads_the_same_whatever_token_comes_first(first):
    """Tokens in any order, as docs/platforms.md says: a filter first as well (a crop's place
    is its meaning: before or after the resize)."""
    tokens = ["width1080", "bicubic", "q80", "444"]
    reordered = [first, *(t for t in tokens if t != first.lower())]
    (pipeline,) = parse_platforms("-".join(reordered))
    assert pipeline == parse_platforms("-".join(tokens))[0]
    assert (pipeline.filter, pipeline.quality, pipeline.subsampling) == ("bicubic", 80, "4:4:4")


@pytest.mark.parametrize("resize", ["long inf", "width 1e400", "mp nan", "mp inf", "long nan"])
def test_a_size_that_is_no_number_is_refused_naming_the_key(resize):
    with pytest.raises(PipelineError) as info:
        from_table("myblog", {"resize": resize, "quality": 80})
    assert info.value.problems == [
        f'resize: {resize!r}: write "none", "long 2048", "width 1080", '
        '"height 1080", "scale 0.5" or "mp 8.3"'
    ]
    with pytest.raises(PipelineError, match="give a finite number"):
        Pipeline("mine", "long", float("inf"), quality=80)


def test_specs_write_every_size_exactly_so_they_parse_back_and_stay_apart():
    for spec in ("long1234567-q80", "scale0.1234567-q80", "mp12.3456789-q90", "scale0.00001-q80"):
        (pipeline,) = parse_platforms(spec)
        assert pipeline.spec() == spec and parse_platforms(pipeline.spec()) == (pipeline,)
    assert "at most 12.3456789 megapixels" in parse_inline("mp12.3456789-q90").describe()
    close = parse_platforms("scale0.1234567-q80,scale0.1234568-q80")
    assert [p.size for p in close] == [0.1234567, 0.1234568]  # two pipelines, not one


def test_a_pipeline_that_would_serve_a_side_longer_than_its_codec_takes_says_so():
    """JPEG takes 65,500 px a side, WebP 16,383, and AVIF 32,768 as libavif reads a copy back
    (65,536 is written, then refused when read): each pipeline names its limit, a photo it
    shrinks below it is served."""
    for spec, codec, most in (("none-q90", "JPEG", 65_500), ("none-webp80", "WebP", 16_383)):
        (pipeline,) = parse_platforms(spec)
        with pytest.raises(ServedTooLarge, match=f"{codec} takes at most {most:,} px a side"):
            pipeline.output_size(most + 1, 100)
        assert pipeline.output_size(most, 100) == (most, 100)
    assert parse_platforms("long2048-q85")[0].output_size(66_000, 1300) == (2048, 40)
    if features.check("avif"):
        (avif,) = parse_platforms("none-avif60")
        with pytest.raises(ServedTooLarge, match="AVIF takes at most 32,768 px a side"):
            avif.output_size(32_769, 64)
        wide = Image.new("RGB", (32_768, 16), (120, 130, 140))
        assert avif.apply(wide).size == (32_768, 16)  # at the limit: written and read back


def test_a_pipeline_that_would_serve_a_side_under_16_px_says_so(tmp_path, capsys):
    (tiny,) = parse_platforms("scale0.02-q80")
    with pytest.raises(
        ServedTooSmall, match=re.escape("scale0.02-q80 would serve this 640×400 photo at 13×8")
    ):
        tiny.output_size(640, 400)
    assert tiny.output_size(1000, 800) == (20, 16)
    square = parse_platforms("crop1:1-long1080-q80")[0]
    assert square.output_size(20, 12) == (12, 12)  # a photo as small: not the pipeline's doing
    with pytest.raises(ServedTooSmall, match="at 100×10: no destination serves a side under 16"):
        parse_platforms("crop10:1-long100-q80")[0].apply(Image.new("RGB", (400, 300)))
    photo = tmp_path / "photo.png"
    synthetic_photo(640, 400, 1).save(photo)
    assert (
        main(["score", str(photo), "--model", "brisque", "--platforms", "task,scale0.02-q80"]) == 1
    )
    assert (
        "photo.png: error: scale0.02-q80 would serve this 640×400 photo" in capsys.readouterr().err
    )
    out = tmp_path / "out.jpg"
    args = ["protect", str(photo), "-o", str(out), "--model", "brisque"]
    assert main([*args, "--platforms", "task,scale0.02-q80"]) == 1
    said = capsys.readouterr()
    assert "photo.png: error: scale0.02-q80 would serve this 640×400 photo at 13×8" in said.out
    assert not out.exists()


BAD_SPECS = [
    ("myspace", "unknown platform 'myspace': choose from task, facebook"),
    ("long1600-q0", "JPEG quality 0 is out of range: give 1–100"),
    ("long1600-q101", "JPEG quality 101 is out of range: give 1–100"),
    ("scale1.5-q80", "scale 1.5 would enlarge"),
    ("scale2-q80", "(pipelines only downscale)"),
    ("long1600-q80-sharp", "cannot read 'sharp'"),
    ("long8-q80", "long 8: give a whole number of pixels ≥ 16"),
    ("width0-q80", "width 0: give a whole number of pixels ≥ 16"),
    ("mp0-q90", "mp 0: give the megapixels a photo is fitted in, at least 0.000256"),
    ("long1600", "give the JPEG quality, e.g. long1600-q85"),
    ("long1600-q80-q90", "quality is given twice"),
    ("task,,instagram", "an empty platform name in 'task,,instagram': a stray comma?"),
    ("task,", "an empty platform name in 'task,': a stray comma?"),
    (" , ", "no platform given"),
    ("long1600-webp0", "WebP quality 0 is out of range: give 1–100"),
    ("long1600-webp75-444", "chroma subsampling 4:4:4 with WebP: lossy WebP is always 4:2:0"),
    ("long1600-q80-webp80", "quality is given twice"),
    ("long1600-avif0", "AVIF quality 0 is out of range: give 1–100"),
    ("long1600-avif101", "AVIF quality 101 is out of range: give 1–100"),
    ("long1600-webp80-avif80", "quality is given twice"),
    ("long1600-jxl80", "cannot read 'jxl80'"),
    ("long1600-webp", "'webp': give its quality too, e.g. webp80"),
    ("long1600-jpeg", "'jpeg': give its quality too, e.g. q80"),
    ("crop0:1-long1080-q80", "crop to '0:1' is no aspect"),
    ("crop1:20-long1080-q80", "within 10:1"),
    ("crop1:1-crop3:4-q80", "crop is given twice"),
    ("crop1-long1080-q80", "cannot read 'crop1'"),
    ("crop1.00001:1-q80", "cannot read 'crop1.00001:1'"),  # a guide's few decimals, not more
    ("crop.5:1-q80", "cannot read 'crop.5:1'"),
]


@pytest.mark.parametrize(("spec", "message"), BAD_SPECS)
def test_bad_specs_are_refused_naming_the_problem(spec, message):
    with pytest.raises(PipelineError) as info:
        parse_platforms(spec)
    assert message in str(info.value)
    if "," not in spec:  # in a list, the message says which entry
        with pytest.raises(PipelineError) as info:
            parse_platforms(f"task,{spec},instagram")
        assert f"{spec!r}: " in str(info.value) and message in str(info.value)


def test_an_unknown_filter_lists_the_filters():
    with pytest.raises(PipelineError, match="filters: lanczos, bicubic, bilinear"):
        parse_platforms("width1080-q80-sharp")
    with pytest.raises(PipelineError, match="unknown resampling filter 'sharp'"):
        Pipeline("mine", "width", 1080, filter="sharp", quality=80)


@pytest.mark.parametrize("command", ["protect", "score"])
@pytest.mark.parametrize(("spec", "message"), BAD_SPECS[:8])
def test_bad_specs_on_the_command_line_exit_2_with_the_message(
    tmp_path, capsys, command, spec, message
):
    photo = tmp_path / "photo.png"
    synthetic_photo(64, 48, 1).save(photo)
    out = tmp_path / "out.jpg"
    args = [command, str(photo), *(["-o", str(out)] if command == "protect" else [])]
    with pytest.raises(SystemExit) as exc:
        main([*args, "--model", "brisque", "--platforms", f"task,{spec}"])
    assert exc.value.code == 2
    captured = capsys.readouterr()
    assert "argument --platforms: " in captured.err and message in captured.err
    assert f"{spec!r}: " in captured.err  # the entry of the list at fault
    assert captured.out == "" and not out.exists()


# ---- pixcamd score --platforms -----------------------------------------------------------------


def test_score_judges_each_pipeline_as_done_by_hand(corpus_dir, camera_photo, brisque, capsys):
    path = corpus_dir / "camera" / "mate_Dune.jpg"
    platforms = "task,long1024-q80,long1200-webp75"
    code = main(["score", str(path), "--model", "brisque", "--platforms", platforms, "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    (result,) = json.loads(captured.out)
    assert (result["width"], result["height"]) == (1680, 1050)
    assert list(result["platforms"]) == platforms.split(",")
    task, small, webp = result["platforms"].values()
    assert task["served"] == [1680, 1050] and small["served"] == [1024, 640]
    assert small["spec"] == "long1024-q80" and webp["served"] == [1200, 750]
    assert small["description"] == "long side 1024 px (lanczos), JPEG 80 4:2:0"
    assert webp["description"] == "long side 1200 px (lanczos), WebP 75"
    by_hand = {
        "task": jpeg_by_hand(camera_photo, 90),
        "long1024-q80": jpeg_by_hand(
            camera_photo.resize((1024, 640), Image.Resampling.LANCZOS), 80
        ),
        "long1200-webp75": webp_by_hand(
            camera_photo.resize((1200, 750), Image.Resampling.LANCZOS), 75
        ),
    }
    rows = []
    for name, served in by_hand.items():
        boxes, batch = make_views(to_tensor(served), ("center", "resize"), brisque.view_size)
        expected = {
            b.label: s for b, s in zip(boxes, score_views(brisque, batch).tolist(), strict=True)
        }
        views = result["platforms"][name]["views"]
        assert list(views) == ["center", "resize"]
        assert {v: s["score"] for v, s in views.items()} == pytest.approx(expected, abs=1e-6)
        for view, score in expected.items():
            good = score < brisque.threshold
            assert views[view]["verdict"] == ("good quality" if good else "low quality")
            rows.append((name, view, score))
        assert result["platforms"][name]["verdict"] == (
            "good quality"
            if any(s < brisque.threshold for s in expected.values())
            else "low quality"
        )
    name, view, score = min(rows, key=lambda r: r[2])  # BRISQUE: the lowest score is the best seen
    assert result["worst"]["pipeline"] == name and result["worst"]["view"] == view
    assert result["worst"]["score"] == pytest.approx(score, abs=1e-6)
    assert result["verdict"] == ("good quality" if score < brisque.threshold else "low quality")


def test_pipelines_that_serve_identical_pixels_say_so():
    """``serving``: equal exactly when ``apply`` gives the same pixels — on a photo within
    Bluesky's 2000 px, `bluesky` serves what `task` serves (the check judges it once)."""
    task, bluesky = PRESETS["task"], PRESETS["bluesky"]
    assert task.serving(1600, 1200) == bluesky.serving(1600, 1200)
    assert task.serving(2560, 1600) != bluesky.serving(2560, 1600)
    photo = synthetic_photo(640, 480, 5)
    for a, b in [(task, bluesky), (task, PRESETS["telegram"])]:
        same = a.serving(*photo.size) == b.serving(*photo.size)
        pixels_equal = np.array_equal(np.asarray(a.apply(photo)), np.asarray(b.apply(photo)))
        assert same == pixels_equal == (a.quality == b.quality)
    # another filter only matters where the photo is resized; a crop always does
    (bicubic,) = parse_platforms("long2000-q90-bicubic")
    (square,) = parse_platforms("crop1:1-long2000-q90")
    assert bicubic.serving(1600, 1200) == task.serving(1600, 1200)
    assert bicubic.serving(2560, 1600) != bluesky.serving(2560, 1600)
    assert square.serving(1600, 1200) != task.serving(1600, 1200)


def test_a_table_reads_words_in_any_case_and_aspects_in_decimals_as_inline_specs():
    """What a photographer copies from a platform's guide: "WEBP", "Lanczos", "420", 1.91:1."""
    table = {
        "resize": "Width 1200",
        "filter": "Bicubic",
        "codec": "JPEG",
        "subsampling": "444",
        "quality": 85,
        "crop": "1.91:1",
    }
    pipeline = from_table("linkpreview", table)
    (inline,) = parse_platforms("CROP1.91:1-width1200-BICUBIC-q85-444")
    assert pipeline.spec() == inline.spec() == "crop191:100-width1200-q85-bicubic-444"
    assert (
        pipeline.crop == (191, 100)
        and from_table("r", {"codec": "WebP", "quality": 80}).codec == "webp"
    )
    assert from_table("s", {"subsampling": "4:2:0", "quality": 80}).subsampling == "4:2:0"
    with pytest.raises(PipelineError, match="at most 4 decimals"):
        from_table("t", {"crop": "1." + "0" * 4400 + "1:1", "quality": 80})
