"""Model families: what a kind of model (a diffusion model, a GAN, a classifier …) must say so
that the zoo can train and cache it and the command line can sample it.

A family is an instance of a :class:`Family` subclass, registered under its name with
:func:`register_family`. The zoo and the command line only ever talk to a model through its
family, so adding a family touches no shared module: its networks, its family module
(``diffusion_lib/families/NAME.py`` for the book's own, found by :func:`families`) and its zoo
entries. CONTRIBUTING.md, "Adding a model family", walks through it; ``tests/test_families.py``
adds one from a test.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import math
import pkgutil
import re
from pathlib import Path
from typing import Any, NamedTuple, Optional

import numpy as np
import torch
from torch import nn

from .train import train as train_loop

__all__ = [
    "Family",
    "SampleOption",
    "Trained",
    "register_family",
    "unregister_family",
    "get_family",
    "families",
    "int_in",
    "number_in",
    "as_arrays",
    "sample_in_batches",
    "sampled_output",
    "check_counts",
    "bind_labels",
    "import_modules",
]

_NAME = re.compile(r"[a-z][a-z0-9-]*")


class Trained(NamedTuple):
    """What :meth:`Family.train` returns: the network to cache (its EMA weights) and the
    JSON-able series to keep in the model's record (e.g. ``{"losses": [...]}``)."""

    model: nn.Module
    series: dict


class SampleOption(NamedTuple):
    """One command-line option of ``sample`` that a family takes, e.g. ``--steps``.

    ``flag`` is the option (``"--steps"``); ``kwargs`` are ``argparse.add_argument``'s, without
    ``default`` (an option not given is None, and the family fills in its default). Two families
    may declare the same flag only with the same ``kwargs``.
    """

    flag: str
    kwargs: dict

    @property
    def dest(self) -> str:
        """The name under which the parsed value reaches :meth:`Family.sampling_options`."""
        return self.flag.lstrip("-").replace("-", "_")


