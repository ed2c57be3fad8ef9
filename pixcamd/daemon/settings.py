"""From the daemon's config to what ``protect()`` runs with: the models ``auto`` resolves to, the
``Settings`` (with a stronger retry's budget, or stepped down after a GPU ran out of memory),
each job's options, and the fingerprint recorded per photo (what decides whether a held-back
photo is tried again)."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import replace
from pathlib import Path

from pixcamd.daemon.config import Config, ConfigError
from pixcamd.defaults import default_weights_path, in_order, resolve_name
from pixcamd.platforms import loop_order

# Raised when the search writes other pixels for the same settings and constants in a way no
# setting or constant below records: 2 — roaming views also on photos that no named pipeline
# shrinks (2026-12-05).
SEARCH_REVISION = 2


def settings_fingerprint(
    settings, models, strip_gps: bool = True, strip_metadata: bool = False
) -> str:
    """What determines the output: recorded per photo; unprotected/failed rows are retried when
    it changes (they were never shipped), a folder run redoes its photos. Device and batch size
    do not change the result's meaning and are left out; whether the copy keeps the GPS
    position, or any metadata at all, does (it is in the copy's bytes)."""
    # The step rule and the roaming draws: the same settings, other pixels.
    from pixcamd.optimizer import FADE, STEP_CLIP, TREND_POINTS, TREND_SPAN
    from pixcamd.roaming import (
        NEAR_FULL,
        NEAR_FULL_444_SHARE,
        ROAM_ASPECTS,
        ROAM_CROP_FIT_SHARE,
        ROAM_CROP_SHARE,
        ROAM_NATIVE_QUALITY,
        ROAM_NATIVE_SHARE,
        ROAM_QUALITY,
    )
    from pixcamd.search import TRIM_MARGIN

    data = {
        **_chosen(settings, models),
        "schedule": settings.schedule(),
        "output_subsampling": settings.output_subsampling,
        "views_per_step": settings.views_per_step,
        "roaming": settings.roaming,
        "near_full": [settings.near_full, NEAR_FULL, NEAR_FULL_444_SHARE],
        "grid_jitter": settings.grid_jitter,
        "fit_jitter": settings.fit_jitter,
        "polish_steps": settings.polish_steps,
        "polish_floor": [settings.polish_floor, TRIM_MARGIN],  # and a copy below it drawn there
        "early_escalation": [settings.early_escalation, TREND_POINTS, TREND_SPAN],
        "masking": settings.masking,
        "step_clip": STEP_CLIP,
        "fade": FADE,
        "roaming_draws": [
            ROAM_QUALITY,
            ROAM_NATIVE_SHARE,
            ROAM_NATIVE_QUALITY,
            ROAM_CROP_SHARE,
            ROAM_CROP_FIT_SHARE,
            ROAM_ASPECTS,
        ],
        "search_revision": SEARCH_REVISION,
    }
    data.update(_metadata(strip_gps, strip_metadata))
    digest = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()
    return "s1-" + digest[:16]


def settings_key(settings, models, strip_gps: bool = True, strip_metadata: bool = False) -> str:
    """What a person chose of ``settings_fingerprint`` — models, platforms, mode, budget,
    target, steps, seed, output quality, GPS, metadata — without the search's own constants: a
    folder run tells a photo redone for a changed setting from one redone because pixcamd's
    search changed since (recorded in each photo's report)."""
    data = {**_chosen(settings, models), "keep_gps": False, **_metadata(strip_gps, strip_metadata)}
    return "k1-" + hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def _metadata(strip_gps: bool, strip_metadata: bool) -> dict:
    """What the copy's metadata adds to the fingerprint and the key: only what is not the
    default, so the default's fingerprints stay what they were. With ``strip_metadata`` the
    position goes with every other tag, whatever ``strip_gps`` says: one copy, one record."""
    if strip_metadata:
        return {"strip_metadata": True}
    return {} if strip_gps else {"keep_gps": True}


def _chosen(settings, models) -> dict:
    """The settings a person chooses, as both the fingerprint and the key record them."""
    return {
        "mode": settings.mode,
        "enhance_strength": settings.enhance_strength,
        "views": list(in_order(settings.views)),  # the same set, the same copy
        "epsilon": settings.epsilon,
        "epsilon_cap": settings.epsilon_cap,
        "targets": settings.targets,
        "steps": settings.steps,
        "seed": settings.seed,
        "output_quality": settings.output_quality,
        "platforms": [p.spec() for p in loop_order(settings.platforms)],
        "models": [m.fingerprint for m in models],
    }


def build_settings(config: Config, models, device: str):
    """protect()'s Settings from the config; target problems are reported as config errors."""
    from pixcamd.settings import make_settings

    try:
        return make_settings(
            models,
            target=config.target,
            epsilon=config.epsilon,
            epsilon_cap=config.epsilon_cap,
            enhance_strength=config.enhance_strength,
            mode=config.mode,
            views=tuple(config.views),
            steps=config.steps,
            seed=config.seed,
            output_quality=config.output_quality,
            platforms=config.platform_pipelines,
            device=device,
        )
    except ValueError as exc:  # said as validate() says every problem: FILE: key: problem
        where = f"{config.source}: " if config.source is not None else ""
        problem = str(exc).removeprefix("target ")
        raise ConfigError("invalid configuration:", [f"{where}target: {problem}"]) from None


def weights_file(config: Config) -> Path:
    """Where KonCept512's weights are read from: the config's ``weights``, else the cache's."""
    return config.weights_path or default_weights_path()


def resolve_models(config: Config) -> tuple[list[str], str]:
    """(model names, note): what ``auto`` becomes, and why — said loudly at start-up."""
    if config.model == ["auto"]:
        name = resolve_name("auto", config.weights_path)
        if name == "brisque":
            return ["brisque"], (
                f"model auto → BRISQUE (embedded): KonCept512 weights are not installed at "
                f"{weights_file(config)}. The filter to fool is usually KonCept512: install it "
                "with `pixcamd model fetch`, then restart or reload the daemon"
            )
        return ["koncept512"], f"model auto → KonCept512 (weights at {weights_file(config)})"
    return list(config.model), f"model {'+'.join(config.model)} (configured)"


_TORCH_THREADS: list[int] = []  # torch's own choice, before any config set one


def use_threads(config: Config) -> None:
    """The config's ``threads`` for torch, or torch's own choice for 0 — also after a reload
    that sets 0 again. Called where a photo starts, so one under way keeps its threads."""
    import torch

    if not _TORCH_THREADS:
        _TORCH_THREADS.append(torch.get_num_threads())
    torch.set_num_threads(config.threads or _TORCH_THREADS[0])


def load_models(config: Config, injected: list | None = None) -> tuple[list, str, bool]:
    """(models, note, fallback): the config's models loaded on its device; ``injected``
    (already-loaded models, from tests) instead when given. ``fallback``: ``auto`` found no
    KonCept512 weights and fell back to BRISQUE. Torch's threads are ``use_threads``'."""
    if injected is not None:
        names = "+".join(m.name for m in injected)
        return list(injected), f"model {names} (given by the caller)", False

    from pixcamd.devices import resolve_device
    from pixcamd.models import load_model

    names, note = resolve_models(config)
    try:
        device = resolve_device(config.device)
    except ValueError as exc:
        raise ConfigError(f"device: {exc}") from None
    models = [load_model(name, config.weights_path, device) for name in names]
    fallback = config.model == ["auto"] and names == ["brisque"]
    return models, note, fallback


def model_device(models) -> str:
    for model in models:
        for tensor in (*model.parameters(), *model.buffers()):
            return str(tensor.device)
    return "cpu"


def with_budget(settings, budget: dict | None):
    """``settings`` with a stronger retry's larger budget (``pixcamd.daemon.retry.stronger``):
    ε and its cap in 8-bit grey levels, steps per round; never below what the config gives."""
    if not budget:
        return settings
    return replace(
        settings,
        epsilon=max(settings.epsilon, budget["epsilon"] / 255),
        epsilon_cap=max(settings.epsilon_cap, budget["epsilon_cap"] / 255),
        steps=max(settings.steps, budget["steps"]),
    )


def job_options(config: Config, settings):
    """How the daemon protects each photo, here or on a cluster: its settings, what metadata the
    copy keeps (all but the GPS position, all of it, or only the colour profile), the decoder's
    limit, and whether an unprotected copy is wanted at all (shipped anyway, or held for a
    person)."""
    from pixcamd.job import JobOptions

    return JobOptions(
        settings,
        strip_gps=config.strip_gps,
        strip_metadata=config.strip_metadata,
        keep_unprotected=config.on_unprotected == "ship" or config.hold_dir is not None,
        max_pixels=config.max_pixels,
    )


# GPU out of memory: the batch halved down to 1 (``degrade`` 1, 2, …), then the CPU.
def is_gpu_oom(exc: BaseException) -> bool:
    import torch

    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and "out of memory" in text and "cuda" in text


def _halvings(settings) -> int:
    return int(math.log2(max(1, settings.batch_size)))


def can_degrade(settings, degrade: int) -> bool:
    """Whether a photo that ran out of GPU memory at step ``degrade`` has a step further."""
    return str(settings.device).startswith("cuda") and degrade <= _halvings(settings)


def degrade_label(settings, degrade: int) -> str:
    if degrade > _halvings(settings):
        return "on the CPU"
    return f"with batch size {max(1, settings.batch_size >> degrade)}"


def degraded(settings, degrade: int):
    """``settings`` at step ``degrade`` down the ladder."""
    if degrade == 0:
        return settings
    if degrade > _halvings(settings):
        return replace(settings, device="cpu", batch_size=1)
    return replace(settings, batch_size=max(1, settings.batch_size >> degrade))
