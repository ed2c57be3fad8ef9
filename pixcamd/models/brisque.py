"""BRISQUE (Mittal, Moorthy & Bovik 2012) as the PyPI package ``brisque`` 0.2.0 computes it.

A differentiable re-implementation of ``brisque.BRISQUE.score`` with its LIVE-trained ε-SVR
(converted once by ``tools/convert_brisque_model.py`` into ``data/brisque_live.npz``; attribution
and license in ``data/BRISQUE_LICENSE.txt``). Lower scores mean better quality.

Pipeline, per view (the package's steps, in order):

1. gray = 0.2125 R + 0.7154 G + 0.0721 B (``skimage.color.rgb2gray``). The package only takes
   uint8 images and computes gray from uint8 / 255. Callers here pass float views in [0, 1]
   that came from uint8 pixels; the score is that of the views rounded to the 8-bit grid (which
   changes nothing for such views), the gradient that of the float views (straight-through).
2. MSCN = (x − μ) / (σ + 1/255), μ and E[x²] from a normalized 7×7 Gaussian (σ = 7/6), convolved
   "same" with zero fill (``scipy.signal.convolve2d``), σ = sqrt(|E[x²] − μ²|).
3. The MSCN map and its horizontal, vertical, main- and secondary-diagonal neighbour products.
4. An asymmetric generalized Gaussian (AGGD) moment fit of each of the 5 maps: 2 features for the
   MSCN map (α, (σl² + σr²)/2), 4 for each product (α, mean, σl², σr²) → 18 features.
5. The same at half scale (``cv2.resize(fx=fy=1/2, INTER_CUBIC)`` of the gray image) → 36.
6. Min/max scaling of the features to [−1, 1], then the ε-SVR (RBF) regression value.

Differentiability: every step is a smooth torch expression except the root solve for α, done
without autograd (bisection) and re-attached with the implicit-function rule
dα/dR̂ = 1/φ'(α) (see :func:`solve_alpha`), and the 8-bit rounding (straight-through). Sign masks
(x < 0) are piecewise constant, as in the reference. Square roots and divisions carry tiny
guards so gradients stay finite.

Faithfulness: where the reference's result hangs on rounding — the sign of x − μ in perfectly
flat 7×7 windows, common in skies and JPEG-20 blocks — the value reproduces the reference's
float64 bits (gray, window, convolution order, resize order); see ``rgb_to_gray``, ``mscn``.
"""

from __future__ import annotations

from importlib import resources

import numpy as np
import torch
import torch.nn.functional as F

from pixcamd.models.base import QualityModel, check_views, tensors_sha256

# Everything inside runs in float64, then the score is returned as float32. Why: the package is
# float64 throughout and its features are ill-conditioned in two places that float32 cannot
# follow. (1) The local variance E[x²] − μ² cancels catastrophically (float32 leaves σ errors of
# ~1e-4 against C = 1/255). (2) In perfectly flat 7×7 windows (skies, JPEG-20 blocks) x − μ is
# rounding noise, yet its sign decides whether the pixel counts in the AGGD's left or right
# half: on a JPEG-20 crop with 88% such pixels the score moves by up to 10 points with the last
# bits of the gray value. We reproduce those bits (see ``rgb_to_gray`` and ``mscn``), which
# needs the reference's float64 operations. BRISQUE costs tens of ms per view on a CPU either way,
# negligible next to the optimizer, so there is no speed case for float32.
DTYPE = torch.float64

GRAY_WEIGHTS = (0.2125, 0.7154, 0.0721)  # skimage.color.rgb2gray (ITU-R BT.709 luma)
WINDOW_SIZE = 7
WINDOW_SIGMA = 7 / 6
MSCN_C = 1 / 255
# OpenCV INTER_CUBIC (A = −0.75) weights at fractional offset 0.5 — every tap of an exact /2
# resize: output x reads source 2x − 1 … 2x + 2 (exact in float32, as OpenCV stores them).
CUBIC_HALF = (-0.09375, 0.59375, 0.59375, -0.09375)
ALPHA_RANGE = (0.05, 10.0)  # α search interval; see solve_alpha
VAR_EPS = 1e-10  # inside sqrt(|var| + eps): σ moves by ≤ 1e-5 (vs C = 3.9e-3), dσ/dvar ≤ 5e4
MOMENT_EPS = 1e-12  # guards the AGGD moment ratios and square roots
MIN_SIDE = 16  # smaller views have too few pixels for the statistics (and for the half scale)
N_FEATURES = 36
DATA_FILE = "brisque_live.npz"
DATA_KEYS = ("support_vectors", "dual_coef", "rho", "gamma", "feature_min", "feature_max")
_SPLIT = 134217729.0  # 2**27 + 1, Veltkamp's splitter for float64