class Family:
    """The interface of a model family. Subclass it, set the class attributes, override the
    methods the family has, and register an instance with :func:`register_family`.

    Attributes:
        name: the family's name, lowercase letters, digits and ``-`` (what ``list`` shows).
        spec_type: the dataclass of a zoo entry's ``spec`` (the family's own configuration:
            networks, process, loss options); checked when an entry is registered.
        sample_options: the options of ``python -m diffusion_lib sample`` the family takes.
            A family that cannot be sampled (a classifier) leaves :meth:`sample` alone.
        sample_arrays: the arrays :meth:`sample` returns (and ``sample`` writes into its .npz),
            name → description; the command line lists them in its help and refuses others.
        outputs: what other models may train on, name → one-line description (see
            :meth:`output` and ``DataSpec.outputs_of``).
        edit_methods: the inpainting methods :meth:`edit` takes (``python -m diffusion_lib
            edit``'s ``--method``), the first the default; empty for a family that cannot edit.
    """

    name: str = ""
    spec_type: type = object
    sample_options: tuple = ()
    sample_arrays: dict = {}
    outputs: dict = {}
    edit_methods: tuple = ()

    # ------------------------------------------------------------ building and training
    def build(self, entry) -> nn.Module:
        """The network that the cache stores, freshly initialised from ``entry.init_seed``."""
        raise NotImplementedError

    def train(
        self, entry, data: list, *, dependencies: dict, checkpoint: Path, progress: bool, device: torch.device
    ) -> Trained:
        """Train the entry's network(s) on ``data`` (a list of tensors sharing their first
        dimension, from the entry's data spec) and return what to cache.

        Args:
            entry: the zoo entry, with its seeds already shifted.
            data: the training tensors.
            dependencies: the loaded zoo models the entry depends on, by name.
            checkpoint: path prefix for the training loop's checkpoint (resumed if present).
            progress: show a progress bar.
            device: where to train (:func:`diffusion_lib.train.default_device`).
        """
        raise NotImplementedError

    def train_network(
        self,
        entry,
        loss_fn,
        data: list,
        *,
        checkpoint: Path,
        progress: bool,
        device: torch.device,
        network: Optional[nn.Module] = None,
    ) -> Trained:
        """What most families' :meth:`train` does: the network of :meth:`build` (or ``network``,
        e.g. one initialised from another model) trained by the one loop,
        :func:`diffusion_lib.train.train`, to minimise ``loss_fn`` with the entry's
        hyperparameters; its EMA network and losses, ready to cache."""
        result = train_loop(
            self.build(entry) if network is None else network,
            loss_fn,
            data,
            entry.train,
            checkpoint=checkpoint,
            progress=progress,
            description=entry.name,
            device=device,
        )
        return Trained(result.ema, {"losses": result.losses})

    def process(self, entry) -> Any:
        """The model's fixed process beside its network (a diffusion model's
        :class:`~diffusion_lib.diffusion.GaussianDiffusion`), or None: ``ZooModel.diffusion``."""
        return None

    # ------------------------------------------------------------ sampling (the command line)
    @property
    def samplable(self) -> bool:
        """Whether the family overrides :meth:`sample`."""
        return type(self).sample is not Family.sample

    def sampling_options(self, entry, given: dict) -> dict:
        """The sampling options for ``entry``: ``given`` (each declared option's value, None if
        not given) checked against the model and completed with defaults.

        Raises:
            ValueError: an option that does not apply or is out of range; one line, naming it.
        """
        return {}

    def sample(self, loaded, n: int, *, batch_size: int, generator: torch.Generator, options: dict) -> dict:
        """``n`` samples of a loaded zoo model as named float32/int64 numpy arrays: ``"images"``
        (N, C, H, W) in [0, 1] or ``"points"`` (N, D) in data units, and ``"labels"`` (N,) for a
        conditional model. The same generator state and batch size give the same arrays."""
        raise ValueError(f"model {loaded.entry.name!r} is a {self.name} and cannot be sampled")

    def write_files(self, arrays: dict, options: dict) -> list:
        """Write the files that sampling options ask for besides the .npz (a family's ``--wav DIR``
        or ``--gif FILE``, checked by :meth:`sampling_options` before any work), atomically;
        return what was written, for the command's summary line (e.g. ``["8 WAV files in
        out/"]``). Default: nothing.

        Raises:
            ValueError, OSError: a file that cannot be written; reported in one line.
        """
        return []

    def describe(self, entry, options: dict) -> str:
        """How the samples were drawn, for the command's summary line, e.g. 'ddim (50 steps, …)'."""
        return self.name

    # ------------------------------------------------------------ editing (the command line)
    @property
    def editable(self) -> bool:
        """Whether the family overrides :meth:`edit`."""
        return type(self).edit is not Family.edit

    def editing_options(self, entry, given: dict) -> dict:
        """The options of ``edit`` for ``entry`` (``method``, ``resample``, ``jump``, ``steps``;
        None where not given) checked against the model and completed with defaults.

        Raises:
            ValueError: a model this family cannot edit, or an option out of range; one line.
        """
        raise ValueError(f"model {entry.name!r} is a {self.name} and cannot edit images")

    def edit(
        self, loaded, images, mask, *, options: dict, generator: torch.Generator, batch_size: int
    ) -> dict:
        """Fill in ``images`` (float32 (N, C, H, W) in [0, 1], numpy) where ``mask`` (broadcastable,
        1 known, 0 to fill in) is 0, with the options of :meth:`editing_options`; returns
        ``{"images": ...}`` in [0, 1], the known pixels unchanged. The same generator state and
        batch size give the same images."""
        raise ValueError(f"model {loaded.entry.name!r} is a {self.name} and cannot edit images")

    def describe_edit(self, options: dict) -> str:
        """How :meth:`edit` filled in, for the command's summary line, e.g. 'repaint (250 steps, …)'."""
        return str(options.get("method"))

    # ------------------------------------------------------------ outputs other models train on
    def output_models(self, name: str, kwargs: dict) -> tuple:
        """The other zoo models that the output ``name`` with ``kwargs`` reads (a classifier
        named in its kwargs, say): their keys enter the output's cache key
        (:func:`diffusion_lib.zoo.outputs`), so retraining one computes the output again.
        Default: none."""
        return ()

    def output(self, loaded, name: str, *, progress: bool = True, **kwargs) -> dict:
        """The output ``name`` (one of :attr:`outputs`) of a loaded model: named tensors sharing
        their first dimension, in the order a dependent model's training data lists them."""
        raise ValueError(
            f"output must be one of {', '.join(map(repr, self.outputs)) or 'none'} for a {self.name}, "
            f"got {name!r}"
        )

    def check_spec(self, spec) -> None:
        """Raise ValueError if ``spec`` is not this family's; extend for deeper checks."""
        if not isinstance(spec, self.spec_type):
            raise ValueError(
                f"spec must be a {self.spec_type.__name__} for family {self.name!r}, "
                f"got {type(spec).__name__}"
            )


