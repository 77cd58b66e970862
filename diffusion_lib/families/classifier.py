"""The classifier family: a network trained with cross-entropy on labelled data; the digits
classifier is the feature network of the metrics (chapters 6 and 9). It cannot be sampled."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from ..family import Family, Trained, register_family
from ..nets.classifier import DigitsClassifier

__all__ = ["ClassifierSpec", "ClassifierFamily", "NETWORKS"]

# The classifiers a spec's ``network["type"]`` may name.
NETWORKS: dict[str, Callable[..., nn.Module]] = {"digits_classifier": DigitsClassifier}


@dataclass(frozen=True)
class ClassifierSpec:
    """A classifier: ``network = {"type": ..., **constructor kwargs}`` (see :data:`NETWORKS`)."""

    network: dict = field(default_factory=lambda: {"type": "digits_classifier"})


def cross_entropy_loss(model: nn.Module, batch: list, generator: torch.Generator) -> torch.Tensor:
    """The mean cross-entropy of the logits ``model(batch[0])`` against the labels ``batch[1]``."""
    return nn.functional.cross_entropy(model(batch[0]), batch[1])


class ClassifierFamily(Family):
    """Classifiers of labelled data: ``[inputs, labels]``. The cache holds the EMA network."""

    name = "classifier"
    spec_type = ClassifierSpec
    outputs = {"logits": "the logits of a named dataset's inputs (kwargs: data, and the dataset's)"}

    def check_spec(self, spec) -> None:
        super().check_spec(spec)
        kind = spec.network.get("type") if isinstance(spec.network, dict) else None
        if kind not in NETWORKS:
            raise ValueError(
                f"network type must be one of {', '.join(map(repr, NETWORKS))} for a classifier, got {kind!r}"
            )

    def build(self, entry) -> nn.Module:
        spec = dict(entry.spec.network)
        kind = spec.pop("type")
        torch.manual_seed(entry.init_seed)
        return NETWORKS[kind](**spec)

    def train(self, entry, data, *, dependencies, checkpoint, progress, device) -> Trained:
        if len(data) < 2:
            raise ValueError(
                f"a classifier trains on [inputs, labels]; {entry.name!r} got {len(data)} tensor(s)"
            )
        return self.train_network(
            entry, cross_entropy_loss, data, checkpoint=checkpoint, progress=progress, device=device
        )

    def output(self, loaded, name, *, progress=True, **kwargs) -> dict:
        if name != "logits":
            return super().output(loaded, name, progress=progress, **kwargs)
        from ..data import training_tensors

        kwargs = dict(kwargs)
        data = kwargs.pop("data", None)
        if not isinstance(data, str):
            raise ValueError(f"data must name a dataset for the output 'logits', got {data!r}")
        inputs = training_tensors(data, **kwargs)[0]
        with torch.no_grad():
            return {"logits": loaded.model(inputs)}


register_family(ClassifierFamily())
