"""BRISQUE: agreement with the PyPI package ``brisque`` 0.2.0, gradients, batching, input checks."""

from __future__ import annotations

import csv
import io
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image, ImageFilter

from pixcamd.models.brisque import (
    Brisque,
    _fma,
    downscale_half,
    dphi,
    gaussian_window,
    log_phi,
    reference_window,
    solve_alpha,
)

VARIANTS = ("crop", "crop_jpeg90", "crop_jpeg20", "crop_blur2")


@pytest.fixture(scope="module")
def model() -> Brisque:
    return Brisque()


def to_view(img: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(img.convert("RGB")).copy()).permute(2, 0, 1).float() / 255


def centre_crop(path: Path) -> Image.Image:
    img = Image.open(path).convert("RGB")
    w, h = img.size
    left, top = (w - 512) // 2, (h - 384) // 2
    return img.crop((left, top, left + 512, top + 384))


def make_variant(crop: Image.Image, variant: str) -> Image.Image:
    if variant in ("crop_jpeg90", "crop_jpeg20"):
        buf = io.BytesIO()
        crop.save(buf, "JPEG", quality=int(variant.removeprefix("crop_jpeg")))
        buf.seek(0)
        return Image.open(buf).convert("RGB")
    if variant == "crop_blur2":
        return crop.filter(ImageFilter.GaussianBlur(2))
    assert variant == "crop"
    return crop


