"""Training on several processes with PyTorch's own engine: ``torch.distributed``, launched by
``torchrun``, with ``DistributedDataParallel``. Described in chapter 16.

Nothing here runs in a single process: :func:`setup` joins the process group only when
``torchrun`` (or any launcher that sets the same variables) started several processes, that is
when ``$WORLD_SIZE`` is above 1. Then each process (a *rank*) trains a replica of the model on
its share of every minibatch, ``DistributedDataParallel`` averages the gradients, and rank 0
alone writes checkpoints, shows the progress bar and fills the zoo cache while the others wait
(:func:`barrier`). The backend is gloo for CPU tensors and NCCL for CUDA ones; every collective
waits at most :func:`timeout_seconds` (``$DIFFUSION_LIB_DIST_TIMEOUT``), so a rank that died or
hangs makes the others fail with :class:`RankFailure` instead of waiting for ever.

The library's training loops (:func:`diffusion_lib.train.train`, ``gan.train_gan``) call
:func:`setup` themselves; a script only needs to be launched with ``torchrun``.
"""

from __future__ import annotations

import datetime
import os
from typing import NamedTuple, Optional, Union

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

__all__ = [
    "World",
    "RankFailure",
    "rank_failure",
    "ENV_TIMEOUT",
    "DEFAULT_TIMEOUT",
    "launched",
    "timeout_seconds",
    "setup",
    "world",
    "is_main",
    "local_size",
    "barrier",
    "shard",
    "replicate",
    "mean_over_ranks",
    "broadcast_module",
    "gather_with_grad",
    "loss_generator",
    "check_same",
]

# Seconds a collective waits for the other ranks before the run fails: long enough for rank 0 to
# write a checkpoint or a zoo model while the others wait at a barrier (seconds on the book's
# models), short enough that a dead rank is noticed within minutes, not torch's default 30 min.
DEFAULT_TIMEOUT = 300.0
# The variable that overrides DEFAULT_TIMEOUT, in seconds (the tests use a few seconds).
ENV_TIMEOUT = "DIFFUSION_LIB_DIST_TIMEOUT"


class World(NamedTuple):
    """Where this process stands: its ``rank`` among ``size`` processes, and its ``local_rank``
    on this machine (which GPU it uses). One process is ``World(0, 1, 0)``."""

    rank: int
    size: int
    local_rank: int


class RankFailure(RuntimeError):
    """A collective failed: another rank died, hung past the timeout, or disagreed."""


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"${name} must be an integer, got {raw!r}") from None


def launched() -> bool:
    """True when a launcher started several processes (``$WORLD_SIZE`` > 1)."""
    return _env_int("WORLD_SIZE", 1) > 1


def timeout_seconds() -> float:
    """``$DIFFUSION_LIB_DIST_TIMEOUT`` (seconds, > 0) if set, else :data:`DEFAULT_TIMEOUT`."""
    raw = os.environ.get(ENV_TIMEOUT, "").strip()
    if not raw:
        return DEFAULT_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not (np.isfinite(value) and value > 0):
        raise ValueError(f"${ENV_TIMEOUT} must be a number of seconds > 0, got {raw!r}")
    return value


def world() -> World:
    """This process's :class:`World`; ``World(0, 1, 0)`` unless the process group is joined."""
    if dist.is_available() and dist.is_initialized():
        return World(dist.get_rank(), dist.get_world_size(), _env_int("LOCAL_RANK", 0))
    return World(0, 1, 0)


def setup(device: Optional[Union[str, torch.device]] = None) -> World:
    """Join the process group if ``torchrun`` started several processes, once; return the world.

    The backend follows ``device``: NCCL for CUDA (each rank then uses ``cuda:LOCAL_RANK``),
    gloo otherwise. Launched with one process, or not by a launcher, it does nothing.

    Raises:
        ValueError: the launcher's variables or ``$DIFFUSION_LIB_DIST_TIMEOUT`` are malformed.
        RankFailure: the other ranks did not join within the timeout.
    """
    if not launched() or (dist.is_available() and dist.is_initialized()):
        return world()
    if not dist.is_available():
        raise RuntimeError("this torch build has no torch.distributed; train with one process")
    device = torch.device(device) if device is not None else torch.device("cpu")
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(_env_int("LOCAL_RANK", 0))
    try:
        dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_seconds()))
    except (RuntimeError, ValueError) as err:
        raise RankFailure(f"could not join the {_env_int('WORLD_SIZE', 1)} processes: {err}") from err
    return world()


def local_size() -> int:
    """How many ranks run on this machine (``$LOCAL_WORLD_SIZE``, set by torchrun); 1 when the
    process group is not joined."""
    return max(1, _env_int("LOCAL_WORLD_SIZE", 1)) if world().size > 1 else 1


def is_main() -> bool:
    """True on rank 0 (and in a single process): the rank that writes files and prints."""
    return world().rank == 0


def barrier() -> None:
    """Wait until every rank gets here (no-op in one process)."""
    if world().size > 1:
        try:
            dist.barrier()
        except (RuntimeError, dist.DistError) as err:
            raise rank_failure(err) from err


def rank_failure(err: BaseException, where: str = "a collective") -> RankFailure:
    """The :class:`RankFailure` to raise for ``err``, raised in ``where`` while several ranks
    train: which rank saw it, the timeout, and the first 300 characters of torch's message
    (gloo reports a rank that stalled as "Application timeout caused pair closure")."""
    if isinstance(err, RankFailure):
        return err
    w = world()
    first = " ".join(str(err).split())[:300]
    return RankFailure(
        f"rank {w.rank} of {w.size} failed in {where}: {first} (with several ranks, this is how a "
        f"rank that died, or did not answer within {timeout_seconds():g} s, ${ENV_TIMEOUT}, "
        "ends the run)"
    )


