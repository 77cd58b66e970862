"""Generative adversarial networks: networks, losses and the training loop. Derived in chapter 3.

A generator G maps noise z ~ N(0, I) to a sample; a discriminator D maps a sample to a *logit*
ℓ(x), with D(x) = σ(ℓ(x)) the probability that x is real. Every loss here is written in terms of
logits (``softplus`` instead of ``log σ``), which is exact and never takes the log of 0.

- :class:`MLPGenerator`, :class:`MLPDiscriminator`: for 2-D points (the ring of chapter 3)
  and for the 8×8 digits (1 channel, values in [-1, 1]); the discriminator can judge packs of
  samples together (PacGAN, Lin et al., 2018), chapter 3's remedy for mode collapse.
- :func:`discriminator_loss`, :func:`generator_loss`: the minimax game of Goodfellow et al.
  (2014), its non-saturating generator loss, the hinge loss (Lim & Ye, 2017; Miyato et al.,
  2018) and the Wasserstein loss with gradient penalty (WGAN-GP, Gulrajani et al., 2017);
  :func:`gradient_penalty`; :func:`optimal_discriminator`.
- :func:`train_gan`: alternating optimisation of D and G with the pieces of
  :mod:`diffusion_lib.train` (:class:`~diffusion_lib.train.TrainConfig`, EMA, warm-up,
  progress bar, deterministic seeding, resumable checkpoints), and a per-step callback.
- :func:`sample`: one generator pass from seeded noise.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NamedTuple, Optional, Union

import torch
from torch import nn
from torch.nn import functional as F

from . import distributed
from .train import (
    TrainConfig,
    TrainingState,
    data_list,
    ema_decay_at,
    ema_update,
    progress_bar,
    sample_batch,
    smoothed,
    training_device,
    warmup_schedule,
)

__all__ = [
    "LOSSES",
    "MLPGenerator",
    "MLPDiscriminator",
    "GANConfig",
    "GANResult",
    "discriminator_loss",
    "generator_loss",
    "gradient_penalty",
    "optimal_discriminator",
    "train_gan",
    "sample",
]

LOSSES = ("minimax", "non-saturating", "hinge", "wgan-gp")
OUTPUTS = ("linear", "tanh")


def _check_int(name: str, value, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")


def _check_shape(sample_shape) -> tuple:
    ok = isinstance(sample_shape, (tuple, list)) and len(sample_shape) >= 1
    ok = ok and all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in sample_shape)
    if not ok:
        raise ValueError(f"sample_shape must be a non-empty tuple of ints >= 1, got {sample_shape!r}")
    return tuple(sample_shape)


def _check_loss(loss) -> None:
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {', '.join(LOSSES)}, got {loss!r}")


# ---------------------------------------------------------------- networks
class MLPGenerator(nn.Module):
    """G(z): noise (B, z_dim) → samples (B, *sample_shape). Described in chapter 3.

    An MLP with ``num_layers`` hidden layers of width ``hidden`` (LeakyReLU, slope 0.2). The
    output is linear for points in data units, or ``tanh`` for images in [-1, 1].

    Args:
        z_dim: the dimension of the noise z ~ N(0, I).
        sample_shape: the shape of one sample, e.g. (2,) or (1, 8, 8).
        hidden: width of the hidden layers.
        num_layers: the number of hidden layers, >= 1.
        output: ``"linear"`` or ``"tanh"``.
    """

    def __init__(
        self,
        z_dim: int = 8,
        sample_shape: Sequence[int] = (2,),
        hidden: int = 128,
        num_layers: int = 3,
        output: str = "linear",
    ):
        super().__init__()
        for name, value in (("z_dim", z_dim), ("hidden", hidden), ("num_layers", num_layers)):
            _check_int(name, value, 1)
        self.sample_shape = _check_shape(sample_shape)
        if output not in OUTPUTS:
            raise ValueError(f"output must be one of {', '.join(OUTPUTS)}, got {output!r}")
        self.z_dim, self.output = z_dim, output
        layers, width = [], z_dim
        for _ in range(num_layers):
            layers += [nn.Linear(width, hidden), nn.LeakyReLU(0.2)]
            width = hidden
        layers.append(nn.Linear(width, math.prod(self.sample_shape)))
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if not torch.is_tensor(z) or z.ndim != 2 or z.shape[1] != self.z_dim:
            shape = tuple(z.shape) if torch.is_tensor(z) else type(z).__name__
            raise ValueError(f"z must have shape (B, {self.z_dim}), got {shape}")
        x = self.net(z)
        if self.output == "tanh":
            x = torch.tanh(x)
        return x.reshape(z.shape[0], *self.sample_shape)


class MLPDiscriminator(nn.Module):
    """ℓ(x): samples (B, *sample_shape) → logits (B / pack,); D(x) = σ(ℓ(x)). Described in chapter 3.

    An MLP on the flattened sample with ``num_layers`` hidden layers of width ``hidden``
    (LeakyReLU, slope 0.2) and one linear output: a logit for the minimax, non-saturating and
    hinge losses, a critic value for WGAN-GP. No batch normalisation, so that each sample's
    output depends on that sample only (the gradient penalty needs it).

    With ``pack = m > 1`` it is PacGAN's discriminator (Lin et al., 2018; chapter 3, section on
    mode collapse): consecutive groups of m samples of the batch are concatenated and judged
    together, one logit per group, so a batch of B samples gives B / m logits. Samples of a
    collapsed generator look alike within a group, real ones do not, which D can use.

    Args:
        sample_shape: the shape of one sample, e.g. (2,) or (1, 8, 8).
        hidden: width of the hidden layers.
        num_layers: the number of hidden layers, >= 1.
        pack: the number of samples judged together, >= 1; the batch size must be a multiple.
    """

    def __init__(
        self, sample_shape: Sequence[int] = (2,), hidden: int = 128, num_layers: int = 3, pack: int = 1
    ):
        super().__init__()
        for name, value in (("hidden", hidden), ("num_layers", num_layers), ("pack", pack)):
            _check_int(name, value, 1)
        self.sample_shape = _check_shape(sample_shape)
        self.pack = pack
        layers, width = [nn.Flatten()], pack * math.prod(self.sample_shape)
        for _ in range(num_layers):
            layers += [nn.Linear(width, hidden), nn.LeakyReLU(0.2)]
            width = hidden
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.is_tensor(x) or tuple(x.shape[1:]) != self.sample_shape or x.ndim < 2:
            shape = tuple(x.shape) if torch.is_tensor(x) else type(x).__name__
            raise ValueError(f"x must have shape (B, {', '.join(map(str, self.sample_shape))}), got {shape}")
        if x.shape[0] % self.pack:
            raise ValueError(f"the batch size must be a multiple of pack = {self.pack}, got {x.shape[0]}")
        return self.net(x.reshape(x.shape[0] // self.pack, -1)).squeeze(1)


# ---------------------------------------------------------------- losses
def _logits(name: str, value) -> torch.Tensor:
    if not torch.is_tensor(value) or not value.is_floating_point() or value.numel() == 0:
        what = (
            f"dtype {value.dtype}, shape {tuple(value.shape)}"
            if torch.is_tensor(value)
            else type(value).__name__
        )
        raise ValueError(f"{name} must be a non-empty floating-point tensor, got {what}")
    return value.reshape(-1)


def discriminator_loss(
    real_logits: torch.Tensor, fake_logits: torch.Tensor, loss: str = "non-saturating"
) -> torch.Tensor:
    """The discriminator's loss, to be minimised, from its logits on real and generated samples.

    Derived in chapter 3, eqs. (gan-minimax), (gan-hinge) and (wgan-gp):

    - ``"minimax"`` and ``"non-saturating"`` (the two differ only for G): the negated value
      function, −E[log D(x)] − E[log(1 − D(G(z)))] = E[softplus(−ℓ_real)] + E[softplus(ℓ_fake)],
      the binary cross-entropy of real-vs-fake; 2 log 2 when every logit is 0 (D = 1/2).
    - ``"hinge"``: E[max(0, 1 − ℓ_real)] + E[max(0, 1 + ℓ_fake)].
    - ``"wgan-gp"``: E[ℓ_fake] − E[ℓ_real], ℓ the critic's value; the gradient penalty
      (:func:`gradient_penalty`) is added separately.

    Args:
        real_logits: D's logits on real samples, any shape, non-empty.
        fake_logits: D's logits on generated samples, any shape, non-empty.
        loss: one of :data:`LOSSES`.

    Returns:
        A scalar tensor.
    """
    _check_loss(loss)
    real, fake = _logits("real_logits", real_logits), _logits("fake_logits", fake_logits)
    if loss == "hinge":
        return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()
    if loss == "wgan-gp":
        return fake.mean() - real.mean()
    return F.softplus(-real).mean() + F.softplus(fake).mean()


def generator_loss(fake_logits: torch.Tensor, loss: str = "non-saturating") -> torch.Tensor:
    """The generator's loss, to be minimised, from the discriminator's logits on its samples.

    Derived in chapter 3, eqs. (gan-minimax) and (gan-non-saturating):

    - ``"minimax"``: E[log(1 − D(G(z)))] = −E[softplus(ℓ)]; −log 2 at ℓ = 0. Its derivative
      with respect to ℓ is −σ(ℓ), which vanishes when D confidently rejects the fakes
      (ℓ → −∞): the generator *saturates* early in training.
    - ``"non-saturating"``: −E[log D(G(z))] = E[softplus(−ℓ)]; log 2 at ℓ = 0. Its derivative
      is −σ(−ℓ) → −1 as ℓ → −∞: a strong gradient exactly where the minimax one has none.
    - ``"hinge"`` and ``"wgan-gp"``: −E[ℓ].

    Args:
        fake_logits: D's logits on generated samples, any shape, non-empty.
        loss: one of :data:`LOSSES`.

    Returns:
        A scalar tensor.
    """
    _check_loss(loss)
    fake = _logits("fake_logits", fake_logits)
    if loss == "minimax":
        return -F.softplus(fake).mean()
    if loss == "non-saturating":
        return F.softplus(-fake).mean()
    return -fake.mean()


def gradient_penalty(
    critic: nn.Module,
    real: torch.Tensor,
    fake: torch.Tensor,
    *,
    generator: Optional[torch.Generator] = None,
) -> torch.Tensor:
    """WGAN-GP's penalty E[(‖∇_x̂ ℓ(x̂)‖ − 1)²] at x̂ = εx + (1 − ε)x̃, ε ~ U[0, 1] per sample.

    Derived in chapter 3, eq. (wgan-gp): the optimal critic has gradient norm 1 almost
    everywhere on lines between real and generated samples, so the penalty pushes the critic
    towards 1-Lipschitz functions (Gulrajani et al., 2017). It is 0 for a linear critic
    ℓ(x) = w·x + b with ‖w‖ = 1. The graph is kept (``create_graph=True``) so that the
    penalty can be differentiated with respect to the critic's parameters; multiply it by the
    weight λ (10 in the paper) and add it to :func:`discriminator_loss`.

    Args:
        critic: maps (B, ...) to (B,) values.
        real: real samples (B, ...).
        fake: generated samples, the same shape (detached or not).
        generator: draws ε.

    Returns:
        A scalar tensor.
    """
    for name, value in (("real", real), ("fake", fake)):
        if (
            not torch.is_tensor(value)
            or not value.is_floating_point()
            or value.ndim < 2
            or value.shape[0] < 1
        ):
            shape = tuple(value.shape) if torch.is_tensor(value) else type(value).__name__
            raise ValueError(f"{name} must be a floating-point tensor (B, ...) with B >= 1, got {shape}")
    if real.shape != fake.shape:
        raise ValueError(
            f"real and fake must have the same shape, got {tuple(real.shape)} and {tuple(fake.shape)}"
        )
    eps = torch.rand(real.shape[0], generator=generator, dtype=real.dtype).to(real.device)
    eps = eps.reshape(-1, *([1] * (real.ndim - 1)))
    mixed = (eps * real.detach() + (1.0 - eps) * fake.detach()).requires_grad_(True)
    values = critic(mixed)
    (grad,) = torch.autograd.grad(values.sum(), mixed, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1.0) ** 2).mean()


def optimal_discriminator(p_data, p_g):
    """D*(x) = p_data(x) / (p_data(x) + p_g(x)), the discriminator that maximises V(D, G).

    Derived in chapter 3, eq. (optimal-discriminator): pointwise, a log D + b log(1 − D) with
    a, b >= 0 is maximised at D = a / (a + b). Works on floats, NumPy arrays and tensors.

    Args:
        p_data: the data density at x, >= 0.
        p_g: the generator's density at x, >= 0; ``p_data + p_g`` must be > 0 everywhere.
    """
    a = torch.as_tensor(p_data, dtype=torch.float64)
    b = torch.as_tensor(p_g, dtype=torch.float64)
    if (a < 0).any() or (b < 0).any() or not (a + b > 0).all() or not torch.isfinite(a + b).all():
        raise ValueError("p_data and p_g must be finite, >= 0, with p_data + p_g > 0 everywhere")
    out = a / (a + b)
    if torch.is_tensor(p_data) or torch.is_tensor(p_g):
        return out
    return float(out) if out.ndim == 0 else out.numpy()


# ---------------------------------------------------------------- training
@dataclass(frozen=True)
class GANConfig:
    """What :func:`train_gan` needs beyond :class:`~diffusion_lib.train.TrainConfig`.

    Attributes:
        loss: one of :data:`LOSSES`.
        d_steps: discriminator updates per generator update (5 is usual for WGAN-GP).
        gp_weight: λ, the weight of :func:`gradient_penalty` (``"wgan-gp"`` only).
        d_lr: the discriminator's learning rate; None means TrainConfig.lr.
        beta1, beta2: Adam's β's for both networks (GANs usually take β1 = 0.5, or 0).
    """

    loss: str = "non-saturating"
    d_steps: int = 1
    gp_weight: float = 10.0
    d_lr: Optional[float] = None
    beta1: float = 0.5
    beta2: float = 0.999

    def __post_init__(self):
        _check_loss(self.loss)
        _check_int("d_steps", self.d_steps, 1)
        real = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)  # noqa: E731
        if not (real(self.gp_weight) and self.gp_weight >= 0):
            raise ValueError(f"gp_weight must be a finite number >= 0, got {self.gp_weight!r}")
        if self.d_lr is not None and not (real(self.d_lr) and self.d_lr > 0):
            raise ValueError(f"d_lr must be None or a finite number > 0, got {self.d_lr!r}")
        for name in ("beta1", "beta2"):
            value = getattr(self, name)
            if not (real(value) and 0 <= value < 1):
                raise ValueError(f"{name} must be in [0, 1), got {value!r}")


class GANResult(NamedTuple):
    """The trained networks, the generator's EMA copy (sample with it) and the losses per step."""

    generator: nn.Module
    discriminator: nn.Module
    ema: nn.Module
    losses: list  # the generator's loss at each step
    d_losses: list  # the discriminator's loss (with the penalty; mean over d_steps) at each step