def pink_image(seed: int, h: int = 192, w: int = 256) -> torch.Tensor:
    """A 3×h×w image with natural-image-like 1/f² spectrum, on the 8-bit grid."""
    g = torch.Generator().manual_seed(seed)
    fy, fx = torch.fft.fftfreq(h)[:, None], torch.fft.rfftfreq(w)[None]
    f = torch.sqrt(fy**2 + fx**2)
    f[0, 0] = 1
    shape = (3, h, w // 2 + 1)
    spec = torch.complex(torch.randn(shape, generator=g), torch.randn(shape, generator=g)) / f
    spec[:, 0, 0] = 0
    x = torch.fft.irfftn(spec, s=(h, w), dim=(-2, -1))
    x = 0.7 * x.mean(0, keepdim=True) + 0.3 * x  # correlated colour channels
    x = (x - x.mean()) / x.std() * 0.15 + 0.5
    return quantize(x)


def quantize(x: torch.Tensor) -> torch.Tensor:
    return (x.clamp(0, 1) * 255).round() / 255


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    r = int(3 * sigma)
    k = torch.exp(-(torch.arange(-r, r + 1.0) ** 2) / (2 * sigma**2))
    k = k / k.sum()
    y = F.pad(x.reshape(-1, 1, *x.shape[-2:]), (r, r, r, r), mode="replicate")
    y = F.conv2d(F.conv2d(y, k.view(1, 1, 1, -1)), k.view(1, 1, -1, 1))
    return y.reshape(x.shape)


# ------------------------------------------------------------------ (a) agreement with the package


def test_agreement_with_reference_scores(model, corpus_dir, data_dir):
    with open(data_dir / "brisque_reference_scores.tsv", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    assert len(rows) == 88 and {r["variant"] for r in rows} == set(VARIANTS)

    by_image: dict[str, dict[str, float]] = {}
    for r in rows:
        by_image.setdefault(r["image"], {})[r["variant"]] = float(r["brisque_score"])

    results = []  # (|Δ|, ours, reference, image, variant)
    for image, refs in by_image.items():
        crop = centre_crop(corpus_dir / image)
        views = torch.stack([to_view(make_variant(crop, v)) for v in refs])
        with torch.no_grad():
            ours = model(views).tolist()
        for (variant, ref), score in zip(refs.items(), ours, strict=True):
            results.append((abs(score - ref), score, ref, image, variant))

    deltas = np.array([r[0] for r in results])
    worst = max(results)
    print(
        f"\nBRISQUE vs brisque 0.2.0 on {len(results)} crops: mean |Δ| = {deltas.mean():.4f}, "
        f"max |Δ| = {worst[0]:.4f} ({worst[3]} {worst[4]}: ours {worst[1]:.4f}, "
        f"reference {worst[2]:.4f}); |Δ| < 0.01 for {(deltas < 0.01).sum()} of {len(deltas)}"
    )
    assert len(results) == 88
    # measured: mean 0.0098, max 0.29 (a JPEG-20 crop), 78 of 88 within 0.01 — a bound near
    # that, so that a score off by even a point anywhere fails
    assert deltas.mean() <= 0.05
    assert deltas.max() <= 0.5
    assert (deltas < 0.01).sum() >= 70


# ------------------------------------------------------------------ (b) gradients


def test_gradients_finite_and_useful_on_real_crop(model, corpus_dir):
    x0 = to_view(centre_crop(corpus_dir / "photos/Dragonfly_by_Bolly.jpg"))[None]
    v = x0.clone().requires_grad_(True)
    model(v).sum().backward()
    grad = v.grad
    assert torch.isfinite(grad).all()
    assert (grad != 0).float().mean() > 0.5  # every pixel feeds the statistics
    assert grad.abs().max() > 0

    # A few signed-gradient ascent steps of one 8-bit level clearly worsen the score, far more
    # than random ±1/255 noise of the same size does (which for BRISQUE even tends to lower it).
    base = model(x0).item()
    x = x0.clone()
    for _ in range(3):
        v = x.clone().requires_grad_(True)
        model(v).sum().backward()
        x = (x + v.grad.sign() / 255).clamp(0, 1)
    attacked = model(x).item()
    g = torch.Generator().manual_seed(0)
    noise = torch.randint(0, 2, x0.shape, generator=g).float() * 2 - 1
    random_3 = model((x0 + 3 * noise / 255).clamp(0, 1)).item()
    print(
        f"\nbase {base:.2f}, 3 signed-gradient steps {attacked:.2f}, random ±3/255 {random_3:.2f}"
    )
    assert attacked > base + 30
    assert attacked > random_3 + 30


def test_gradients_finite_with_flat_and_saturated_regions(model):
    x = pink_image(7)
    x[:, :80, :100] = 1.0  # saturated sky
    x[:, 120:, 150:] = 0.0  # crushed shadows
    x[:, 60:140, 180:240] = 0.5  # flat mid-grey patch
    v = x[None].clone().requires_grad_(True)
    score = model(v)
    score.sum().backward()
    assert torch.isfinite(score).all()
    assert torch.isfinite(v.grad).all()
    assert v.grad.abs().sum() > 0
    assert v.grad[0, :, 60:140, 180:240].abs().sum() > 0  # the flat patch still gets a gradient


def test_solve_alpha_inverts_phi_with_implicit_gradient():
    alpha_true = torch.tensor([0.3, 0.7, 1.0, 2.0, 5.0], dtype=torch.float64)
    r = torch.exp(log_phi(alpha_true)).requires_grad_(True)
    alpha = solve_alpha(r)
    torch.testing.assert_close(alpha, alpha_true, rtol=1e-10, atol=0)
    alpha.sum().backward()
    torch.testing.assert_close(r.grad, 1 / dphi(alpha_true), rtol=1e-10, atol=0)
    # and φ' itself matches a finite difference
    h = 1e-6
    fd = (torch.exp(log_phi(alpha_true + h)) - torch.exp(log_phi(alpha_true - h))) / (2 * h)
    torch.testing.assert_close(dphi(alpha_true), fd, rtol=1e-6, atol=0)


# ------------------------------------------------------------------ (c) batching


def test_batch_equals_one_by_one(model):
    views = torch.stack([pink_image(1), quantize(pink_image(2) * 0.8 + 0.1)])
    with torch.no_grad():
        batch = model(views)
        single = torch.cat([model(views[i : i + 1]) for i in range(2)])
    assert batch.shape == (2,) and batch.dtype == torch.float32
    torch.testing.assert_close(batch, single, rtol=0, atol=1e-4)
    assert abs(batch[0] - batch[1]) > 0.1  # two different images, two different scores


# ------------------------------------------------------------------ (d) input validation


@pytest.mark.parametrize(
    "shape",
    [(3, 64, 64), (1, 1, 64, 64), (1, 4, 64, 64), (2, 3, 8, 64), (1, 3, 64, 10), (1, 3, 64)],
)
def test_bad_shapes_raise(model, shape):
    with pytest.raises(ValueError):
        model(torch.rand(shape))


def test_non_tensor_raises(model):
    with pytest.raises(ValueError):
        model(np.zeros((1, 3, 64, 64), dtype=np.float32))


# ------------------------------------------------------------------ (e) behaviour, no corpus needed


def test_noise_and_blur_score_worse_than_clean():
    model = Brisque()
    g = torch.Generator().manual_seed(100)
    for seed in (0, 3):
        clean = pink_image(seed)
        noisy = quantize(clean + 0.08 * torch.randn(clean.shape, generator=g))
        blurred = quantize(gaussian_blur(clean, 2.0))
        with torch.no_grad():
            s_clean, s_noisy, s_blur = model(torch.stack([clean, noisy, blurred])).tolist()
        assert s_noisy > s_clean + 5, (s_clean, s_noisy)
        assert s_blur > s_clean + 15, (s_clean, s_blur)


def test_odd_sizes_and_half_scale_geometry(model):
    # cv2.resize(fx=fy=0.5) output size is cvRound(n/2), ties to even
    for n, expected in [(5, 2), (7, 4), (383, 192), (511, 256), (512, 256)]:
        assert downscale_half(torch.zeros(1, n, n + 2, dtype=torch.float64)).shape[-2] == expected
    # a horizontal ramp stays a ramp in the interior, and a constant stays exactly constant
    ramp = torch.arange(16, dtype=torch.float64).repeat(4, 1)[None]
    half = downscale_half(ramp)[0, 0]
    torch.testing.assert_close(half[1:-1], 2 * torch.arange(1, 7, dtype=torch.float64) + 0.5)
    const = torch.full((1, 9, 11), 0.3, dtype=torch.float64)
    assert torch.equal(downscale_half(const), torch.full((1, 4, 6), 0.3, dtype=torch.float64))
    with torch.no_grad():
        assert torch.isfinite(model(pink_image(5, 101, 131)[None])).all()


# ------------------------------------------------------------------ bit-level building blocks


def test_fma_emulation_is_exactly_rounded():
    g = torch.Generator().manual_seed(0)
    a, b, c = (torch.rand(2000, generator=g, dtype=torch.float64) for _ in range(3))
    a[:1000] = torch.randint(0, 256, (1000,), generator=g).double() / 255  # the gray's inputs
    b[:1000] = 0.2125
    ours = _fma(a, b, c)
    exact = [
        float(Fraction(x) * Fraction(y) + Fraction(z))
        for x, y, z in zip(a.tolist(), b.tolist(), c.tolist(), strict=True)
    ]
    assert ours.tolist() == exact


def test_reference_window_bits():
    w = reference_window()
    assert w.shape == (7, 7) and torch.equal(w, w.flip(0)) and torch.equal(w, w.T)
    torch.testing.assert_close(w, gaussian_window(), rtol=1e-15, atol=1e-17)
    assert abs(w.sum().item() - 1) < 1e-15


# ------------------------------------------------------------------ model data


def test_model_data_and_fingerprint(model):
    assert model.name == "brisque" and model.higher_is_better is False
    assert model.fingerprint.startswith("brisque-live-svr@sha256:")
    assert len(model.fingerprint.split(":")[1]) == 16
    assert model.fingerprint == Brisque().fingerprint
    assert list(model.parameters()) == []  # the SVR is data, never trained
    assert model.support_vectors.shape == (770, 36) and model.dual_coef.shape == (770,)
    assert model.gamma.item() == 0.05 and model.rho.item() == -155.845
    assert model.is_good(model.threshold - 1) and not model.is_good(model.default_target)
    data = Path(__file__).resolve().parents[1] / "pixcamd" / "models" / "data"
    assert (data / "brisque_live.npz").stat().st_size < 300_000
    assert "Apache License" in (data / "BRISQUE_LICENSE.txt").read_text()