_FAMILIES: dict[str, Family] = {}
_DISCOVERED = False


def register_family(family: Family) -> Family:
    """Add ``family`` to the registry under ``family.name`` (replacing one of that name).

    Raises:
        ValueError: not a Family, a bad name, or a spec_type that is not a dataclass.
    """
    if not isinstance(family, Family):
        raise ValueError(f"family must be a Family instance, got {type(family).__name__}")
    if not isinstance(family.name, str) or not _NAME.fullmatch(family.name):
        raise ValueError(
            "family name must be lowercase letters, digits or '-', starting with a letter, "
            f"got {family.name!r}"
        )
    if not hasattr(family.spec_type, "__dataclass_fields__"):
        raise ValueError(f"spec_type of family {family.name!r} must be a dataclass, got {family.spec_type!r}")
    _FAMILIES[family.name] = family
    return family


def unregister_family(name: str) -> None:
    """Remove the family called ``name`` (a reader's or a test's own); nothing if there is none."""
    _FAMILIES.pop(name, None)


def _discover() -> None:
    """Import the book's families (every module of ``diffusion_lib.families``), once.

    The one place where a low layer loads higher ones: by name, at run time, so that the
    registry need not list them (CONTRIBUTING.md, "Layers").
    """
    global _DISCOVERED
    if _DISCOVERED:
        return
    _DISCOVERED = True
    import_modules(f"{__package__}.families")


def import_modules(package: str) -> None:
    """Import every module of the package named ``package``, in sorted order: how the registries
    find the book's plug-ins (families, zoo entries) without a list to keep."""
    found = importlib.import_module(package)
    for module in sorted(m.name for m in pkgutil.iter_modules(found.__path__)):
        importlib.import_module(f"{found.__name__}.{module}")


def families() -> dict[str, Family]:
    """Every registered family by name, the book's own included."""
    _discover()
    return dict(sorted(_FAMILIES.items()))


def get_family(name: str) -> Family:
    """The family called ``name``.

    Raises:
        ValueError: no such family; the message lists the known ones.
    """
    known = families()
    if name not in known:
        raise ValueError(f"family must be one of {', '.join(map(repr, known))}, got {name!r}")
    return known[name]


# ---------------------------------------------------------------- option types for families
@functools.cache  # one object per range, so that two families declaring one option compare equal
def int_in(minimum: int, maximum: Optional[int] = None):
    """An argparse type: an int in [minimum, maximum], with a message naming the allowed range."""
    allowed = f"an int >= {minimum}" if maximum is None else f"an int in [{minimum}, {maximum}]"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {allowed}, got {text!r}") from None
        if value < minimum or (maximum is not None and value > maximum):
            raise argparse.ArgumentTypeError(f"must be {allowed}, got {text!r}")
        return value

    parse.__name__ = "int"
    return parse


