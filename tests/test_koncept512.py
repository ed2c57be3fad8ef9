"""KonCept512 is the network the task ran: proved against reference numbers, not against itself.

The reference numbers (tests/data, copied from ../shared/reference) were produced by the organizers'
port with deterministic weights; nothing here was computed by pixcamd.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from pixcamd.errors import NotACheckpoint, TruncatedCheckpoint, WeightsMissing, WrongArchitecture
from pixcamd.models import load_model
from pixcamd.models.koncept512 import KonCept512

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def reference(data_dir):
    return json.loads((data_dir / "koncept512_reference_outputs.json").read_text())


@pytest.fixture(scope="module")
def model(recipe_checkpoint):
    return load_model("koncept512", weights=recipe_checkpoint)


def reference_inputs() -> torch.Tensor:
    """The two 384×512 test images of the reference recipe, RGB in [0, 1]."""
    h = np.arange(384, dtype=np.float64)[:, None]
    w = np.arange(512, dtype=np.float64)[None, :]
    image0 = [0.5 + 0.4 * np.sin(0.031 * h * (c + 1) + 0.017 * w * (3 - c) + c) for c in range(3)]
    image1 = [
        np.clip(0.5 + 0.45 * np.cos(0.011 * (h - 150) * (w - 200) / 60 + 1.3 * c), 0, 1)
        for c in range(3)
    ]
    return torch.from_numpy(np.stack([np.stack(image0), np.stack(image1)]).astype(np.float32))


def test_every_key_and_shape_matches_the_official_checkpoint(data_dir):
    rows = [
        line.split("\t") for line in (data_dir / "koncept512_manifest.tsv").read_text().splitlines()
    ]
    manifest = [(key, shape, dtype) for _i, key, shape, dtype in rows[1:]]
    with torch.device("meta"):
        ours = KonCept512().state_dict()
    assert len(manifest) == 1327
    assert [key for key, _, _ in manifest] == list(ours)
    for key, shape, dtype in manifest:
        t = ours[key]
        assert ("x".join(map(str, t.shape)) or "scalar") == shape, key
        assert str(t.dtype).removeprefix("torch.") == dtype, key


def test_reproduces_the_reference_scores(model, reference):
    with torch.no_grad():
        scores = model(reference_inputs())
    np.testing.assert_allclose(scores.numpy(), reference["score"], rtol=1e-4)


def test_pools_the_top_left_8x8_cells_not_the_whole_map(model, reference):
    with torch.no_grad():
        fmap = model.features(reference_inputs())
        pooled = fmap[:, :, :8, :8].mean(dim=(2, 3))
        global_score = model.fc(fmap.mean(dim=(2, 3))).squeeze(1)
        scores = model(reference_inputs())
    assert list(fmap.shape) == reference["feature_map_shape"]
    np.testing.assert_allclose(pooled[:, :8].numpy(), reference["pooled_feature_first8"], atol=1e-5)
    np.testing.assert_allclose(pooled.sum(1).numpy(), reference["pooled_feature_sum"], rtol=1e-4)
    # The recorded global-pooling score is what the wrong pooling gives on our features...
    np.testing.assert_allclose(
        global_score.numpy(), reference["score_if_global_average_pooling"], rtol=1e-4
    )
    # ...and our model does not give it.
    wrong = np.asarray(reference["score_if_global_average_pooling"])
    assert np.all(np.abs(scores.numpy() - wrong) > 0.01)


def test_stays_in_eval_mode_and_is_deterministic(model):
    x = reference_inputs()[:1]
    model.train()
    assert not model.training and not any(m.training for m in model.modules())
    with torch.no_grad():
        assert torch.equal(model(x), model(x))


def test_gradient_reaches_the_input(model):
    x = reference_inputs()[:1].requires_grad_(True)
    model(x).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize(("height", "width"), [(298, 512), (384, 555), (200, 200)])
def test_rejects_views_outside_the_trained_size_range(model, height, width):
    with pytest.raises(ValueError, match="299–554"):
        model(torch.zeros(1, 3, height, width))


def test_accepts_the_extremes_of_the_size_range(model):
    with torch.no_grad():
        assert model(torch.full((1, 3, 299, 554), 0.5)).shape == (1,)


def test_fingerprint_names_architecture_and_weights(model, recipe_weights, tmp_path):
    prefixed = tmp_path / "prefixed.pth"
    torch.save({f"module.{k}": v for k, v in recipe_weights.items()}, prefixed)
    again = load_model("koncept512", weights=prefixed)
    assert again.fingerprint == model.fingerprint
    assert model.fingerprint.startswith("koncept512-irv2-avgpool8-topleft@sha256:")
    assert KonCept512().fingerprint.endswith("@random-init")
    with torch.no_grad():
        assert torch.equal(again(reference_inputs()), model(reference_inputs()))


def test_reads_the_legacy_torch_format(recipe_weights, tmp_path, reference):
    legacy = tmp_path / "legacy.pth"
    torch.save(recipe_weights, legacy, _use_new_zipfile_serialization=False)
    with torch.no_grad():
        scores = load_model("koncept512", weights=legacy)(reference_inputs())
    np.testing.assert_allclose(scores.numpy(), reference["score"], rtol=1e-4)


def test_missing_weights_say_how_to_get_them(tmp_path):
    with pytest.raises(WeightsMissing, match="pixcamd model fetch"):
        load_model("koncept512", weights=tmp_path / "nope.pth")


@pytest.mark.parametrize("keep", [0, 1000, 0.5])
def test_truncated_checkpoint(recipe_checkpoint, tmp_path, keep):
    data = recipe_checkpoint.read_bytes()
    cut = tmp_path / "cut.pth"
    cut.write_bytes(data[: int(len(data) * keep) if isinstance(keep, float) else keep])
    with pytest.raises(TruncatedCheckpoint):
        load_model("koncept512", weights=cut)


def test_truncated_legacy_checkpoint(recipe_weights, tmp_path):
    legacy = tmp_path / "legacy.pth"
    torch.save(recipe_weights, legacy, _use_new_zipfile_serialization=False)
    legacy.write_bytes(legacy.read_bytes()[:5_000_000])
    with pytest.raises(TruncatedCheckpoint):
        load_model("koncept512", weights=legacy)


def test_not_a_checkpoint(tmp_path):
    text = tmp_path / "KonCept512.pth"
    text.write_text("<html>Too many requests</html>")
    with pytest.raises(NotACheckpoint):
        load_model("koncept512", weights=text)
    with pytest.raises(NotACheckpoint):
        load_model("koncept512", weights=tmp_path)  # a folder


def test_pickled_objects_are_refused_not_executed(tmp_path):
    pickled = tmp_path / "model.pth"
    torch.save(torch.nn.Linear(2, 2), pickled)
    with pytest.raises(NotACheckpoint, match="pickled Python objects"):
        load_model("koncept512", weights=pickled)


def test_wrong_architecture(recipe_weights, tmp_path):
    other = tmp_path / "other.pth"
    torch.save(torch.nn.Linear(2, 2).state_dict(), other)
    with pytest.raises(WrongArchitecture, match="1327 missing"):
        load_model("koncept512", weights=other)

    reshaped = dict(recipe_weights)
    reshaped["fc.12.weight"] = torch.zeros(2, 256)
    bad_head = tmp_path / "bad_head.pth"
    torch.save(reshaped, bad_head)
    with pytest.raises(WrongArchitecture, match=r"fc\.12\.weight \(2, 256\)"):
        load_model("koncept512", weights=bad_head)