# --------------------------------------------------------------------------------------------
# Functional core: plain functions on tensors, no state.
# --------------------------------------------------------------------------------------------


def _fma(a: torch.Tensor, b: torch.Tensor | float, c: torch.Tensor) -> torch.Tensor:
    """a·b + c with a single rounding (as a hardware FMA), from plain float64 operations.

    Dekker's exact product (Veltkamp split) and Knuth's TwoSum, then one final addition. Only
    separate multiplications and additions are used, which torch rounds as IEEE-754 on every
    device, so the bits do not depend on whether the CPU or GPU fuses anything.
    """
    b = torch.as_tensor(b, dtype=a.dtype, device=a.device)
    p = a * b
    t = _SPLIT * a
    a_hi = t - (t - a)
    a_lo = a - a_hi
    t = _SPLIT * b
    b_hi = t - (t - b)
    b_lo = b - b_hi
    err = ((a_hi * b_hi - p) + a_hi * b_lo + a_lo * b_hi) + a_lo * b_lo  # p + err = a·b exactly
    s = p + c
    bb = s - p
    t = (p - (s - bb)) + (c - bb)  # s + t = p + c exactly
    return s + (t + err)


def rgb_to_gray(views: torch.Tensor) -> torch.Tensor:
    """B×3×H×W RGB in [0, 1] → B×H×W gray in float64, bit for bit as the package computes it.

    The package gets a uint8 image: ``skimage.color.rgb2gray`` divides it by 255 and computes
    ``rgb @ [0.2125, 0.7154, 0.0721]``, which numpy hands to OpenBLAS; on x86-64 (the platform
    whose bits reproduce the reference scores) that evaluates fma(B, 0.0721, fma(R, 0.2125,
    G·0.7154)) — checked equal over all 2²⁴ RGB triples. So the
    value is that expression on the views rounded to the 8-bit grid (exact for views that came
    from uint8 pixels), and the gradient is that of the plain weighted sum of the float views
    (straight-through): sub-1/255 changes steer the gradient but only show in the score once
    they cross a rounding boundary, as they would in the saved 8-bit image.
    """
    v = views.to(DTYPE)
    cr, cg, cb = GRAY_WEIGHTS
    linear = v[:, 0] * cr + v[:, 1] * cg + v[:, 2] * cb
    with torch.no_grad():
        q = torch.round(v.clamp(0, 1) * 255) / 255  # = uint8 / 255.0, correctly rounded
        exact = _fma(q[:, 2], cb, _fma(q[:, 0], cr, q[:, 1] * cg))
    return linear + (exact - linear.detach())


# The package's normalized 7×7 Gaussian, ``g / np.sum(g)`` with g = exp(−(x² + y²)/(2σ²))/(2πσ²),
# x, y = −3…3, as numpy evaluated it for the reference scores, keyed by x² + y². Its last bits
# decide the sign of x − μ in flat windows, so they are fixed here rather than left to the local
# exp (``gaussian_window`` computes the same formula in torch, to within an ulp).
_WINDOW_BITS = {
    0: "0x1.e0db00311d7f1p-4",
    1: "0x1.4d06977d8ad64p-4",
    2: "0x1.cd496e1480e87p-5",
    4: "0x1.ba83b9de5989ep-6",
    5: "0x1.3278d5665da8fp-6",
    8: "0x1.973b1202ace5bp-8",
    9: "0x1.1a0917e5476acp-8",
    10: "0x1.86a8865c4c6d2p-9",
    13: "0x1.038c273f9a49cp-10",
    18: "0x1.4ad805ce81344p-13",
}


