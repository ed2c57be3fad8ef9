"""The Ray actor of ``pixcamd.executors.ray.RayExecutor``: the code that runs on the cluster's
workers — the models loaded once, then one photo at a time, bytes in and an ``Outcome`` out.
It imports Ray and torch only inside the actor's process (the head needs neither to define it).
"""

from __future__ import annotations

from dataclasses import replace

from pixcamd.executors import JobOptions


class PhotoWorker:
    """A Ray actor: the models, loaded once; one photo at a time (Ray runs an actor's methods in
    order), bytes in and an ``Outcome`` out."""

    def __init__(self, model_names: list[str], state_dict, options: JobOptions, threads: int):
        import os

        import ray
        import torch

        from pixcamd.allocator import one_arena
        from pixcamd.models import load_model

        one_arena()  # before this process's view threads start (pixcamd.allocator)
        torch.set_num_threads(threads)
        # Ray hides every GPU but the one this actor was given: "cuda" is that one.
        device = "cuda" if ray.get_gpu_ids() and torch.cuda.is_available() else "cpu"
        models = []
        for name in model_names:
            if name == "koncept512":  # from the head's validated weights, in memory
                from pixcamd.models.koncept512 import KonCept512

                models.append(KonCept512(state_dict).to(device).eval())
            else:
                models.append(load_model(name, None, device))
        self.models = models
        # the settings as on the head, on this actor's device
        self.options = replace(options, settings=replace(options.settings, device=device))
        self.info = {
            "pid": os.getpid(),
            "node": ray.get_runtime_context().get_node_id(),
            "device": device,
            "models": [m.fingerprint for m in models],
        }

    def ready(self) -> dict:
        return self.info

    def protect(self, data: bytes, name: str):
        from pixcamd.devices import release_memory
        from pixcamd.errors import NotEnoughMemory, TooLargeForMemory
        from pixcamd.job import protect_photo

        try:
            return protect_photo(data, name, self.models, self.options)
        except TooLargeForMemory as exc:  # for this node: another of the cluster may have more
            raise NotEnoughMemory(f"{exc} (on the node {self.info['node'][:12]})") from None
        finally:
            release_memory()  # an idle actor should not sit on a 24 MP photo's tensors
