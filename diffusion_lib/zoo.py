"""Named, reproducible models of every family, trained on first use and cached. Used from chapter 3 on.

Every model the book uses comes from here, so each is trained once per machine. A zoo entry
(:class:`ZooEntry`) names its family (:mod:`diffusion_lib.family`), the family's typed spec, its
training data (:class:`DataSpec`: a dataset by name, or the outputs of another zoo model), its
training hyperparameters and the models it depends on. The zoo never looks inside a spec: it asks
the entry's family to build, train and describe the model. The book's entries live in
``diffusion_lib/entries/chapterNN.py``, grouped by the chapter that introduces them, and are found
on first use; a reader registers more with :func:`register`.

A cached model lives in ``$DIFFUSION_LIB_HOME`` (default ``~/.cache/diffusion_lib``) as
``NAME-KEY.safetensors`` (the EMA weights) plus ``NAME-KEY.json`` (its full configuration and
training record), both written atomically. ``KEY`` is a hash of the configuration, the keys of
the models it depends on, the device it trains on and the library version, so changing any of
them (retraining a dependency included) trains a new model. A missing, corrupt or mismatched
file is retrained, never unpickled. An interrupted training run resumes from its checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, NamedTuple, Optional

import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from torch import nn

from . import __version__, distributed
from .data import training_tensors
from .family import Family, get_family, import_modules
from .files import atomic_write_bytes
from .seeds import shifted
from .train import TrainConfig, checkpoint_paths, default_device

__all__ = [
    "DataSpec",
    "ZooEntry",
    "ZooModel",
    "ModelOutput",
    "names",
    "entry",
    "resolve",
    "family_of",
    "load",
    "outputs",
    "paths",
    "cache_dir",
    "register",
    "unregister",
]

ENV_HOME = "DIFFUSION_LIB_HOME"
# Version of a cached model's JSON record. 2: families (spec, data spec, dependencies, device).
RECORD_FORMAT = 2


def _json_able(name: str, value) -> None:
    try:
        json.dumps(value, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be JSON-able, got {value!r} ({err})") from None


@dataclass(frozen=True)
class DataSpec:
    """A zoo model's training data: a dataset by name (:func:`diffusion_lib.data.training_tensors`)
    or the output of another zoo model (its family's :meth:`~diffusion_lib.family.Family.output`).

    Build one with :meth:`dataset` or :meth:`outputs_of`. ``kwargs`` go to the dataset or the
    output, and are part of the cache key.
    """

    name: Optional[str] = None
    kwargs: dict = field(default_factory=dict)
    model: Optional[str] = None
    output: Optional[str] = None

    def __post_init__(self):
        if (self.name is None) == (self.model is None):
            raise ValueError(
                f"a data spec names a dataset or a model, not both or neither; got name={self.name!r}, "
                f"model={self.model!r}"
            )
        if (self.model is None) != (self.output is None):
            raise ValueError(f"output must be given exactly with model, got output={self.output!r}")
        if not isinstance(self.kwargs, dict):
            raise ValueError(f"kwargs must be a dict, got {type(self.kwargs).__name__}")
        _json_able("data kwargs", self.kwargs)

    @classmethod
    def dataset(cls, name: str, **kwargs) -> DataSpec:
        """The dataset ``name`` called with ``kwargs``, e.g. ``DataSpec.dataset("ring", n=8000)``."""
        return cls(name=name, kwargs=kwargs)

    @classmethod
    def outputs_of(cls, model: str, output: str, **kwargs) -> DataSpec:
        """The output ``output`` of the zoo model ``model`` (a dependency of the entry)."""
        return cls(model=model, output=output, kwargs=kwargs)


@dataclass(frozen=True)
class ZooEntry:
    """Everything that defines a zoo model.

    Attributes:
        name: the model's name, e.g. ``"digits-ddpm"``.
        description: one line for ``python -m diffusion_lib list``.
        family: the name of its family (:func:`diffusion_lib.family.families`).
        spec: the family's typed configuration (its ``spec_type``), e.g. the network and the
            noise schedule of a diffusion model.
        data: its training data.
        sample_shape: the shape of one sample (or, for a classifier, one input), e.g. (1, 8, 8).
        train: the training hyperparameters.
        train_threads: the torch threads to train with, fixed so that the cached model does not
            depend on which process trained it first (the thread count changes the rounding).
        chapter: the chapter that introduces the model.
        init_seed: seed of the network's initial weights.
        depends_on: zoo models it needs besides its data's (the data's model is added).
    """

    name: str
    description: str
    family: str
    spec: Any
    data: DataSpec
    sample_shape: tuple
    train: TrainConfig
    train_threads: int
    chapter: int
    init_seed: int = 0
    depends_on: tuple = ()

    def dependencies(self) -> tuple:
        """The zoo models this one needs: ``depends_on``, then its data's model if any."""
        extra = (self.data.model,) if self.data.model is not None else ()
        return tuple(dict.fromkeys((*self.depends_on, *extra)))

    def config(self) -> dict:
        """The JSON-able configuration that identifies this model: every field but the
        description and the chapter, the keys of its dependencies (so retraining one retrains
        this one), the device it trains on, and the library version."""
        config = {
            f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("description", "chapter")
        }
        config["spec"] = asdict(self.spec)
        config["data"] = asdict(self.data)
        config["train"] = asdict(self.train)
        config["sample_shape"] = list(self.sample_shape)
        config["depends_on"] = list(self.depends_on)
        config["dependency_keys"] = {name: resolve(name).key() for name in self.dependencies()}
        config["device"] = default_device().type
        config["library_version"] = __version__
        return config

    def key(self) -> str:
        """A short hash of :meth:`config`: the cache file's identity."""
        with _visiting(self.name):
            blob = json.dumps(self.config(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]


@dataclass
class ZooModel:
    """A loaded zoo model: the network (EMA weights, eval mode, on the CPU; a GAN's generator),
    its family's process (``diffusion``: the GaussianDiffusion of a diffusion model, else None)
    and its record (configuration, training time, losses)."""

    entry: ZooEntry
    model: nn.Module
    diffusion: Any
    record: dict

    @property
    def name(self) -> str:
        return self.entry.name


_REGISTRY: dict[str, ZooEntry] = {}
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_ENTRIES_FOUND = False
_VISITING: list = []


class _visiting:
    """Track the chain of dependencies being keyed, to refuse a cycle with a clear message."""

    def __init__(self, name: str):
        self.name = name

    def __enter__(self):
        if self.name in _VISITING:
            cycle = " -> ".join([*_VISITING[_VISITING.index(self.name) :], self.name])
            raise ValueError(f"depends_on must not form a cycle, got {cycle}")
        _VISITING.append(self.name)

    def __exit__(self, *exc):
        _VISITING.pop()


def _find_entries() -> None:
    """Import the book's entries (every module of ``diffusion_lib.entries``), once."""
    global _ENTRIES_FOUND
    if _ENTRIES_FOUND:
        return
    _ENTRIES_FOUND = True
    import_modules(f"{__package__}.entries")


def _check_int(name: str, value, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")


def register(zoo_entry: ZooEntry) -> ZooEntry:
    """Add an entry to the zoo (used by the library itself, and by readers for their own);
    an entry of the same name is replaced.

    Raises:
        ValueError: the name is not a plain file name (letters, digits, ``.``, ``_``, ``-``, not
            starting with a punctuation mark); the family is unknown or the spec not its own;
            a field of the wrong type.
    """
    _find_entries()  # the book's first, so that a reader's entry of the same name replaces it
    if not isinstance(zoo_entry, ZooEntry):
        raise ValueError(f"zoo_entry must be a ZooEntry, got {type(zoo_entry).__name__}")
    if not isinstance(zoo_entry.name, str) or not _NAME.fullmatch(zoo_entry.name):
        raise ValueError(
            "name must be letters, digits, '.', '_' or '-', starting with a letter or digit, "
            f"got {zoo_entry.name!r}"
        )
    get_family(zoo_entry.family).check_spec(zoo_entry.spec)
    if not isinstance(zoo_entry.data, DataSpec):
        raise ValueError(f"data must be a DataSpec, got {type(zoo_entry.data).__name__}")
    if not isinstance(zoo_entry.train, TrainConfig):
        raise ValueError(f"train must be a TrainConfig, got {type(zoo_entry.train).__name__}")
    shape = zoo_entry.sample_shape
    if (
        not isinstance(shape, tuple)
        or not shape
        or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in shape)
    ):
        raise ValueError(f"sample_shape must be a non-empty tuple of ints >= 1, got {shape!r}")
    _check_int("train_threads", zoo_entry.train_threads, 1)
    _check_int("chapter", zoo_entry.chapter, 1)
    _check_int("init_seed", zoo_entry.init_seed, 0)
    if not isinstance(zoo_entry.depends_on, tuple) or not all(
        isinstance(d, str) for d in zoo_entry.depends_on
    ):
        raise ValueError(f"depends_on must be a tuple of model names, got {zoo_entry.depends_on!r}")
    if zoo_entry.name in zoo_entry.dependencies():
        raise ValueError(f"depends_on must not name the model itself, got {zoo_entry.name!r}")
    _REGISTRY[zoo_entry.name] = zoo_entry
    return zoo_entry


def unregister(name: str) -> None:
    """Remove the entry called ``name`` (a reader's or a test's own); nothing if there is none."""
    _REGISTRY.pop(name, None)


def names() -> list[str]:
    """The names of the models in the zoo, sorted."""
    _find_entries()
    return sorted(_REGISTRY)


def entry(name: str) -> ZooEntry:
    """The entry called ``name``.

    Raises:
        ValueError: no such model; the message lists the known names.
    """
    _find_entries()
    if name not in _REGISTRY:
        raise ValueError(f"name must be one of {', '.join(names())}, got {name!r}")
    return _REGISTRY[name]


def family_of(zoo_entry: ZooEntry) -> Family:
    """The family object of an entry."""
    return get_family(zoo_entry.family)


def resolve(name: str, *, steps: Optional[int] = None, seed: Optional[int] = None) -> ZooEntry:
    """The entry ``name`` as :func:`load` trains it: ``steps``/``seed`` overrides applied, then
    the seeds moved by the book-wide seed shift (``ZooModel.entry`` is this entry)."""
    zoo_entry = entry(name)
    changes = {k: v for k, v in (("steps", steps), ("seed", seed)) if v is not None}
    if changes:
        zoo_entry = replace(zoo_entry, train=replace(zoo_entry.train, **changes))
    return replace(
        zoo_entry,
        init_seed=shifted(zoo_entry.init_seed),
        train=replace(zoo_entry.train, seed=shifted(zoo_entry.train.seed)),
    )


def cache_dir() -> Path:
    """``$DIFFUSION_LIB_HOME``, or ``~/.cache/diffusion_lib``; created if missing."""
    home = os.environ.get(ENV_HOME) or os.path.join(os.path.expanduser("~"), ".cache", "diffusion_lib")
    path = Path(home)
    path.mkdir(parents=True, exist_ok=True)
    return path


def paths(zoo_entry: ZooEntry) -> tuple[Path, Path, Path]:
    """The cached weights, the cached record, and the prefix of the training checkpoint of an
    entry as :func:`load` resolved it (``ZooModel.entry``).

    Suffixes are appended (a name may contain dots), and the checkpoint's files
    (``NAME-KEY.partial.safetensors``/``.json``) never coincide with the cache's.
    """
    folder, stem = cache_dir(), f"{zoo_entry.name}-{zoo_entry.key()}"
    return folder / f"{stem}.safetensors", folder / f"{stem}.json", folder / f"{stem}.partial"


# ---------------------------------------------------------------- training and loading
def _training_data(zoo_entry: ZooEntry, progress: bool) -> list:
    spec = zoo_entry.data
    if spec.model is None:
        return training_tensors(spec.name, **spec.kwargs)
    return list(outputs(spec.model, spec.output, progress=progress, **spec.kwargs).tensors.values())


def _train(zoo_entry: ZooEntry, progress: bool) -> ZooModel:
    family = family_of(zoo_entry)
    weights_path, record_path, partial = paths(zoo_entry)
    dependencies = {name: load(name, progress=progress) for name in zoo_entry.dependencies()}
    data = _training_data(zoo_entry, progress)
    device = default_device()
    world = distributed.setup(device)  # several ranks under torchrun; rank 0 writes the cache
    if progress and world.rank == 0:
        print(
            # The folder goes on a line of its own: it is as long as the machine makes it, and a
            # book page shows this line (the browser test fails on lines wider than the page).
            f"training {zoo_entry.name} ({zoo_entry.train.steps} steps on {device.type});\n"
            f"  cached in {weights_path.parent}",
            file=sys.stderr,
        )
    start = time.perf_counter()
    threads = torch.get_num_threads()
    # The ranks on one machine share its cores: train_threads in all, at least one each.
    torch.set_num_threads(max(1, zoo_entry.train_threads // distributed.local_size()))
    try:
        trained = family.train(
            zoo_entry, data, dependencies=dependencies, checkpoint=partial, progress=progress, device=device
        )
    finally:
        torch.set_num_threads(threads)
    seconds = time.perf_counter() - start
    network = trained.model.to("cpu")
    weights = save_safetensors({k: v.contiguous() for k, v in network.state_dict().items()})
    record = {
        "format": RECORD_FORMAT,
        "name": zoo_entry.name,
        "family": zoo_entry.family,
        "key": zoo_entry.key(),
        "config": zoo_entry.config(),
        "train_seconds": round(seconds, 2),
        **trained.series,
        "torch_version": torch.__version__,
        "device": device.type,
        "processes": world.size,
        "weights_sha256": hashlib.sha256(weights).hexdigest(),
    }
    if world.rank == 0:
        atomic_write_bytes(weights_path, weights)
        atomic_write_bytes(record_path, json.dumps(record, sort_keys=True).encode())
        for leftover in checkpoint_paths(partial):
            leftover.unlink(missing_ok=True)
    distributed.barrier()  # the other ranks wait until the model is in the cache
    network.requires_grad_(False)
    return ZooModel(zoo_entry, network.eval(), family.process(zoo_entry), record)


def _load_cached(zoo_entry: ZooEntry) -> Optional[ZooModel]:
    """The cached model, or None if it is missing, corrupt or made from another config."""
    family = family_of(zoo_entry)
    weights_path, record_path, _ = paths(zoo_entry)
    if not weights_path.is_file() or not record_path.is_file():
        return None
    try:
        record = json.loads(record_path.read_text())
        if not isinstance(record, dict):
            raise ValueError("its record is not a JSON object")
        if record.get("key") != zoo_entry.key() or record.get("config") != json.loads(
            json.dumps(zoo_entry.config())
        ):
            raise ValueError("its configuration does not match")
        weights = weights_path.read_bytes()
        if record.get("weights_sha256") != hashlib.sha256(weights).hexdigest():
            raise ValueError("its weights do not match its record")
        network = family.build(zoo_entry)
        network.load_state_dict(load_safetensors(weights), strict=True)
    except Exception as err:  # corrupt or mismatched: say so, then retrain
        print(f"cached {zoo_entry.name} at {weights_path} is unusable ({err}); retraining", file=sys.stderr)
        return None
    network.requires_grad_(False)
    return ZooModel(zoo_entry, network.eval(), family.process(zoo_entry), record)


def load(name: str, *, retrain: bool = False, progress: bool = True, **overrides) -> ZooModel:
    """The zoo model called ``name``: from the cache, or trained now and cached.

    Args:
        name: one of :func:`names`.
        retrain: train again even if a cached copy exists (its dependencies are loaded as usual).
        progress: show the training progress bar (on stderr).
        **overrides: ``steps`` and/or ``seed`` change the training run (and so the cache key),
            e.g. ``load("digits-ddpm", steps=200)`` for a quick, worse model.

    The training seed (the entry's or ``seed``) and the initialisation seed are moved by the
    book-wide seed shift (:func:`diffusion_lib.seeds.shifted`, ``$DIFFUSION_LIB_SEED_SHIFT``),
    which is therefore part of the cache key; under the default shift 0 nothing changes. The
    models it depends on are loaded (or trained) first. It trains on
    :func:`diffusion_lib.train.default_device` and is returned on the CPU.
    """
    unknown = set(overrides) - {"steps", "seed"}
    if unknown:
        raise ValueError(f"overrides must be among steps, seed, got {', '.join(sorted(unknown))}")
    zoo_entry = resolve(name, **overrides)
    if not retrain:
        cached = _load_cached(zoo_entry)
        if cached is not None:
            return cached
    return _train(zoo_entry, progress)


# ---------------------------------------------------------------- a model's outputs, cached
class ModelOutput(NamedTuple):
    """An output of a zoo model (:func:`outputs`): named tensors and the seconds it took to make."""

    tensors: dict
    seconds: float


def outputs(name: str, output: str, *, progress: bool = True, **kwargs) -> ModelOutput:
    """The output ``output`` of the zoo model ``name`` with ``kwargs``, computed once and cached.

    What a model can output is its family's (``Family.outputs``, e.g. a diffusion model's
    ``"ddpm_samples"``); the same call gives the same tensors. Cached beside the model as
    ``NAME-KEY.out-HASH.safetensors`` with a JSON record; the model's key is in the name, so
    retraining the model computes the output again, and the keys of any other model the output
    reads (``Family.output_models``) are in HASH. A corrupt or mismatched file is recomputed.

    Raises:
        ValueError: an unknown model or output, or kwargs that are not JSON-able; the family's
            own errors for bad kwargs.
    """
    _json_able("kwargs", kwargs)
    family = family_of(entry(name))
    if output not in family.outputs:  # checked before anything is trained
        known = ", ".join(map(repr, family.outputs)) or "none"
        raise ValueError(f"output must be one of {known} for {name!r} (a {family.name}), got {output!r}")
    others = family.output_models(output, kwargs)
    loaded = load(name, progress=progress)
    config = {"output": output, "kwargs": kwargs, "version": __version__}
    if others:  # the other models it reads: retraining one computes the output again
        config["model_keys"] = {other: resolve(other).key() for other in others}
    tag = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:12]
    weights_path, _, _ = paths(loaded.entry)
    stem = weights_path.name[: -len(".safetensors")]
    path, record_path = (
        weights_path.with_name(f"{stem}.out-{tag}{suffix}") for suffix in (".safetensors", ".json")
    )
    try:
        record = json.loads(record_path.read_text())
        blob = path.read_bytes()
        if record.get("config") != config or record.get("sha256") != hashlib.sha256(blob).hexdigest():
            raise ValueError("its record does not match")
        tensors = load_safetensors(blob)
        return ModelOutput({k: tensors[k] for k in record["order"]}, float(record["seconds"]))
    except FileNotFoundError:
        pass
    except Exception as err:  # corrupt or mismatched: say so, then compute again
        print(f"cached output {path} is unusable ({err}); computing it again", file=sys.stderr)

    start = time.perf_counter()
    tensors = family.output(loaded, output, progress=progress, **kwargs)
    seconds = time.perf_counter() - start
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    blob = save_safetensors(tensors)
    record = {
        "config": config,
        "order": list(tensors),
        "sha256": hashlib.sha256(blob).hexdigest(),
        "seconds": seconds,
    }
    atomic_write_bytes(path, blob)
    atomic_write_bytes(record_path, json.dumps(record, sort_keys=True).encode())
    return ModelOutput(tensors, seconds)
