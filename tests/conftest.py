"""Shared fixtures: the real-photo corpus (skipped cleanly where absent) and test data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"
# ../shared beside the project root, on developer machines and in CI; absent elsewhere.
SHARED = Path(os.environ.get("PIXCAMD_SHARED", ROOT.parent / "shared"))
CORPUS = SHARED / "corpus"


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A fresh user: HOME and the XDG folders in tmp_path, no $PIXCAMD_CONFIG."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("PIXCAMD_CONFIG", raising=False)
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    monkeypatch.delenv("LOGS_DIRECTORY", raising=False)
    return tmp_path


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    if not (CORPUS / "photos").is_dir():
        pytest.skip(f"real-photo corpus not found at {CORPUS}")
    return CORPUS


def recipe_state_dict() -> dict:
    """The deterministic weights of ../shared/reference/README.md, built from our manifest copy.

    For the tensor at state-dict index i with n elements: u = RandomState(i).uniform(-1, 1, n);
    running_var 1 + 0.5u², running_mean 0.1u, BatchNorm gamma 1 + 0.2u, bias 0.1u,
    num_batches_tracked 0, conv/linear weights u·sqrt(6 / fan_in).
    """
    import numpy as np
    import torch

    state = {}
    for line in (DATA / "koncept512_manifest.tsv").read_text().splitlines()[1:]:
        index, key, shape_text, _dtype = line.split("\t")
        shape = () if shape_text == "scalar" else tuple(int(s) for s in shape_text.split("x"))
        n = int(np.prod(shape)) if shape else 1
        u = np.random.RandomState(int(index)).uniform(-1.0, 1.0, size=n)
        if key.endswith("num_batches_tracked"):
            state[key] = torch.zeros((), dtype=torch.int64)
            continue
        if key.endswith("running_var"):
            v = 1 + 0.5 * u**2
        elif key.endswith("running_mean"):
            v = 0.1 * u
        elif len(shape) == 1 and key.endswith("weight"):
            v = 1 + 0.2 * u
        elif key.endswith("bias"):
            v = 0.1 * u
        else:
            v = u * np.sqrt(6 / (n / shape[0]))
        state[key] = torch.from_numpy(v.reshape(shape).astype(np.float32))
    return state


@pytest.fixture(scope="session")
def recipe_weights() -> dict:
    return recipe_state_dict()


@pytest.fixture(scope="session")
def recipe_checkpoint(recipe_weights, tmp_path_factory) -> Path:
    """The recipe weights saved as an official-layout ``KonCept512.pth``."""
    import torch

    path = tmp_path_factory.mktemp("weights") / "KonCept512.pth"
    torch.save(recipe_weights, path)
    return path


@pytest.fixture(scope="session")
def tiny_biqa():
    """A small quality model trained here on synthetic distortions (see tests/tinybiqa.py)."""
    from tinybiqa import train_tiny_biqa

    return train_tiny_biqa()


@pytest.fixture(scope="session")
def brisque():
    from pixcamd.models import load_model

    return load_model("brisque")


# ---- a real Ray cluster (tests/raycluster.py) ------------------------------------------------


@pytest.fixture(scope="module")
def ray_env():
    """What every Ray process of a test module runs with, this one (the driver) included:
    token authentication on, with a token of its own; no usage statistics sent anywhere."""
    import secrets
    import sys

    pytest.importorskip("ray")
    from raycluster import reread_auth_settings

    if sys.platform != "linux":
        pytest.skip("the Ray cluster fixtures find their processes in /proc")
    settings = {
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": secrets.token_hex(32),
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    with pytest.MonkeyPatch.context() as mp:
        for key, value in settings.items():
            mp.setenv(key, value)
        reread_auth_settings()
        yield dict(os.environ)
    reread_auth_settings()  # the environment as it was, for whatever runs next


@pytest.fixture(scope="module")
def cluster(ray_env) -> str:
    """A head and a second node, one CPU each, on 127.0.0.1; yields the address."""
    from raycluster import ray_cluster

    with ray_cluster(2, ray_env) as running:
        yield running.address


# ---- the web page's world: a ledger the real daemon made (tests/web_support.py) ----------------

from web_support import world, world_template  # noqa: E402, F401