@functools.cache
def number_in(low: float, high: float):
    """An argparse type: a number in [low, high] (nan rejected)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not low <= value <= high:  # also rejects nan
            raise argparse.ArgumentTypeError(f"must be a number in [{low:g}, {high:g}], got {text!r}")
        return value

    parse.__name__ = "number"
    return parse


def as_arrays(x: torch.Tensor) -> dict:
    """Samples as the command line stores them: images (4-D, in [-1, 1]) mapped to [0, 1] under
    ``"images"``, anything else as data under ``"points"``; float32 numpy on the CPU."""
    x = x.detach().to("cpu", torch.float32)
    if x.ndim == 4:
        return {"images": ((x + 1.0) / 2.0).clamp(0.0, 1.0).numpy().astype(np.float32)}
    return {"points": x.numpy().astype(np.float32)}


def bind_labels(model, y: torch.Tensor):
    """``model(x, t, y)`` with the labels ``y`` bound: the two-argument network a sampler calls.

    The default ``bind`` of :func:`sample_in_batches`.
    """
    return lambda x, t: model(x, t, y)


def sample_in_batches(
    model, n: int, batch_size: int, num_classes, draw, *, label: Optional[int] = None, bind=bind_labels
) -> dict:
    """``n`` samples of a network ``model(x, t[, y])`` drawn batch by batch, as the command line
    stores them (:func:`as_arrays`), for the families whose samplers integrate a network.

    A class-conditional model (``num_classes`` not None) gets the labels 0, 1, …, cycling (or
    ``label`` for every sample), bound into a two-argument network by ``bind``; ``"labels"`` is
    then among the arrays.

    Args:
        model: the network.
        n, batch_size: how many samples, and at most how many per call of ``draw``.
        num_classes: the model's number of classes, or None for an unconditional model.
        draw: ``draw(net, size)`` -> a tensor (size, ...): one batch of samples of ``net(x, t)``.
        label: one class in [0, num_classes − 1] for every sample; None: cycle through them.
        bind: ``bind(model, y)`` -> ``net(x, t)``, the network a batch with labels ``y`` is drawn
            from: :func:`bind_labels` (plain conditioning) unless a family guides it.

    Raises:
        ValueError: ``label`` for an unconditional model, or outside [0, num_classes − 1].
    """
    if label is not None:
        if not num_classes:
            raise ValueError(
                f"label applies to class-conditional models, got {label!r} for an unconditional one"
            )
        if isinstance(label, bool) or not isinstance(label, int) or not 0 <= label < num_classes:
            raise ValueError(f"label must be an int in [0, {num_classes - 1}], got {label!r}")
        labels = torch.full((n,), label, dtype=torch.long)
    else:
        labels = torch.arange(n) % num_classes if num_classes else None
    batches = []
    for first in range(0, n, batch_size):
        size = min(batch_size, n - first)
        net = model if labels is None else bind(model, labels[first : first + size])
        batches.append(draw(net, size).detach().to("cpu", torch.float32))
    arrays = as_arrays(torch.cat(batches))
    if labels is not None:
        arrays["labels"] = labels.numpy()
    return arrays


def sampled_output(family: Family, loaded, *, n: int, seed: int = 0, batch_size: int = 256, **given) -> dict:
    """A ``"samples"`` output of a family whose :meth:`Family.sample` does the work: ``n``
    samples drawn with the generator seeded ``seed``, ``batch_size`` at a time, under the
    sampling options ``given`` (the command line's, e.g. ``steps=6``; checked by
    :meth:`Family.sampling_options`), as tensors; arrays without a first dimension of ``n``
    (a sample rate) are left out. The same kwargs give the same tensors, as ``sample`` would.

    Raises:
        ValueError: n, batch_size not ints >= 1, seed not an int >= 0, or the family's own errors.
    """
    check_counts(n=n, seed=seed, batch_size=batch_size)
    declared = {option.dest for option in family.sample_options}
    unknown = sorted(set(given) - declared)
    if unknown:
        raise ValueError(f"options must be among {', '.join(sorted(declared))}, got {', '.join(unknown)}")
    options = family.sampling_options(loaded.entry, {name: given.get(name) for name in declared})
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        arrays = family.sample(loaded, n, batch_size=batch_size, generator=generator, options=options)
    return {k: torch.from_numpy(np.asarray(v)) for k, v in arrays.items() if np.ndim(v) and len(v) == n}


def check_counts(*, n: int, seed: int, batch_size: int) -> None:
    """The counts of an output that draws samples: n and batch_size ints >= 1, seed an int >= 0.

    Raises:
        ValueError: naming the first that is not.
    """
    for arg, value, low in (("n", n, 1), ("batch_size", batch_size, 1), ("seed", seed, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{arg} must be an int >= {low}, got {value!r}")