def gaussian_window(size: int = WINDOW_SIZE, sigma: float = WINDOW_SIGMA) -> torch.Tensor:
    """The package's normalized size×size Gaussian (offsets −size//2 …), computed in float64."""
    r = torch.arange(size, dtype=DTYPE) - size // 2
    d2 = r[:, None] ** 2 + r[None, :] ** 2
    g = torch.exp(-d2 / (2 * sigma**2)) / (2 * torch.pi * sigma**2)
    return g / g.sum()


def reference_window(device=None) -> torch.Tensor:
    """The package's 7×7 window with the reference's exact bits (float64)."""
    r = range(-(WINDOW_SIZE // 2), WINDOW_SIZE // 2 + 1)
    w = [[float.fromhex(_WINDOW_BITS[y * y + x * x]) for x in r] for y in r]
    return torch.tensor(w, dtype=DTYPE, device=device)


def _blur_same_zero(maps: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    """N×H×W → N×H×W: separable 'same' convolution with zero fill (``convolve2d`` defaults).

    The normalized 2-D Gaussian is the outer product of its row sums with themselves, so two
    1-D passes give the package's result up to rounding (~1e-16).
    """
    k = window.numel()
    x = maps.unsqueeze(1)
    x = F.conv2d(x, window.view(1, 1, 1, k), padding=(0, k // 2))  # kernel is symmetric:
    x = F.conv2d(x, window.view(1, 1, k, 1), padding=(k // 2, 0))  # correlation = convolution
    return x.squeeze(1)


def _flat_windows(gray: torch.Tensor, size: int) -> torch.Tensor:
    """B×H×W bool: the size×size window around the pixel (zero fill outside) is constant."""
    p = F.pad(gray.unsqueeze(1), (size // 2,) * 4)  # zeros, like the convolution's fill
    hi = F.max_pool2d(F.max_pool2d(p, (1, size), 1), (size, 1), 1)
    lo = -F.max_pool2d(F.max_pool2d(-p, (1, size), 1), (size, 1), 1)
    return (hi == lo).squeeze(1)


def _reference_flat_centered(v: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    """x − μ as ``scipy.signal.convolve2d`` rounds it where all 7×7 window pixels equal v.

    Its C loop (``DOUBLE_onemultadd``, as compiled in the scipy 1.17 x86-64 wheels) takes the
    kernel row by row from 0.0 and, per row of 7 products, adds ((p0 + p1) + p2) + p3 to the
    sum, then p4, p5, p6 one by one — verified bit for bit against ``convolve2d``. In a flat
    window every product is v·h[j, k], so this reproduces the package's rounding exactly.
    """
    acc = torch.zeros_like(v)
    for row in window:
        p = [v * w for w in row]
        acc = acc + (((p[0] + p[1]) + p[2]) + p[3])
        for q in p[4:]:
            acc = acc + q
    return v - acc


def mscn(gray: torch.Tensor, c: float = MSCN_C) -> torch.Tensor:
    """Mean-subtracted contrast-normalized coefficients of B×H×W float64 gray images.

    Where the 7×7 window is flat, x − μ is zero in exact arithmetic and the package's value is
    its rounding error, whose sign still sorts the pixel into the left (x < 0) or right half of
    every AGGD fit. There the value of x − μ is replaced by the package's own rounding (the
    gradient is left as is); elsewhere the separable convolution agrees to ~1e-16.
    """
    window_2d = reference_window(gray.device)
    window_1d = window_2d.sum(1)  # the 2-D window is the outer product of its row sums
    b = gray.shape[0]
    blurred = _blur_same_zero(torch.cat([gray, gray * gray]), window_1d)
    mu, mean_sq = blurred[:b], blurred[b:]
    sigma = torch.sqrt((mean_sq - mu * mu).abs() + VAR_EPS)
    centered = gray - mu
    with torch.no_grad():
        flat = _flat_windows(gray, WINDOW_SIZE)
        fix = torch.zeros_like(centered)
        if bool(flat.any()):
            exact = _reference_flat_centered(gray[flat], window_2d)
            fix[flat] = exact - centered[flat]
    return (centered + fix) / (sigma + c)


def pair_products(m: torch.Tensor) -> list[torch.Tensor]:
    """The MSCN map and its 4 neighbour products, in the package's order."""
    return [
        m,
        m[:, :, :-1] * m[:, :, 1:],  # horizontal
        m[:, :-1, :] * m[:, 1:, :],  # vertical
        m[:, :-1, :-1] * m[:, 1:, 1:],  # main diagonal
        m[:, 1:, :-1] * m[:, :-1, 1:],  # secondary diagonal
    ]


def log_phi(alpha: torch.Tensor) -> torch.Tensor:
    """log φ(α), φ(α) = Γ(2/α)² / (Γ(1/α) Γ(3/α)); φ rises from 0 (α → 0) to 3/4 (α → ∞)."""
    return 2 * torch.lgamma(2 / alpha) - torch.lgamma(1 / alpha) - torch.lgamma(3 / alpha)


def dphi(alpha: torch.Tensor) -> torch.Tensor:
    """φ'(α) = φ(α) · (ψ(1/α) + 3ψ(3/α) − 4ψ(2/α)) / α²."""
    s = torch.digamma(1 / alpha) + 3 * torch.digamma(3 / alpha) - 4 * torch.digamma(2 / alpha)
    return torch.exp(log_phi(alpha)) * s / alpha**2


def solve_alpha(r_hat: torch.Tensor, iterations: int = 56) -> torch.Tensor:
    """α with φ(α) = R̂, elementwise; differentiable w.r.t. R̂ by the implicit-function rule.

    The root is found without autograd by bisection on log φ (monotone) over ``ALPHA_RANGE``; R̂
    outside φ's range there gives the interval's end. The package uses ``scipy.optimize.root``
    from 0.2 with no bounds, which lands on the same (unique) root whenever one exists. The
    original BRISQUE searched a grid on [0.2, 10] and the LIVE features span α ∈ [0.23, 9.9994],
    but JPEG-20 crops give product maps with α down to 0.18, which the package follows, so the
    lower end is 0.05.

    Returned: α* + (R̂ − stop_grad(R̂)) / φ'(α*), whose value is exactly α* and whose gradient is
    dα/dR̂ = 1/φ'(α*).
    """
    with torch.no_grad():
        target = torch.log(r_hat.detach().clamp_min(MOMENT_EPS))
        lo = torch.full_like(target, ALPHA_RANGE[0])
        hi = torch.full_like(target, ALPHA_RANGE[1])
        for _ in range(iterations):  # 56 halvings of [0.05, 10]: width < 2e-16
            mid = 0.5 * (lo + hi)
            below = log_phi(mid) < target
            lo = torch.where(below, mid, lo)
            hi = torch.where(below, hi, mid)
        alpha = 0.5 * (lo + hi)
        slope = dphi(alpha)
    return alpha + (r_hat - r_hat.detach()) / slope


def _aggd_moments(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """B×N samples → (mean x² over x < 0, mean x² over x ≥ 0, R̂), each of shape B."""
    left = (x < 0).to(x.dtype)  # the package: left is x < 0, right is x ≥ 0
    right = 1 - left
    sq = x * x
    ms_left = (sq * left).sum(1) / left.sum(1).clamp_min(1)
    ms_right = (sq * right).sum(1) / right.sum(1).clamp_min(1)
    r_hat = x.abs().mean(1) ** 2 / (sq.mean(1) + MOMENT_EPS)
    gamma = torch.sqrt((ms_left + MOMENT_EPS) / (ms_right + MOMENT_EPS))
    big_r = r_hat * (gamma**3 + 1) * (gamma + 1) / (gamma**2 + 1) ** 2
    return ms_left, ms_right, big_r


def _aggd_mean(alpha: torch.Tensor, ms_left: torch.Tensor, ms_right: torch.Tensor) -> torch.Tensor:
    """(σr − σl)·sqrt(Γ(1/α)/Γ(3/α))·Γ(2/α)/Γ(1/α), through lgamma for range and stability."""
    sigma_l = torch.sqrt(ms_left + MOMENT_EPS)
    sigma_r = torch.sqrt(ms_right + MOMENT_EPS)
    lg1, lg2, lg3 = torch.lgamma(1 / alpha), torch.lgamma(2 / alpha), torch.lgamma(3 / alpha)
    return (sigma_r - sigma_l) * torch.exp(0.5 * (lg1 - lg3) + lg2 - lg1)


def aggd_fit(x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """AGGD moment fit of each row of B×N samples (``asymmetric_generalized_gaussian_fit``).

    Returns (α, mean, σl², σr²), each of shape B.
    """
    ms_left, ms_right, big_r = _aggd_moments(x)
    alpha = solve_alpha(big_r)
    return alpha, _aggd_mean(alpha, ms_left, ms_right), ms_left, ms_right


def _features_of(grays: list[torch.Tensor]) -> torch.Tensor:
    """18 features per gray image in ``grays`` (each B×H×W), concatenated → B×(18·len)."""
    moments = [_aggd_moments(m.flatten(1)) for g in grays for m in pair_products(mscn(g))]
    ms_left, ms_right, big_r = (torch.stack(t, 1) for t in zip(*moments, strict=True))  # B×M
    alpha = solve_alpha(big_r)  # one root solve for all maps: the bisection loop is the slow bit
    mean = _aggd_mean(alpha, ms_left, ms_right)
    feats = []
    for i in range(alpha.shape[1]):
        if i % 5 == 0:  # the MSCN map itself: α and the mean of the two variances
            feats += [alpha[:, i], (ms_left[:, i] + ms_right[:, i]) / 2]
        else:
            feats += [alpha[:, i], mean[:, i], ms_left[:, i], ms_right[:, i]]
    return torch.stack(feats, 1)


def aggd_features(gray: torch.Tensor) -> torch.Tensor:
    """The 18 single-scale BRISQUE features of B×H×W float64 gray images → B×18."""
    return _features_of([gray])


def _half_size(n: int) -> int:
    return round(n / 2)  # OpenCV: saturate_cast<int>(n·0.5) = cvRound, ties to even like round()


def _cubic_half_axis(x: torch.Tensor, dim: int) -> torch.Tensor:
    n = x.shape[dim]
    src = 2 * torch.arange(_half_size(n), device=x.device)
    taps = [x.index_select(dim, (src + off).clamp(0, n - 1)) for off in (-1, 0, 1, 2)]
    out = taps[0] * CUBIC_HALF[0] + taps[1] * CUBIC_HALF[1]  # OpenCV's order: ((t0 + t1) + t2) + t3
    out = out + taps[2] * CUBIC_HALF[2]
    return out + taps[3] * CUBIC_HALF[3]


def downscale_half(gray: torch.Tensor) -> torch.Tensor:
    """``cv2.resize(gray, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_CUBIC)`` on B×H×W.

    With scale exactly 1/2, OpenCV maps output x to source 2x + 0.5: a fixed 4-tap filter on
    sources 2x − 1 … 2x + 2, with out-of-range source indices clamped to the image (replicate
    border), no antialiasing; rows first (``HResizeCubic``), then columns (``VResizeCubic``),
    each tap sum evaluated left to right, as here, so flat areas keep the package's bits.
    Output size per axis: cvRound(n/2), i.e. ties to even (5 → 2, 7 → 4).
    """
    return _cubic_half_axis(_cubic_half_axis(gray, -1), -2)


def brisque_features(views: torch.Tensor) -> torch.Tensor:
    """The 36 BRISQUE features (full and half scale) of B×3×H×W RGB views in [0, 1] → B×36."""
    gray = rgb_to_gray(views)
    return _features_of([gray, downscale_half(gray)])


def scale_features(
    features: torch.Tensor, feature_min: torch.Tensor, feature_max: torch.Tensor
) -> torch.Tensor:
    """Min/max scaling to [−1, 1] as the package's ``scale_features`` (no clipping)."""
    return -1 + 2.0 / (feature_max - feature_min) * (features - feature_min)


def svr_predict(
    x: torch.Tensor,
    support_vectors: torch.Tensor,
    dual_coef: torch.Tensor,
    rho: torch.Tensor,
    gamma: torch.Tensor,
) -> torch.Tensor:
    """libsvm ε-SVR with RBF kernel: Σᵢ coefᵢ·exp(−γ‖x − svᵢ‖²) − ρ, for B×D inputs → B.

    (``svm_predict_probability`` on an ε-SVR returns exactly this regression value.)
    """
    d2 = ((x.unsqueeze(1) - support_vectors.unsqueeze(0)) ** 2).sum(-1)
    return torch.exp(-gamma * d2) @ dual_coef - rho


def load_model_data() -> dict[str, np.ndarray]:
    """The converted LIVE model (``data/brisque_live.npz``), as float64 numpy arrays."""
    ref = resources.files("pixcamd.models") / "data" / DATA_FILE
    with ref.open("rb") as f, np.load(f) as npz:
        data = {k: np.asarray(npz[k], dtype=np.float64) for k in DATA_KEYS}
    n_sv = data["dual_coef"].shape[0]
    if data["support_vectors"].shape != (n_sv, N_FEATURES) or data["feature_min"].shape != (
        N_FEATURES,
    ):
        raise ValueError(f"{DATA_FILE}: unexpected shapes {[v.shape for v in data.values()]}")
    return data


# --------------------------------------------------------------------------------------------
# Module
# --------------------------------------------------------------------------------------------


class Brisque(QualityModel):
    """BRISQUE with the LIVE-trained SVR of the ``brisque`` package; lower is better."""

    name = "brisque"
    higher_is_better = False
    # "Good quality" iff score < 60. Reference scores of the 22 corpus photos (512×384 centre
    # crops, tests/data/brisque_reference_scores.tsv): clean 11.2–67.4 (median 42.4), JPEG-90
    # 14.4–66.5 (median 43.0), JPEG-20 35.6–106.2 (median 74.6), blur r=2 53.1–96.1 (median
    # 75.0). Splitting clean + JPEG-90 (44) from JPEG-20 + blur (44), 60 misclassifies 13 of 88
    # (5 clean above, 8 degraded below: the JPEG-20 of the sharpest photos), the fewest of any
    # round number (65 ties, 50 gets 20 wrong; the unrounded optimum 61.5 gets 12).
    threshold = 60.0
    # Protection target: score ≥ 80. KonCept512 aims 20 points past its threshold (30 vs 50) on
    # its 0–100 MOS scale; BRISQUE's SVR was trained on LIVE's 0–100 DMOS, so the equivalent is
    # 20 points past 60 = 80: worse than every clean or JPEG-90 crop (max 67.4) and than the
    # median JPEG-20 (74.6) and blurred (75.0) crop. See docs/brisque.md.
    default_target = 80.0
    view_size = (384, 512)

    def __init__(self):
        super().__init__()
        data = load_model_data()
        for key in DATA_KEYS:
            self.register_buffer(key, torch.from_numpy(data[key]))
        digest = tensors_sha256(getattr(self, key) for key in DATA_KEYS)
        self.fingerprint = f"brisque-live-svr@sha256:{digest[:16]}"
        self.train(False)

    def features(self, views: torch.Tensor) -> torch.Tensor:
        """B×36 unscaled BRISQUE features (float64)."""
        check_views(views, MIN_SIDE)
        return brisque_features(views)

    def forward(self, views: torch.Tensor) -> torch.Tensor:
        """B×3×H×W views in [0, 1] (from uint8 pixels) → B BRISQUE scores, float32."""
        x = scale_features(self.features(views), self.feature_min, self.feature_max)
        scores = svr_predict(x, self.support_vectors, self.dual_coef, self.rho, self.gamma)
        return scores.to(torch.float32)


__all__ = [
    "Brisque",
    "aggd_features",
    "aggd_fit",
    "brisque_features",
    "downscale_half",
    "gaussian_window",
    "mscn",
    "pair_products",
    "reference_window",
    "rgb_to_gray",
    "scale_features",
    "solve_alpha",
    "svr_predict",
]