def _noise(generator_net: nn.Module, n: int, generator: torch.Generator) -> torch.Tensor:
    param = next(generator_net.parameters(), None)
    dtype = param.dtype if param is not None else torch.float32
    z = torch.randn(n, generator_net.z_dim, generator=generator, dtype=dtype)
    return z.to(param.device) if param is not None else z


@torch.enable_grad()  # train even when the caller has switched gradients off
def train_gan(
    generator_net: nn.Module,
    discriminator: nn.Module,
    data: Union[torch.Tensor, Sequence[torch.Tensor]],
    config: Optional[TrainConfig] = None,
    gan: GANConfig = GANConfig(),
    *,
    checkpoint: Optional[Union[str, Path]] = None,
    progress: bool = True,
    description: str = "training GAN",
    callback: Optional[Callable[[int, nn.Module, nn.Module], None]] = None,
    device: Optional[Union[str, torch.device]] = None,
) -> GANResult:
    """Train a GAN by alternating gradient steps on D and G. Derived in chapter 3, Algorithm 1.

    Each step: ``gan.d_steps`` times, draw a real minibatch and z ~ N(0, I), and take an Adam
    step on :func:`discriminator_loss` (plus ``gan.gp_weight`` · :func:`gradient_penalty` for
    WGAN-GP); then draw z again and take an Adam step on :func:`generator_loss`; then update the
    EMA of the generator. As in :func:`diffusion_lib.train.train`: one ``torch.Generator``
    seeded with ``config.seed`` draws every minibatch, z and ε, so the same seed, data and
    initial weights give the same networks; the learning rates warm up linearly over
    ``config.warmup_steps``; gradient norms are clipped at ``config.grad_clip``; the EMA decay
    is ``config.ema_decay`` (shorter at the start); and a checkpoint of the same configuration
    is resumed exactly, anything else at the checkpoint path being ignored and overwritten.
    Under ``torchrun`` it trains data-parallel as ``train`` does (chapter 16): each rank keeps
    its rows of the same minibatch and z, and each network's step runs through
    DistributedDataParallel, so with the non-saturating loss two ranks reach one process's
    weights (the WGAN-GP penalty's ε is drawn per rank).

    Args:
        generator_net: G, with a ``z_dim`` attribute; maps (B, z_dim) to samples.
        discriminator: D, maps samples to (B,) logits.
        data: a tensor (N, ...) of real samples, or a sequence of tensors whose first is the
            samples (labels, if any, are ignored).
        config: the shared hyperparameters (steps, batch size, lr, EMA, seed, checkpoints);
            None means ``TrainConfig()``.
        gan: the loss and what else is particular to GANs.
        checkpoint: path prefix of a resumable checkpoint, as in :func:`~diffusion_lib.train.train`.
        progress: show a tqdm bar (on stderr) with the running losses.
        description: the bar's label.
        callback: called as ``callback(steps_done, generator_net, ema)`` after every step (and
            not for the steps a resumed checkpoint skips), e.g. to record samples over training
            as chapter 3 does; the networks are in training mode, so sample under
            ``torch.no_grad()`` and do not change them.
        device: where to train, as for :func:`diffusion_lib.train.train` (default: where the
            generator's parameters are); z and the minibatch indices come from the CPU generator.

    Returns:
        ``GANResult(generator, discriminator, ema, losses, d_losses)``, the networks on ``device``.
    """
    config = TrainConfig() if config is None else config
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    if not isinstance(gan, GANConfig):
        raise TypeError(f"gan must be a GANConfig, got {type(gan).__name__}")
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable or None, got {type(callback).__name__}")
    z_dim = getattr(generator_net, "z_dim", None)
    if isinstance(z_dim, bool) or not isinstance(z_dim, int) or z_dim < 1:
        raise ValueError(f"generator_net must have an int attribute z_dim >= 1, got {z_dim!r}")
    real_data = data_list(data)[0]
    device = training_device(generator_net, device)
    world = distributed.setup(device)
    rows = distributed.shard(config.batch_size, world)  # all of the batch in one process
    generator_net.to(device)
    discriminator.to(device)
    real_data = real_data.to(device)

    torch.manual_seed(config.seed)
    rng = torch.Generator().manual_seed(config.seed)
    ema = copy.deepcopy(generator_net).requires_grad_(False)
    betas = (gan.beta1, gan.beta2)
    g_opt = torch.optim.Adam(
        generator_net.parameters(), lr=config.lr, betas=betas, weight_decay=config.weight_decay
    )
    d_opt = torch.optim.Adam(
        discriminator.parameters(), lr=gan.d_lr or config.lr, betas=betas, weight_decay=config.weight_decay
    )
    g_sched, d_sched = warmup_schedule(g_opt, config), warmup_schedule(d_opt, config)
    losses: list = []
    d_losses: list = []
    state = TrainingState(
        {"generator": generator_net, "discriminator": discriminator, "ema": ema},
        {"g_optimizer": (g_opt, g_sched), "d_optimizer": (d_opt, d_sched)},
        rng,
        {"losses": losses, "d_losses": d_losses},
    )
    config_json = {"train": asdict(config), "gan": asdict(gan)}
    start = 0
    if checkpoint is not None:  # resume from a checkpoint of this very configuration
        start = state.resume(checkpoint, config=config_json, steps=config.steps)
    distributed.check_same("the step to resume from", start)
    # Several ranks: each network's steps run through DistributedDataParallel (rank 0's weights at
    # the start, gradients averaged); the other network is called directly, its weights frozen or
    # under no_grad. One process: the networks themselves.
    g_replica, d_replica = distributed.replicate(generator_net), distributed.replicate(discriminator)

    def step_on(loss: torch.Tensor, opt, sched, module: nn.Module) -> None:
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(module.parameters(), config.grad_clip)
        opt.step()

    def noise() -> torch.Tensor:  # z for the whole batch, of which this rank keeps its rows
        return _noise(generator_net, config.batch_size, rng)[rows]

    generator_net.train()
    discriminator.train()
    bar = progress_bar(start, config, description, progress and world.rank == 0)
    running_g = running_d = None
    for step in bar:
        try:
            d_total = 0.0
            for _ in range(gan.d_steps):
                (real,) = sample_batch([real_data], config.batch_size, rng, rows)
                with torch.no_grad():
                    fake = generator_net(noise())
                d_loss = discriminator_loss(d_replica(real), d_replica(fake), gan.loss)
                if gan.loss == "wgan-gp" and gan.gp_weight > 0:
                    d_loss = d_loss + gan.gp_weight * gradient_penalty(d_replica, real, fake, generator=rng)
                step_on(d_loss, d_opt, d_sched, discriminator)
                d_total += distributed.mean_over_ranks(float(d_loss.detach()))
            d_sched.step()
            discriminator.requires_grad_(False)  # G's step needs no gradient for D's weights
            g_loss = generator_loss(discriminator(g_replica(noise())), gan.loss)
            step_on(g_loss, g_opt, g_sched, generator_net)
            discriminator.requires_grad_(True)
        except RuntimeError as err:  # with several ranks: also a rank that died or stalled
            if world.size == 1:
                raise
            raise distributed.rank_failure(err, f"step {step + 1} of the GAN") from err
        g_sched.step()
        if world.rank == 0:  # rank 0 keeps the EMA; the others get it at the end
            ema_update(ema, generator_net, ema_decay_at(step, config.ema_decay))
        g_value, d_value = distributed.mean_over_ranks(float(g_loss.detach())), d_total / gan.d_steps
        losses.append(g_value)
        d_losses.append(d_value)
        running_g, running_d = smoothed(running_g, g_value), smoothed(running_d, d_value)
        bar.set_postfix(g=f"{running_g:.3f}", d=f"{running_d:.3f}", refresh=False)
        if callback is not None:
            callback(step + 1, generator_net, ema)
        if checkpoint is not None and ((step + 1) % config.checkpoint_every == 0 or step + 1 == config.steps):
            if world.rank == 0:
                state.save(checkpoint, config=config_json, step=step + 1)
            distributed.barrier()  # the others wait until the checkpoint is written
    bar.close()
    distributed.broadcast_module(ema)
    generator_net.eval()
    discriminator.eval()
    ema.eval()
    return GANResult(generator_net, discriminator, ema, losses, d_losses)


@torch.no_grad()
def sample(generator_net: nn.Module, n: int, *, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """``n`` samples G(z), z ~ N(0, I) drawn with ``generator``: one pass, no iterations.

    Described in chapter 3 (and compared with the diffusion models' T steps in chapter 9).

    Args:
        generator_net: G, with a ``z_dim`` attribute (use the EMA generator of a zoo model).
        n: the number of samples, >= 1.
        generator: draws z; the same seed gives the same samples.

    Returns:
        (n, *sample_shape) in the generator's dtype, on its device.
    """
    _check_int("n", n, 1)
    z_dim = getattr(generator_net, "z_dim", None)
    if isinstance(z_dim, bool) or not isinstance(z_dim, int) or z_dim < 1:
        raise ValueError(f"generator_net must have an int attribute z_dim >= 1, got {z_dim!r}")
    return generator_net(_noise(generator_net, n, generator))
