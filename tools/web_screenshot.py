"""Regenerate docs/img/web-photo-page.png, the README's picture of the web page's photo page.

A test-like setup: a real corpus photo (../shared/corpus, never committed itself), made 1600 px
wide with a GPS position added, protected by the real daemon (BRISQUE), then its page opened in
Debian's headless Chromium and captured, reduced to a 64-colour PNG to stay small.

    OMP_NUM_THREADS=1 .venv/bin/python tools/web_screenshot.py [PHOTO]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from PIL import Image  # noqa: E402
from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from test_daemon_support import finished, make_config, running, wait_for  # noqa: E402
from web_support import rows  # noqa: E402

PHOTO = ROOT.parent / "shared/corpus/photos/Picture_0B_by_freespace.jpg"
OUT = ROOT / "docs/img/web-photo-page.png"


def main() -> None:
    import piexif
    import torch

    from pixcamd.models import load_model

    torch.set_num_threads(1)
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else PHOTO
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        config = make_config(
            root, views=["center", "resize"], platforms=["task", "instagram"], web="127.0.0.1:0"
        )
        photo = Image.open(source).convert("RGB")
        photo.thumbnail((1600, 1600))
        name = config.inbox / source.name
        photo.save(name, quality=95)
        gps = {
            piexif.GPSIFD.GPSLatitudeRef: b"N",
            piexif.GPSIFD.GPSLatitude: ((52, 1), (22, 1), (0, 1)),
        }
        piexif.insert(piexif.dump({"0th": {}, "Exif": {}, "GPS": gps}), str(name))
        with running(config, [load_model("brisque")]) as daemon:
            wait_for(lambda: finished(config, [source.name]), 600, "the photo")
            row = rows(config)[source.name]
            options = webdriver.ChromeOptions()
            options.binary_location = "/usr/bin/chromium"
            for flag in (
                "--headless=new",
                "--no-sandbox",
                "--window-size=1100,1000",
                "--hide-scrollbars",
            ):
                options.add_argument(flag)
            driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
            try:
                driver.get(f"{daemon.web.url}photos/{row['id']}")
                wait_for(
                    lambda: driver.execute_script(
                        "return [...document.images].every(i => i.complete && i.naturalWidth)"
                    ),
                    60,
                    "the images",
                )
                driver.execute_script(  # the zoom on a flat region: where a change would show
                    "const v = document.getElementById('zoom-original');"
                    "v.scrollLeft = 700; v.scrollTop = 300;"
                )
                shot = root / "shot.png"
                driver.save_screenshot(str(shot))
            finally:
                driver.quit()
        image = Image.open(shot).convert("RGB")
        image = image.resize((image.width * 7 // 10, image.height * 7 // 10), Image.LANCZOS)
        image.quantize(64, dither=Image.Dither.NONE).save(OUT, optimize=True)
    print(f"{OUT}: {OUT.stat().st_size // 1024} KB")


if __name__ == "__main__":
    main()
