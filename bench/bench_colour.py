"""A destination that converts colours: a wide-gamut photo, protected, then served in sRGB.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python bench/bench_colour.py PHOTO... [--spaces p3,adobe]
        [--json FILE]

Platforms convert a photo tagged Display P3 (every iPhone photo) or Adobe RGB to sRGB before
they resize and re-encode it, and a scraper's BIQA reads the numbers it is served. Each corpus
photo's numbers are taken as a wide-gamut photo's (the same numbers, tagged Display P3 or Adobe
RGB: a photo more saturated than its sRGB file shows), and protected two ways, each with the
default settings and judged (BRISQUE) on every default pipeline after the platform's colour
conversion (Pillow ImageCms from the copy's embedded profile to sRGB, relative colorimetric,
black-point compensation):

* ``kept``: the copy keeps the photo's numbers and its profile — pixcamd before 2026-12-03:
  protected on the unconverted numbers (one protection serves both spaces);
* ``converted``: pixcamd as shipped: the photo is converted to sRGB when read, and the copy is
  sRGB, so the platform's conversion changes nothing.

Per photo and space: the default pipelines judged low (of five) and the worst view, for the
original (converted by the platform), ``kept`` and ``converted``; and ``converted``'s own
verdict, which must agree.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path

from PIL import Image, ImageCms

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests"))

import host  # noqa: E402
from iccprofiles import adobe_rgb_profile, display_p3_profile  # noqa: E402

from pixcamd.models import load_model  # noqa: E402
from pixcamd.photo import SRGB_PROFILE, load_photo, open_photo  # noqa: E402
from pixcamd.platform_specs import parse_platforms  # noqa: E402
from pixcamd.platforms import DEFAULT_PLATFORMS  # noqa: E402
from pixcamd.protect import Settings, protect  # noqa: E402
from pixcamd.scoring import score_image  # noqa: E402

SPACES = {"p3": display_p3_profile, "adobe": adobe_rgb_profile}


def served(pixels: Image.Image, profile: bytes) -> Image.Image:
    """What a colour-managed platform makes of a file with ``profile``: sRGB numbers."""
    return ImageCms.profileToProfile(
        pixels,
        ImageCms.ImageCmsProfile(io.BytesIO(profile)),
        ImageCms.createProfile("sRGB"),
        renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC,
        outputMode="RGB",
        flags=ImageCms.Flags.BLACKPOINTCOMPENSATION,
    )


def judged(image: Image.Image, model, pipelines) -> dict:
    score = score_image(image, model, ("center", "resize"), pipelines)
    worst = [min(v.score for v in p.views) for p in score.platforms]  # BRISQUE: higher is lower
    threshold = model.describe()["threshold"]
    return {"low": sum(w >= threshold for w in worst), "worst": round(min(worst), 1)}


def copy_of(result) -> Image.Image:
    with Image.open(io.BytesIO(result.output_jpeg)) as img:
        return img.convert("RGB")


def one_photo(path: Path, spaces: list[str], model, pipelines, settings: Settings) -> list[dict]:
    numbers = load_photo(path)  # the corpus file's sRGB numbers, taken as the wide-gamut ones
    kept = protect(numbers, [model], settings)
    rows = []
    for space in spaces:
        profile = SPACES[space]()
        tagged = io.BytesIO()
        numbers.save(tagged, format="PNG", icc_profile=profile)
        photo = open_photo(path.name, data=tagged.getvalue())  # converts to sRGB, as shipped
        assert photo.metadata.icc_profile == SRGB_PROFILE
        converted = protect(photo.image, [model], settings)
        rows.append(
            {
                "photo": path.name,
                "space": space,
                "original": judged(served(numbers, profile), model, pipelines),
                "kept": judged(served(copy_of(kept), profile), model, pipelines),
                "kept_verdict": kept.protected,
                "converted": judged(served(copy_of(converted), SRGB_PROFILE), model, pipelines),
                "converted_verdict": converted.protected,
                "steps": {"kept": kept.steps, "converted": converted.steps},
                "psnr": {"kept": round(kept.psnr, 1), "converted": round(converted.psnr, 1)},
            }
        )
        row = rows[-1]
        print(
            f"{path.name} ({space}): original {row['original']['low']}/{N}, kept "
            f"{row['kept']['low']}/{N} (worst {row['kept']['worst']}), converted "
            f"{row['converted']['low']}/{N} (worst {row['converted']['worst']}; its verdict "
            f"{'protected' if converted.protected else 'unprotected'})",
            flush=True,
        )
    return rows


N = len(DEFAULT_PLATFORMS)  # pipelines each count is out of


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("photos", nargs="+", type=Path)
    parser.add_argument("--spaces", default="p3,adobe")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    model = load_model("brisque")
    pipelines = parse_platforms(",".join(DEFAULT_PLATFORMS))
    settings = Settings(platforms=pipelines)
    spaces = args.spaces.split(",")
    if unknown := [s for s in spaces if s not in SPACES]:
        parser.error(f"--spaces: unknown {unknown}; give {', '.join(SPACES)}")
    print(f"{host.machine_line()}; {model.fingerprint}", flush=True)
    rows = [r for p in args.photos for r in one_photo(p, spaces, model, pipelines, settings)]
    print("\n| photo | space | original | kept in its space | converted to sRGB (shipped) |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['photo']} | {r['space']} | {r['original']['low']}/{N} · "
            f"{r['original']['worst']} | {r['kept']['low']}/{N} · {r['kept']['worst']} | "
            f"{r['converted']['low']}/{N} · {r['converted']['worst']} |"
        )
    if args.json:
        args.json.write_text(json.dumps({"machine": host.machine(), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
