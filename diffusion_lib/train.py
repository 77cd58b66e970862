"""One training loop for every model in the book. Used from chapter 6 on.

AdamW, an exponential moving average (EMA) of the weights, gradient-norm clipping, deterministic
seeding, a tqdm progress bar with the running loss, and checkpoints (safetensors plus a JSON
file, both written atomically) from which an interrupted run resumes exactly where it stopped.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, NamedTuple, Optional, Union

import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from torch import nn

from . import distributed
from .files import atomic_write_bytes

__all__ = [
    "TrainConfig",
    "TrainResult",
    "TrainingState",
    "train",
    "ema_update",
    "ema_decay_at",
    "warmup_schedule",
    "progress_bar",
    "smoothed",
    "data_list",
    "sample_batch",
    "save_checkpoint",
    "load_checkpoint",
    "checkpoint_paths",
    "default_device",
    "training_device",
    "ENV_DEVICE",
]

LossFn = Callable[[nn.Module, Sequence[torch.Tensor], torch.Generator], torch.Tensor]
# Version of the checkpoint layout (TrainingState's keys); a checkpoint of another version is
# not resumed but started afresh. 2: one layout for every training loop (TrainingState).
CHECKPOINT_FORMAT = 2
# Where training runs when no device is given: this variable ("cpu", "cuda", "cuda:1", …) or, if
# it is unset, CUDA when available (Colab) and the CPU otherwise.
ENV_DEVICE = "DIFFUSION_LIB_DEVICE"
# The EMA's warm-up (1 + s) / (EMA_WARMUP + s): TensorFlow's ExponentialMovingAverage with
# num_updates, 10 there as here (see ema_decay_at).
EMA_WARMUP = 10.0
# The progress bar shows an exponential moving average of the loss with this weight on the
# past: about the last 1 / (1 − 0.98) = 50 steps, enough to smooth minibatch noise.
RUNNING_LOSS_SMOOTHING = 0.98


def _is_real(value) -> bool:
    """A finite int or float, not a bool."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of :func:`train`; every field is part of a zoo model's identity."""

    steps: int = 5000
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 0.0
    warmup_steps: int = 100
    ema_decay: float = 0.999
    grad_clip: float = 1.0
    seed: int = 0
    checkpoint_every: int = 1000

    def __post_init__(self):
        for name in ("steps", "batch_size", "checkpoint_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        if (
            isinstance(self.warmup_steps, bool)
            or not isinstance(self.warmup_steps, int)
            or self.warmup_steps < 0
        ):
            raise ValueError(f"warmup_steps must be an int >= 0, got {self.warmup_steps!r}")
        if not (_is_real(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a finite number > 0, got {self.lr!r}")
        if not (_is_real(self.weight_decay) and self.weight_decay >= 0):
            raise ValueError(f"weight_decay must be a finite number >= 0, got {self.weight_decay!r}")
        if not (_is_real(self.ema_decay) and 0 <= self.ema_decay < 1):
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay!r}")
        if not (_is_real(self.grad_clip) and self.grad_clip > 0):
            raise ValueError(f"grad_clip must be a finite number > 0, got {self.grad_clip!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"seed must be an int, got {self.seed!r}")


class TrainResult(NamedTuple):
    """The trained network, its EMA copy (use this one to sample) and the loss at every step."""

    model: nn.Module
    ema: nn.Module
    losses: list


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """θ_ema ← decay · θ_ema + (1 − decay) · θ, parameter by parameter; buffers are copied.

    Derived in chapter 6, eq. (train-ema)."""
    if not 0 <= decay <= 1:
        raise ValueError(f"decay must be in [0, 1], got {decay!r}")
    ema_params, params = list(ema.parameters()), list(model.parameters())
    if len(ema_params) != len(params):
        raise ValueError(
            f"ema must have the model's parameters ({len(params)} tensors), got {len(ema_params)} tensors"
        )
    for ema_p, p in zip(ema_params, params):
        ema_p.lerp_(p.detach(), 1.0 - decay)
    for ema_b, b in zip(ema.buffers(), model.buffers()):
        ema_b.copy_(b)


def ema_decay_at(step: int, decay: float) -> float:
    """The EMA's decay at update ``step`` (0, 1, …): ``min(decay, (1 + step) / (10 + step))``.

    Derived in chapter 6, eq. (train-ema-warmup).

    The warm-up is the rule of TensorFlow's ``tf.train.ExponentialMovingAverage`` when it is
    given the step count (``num_updates``), also used (the counter advanced by one before each
    update) by the EMA classes of score_sde and latent-diffusion; Ho et al.'s code instead
    copies the weights at the first update and then keeps the decay constant. It is not an
    average over all steps so far: while the warm-up applies, the EMA after n updates weighs
    θ_m (the weights after m steps, θ_0 the initialisation) by C(m + 8, 8) / C(n + 9, 9), which
    grows like m⁸, so its mean age is exactly n/10 steps (a uniform average over the run would
    have n/2), half of its weight lies on the last 7.4 % of the steps (for large n), and θ_0
    keeps only 1 / C(n + 9, 9). Once (1 + step) / (10 + step) reaches ``decay`` (step ≥
    (10·decay − 1) / (1 − decay), 8,990 for 0.999), the constant decay applies, whose mean age
    tends to decay / (1 − decay) steps.
    Derived and checked in chapter 6.
    """
    return min(decay, (1.0 + step) / (EMA_WARMUP + step))


def warmup_schedule(optimizer: torch.optim.Optimizer, config: TrainConfig):
    """The learning rate ramps linearly from lr/warmup_steps to lr over ``config.warmup_steps``."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / config.warmup_steps) if config.warmup_steps else 1.0
    )


def progress_bar(start: int, config: TrainConfig, description: str, progress: bool):
    """A training loop's tqdm bar over steps ``start..config.steps`` (on stderr)."""
    from tqdm.auto import tqdm

    return tqdm(
        range(start, config.steps),
        total=config.steps,
        initial=start,
        desc=description,
        disable=not progress,
        leave=False,
        mininterval=1.0,
    )


def smoothed(running: Optional[float], value: float) -> float:
    """The progress bar's running loss: ``value`` at the first step, then an exponential moving
    average with weight :data:`RUNNING_LOSS_SMOOTHING` on the past."""
    if running is None:
        return value
    return RUNNING_LOSS_SMOOTHING * running + (1 - RUNNING_LOSS_SMOOTHING) * value


def default_device() -> torch.device:
    """``$DIFFUSION_LIB_DEVICE`` if set, else ``cuda`` when torch sees a GPU, else ``cpu``.

    Raises:
        ValueError: the variable names no device torch knows, or CUDA that is not available.
    """
    raw = os.environ.get(ENV_DEVICE, "").strip()
    if not raw:
        if not torch.cuda.is_available():
            return torch.device("cpu")
        # Under torchrun each process on a machine takes its own GPU.
        local = os.environ.get("LOCAL_RANK", "").strip()
        return (
            torch.device("cuda", int(local))
            if distributed.launched() and local.isdigit()
            else torch.device("cuda")
        )
    try:
        device = torch.device(raw)
    except RuntimeError:
        raise ValueError(
            f"{ENV_DEVICE} must name a torch device such as 'cpu' or 'cuda', got {raw!r}"
        ) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{ENV_DEVICE} is {raw!r}, but torch sees no CUDA device")
    return device


def training_device(model: nn.Module, device: Optional[Union[str, torch.device]] = None) -> torch.device:
    """``device`` if given, else the device of ``model``'s first parameter (the CPU if it has none)."""
    if device is not None:
        return torch.device(device)
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


def data_list(data) -> list:
    """``data`` (a tensor or a sequence of tensors sharing their first dimension) as a list."""
    data = [data] if torch.is_tensor(data) else list(data)
    if not data or any(not torch.is_tensor(d) for d in data):
        raise TypeError("data must be a tensor or a sequence of tensors")
    if len({d.shape[0] for d in data}) != 1 or data[0].shape[0] < 1:
        raise ValueError(
            f"data tensors must share a non-empty first dimension, got {[tuple(d.shape) for d in data]}"
        )
    return data


def checkpoint_paths(path: Union[str, Path]) -> tuple[Path, Path]:
    """The two files of the checkpoint at prefix ``path``: ``path + ".safetensors"``, ``path + ".json"``.

    The suffixes are appended, never substituted, so a prefix with a dot in its name
    (``"run.partial"``, ``"model-v1.5"``) keeps it.
    """
    path = Path(path)
    return path.parent / f"{path.name}.safetensors", path.parent / f"{path.name}.json"


def save_checkpoint(path: Union[str, Path], tensors: dict, meta: dict) -> None:
    """Write ``path``.safetensors (tensors) and ``path``.json (meta), each atomically.

    The JSON is written last and records the SHA-256 of the tensor file, so a checkpoint is
    only accepted when both files come from the same save (a crash between the two writes
    leaves a pair that :func:`load_checkpoint` rejects); nothing is ever pickled.
    """
    tensor_path, json_path = checkpoint_paths(path)
    blob = save_safetensors({k: v.detach().cpu().contiguous() for k, v in tensors.items()})
    atomic_write_bytes(tensor_path, blob)
    meta = {**meta, "format": CHECKPOINT_FORMAT, "tensors_sha256": hashlib.sha256(blob).hexdigest()}
    atomic_write_bytes(json_path, json.dumps(meta, indent=2, sort_keys=True).encode())


def load_checkpoint(path: Union[str, Path]) -> tuple[dict, dict]:
    """Read a checkpoint written by :func:`save_checkpoint`.

    Raises:
        FileNotFoundError: either file is missing.
        ValueError: either file is corrupt or of another format, or the two files come from
            different saves.
    """
    tensor_path, json_path = checkpoint_paths(path)
    if not json_path.is_file() or not tensor_path.is_file():
        raise FileNotFoundError(f"no checkpoint at {str(path)!r} (.json and .safetensors)")
    try:
        meta = json.loads(json_path.read_text())
        blob = tensor_path.read_bytes()
        tensors = load_safetensors(blob)
    except Exception as err:  # any parse failure means a corrupt file
        raise ValueError(f"corrupt checkpoint at {str(path)!r}: {err}") from err
    if not isinstance(meta, dict) or meta.get("format") != CHECKPOINT_FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise ValueError(f"checkpoint at {str(path)!r} has format {found!r}, expected {CHECKPOINT_FORMAT}")
    if meta.get("tensors_sha256") != hashlib.sha256(blob).hexdigest():
        raise ValueError(f"checkpoint at {str(path)!r}: its .safetensors does not match its .json")
    return tensors, meta


def sample_batch(
    data: Sequence[torch.Tensor], batch_size: int, generator: torch.Generator, rows: slice = slice(None)
) -> list:
    """A minibatch of ``batch_size`` rows drawn with replacement (the same rows of each tensor).

    ``rows`` keeps part of it: every rank of a multi-process run draws the same global batch
    and keeps its :func:`diffusion_lib.distributed.shard`, so the ranks' parts make up the batch
    one process would draw with the same generator."""
    index = torch.randint(0, data[0].shape[0], (batch_size,), generator=generator)[rows]
    return [d[index.to(d.device)] for d in data]


class TrainingState:
    """Everything a training run changes, saved and restored as one: the networks (an EMA copy
    included), the optimisers with their learning-rate schedules, the random generator that
    draws minibatches and noise, torch's global random state, and the recorded series (losses).

    Both training loops of the library (:func:`train` here, ``gan.train_gan``) keep their state
    in one, so a run interrupted at any checkpoint resumes to the weights an uninterrupted run
    would reach, and what a checkpoint holds is defined in one place. Checkpoint layout
    (:data:`CHECKPOINT_FORMAT`): tensors ``NAME.KEY`` per network, ``NAME.INDEX.KEY`` per
    optimiser tensor, ``rng`` and ``torch_rng``; JSON ``config``, ``step``, each optimiser's
    other state under ``NAME`` and its schedule under ``NAME_schedule``, each series by name.

    Args:
        modules: {name: network}, e.g. ``{"model": model, "ema": ema}``.
        optimizers: {name: (optimizer, lr_scheduler)}.
        generator: the run's ``torch.Generator``.
        series: {name: list of floats, one per step done}, e.g. ``{"losses": []}``.
    """

    # Names the checkpoint uses itself (save_checkpoint adds format and tensors_sha256).
    RESERVED = ("rng", "torch_rng", "config", "step", "format", "tensors_sha256")

    def __init__(self, modules: dict, optimizers: dict, generator: torch.Generator, series: dict):
        names = [*modules, *optimizers, *(f"{name}_schedule" for name in optimizers), *series]
        clashes = sorted({n for n in names if names.count(n) > 1 or n in self.RESERVED})
        if clashes:
            raise ValueError(
                f"names of networks, optimisers and series must be distinct and not among "
                f"{', '.join(self.RESERVED)}, got {', '.join(map(repr, clashes))} more than once or reserved"
            )
        self.modules = modules
        self.optimizers = optimizers
        self.generator = generator
        self.series = series

    def snapshot(self) -> tuple[dict, dict]:
        """The state as (tensors, plain JSON-able meta), copies that later steps do not change."""
        tensors, meta = {}, {}
        for name, module in self.modules.items():
            tensors.update({f"{name}.{k}": v.detach().clone() for k, v in module.state_dict().items()})
        for name, (optimizer, schedule) in self.optimizers.items():
            state = optimizer.state_dict()
            plain = {"param_groups": copy.deepcopy(state["param_groups"]), "state": {}}
            for index, entries in state["state"].items():
                plain["state"][str(index)] = {}
                for key, value in entries.items():
                    if torch.is_tensor(value):
                        tensors[f"{name}.{index}.{key}"] = value.detach().cpu().clone()
                        plain["state"][str(index)][key] = "tensor"
                    else:
                        plain["state"][str(index)][key] = value
            meta[name] = plain
            meta[f"{name}_schedule"] = copy.deepcopy(schedule.state_dict())
        tensors["rng"] = self.generator.get_state()
        tensors["torch_rng"] = torch.get_rng_state()
        meta.update({name: list(values) for name, values in self.series.items()})
        return tensors, meta

    def restore(self, tensors: dict, meta: dict) -> None:
        """Load a :meth:`snapshot` (or a checkpoint's tensors and meta) into the state.

        Raises:
            KeyError, ValueError, RuntimeError: the snapshot does not fit these networks and
                optimisers; the state may then be half restored (see :meth:`resume`).
        """
        for name, module in self.modules.items():
            n = len(name) + 1
            module.load_state_dict({k[n:]: v for k, v in tensors.items() if k.startswith(f"{name}.")})
        for name, (optimizer, schedule) in self.optimizers.items():
            plain = meta[name]
            state = {
                int(index): {
                    key: tensors[f"{name}.{index}.{key}"] if value == "tensor" else value
                    for key, value in entries.items()
                }
                for index, entries in plain["state"].items()
            }
            optimizer.load_state_dict({"state": state, "param_groups": plain["param_groups"]})
            schedule.load_state_dict(meta[f"{name}_schedule"])
        self.generator.set_state(tensors["rng"])
        torch.set_rng_state(tensors["torch_rng"])
        for name, values in self.series.items():
            values[:] = [float(v) for v in meta[name]]

    def save(self, path: Union[str, Path], *, config: dict, step: int) -> None:
        """Write the state after ``step`` steps of a run of ``config`` as a checkpoint at ``path``."""
        tensors, meta = self.snapshot()
        save_checkpoint(path, tensors, {**meta, "config": config, "step": step})

    def resume(self, path: Union[str, Path], *, config: dict, steps: int) -> int:
        """Restore the checkpoint at ``path`` if it is of a run of ``config``; return its step.

        All or nothing: a checkpoint that is missing, corrupt, of another configuration or
        format, or that fails half-way through loading leaves the state as it was, and the run
        starts at step 0.
        """
        fresh = self.snapshot()
        try:
            tensors, meta = load_checkpoint(path)
            step = meta.get("step", -1)
            if meta.get("config") != config or not (isinstance(step, int) and 0 <= step <= steps):
                return 0
            self.restore(tensors, meta)
            lengths = {name: len(values) for name, values in self.series.items()}
            if any(length != step for length in lengths.values()):
                raise ValueError(f"checkpoint has {lengths} values for {step} steps")
            return step
        except FileNotFoundError:
            return 0
        except Exception:  # corrupt or mismatched: start afresh, from the state as it was
            self.restore(*fresh)
            return 0


@torch.enable_grad()  # train even when the caller has switched gradients off
def train(
    model: nn.Module,
    loss_fn: LossFn,
    data: Union[torch.Tensor, Sequence[torch.Tensor]],
    config: TrainConfig = TrainConfig(),
    *,
    checkpoint: Optional[Union[str, Path]] = None,
    progress: bool = True,
    description: str = "training",
    device: Optional[Union[str, torch.device]] = None,
) -> TrainResult:
    """Train ``model`` to minimise ``loss_fn`` on minibatches drawn from ``data``.

    Derived in chapter 6 (the loop of Ho et al.'s Algorithm 1), with the EMA of eq. (train-ema)
    warmed up as in eq. (train-ema-warmup).

    Each step draws a minibatch (with replacement) using a generator seeded from
    ``config.seed``, computes ``loss_fn(model, batch, generator)`` (the generator also drives
    the loss's own randomness, e.g. t and ε), clips the gradient norm, takes an AdamW step with
    linear warm-up, and updates the EMA weights (decay warmed up as in :func:`ema_decay_at`).
    The same seed, data and model initialisation
    give the same weights.

    Launched by ``torchrun`` with several processes (chapter 16, :mod:`diffusion_lib.distributed`),
    the same call trains data-parallel: ``config.batch_size`` is the global batch, each rank
    keeps its rows of the same draw, the loss runs inside DistributedDataParallel (gradients
    averaged), the loss's own noise comes from :func:`diffusion_lib.distributed.loss_generator`,
    rank 0 keeps the EMA and writes the checkpoints, and every rank returns the same result.

    Args:
        model: the network, already initialised (seed torch before building it).
        loss_fn: ``loss_fn(model, batch, generator) -> scalar tensor``; ``batch`` is a list with
            one tensor per entry of ``data``.
        data: a tensor (N, ...) or a sequence of tensors sharing their first dimension.
        config: hyperparameters.
        checkpoint: path prefix; if given, a checkpoint (``checkpoint``.safetensors and
            ``checkpoint``.json) is saved every ``checkpoint_every`` steps and at the end, and a
            checkpoint found there that was written with the same ``config`` (steps included) is
            resumed from, giving the weights an uninterrupted run would; any other checkpoint
            (another config, corrupt, half-written) is ignored and overwritten.
        progress: show a tqdm bar (on stderr) with the running loss.
        description: the bar's label.
        device: where to train: the model and the data are moved there. Default: where the
            model's parameters are (the zoo passes :func:`default_device`, CUDA when available).
            The run's generator stays on the CPU (minibatch indices, and the noise of the
            library's losses, are drawn there and moved), so the same seed gives the same draws
            on every device and the same model on the same device.

    Returns:
        ``TrainResult(model, ema, losses)``, the networks on ``device``.
    """
    data = data_list(data)
    device = training_device(model, device)
    world = distributed.setup(device)
    rows = distributed.shard(config.batch_size, world)  # all of the batch in one process
    model.to(device)
    data = [d.to(device) for d in data]

    torch.manual_seed(config.seed)  # dropout and any other global randomness
    generator = torch.Generator().manual_seed(config.seed)
    ema = copy.deepcopy(model).requires_grad_(False)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    schedule = warmup_schedule(optimizer, config)
    losses: list = []
    state = TrainingState(
        {"model": model, "ema": ema}, {"optimizer": (optimizer, schedule)}, generator, {"losses": losses}
    )
    config_json = asdict(config)
    start = 0
    if checkpoint is not None:  # resume from a checkpoint of this very configuration
        start = state.resume(checkpoint, config=config_json, steps=config.steps)
    distributed.check_same("the step to resume from", start)
    # Several ranks: the loss runs inside DistributedDataParallel, which starts every rank from
    # rank 0's weights and averages the gradients; one process: the loss as it is.
    objective = distributed.replicate(model, loss_fn)

    model.train()
    bar = progress_bar(start, config, description, progress and world.rank == 0)
    running = None
    for step in bar:
        batch = sample_batch(data, config.batch_size, generator, rows)
        # One process: the run's generator also draws the loss's noise, as it always has.
        noise = generator if world.size == 1 else distributed.loss_generator(config.seed, step, world)
        try:
            loss = objective(batch, noise)
            if not torch.is_tensor(loss) or loss.ndim != 0:
                raise ValueError(
                    f"loss_fn must return a scalar tensor, got {getattr(loss, 'shape', type(loss).__name__)}"
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
        except RuntimeError as err:  # with several ranks: also a rank that died or stalled
            if world.size == 1:
                raise
            raise distributed.rank_failure(err, f"step {step + 1}'s forward or backward pass") from err
        nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        schedule.step()
        if world.rank == 0:  # rank 0 keeps the EMA; the others get it at the end
            ema_update(ema, model, ema_decay_at(step, config.ema_decay))
        value = distributed.mean_over_ranks(float(loss.detach()))  # the loss of the whole batch
        losses.append(value)
        running = smoothed(running, value)
        bar.set_postfix(loss=f"{running:.4f}", refresh=False)
        if checkpoint is not None and ((step + 1) % config.checkpoint_every == 0 or step + 1 == config.steps):
            if world.rank == 0:
                state.save(checkpoint, config=config_json, step=step + 1)
            distributed.barrier()  # the others wait until the checkpoint is written
    bar.close()
    distributed.broadcast_module(ema)
    model.eval()
    ema.eval()
    return TrainResult(model, ema, losses)
