"""The progressive-distillation family (chapter 16): a student ε-network initialised from its
teacher (a diffusion model of the zoo, or an earlier student) and trained so that one of its
deterministic DDIM steps does the work of two of the teacher's (Salimans & Ho, 2022). Each round
is a zoo entry whose teacher is the previous round, so the rounds are trained once and cached."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .. import distill, samplers, zoo
from ..diffusion import GaussianDiffusion
from ..family import Family, Trained, as_arrays, register_family
from ..nets import DENOISERS
from ..schedules import get_beta_schedule

__all__ = ["DistillSpec", "DistillFamily", "root_entry"]

FAMILY = "progressive-distillation"


@dataclass(frozen=True)
class DistillSpec:
    """A distilled student.

    Attributes:
        teacher: the zoo name of the teacher: a diffusion model with an ε-network, or an
            earlier student of this family.
        student_steps: N, the student's number of DDIM steps; the teacher takes 2N
            (the trailing grids of :func:`diffusion_lib.distill.teacher_steps`).
        clip: clip the teacher's x̂_0 to [-1, 1] (images), as its sampler does.
    """

    teacher: str
    student_steps: int
    clip: bool = True


def root_entry(entry):
    """The diffusion model at the start of a chain of students: its network and process are
    every student's."""
    seen = set()
    while entry.family == FAMILY:
        if entry.name in seen:
            raise ValueError(f"teacher must not form a cycle, got one through {entry.name!r}")
        seen.add(entry.name)
        entry = zoo.entry(entry.spec.teacher)
    if entry.family != "diffusion" or entry.spec.prediction_type != "epsilon":
        raise ValueError(
            f"the first teacher must be a diffusion model with an ε-network, got {entry.name!r} "
            f"({entry.family})"
        )
    if entry.spec.network.get("num_classes") is not None:
        raise ValueError(f"the first teacher must be unconditional, got {entry.name!r}")
    return entry


class DistillFamily(Family):
    """Students of progressive distillation; the cache holds the student's EMA ε-network."""

    name = FAMILY
    spec_type = DistillSpec
    sample_arrays = {"images": "float32 (N, C, H, W) in [0, 1]"}

    def check_spec(self, spec) -> None:
        super().check_spec(spec)
        if not isinstance(spec.teacher, str) or not spec.teacher:
            raise ValueError(f"teacher must be a zoo model's name, got {spec.teacher!r}")
        steps = spec.student_steps
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"student_steps must be an int >= 1, got {steps!r}")
        if not isinstance(spec.clip, bool):
            raise ValueError(f"clip must be True or False, got {spec.clip!r}")

    def build(self, entry) -> nn.Module:
        network = dict(root_entry(entry).spec.network)
        kind = network.pop("type")
        torch.manual_seed(entry.init_seed)
        return DENOISERS[kind](**network)

    def process(self, entry) -> GaussianDiffusion:
        spec = root_entry(entry).spec
        return GaussianDiffusion(
            get_beta_schedule(spec.schedule, spec.num_timesteps), model_var_type=spec.model_var_type
        )

    def train(self, entry, data, *, dependencies, checkpoint, progress, device) -> Trained:
        teacher = dependencies[entry.spec.teacher]
        diffusion = self.process(entry)
        pairs = distill.teacher_steps(diffusion.num_timesteps, entry.spec.student_steps)
        student = self.build(entry)
        student.load_state_dict(teacher.model.state_dict())  # the student starts as its teacher
        teacher_net = teacher.model.to(device).eval().requires_grad_(False)

        def loss(model, batch, generator):
            return distill.distillation_loss(
                model, teacher_net, diffusion, batch[0], pairs, generator, clip=entry.spec.clip
            )

        try:
            return self.train_network(
                entry, loss, data, checkpoint=checkpoint, progress=progress, device=device, network=student
            )
        finally:
            teacher.model.to("cpu")

    def sampling_options(self, entry, given: dict) -> dict:
        return {}

    def sample(self, loaded, n, *, batch_size, generator, options) -> dict:
        steps = loaded.entry.spec.student_steps
        batches = []
        for first in range(0, n, batch_size):
            size = min(batch_size, n - first)
            batches.append(
                samplers.ddim(
                    loaded.model, loaded.diffusion, (size, *loaded.entry.sample_shape),
                    steps=steps, spacing=distill.SPACING, generator=generator, progress=False,
                )
            )  # fmt: skip
        return as_arrays(torch.cat(batches))

    def describe(self, entry, options) -> str:
        return f"ddim ({entry.spec.student_steps} distilled steps, trailing, η = 0)"


register_family(DistillFamily())
