"""The classifier family: a network trained with cross-entropy on labelled data; the digits
classifier is the feature network of the metrics (chapters 6 and 9). With a noise process it
is a noise-aware classifier p_φ(y | x_t, t), trained on noisy inputs for classifier guidance
(chapter 11). It cannot be sampled."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

import torch
from torch import nn

from ..diffusion import GaussianDiffusion
from ..family import Family, Trained, register_family
from ..nets.classifier import DigitsClassifier
from ..nets.unet import EncoderClassifier
from ..schedules import get_beta_schedule

__all__ = [
    "ClassifierSpec",
    "ClassifierFamily",
    "NETWORKS",
    "TIMED_NETWORKS",
    "cross_entropy_loss",
    "noisy_cross_entropy_loss",
]

# The classifiers a spec's ``network["type"]`` may name.
NETWORKS: dict[str, Callable[..., nn.Module]] = {
    "digits_classifier": DigitsClassifier,
    "unet_encoder": EncoderClassifier,
}
# The ones called as ``model(x_t, t)``: a spec with one of them needs ``noise``, and the others
# (``model(x)``) refuse it.
TIMED_NETWORKS = ("unet_encoder",)
# The keys of ``ClassifierSpec.noise``: the β schedule of the diffusion model to be guided.
NOISE_KEYS = ("schedule", "num_timesteps")


@dataclass(frozen=True)
class ClassifierSpec:
    """A classifier.

    Attributes:
        network: ``{"type": ..., **constructor kwargs}`` (see :data:`NETWORKS`).
        noise: None for a classifier of clean inputs, ``model(x)``; or the forward process of
            the diffusion model it will guide, ``{"schedule": "linear", "num_timesteps": 1000}``
            (:func:`~diffusion_lib.schedules.get_beta_schedule`): a noise-aware classifier,
            ``model(x_t, t)``, trained on x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε with t uniform on
            [0, T − 1] (chapter 11). Its network must be one of :data:`TIMED_NETWORKS`.
    """

    network: dict = field(default_factory=lambda: {"type": "digits_classifier"})
    noise: Optional[dict] = None


def cross_entropy_loss(model: nn.Module, batch: list, generator: torch.Generator) -> torch.Tensor:
    """The mean cross-entropy of the logits ``model(batch[0])`` against the labels ``batch[1]``."""
    return nn.functional.cross_entropy(model(batch[0]), batch[1])


def noisy_cross_entropy_loss(diffusion: GaussianDiffusion):
    """The loss of a noise-aware classifier: ``loss(model, batch, generator)``, the mean
    cross-entropy of ``model(x_t, t)`` against the labels ``batch[1]``, with t uniform on
    [0, T − 1] and x_t drawn from q(x_t | x_0 = batch[0]), both from ``generator``.

    Derived in chapter 11 (Dhariwal & Nichol, 2021, section 4: "we train a classifier
    p_φ(y | x_t, t) on noisy images x_t").

    Args:
        diffusion: the forward process of the diffusion model to be guided.
    """

    def loss(model: nn.Module, batch: list, generator: torch.Generator) -> torch.Tensor:
        x0, labels = batch[0], batch[1]
        t = diffusion.sample_timesteps(x0.shape[0], generator=generator, device=x0.device)
        x_t = diffusion.q_sample(x0, t, generator=generator)
        return nn.functional.cross_entropy(model(x_t, t), labels)

    return loss


class ClassifierFamily(Family):
    """Classifiers of labelled data: ``[inputs, labels]``. The cache holds the EMA network."""

    name = "classifier"
    spec_type = ClassifierSpec
    outputs = {
        "logits": "the logits of a named dataset's inputs (kwargs: data, and the dataset's; a noise-aware "
        "classifier also takes t, the timestep (default 0), and seed, the noise's (default 0))"
    }

    def check_spec(self, spec) -> None:
        super().check_spec(spec)
        kind = spec.network.get("type") if isinstance(spec.network, dict) else None
        if kind not in NETWORKS:
            raise ValueError(
                f"network type must be one of {', '.join(map(repr, NETWORKS))} for a classifier, got {kind!r}"
            )
        if spec.noise is None:
            if kind in TIMED_NETWORKS:
                raise ValueError(
                    f"network type {kind!r} is called as model(x_t, t) and needs noise, got None"
                )
            return
        if kind not in TIMED_NETWORKS:
            raise ValueError(
                f"noise needs a network called as model(x_t, t) ({', '.join(map(repr, TIMED_NETWORKS))}), "
                f"got network type {kind!r}"
            )
        if not isinstance(spec.noise, dict) or sorted(spec.noise) != sorted(NOISE_KEYS):
            raise ValueError(
                f"noise must be None or a dict with the keys {', '.join(NOISE_KEYS)}, got {spec.noise!r}"
            )
        get_beta_schedule(spec.noise["schedule"], spec.noise["num_timesteps"])  # its own errors

    def build(self, entry) -> nn.Module:
        spec = dict(entry.spec.network)
        kind = spec.pop("type")
        torch.manual_seed(entry.init_seed)
        return NETWORKS[kind](**spec)

    def process(self, entry) -> Optional[GaussianDiffusion]:
        """A noise-aware classifier's forward process (``ZooModel.diffusion``); None otherwise."""
        noise = entry.spec.noise
        if noise is None:
            return None
        return GaussianDiffusion(get_beta_schedule(noise["schedule"], noise["num_timesteps"]))

    def train(self, entry, data, *, dependencies, checkpoint, progress, device) -> Trained:
        if len(data) < 2:
            raise ValueError(
                f"a classifier trains on [inputs, labels]; {entry.name!r} got {len(data)} tensor(s)"
            )
        diffusion = self.process(entry)
        loss = cross_entropy_loss if diffusion is None else noisy_cross_entropy_loss(diffusion)
        return self.train_network(entry, loss, data, checkpoint=checkpoint, progress=progress, device=device)

    def output(self, loaded, name, *, progress=True, **kwargs) -> dict:
        if name != "logits":
            return super().output(loaded, name, progress=progress, **kwargs)
        from ..data import training_tensors

        kwargs = dict(kwargs)
        data = kwargs.pop("data", None)
        if not isinstance(data, str):
            raise ValueError(f"data must name a dataset for the output 'logits', got {data!r}")
        diffusion = loaded.diffusion
        if diffusion is None:
            inputs = training_tensors(data, **kwargs)[0]
            with torch.no_grad():
                return {"logits": loaded.model(inputs)}
        t, seed = kwargs.pop("t", 0), kwargs.pop("seed", 0)
        last = diffusion.num_timesteps - 1
        if isinstance(t, bool) or not isinstance(t, int) or not 0 <= t <= last:
            raise ValueError(f"t must be an int in [0, {last}], got {t!r}")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be an int >= 0, got {seed!r}")
        inputs = training_tensors(data, **kwargs)[0]
        steps = torch.full((inputs.shape[0],), t, dtype=torch.long)
        x_t = diffusion.q_sample(inputs, steps, generator=torch.Generator().manual_seed(seed))
        with torch.no_grad():
            return {"logits": loaded.model(x_t, steps)}


register_family(ClassifierFamily())
