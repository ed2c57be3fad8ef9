"""What a protection run is asked for: ``Settings`` (the budget and its schedule, the platform
pipelines, the views, the search's knobs), with the defaults the command line, the daemon's config
schema and ``protect()`` all take, one source for each (``pixcamd.defaults``, without torch).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from pixcamd.defaults import DEFAULT_MODE, EPSILON, EPSILON_CAP, OUTPUT_QUALITY, STEPS, STRENGTH
from pixcamd.defaults import MODES as MODES  # re-exported: `--mode`'s and the config's choices
from pixcamd.jpeg import Chain
from pixcamd.models.base import QualityModel
from pixcamd.pipeline_views import FIT_JITTER, GRID_JITTER
from pixcamd.platforms import DEFAULT_PLATFORMS, PRESETS, Pipeline
from pixcamd.views import DEFAULT_VIEWS

POLISH_FLOOR = 36.0  # dB: the least PSNR the polish may take a copy to (issue #11's floor)


@dataclass(frozen=True)
class Settings:
    mode: str = DEFAULT_MODE
    views: tuple[str, ...] = DEFAULT_VIEWS
    epsilon: float = EPSILON / 255  # L∞ budget per pixel (in strong texture; elsewhere less)
    epsilon_cap: float = EPSILON_CAP / 255  # escalation never goes beyond this
    enhance_strength: float = STRENGTH / 255  # largest change of the filter's tone curves
    targets: dict[str, float] = field(default_factory=dict)  # per model; default: its own
    steps: int = STEPS
    seed: int = 0
    output_quality: int = OUTPUT_QUALITY
    output_subsampling: str = "4:4:4"
    platforms: tuple[Pipeline, ...] = tuple(PRESETS[n] for n in DEFAULT_PLATFORMS)
    masking: bool = True
    views_per_step: int = 3  # loop views evaluated per step (the cost bound; 0 = all)
    roaming: int = 2  # slots of a step for random pipelines in no preset (robustness)
    # ... and slots beside them for a downscale near full size (docs/benchmarks.md, "Near full
    # size"): where a named pipeline downscales, each step sees ``views_per_step`` + this views
    near_full: int = 1
    grid_jitter: float = GRID_JITTER  # downscaled crops evaluated at a served size ± this
    fit_jitter: float = FIT_JITTER  # fits evaluated from a box ± this
    polish_steps: int = 10  # once protected, at most this many more steps to reach the margin
    # ...and never below this PSNR (dB, the copy against the photo; 0: no floor): the margin is
    # insurance, invisibility the promise (docs/benchmarks.md, "The polish and the PSNR floor")
    polish_floor: float = POLISH_FLOOR
    # A round that is not the last ends as soon as the loop's trend says its budget will not
    # protect the photo by the round's end (``Attack.falls_short``): the budget grows sooner.
    early_escalation: bool = True
    batch_size: int = 2
    device: str = "cpu"
    # Views of a step evaluated side by side on the CPU, at most one per torch thread: the same
    # δ to the bit, sooner (docs/benchmarks.md, "Views side by side"); 1: one after the other.
    workers: int = 2

    def schedule(self) -> list[float]:
        """ε per round: the base, then ×1.5 up to the cap. No second round at the base: over the
        22 corpus photos it protected one that the first had not, while ten went through it
        unprotected and escalated anyway (docs/benchmarks.md, "The served grid")."""
        rounds, eps = [self.epsilon], self.epsilon
        while self.epsilon > 0 and eps < self.epsilon_cap:
            eps = min(self.epsilon_cap, eps * 1.5)
            rounds.append(eps)
        return rounds

    @property
    def output(self) -> tuple[int, str]:
        return self.output_quality, self.output_subsampling

    def chain(self) -> Chain:
        """Our encoding and the first pipeline's re-encode (JPEG, WebP or AVIF) at full size: what
        the colour filter's loop models (the check judges every pipeline)."""
        first = next((p for p in self.platforms if p.quality is not None), PRESETS["task"])
        return Chain(
            self.output_quality,
            self.output_subsampling,
            first.quality,
            first.subsampling,
            first.codec,
        )


def model_targets(models: list[QualityModel], settings: Settings) -> dict[str, float]:
    """Each model's target: the one ``settings`` gives, else the model's own default; a target
    on the good-quality side of the threshold is a ValueError."""
    targets = {}
    for m in models:
        target = settings.targets.get(m.name, getattr(m, "default_target", m.threshold))
        beyond = target < m.threshold if m.higher_is_better else target > m.threshold
        if not (beyond or target == m.threshold):
            raise ValueError(
                f"target {target:g} for {m.name} is on the good-quality side of its threshold "
                f"{m.threshold:g}"
            )
        targets[m.name] = float(target)
    return targets


def make_settings(
    models: list[QualityModel],
    *,
    target: dict[str, float],
    epsilon: float,
    epsilon_cap: float,
    enhance_strength: float,
    **options,
) -> Settings:
    """Settings from what a person writes — the command line or the daemon's config: budgets in
    8-bit grey levels, ``target`` as {"*": score} for "the one model" or {model: score}. Every
    problem is a ValueError that names it; other ``options`` are Settings fields as they are."""
    names = [m.name for m in models]
    if "*" in target:
        if len(models) > 1:
            raise ValueError("several models: give the target as MODEL=SCORE for each")
        target = {names[0]: target["*"]}
    unknown = sorted(set(target) - set(names))
    if unknown:
        raise ValueError(f"the target names {unknown[0]}, which is not among {', '.join(names)}")
    settings = Settings(
        targets=dict(target),
        epsilon=epsilon / 255,
        epsilon_cap=max(epsilon, epsilon_cap) / 255,
        enhance_strength=enhance_strength / 255,
        **options,
    )
    model_targets(models, settings)  # a target on the good-quality side is refused here, not later
    return settings


def view_workers(settings: Settings) -> int:
    """Views evaluated side by side: on the CPU, ``settings.workers`` but never more than the
    torch threads the caller allows (``--threads``, the daemon's ``threads``); on a GPU one."""
    if not settings.device.startswith("cpu"):
        return 1
    return max(1, min(settings.workers, torch.get_num_threads()))