def shard(batch_size: int, w: Optional[World] = None) -> slice:
    """The rows of a global minibatch of ``batch_size`` that this rank trains on: a contiguous
    block of ``batch_size / size``, rank 0 first, so the blocks in rank order are the batch.

    Raises:
        ValueError: ``batch_size`` is not a multiple of the number of processes.
    """
    w = world() if w is None else w
    if batch_size % w.size:
        raise ValueError(
            f"batch_size must be a multiple of the number of processes ({w.size}), got {batch_size}"
        )
    per_rank = batch_size // w.size
    return slice(w.rank * per_rank, (w.rank + 1) * per_rank)


class _Objective(nn.Module):
    """``loss_fn(model, *args)`` as a module's forward, so that DistributedDataParallel sees every
    use of the model's parameters whatever the loss calls (``forward``, ``encode``, …)."""

    def __init__(self, model: nn.Module, loss_fn):
        super().__init__()
        self.model = model
        self.loss_fn = loss_fn

    def forward(self, *args):
        return self.loss_fn(self.model, *args)


def replicate(model: nn.Module, loss_fn=None) -> nn.Module:
    """``model`` wrapped in ``DistributedDataParallel`` when several ranks train, else ``model``.

    With ``loss_fn``, the wrapper's forward is ``loss_fn(model, *args)`` (see
    :class:`_Objective`): the loss may call any method of the model. The wrapper broadcasts
    rank 0's parameters and buffers when it is built, so every rank starts from the same
    weights, and averages the gradients over the ranks in ``backward``. Parameters that a step
    does not use are allowed (``find_unused_parameters``).
    """
    target = model if loss_fn is None else _Objective(model, loss_fn)
    if world().size == 1:
        return target
    param = next(model.parameters(), None)
    device_ids = [param.device.index] if param is not None and param.device.type == "cuda" else None
    try:
        return nn.parallel.DistributedDataParallel(target, device_ids=device_ids, find_unused_parameters=True)
    except (RuntimeError, dist.DistError) as err:
        raise rank_failure(err) from err


def mean_over_ranks(value: float) -> float:
    """The mean of ``value`` over the ranks (``value`` itself in one process)."""
    if world().size == 1:
        return float(value)
    tensor = torch.tensor([float(value)], dtype=torch.float64)
    if dist.get_backend() == "nccl":
        tensor = tensor.cuda()
    try:
        dist.all_reduce(tensor)
    except (RuntimeError, dist.DistError) as err:
        raise rank_failure(err) from err
    return float(tensor.item()) / world().size


def broadcast_module(module: nn.Module, src: int = 0) -> None:
    """Copy rank ``src``'s parameters and buffers into ``module`` on every rank."""
    if world().size == 1:
        return
    try:
        for tensor in [*module.parameters(), *module.buffers()]:
            with torch.no_grad():
                dist.broadcast(tensor.data, src)
    except (RuntimeError, dist.DistError) as err:
        raise rank_failure(err) from err


class _GatherWithGrad(torch.autograd.Function):
    """all_gather forward; backward: the sum over the ranks of the gradient of the gathered
    tensor (an all_reduce, which gloo and NCCL both have), of which each rank keeps its rows."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, tensor.contiguous())
        ctx.rows = slice(dist.get_rank() * tensor.shape[0], (dist.get_rank() + 1) * tensor.shape[0])
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        return grad[ctx.rows]


def gather_with_grad(tensor: torch.Tensor) -> torch.Tensor:
    """Every rank's ``tensor`` (the same shape on each) concatenated along dim 0 in rank order,
    with gradients flowing back to each rank's own rows; ``tensor`` itself in one process. Used
    by CLIP's contrastive loss (chapter 16): each rank then scores its pairs against the
    negatives of every rank, and the loss equals the single-process loss on the whole batch.

    The gradient: every rank computes the same loss L of the gathered rows, so summing the
    ranks' gradients of the gathered tensor gives size · ∂L/∂(own rows), and
    DistributedDataParallel's average over the ranks divides by size again: the parameters get
    ∂L/∂θ, as in one process. (``torch.distributed.nn.functional.all_gather`` does the same and
    is deprecated; its suggested successor is a private module.)
    """
    if world().size == 1:
        return tensor
    try:
        return _GatherWithGrad.apply(tensor)
    except (RuntimeError, dist.DistError) as err:
        raise rank_failure(err) from err


def loss_generator(seed: int, step: int, w: World) -> torch.Generator:
    """The generator a rank's loss draws its own noise (t, ε, …) from at ``step`` when several
    ranks train: seeded from (seed, step, rank), so the ranks draw different noise for their
    different rows, a rerun draws the same, and a resumed run needs no extra state."""
    entropy = np.random.SeedSequence([seed % 2**63, step, w.rank, w.size]).generate_state(2, np.uint32)
    return torch.Generator().manual_seed(int(entropy[0]) << 32 | int(entropy[1]))


def check_same(name: str, value: int) -> None:
    """Raise :class:`RankFailure` unless every rank has the same ``value`` (an int)."""
    if world().size == 1:
        return
    tensor = torch.tensor([value, -value], dtype=torch.int64)
    if dist.get_backend() == "nccl":
        tensor = tensor.cuda()
    try:
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    except (RuntimeError, dist.DistError) as err:
        raise rank_failure(err) from err
    high, low = int(tensor[0]), -int(tensor[1])
    if high != low:
        raise RankFailure(
            f"rank {world().rank}: the ranks disagree on {name} ({low} to {high}); "
            "a checkpoint must be on storage every rank reads"
        )
