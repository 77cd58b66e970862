"""Gaussian diffusion: the forward process, its posterior, the reverse model and its losses.

The design follows improved-diffusion's ``gaussian_diffusion.py``: every schedule quantity is
precomputed once as a float64 buffer and read through one helper, :func:`_extract`.

Index convention (as in improved-diffusion): ``t`` is an int64 tensor of shape ``(B,)`` with
values in ``[0, T-1]``; index ``i`` is step ``t = i + 1`` of the DDPM paper, so index 0 produces
x_1 from x_0 and ``alphas_cumprod_prev[0] == 1`` stands for ᾱ_0 = 1.

The model is any callable ``model(x_t, t)`` with an output of the shape of x_t: by default the ε
prediction; ``prediction_type="x0"`` or ``"v"`` declares an x_0- or v-predictor instead, and
:meth:`GaussianDiffusion.split_model_output` turns any of the three into the pair (x̂_0, ε̂).
Data lie in [-1, 1]; the decoder L_0 is a Gaussian discretised into 256 bins.
"""

from __future__ import annotations

import functools
import math
import threading
import weakref
from typing import Callable, NamedTuple, Optional, Union

import torch

__all__ = [
    "GaussianDiffusion",
    "MODEL_VAR_TYPES",
    "PREDICTION_TYPES",
    "Prediction",
    "split_prediction",
    "normal_kl",
    "standard_normal_cdf",
    "discretized_gaussian_log_likelihood",
    "mean_flat",
    "randn_like_on",
]

MODEL_VAR_TYPES = ("fixed_small", "fixed_large")
# What the network predicts. diffusers calls them "epsilon", "sample" and "v_prediction".
PREDICTION_TYPES = ("epsilon", "x0", "v")
Model = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
TimestepLike = Union[torch.Tensor, int]

_BIN_HALF_WIDTH = 1.0 / 255.0  # data in [-1, 1] quantised to 256 levels: bins 2/255 wide
_EDGE = 0.999  # x below -0.999 or above 0.999 lies in an edge bin that extends to ±∞


class MeanVariance(NamedTuple):
    """A Gaussian's mean, variance and log-variance, each broadcastable to the data's shape."""

    mean: torch.Tensor
    variance: torch.Tensor
    log_variance: torch.Tensor


class Prediction(NamedTuple):
    """A model output read as a clean-data estimate and the noise it implies."""

    x0: torch.Tensor
    eps: torch.Tensor


def check_prediction_type(prediction_type: str) -> str:
    """Return ``prediction_type`` if it is one of :data:`PREDICTION_TYPES`, else raise."""
    if prediction_type not in PREDICTION_TYPES:
        raise ValueError(
            f"prediction_type must be one of {', '.join(PREDICTION_TYPES)}, got {prediction_type!r}"
        )
    return prediction_type


def split_prediction(
    x_t: torch.Tensor, model_output: torch.Tensor, alpha, sigma, prediction_type: str = "epsilon"
) -> Prediction:
    """(x̂_0, ε̂) from a model output, given a = √ᾱ_t (``alpha``) and b = √(1 − ᾱ_t) (``sigma``).

    Derived in chapter 7, eq. (fast-v-inverse): x_t = a x̂_0 + b ε̂ fixes one from the other;
    a v-prediction v̂ = a ε̂ − b x̂_0 is undone by the inverse rotation x̂_0 = a x_t − b v̂,
    ε̂ = b x_t + a v̂ (a² + b² = 1). ``alpha`` and ``sigma`` (diffusers' names) are floats or
    tensors broadcastable against x_t. The samplers call this with one noise level per step;
    :meth:`GaussianDiffusion.split_model_output` with per-example timesteps.
    """
    if prediction_type == "epsilon":
        return Prediction((x_t - sigma * model_output) / alpha, model_output)
    if prediction_type == "x0":
        return Prediction(model_output, (x_t - alpha * model_output) / sigma)
    if prediction_type == "v":
        return Prediction(alpha * x_t - sigma * model_output, sigma * x_t + alpha * model_output)
    check_prediction_type(prediction_type)
    raise AssertionError("unreachable")


def mean_flat(x: torch.Tensor) -> torch.Tensor:
    """Mean over every dimension except the first (the batch)."""
    return x.mean(dim=tuple(range(1, x.ndim))) if x.ndim > 1 else x


def normal_kl(mean1, logvar1, mean2, logvar2) -> torch.Tensor:
    """KL(N(mean1, e^logvar1) ‖ N(mean2, e^logvar2)) elementwise, in nats.

    Derived in chapter 5, eq. (rev-kl-gauss):
    ½(log σ₂² − log σ₁² + σ₁²/σ₂² + (μ₁ − μ₂)²/σ₂² − 1). Arguments broadcast; numbers are
    accepted and become float64 tensors.
    """
    tensor = next((a for a in (mean1, logvar1, mean2, logvar2) if isinstance(a, torch.Tensor)), None)
    if tensor is None:
        raise TypeError("normal_kl needs at least one torch.Tensor argument")
    mean1, logvar1, mean2, logvar2 = (
        a if isinstance(a, torch.Tensor) else torch.tensor(a, dtype=tensor.dtype, device=tensor.device)
        for a in (mean1, logvar1, mean2, logvar2)
    )
    return 0.5 * (
        -1.0 + logvar2 - logvar1 + torch.exp(logvar1 - logvar2) + (mean1 - mean2) ** 2 * torch.exp(-logvar2)
    )


def standard_normal_cdf(x: torch.Tensor) -> torch.Tensor:
    """Φ(x), the standard normal CDF, as ½ erfc(−x/√2).

    Exact to float precision in both tails (``torch.special.ndtr`` loses about six digits near
    x = −7 in float64; improved-diffusion uses a tanh approximation).
    """
    return 0.5 * torch.special.erfc(-x / math.sqrt(2.0))


def discretized_gaussian_log_likelihood(
    x: torch.Tensor, *, means: torch.Tensor, log_scales: torch.Tensor
) -> torch.Tensor:
    """Log-probability (nats) of data on the 256-level grid of [-1, 1] under a discretised Gaussian.

    Derived in chapter 5, eq. (rev-decoder): each level owns the interval of width 2/255 around
    it, and the two edge levels own everything beyond, so the 256 probabilities sum to one
    (Ho et al., 2020, eq. (13)). As in improved-diffusion, an interior bin's probability below
    1e-12 is floored there, so the loss stays finite; the two edge bins need no floor, since
    they are computed as log Φ in log space (``torch.special.log_ndtr``).

    Args:
        x: data in [-1, 1], on the grid -1 + 2k/255.
        means: the Gaussian's means, broadcastable to x.
        log_scales: log standard deviations, broadcastable to x.
    """
    if not torch.is_tensor(x) or not x.is_floating_point():
        raise TypeError(f"x must be a floating-point tensor, got {type(x).__name__}")
    centered = x - means
    inv_std = torch.exp(-log_scales)
    upper = inv_std * (centered + _BIN_HALF_WIDTH)
    lower = inv_std * (centered - _BIN_HALF_WIDTH)
    # Φ(upper) − Φ(lower) loses every digit in the upper tail; use the mirrored survival form there.
    bin_mass = torch.where(
        centered > 0,
        standard_normal_cdf(-lower) - standard_normal_cdf(-upper),
        standard_normal_cdf(upper) - standard_normal_cdf(lower),
    )
    log_mass = torch.log(bin_mass.clamp(min=1e-12))
    log_cdf_upper = torch.special.log_ndtr(upper)  # left edge bin: (−∞, −1 + 1/255]
    log_survival_lower = torch.special.log_ndtr(-lower)  # right edge bin: [1 − 1/255, ∞)
    return torch.where(x < -_EDGE, log_cdf_upper, torch.where(x > _EDGE, log_survival_lower, log_mass))


# Copies of the float64 buffers on other devices, one per (device, dtype), keyed by the buffer's
# id and dropped when the buffer is freed: so that reading a buffer on a GPU never waits for the
# host (the CPU reads the float64 buffer directly).
_DEVICE_COPIES: dict[int, dict] = {}


def _buffer_on(buffer: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``buffer`` cast to ``like``'s dtype on ``like``'s device, made once per (device, dtype)."""
    copies = _DEVICE_COPIES.get(id(buffer))
    if copies is None:
        copies = _DEVICE_COPIES[id(buffer)] = {}
        weakref.finalize(buffer, _DEVICE_COPIES.pop, id(buffer), None)
    key = (like.device, like.dtype)
    if key not in copies:  # cast on the CPU first: some devices have no float64
        copies[key] = buffer.to(dtype=like.dtype).to(device=like.device)
    return copies[key]


def _extract(buffer: torch.Tensor, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Read ``buffer[t]`` and shape it ``(B, 1, ..., 1)`` to broadcast against ``like``.

    On the CPU the float64 buffer is indexed, then cast to ``like``'s dtype, so float64 inputs
    keep full precision. On another device it is read from a copy of the buffer kept there (cast
    on the CPU once), with ``t`` on that device: the same values, and no round trip to the host.
    """
    if like.device.type == "cpu":
        values = buffer[t.detach().to("cpu")].to(dtype=like.dtype)
    else:
        values = _buffer_on(buffer, like)[t.detach().to(like.device)]
    return values.reshape(values.shape + (1,) * (like.ndim - 1))


# How deep the current thread is in GaussianDiffusion's public methods: a public method called by
# another (q_sample by training_losses, p_mean_variance by p_sample, …) does not check its inputs
# again; validation happens once, at the entry point.
_CALLS = threading.local()


def _nested() -> bool:
    """Whether the running public method was called by another public method."""
    return getattr(_CALLS, "depth", 0) > 1


def _entry_point(method):
    """Mark a public method of GaussianDiffusion: it checks its inputs unless called by another."""

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        _CALLS.depth = getattr(_CALLS, "depth", 0) + 1
        try:
            return method(*args, **kwargs)
        finally:
            _CALLS.depth -= 1

    return wrapper


def randn_like_on(like: torch.Tensor, generator: Optional[torch.Generator]) -> torch.Tensor:
    """N(0, I) noise of ``like``'s shape, dtype and device, drawn on ``generator``'s device.

    A CPU generator drives a model on a GPU: the noise is drawn on the CPU and moved, so the
    same seed gives the same noise on every device.
    """
    device = generator.device if generator is not None else like.device
    return torch.randn(like.shape, generator=generator, device=device, dtype=like.dtype).to(like.device)


class GaussianDiffusion:
    """The DDPM forward process q and the reverse model p_θ built on an ε-predictor.

    Derived in chapters 4 (forward process) and 5 (reverse process and the VLB).

    Args:
        betas: the schedule β_1..β_T, a 1-D tensor of values in (0, 1); see
            :func:`diffusion_lib.schedules.get_beta_schedule`. Stored as float64.
        model_var_type: the reverse-process variance σ_t² (σ_t is the standard deviation of
            the noise one reverse step adds): ``"fixed_small"`` (σ_t² = β̃_t, the posterior
            variance) or ``"fixed_large"`` (σ_t² = β_t, with β̃_2 at the first step as in the
            code released with Ho et al. (2020) and in improved-diffusion, for a better decoder
            likelihood).
    """

    def __init__(self, betas: torch.Tensor, model_var_type: str = "fixed_small"):
        if model_var_type not in MODEL_VAR_TYPES:
            raise ValueError(
                f"model_var_type must be one of {', '.join(MODEL_VAR_TYPES)}, got {model_var_type!r}"
            )
        if not torch.is_tensor(betas):
            betas = torch.as_tensor(betas)
        if betas.ndim != 1 or betas.numel() < 1:
            raise ValueError(f"betas must be a non-empty 1-D tensor, got shape {tuple(betas.shape)}")
        if not (betas.is_floating_point()):
            raise TypeError(f"betas must be floating point, got dtype {betas.dtype}")
        betas = betas.detach().to(device="cpu", dtype=torch.float64)
        if not bool(((betas > 0) & (betas < 1)).all()):
            bad = betas[~((betas > 0) & (betas < 1))][0].item()
            raise ValueError(f"betas must all lie in (0, 1), got a value {bad!r}")
        self.model_var_type = model_var_type
        self.num_timesteps = T = int(betas.shape[0])

        # Forward process, chapter 4.
        self.betas = betas
        self.alphas = 1.0 - betas
        self.alphas_cumprod = torch.cumprod(self.alphas, dim=0)
        one = torch.ones(1, dtype=torch.float64)
        self.alphas_cumprod_prev = torch.cat([one, self.alphas_cumprod[:-1]])
        self.alphas_cumprod_next = torch.cat([self.alphas_cumprod[1:], torch.zeros(1, dtype=torch.float64)])
        self.sqrt_alphas_cumprod = torch.sqrt(self.alphas_cumprod)
        self.sqrt_one_minus_alphas_cumprod = torch.sqrt(1.0 - self.alphas_cumprod)
        self.log_one_minus_alphas_cumprod = torch.log1p(-self.alphas_cumprod)
        self.sqrt_recip_alphas_cumprod = torch.rsqrt(self.alphas_cumprod)
        self.sqrt_recipm1_alphas_cumprod = torch.sqrt(1.0 / self.alphas_cumprod - 1.0)

        # Posterior q(x_{t-1} | x_t, x_0), chapter 5.
        self.posterior_variance = betas * (1.0 - self.alphas_cumprod_prev) / (1.0 - self.alphas_cumprod)
        # β̃_1 = 0 (x_0 is known given x_1 and x_0); its log is replaced by log β̃_2 to stay finite.
        first = self.posterior_variance[1:2] if T > 1 else betas[:1]
        self.posterior_log_variance_clipped = torch.log(torch.cat([first, self.posterior_variance[1:]]))
        self.posterior_mean_coef1 = betas * torch.sqrt(self.alphas_cumprod_prev) / (1.0 - self.alphas_cumprod)
        self.posterior_mean_coef2 = (
            (1.0 - self.alphas_cumprod_prev) * torch.sqrt(self.alphas) / (1.0 - self.alphas_cumprod)
        )

        # Reverse-process variance σ_t², chapter 5, eq. (rev-sigma-choices).
        if model_var_type == "fixed_small":
            self.model_log_variance = self.posterior_log_variance_clipped
        else:
            self.model_log_variance = torch.log(torch.cat([first, betas[1:]]))
        self.model_variance = torch.exp(self.model_log_variance)
        # L_{t-1} = w_t E‖ε − ε_θ‖² + C_t (nats) for the KL terms, w_t = vlb_weights[t - 1]
        # (the VLB weight; λ_t is the log-SNR); chapter 5, eq. (rev-lambda).
        self.vlb_weights = betas**2 / (2.0 * self.model_variance * self.alphas * (1.0 - self.alphas_cumprod))

    def __repr__(self) -> str:
        return (
            f"GaussianDiffusion(num_timesteps={self.num_timesteps}, model_var_type={self.model_var_type!r})"
        )

    # ----------------------------------------------------------------- input checks
    def _check_x(self, name: str, x: torch.Tensor) -> torch.Tensor:
        if _nested():  # checked by the public method that called this one
            return x
        if not torch.is_tensor(x):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
        if not x.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
        if x.ndim < 1:
            raise ValueError(f"{name} must have a batch dimension, got a 0-d tensor")
        return x

    def _check_same_shape(self, name: str, x: torch.Tensor, ref_name: str, ref: torch.Tensor) -> None:
        if _nested():
            return
        self._check_x(name, x)
        if x.shape != ref.shape:
            raise ValueError(
                f"{name} must have the shape of {ref_name} {tuple(ref.shape)}, got {tuple(x.shape)}"
            )

    def _check_t(self, t: TimestepLike, batch_size: int, device: torch.device) -> torch.Tensor:
        """Validate timesteps; an int (or 0-d tensor) is broadcast to the batch.

        An int is checked on the host; a tensor's range costs one read of its min and max (a
        synchronisation on a GPU), done only by the outermost public method of a call.
        """
        last = self.num_timesteps - 1
        if isinstance(t, bool):
            raise TypeError("t must be an int64 tensor of shape (B,) or an int, got bool")
        if isinstance(t, int):
            if not 0 <= t <= last:
                raise ValueError(f"t must be in [0, {last}], got {t}")
            return torch.full((batch_size,), t, dtype=torch.long, device=device)
        if _nested() and torch.is_tensor(t) and t.ndim == 1 and t.dtype == torch.long:
            return t
        if not torch.is_tensor(t):
            raise TypeError(f"t must be an int64 tensor of shape (B,) or an int, got {type(t).__name__}")
        if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
            raise TypeError(f"t must be an integer tensor, got dtype {t.dtype}")
        if t.ndim == 0:
            t = t.expand(batch_size)
        if t.ndim != 1 or t.shape[0] != batch_size:
            raise ValueError(f"t must have shape ({batch_size},) to match the batch, got {tuple(t.shape)}")
        if t.numel():
            lo, hi = int(t.min()), int(t.max())
            if lo < 0 or hi > last:
                raise ValueError(f"t must be in [0, {last}], got {hi if hi > last else lo}")
        return t.long()

    # ----------------------------------------------------------------- continuous noise levels
    def fractional_timestep(self, alpha_bar: torch.Tensor) -> torch.Tensor:
        """The (fractional) timestep index at which this chain reaches the noise level ``alpha_bar``.

        Derived in chapter 8, eq. (sde-vp-index): a network trained on the T discrete steps is
        evaluated at a continuous noise level by interpolating linearly in the log signal-to-noise
        ratio λ = log(ᾱ / (1 − ᾱ)) between the two neighbouring steps. λ_i decreases with i, so the
        index is unique. Levels less noisy than step 0 map to 0, noisier than step T − 1 to T − 1
        (the network has never seen them). The embedding of the timestep is continuous, so the
        network accepts a fractional index.

        Args:
            alpha_bar: ᾱ values in (0, 1), any shape, floating point.

        Returns:
            float64 tensor of alpha_bar's shape (on its device), values in [0, T − 1].
        """
        if not torch.is_tensor(alpha_bar) or not alpha_bar.is_floating_point():
            what = f"dtype {alpha_bar.dtype}" if torch.is_tensor(alpha_bar) else type(alpha_bar).__name__
            raise TypeError(f"alpha_bar must be a floating-point tensor, got {what}")
        a = alpha_bar.detach().to(torch.float64)
        if a.numel() and not bool(((a > 0) & (a < 1)).all()):
            raise ValueError(
                f"alpha_bar must lie in (0, 1), got values from {a.min().item():.6g} to {a.max().item():.6g}"
            )
        grid = self.alphas_cumprod.to(a.device)
        lam_grid = torch.log(grid) - torch.log1p(-grid)  # decreasing in the index
        lam = torch.log(a) - torch.log1p(-a)
        neg = -lam_grid  # increasing, for searchsorted
        hi = torch.searchsorted(neg, -lam.reshape(-1)).clamp(1, self.num_timesteps - 1)
        lo = hi - 1
        frac = (lam_grid[lo] - lam.reshape(-1)) / (lam_grid[lo] - lam_grid[hi])
        index = (lo.to(torch.float64) + frac).clamp(0, self.num_timesteps - 1)
        return index.reshape(a.shape)

    def alpha_bar_at(self, index: torch.Tensor) -> torch.Tensor:
        """ᾱ at a (fractional) timestep index: the inverse of :meth:`fractional_timestep`.

        Derived in chapter 8, eq. (sde-vp-index): integer indices read the float64 buffer;
        between two steps the log signal-to-noise ratio λ = log(ᾱ / (1 − ᾱ)) is interpolated
        linearly, and ᾱ = sigmoid(λ). So ``alpha_bar_at(fractional_timestep(a)) == a`` for
        every level a between the chain's first and last.

        Args:
            index: timestep indices in [0, T − 1], any shape, integer or floating point.

        Returns:
            float64 tensor of index's shape (on its device).

        Raises:
            ValueError: an index outside [0, T − 1], or not a real tensor.
        """
        if not torch.is_tensor(index) or index.dtype == torch.bool or index.is_complex():
            what = f"dtype {index.dtype}" if torch.is_tensor(index) else type(index).__name__
            raise ValueError(f"index must be a real tensor of timestep indices, got {what}")
        last = self.num_timesteps - 1
        i = index.detach().to(torch.float64)
        if i.numel() and not (0.0 <= float(i.min()) and float(i.max()) <= last):
            bad = float(i.min()) if float(i.min()) < 0 else float(i.max())
            raise ValueError(f"index must lie in [0, {last}], got {bad:g}")
        grid = self.alphas_cumprod.to(i.device)
        if not index.is_floating_point():
            return grid[index.long()]
        lam_grid = torch.log(grid) - torch.log1p(-grid)
        flat = i.reshape(-1)
        lo = flat.floor().long().clamp(0, max(last - 1, 0))
        hi = (lo + 1).clamp(max=last)
        lam = lam_grid[lo] + (flat - lo.to(torch.float64)) * (lam_grid[hi] - lam_grid[lo])
        return torch.sigmoid(lam).reshape(i.shape)

    # ----------------------------------------------------------------- forward process
    @_entry_point
    def q_mean_variance(self, x0: torch.Tensor, t: TimestepLike) -> MeanVariance:
        """The marginal q(x_t | x_0) = N(√ᾱ_t x_0, (1 − ᾱ_t) I).

        Derived in chapter 4, eq. (fwd-marginal).

        Returns:
            ``MeanVariance(mean, variance, log_variance)``; variance and log_variance have shape
            ``(B, 1, ..., 1)``.
        """
        self._check_x("x0", x0)
        t = self._check_t(t, x0.shape[0], x0.device)
        mean = _extract(self.sqrt_alphas_cumprod, t, x0) * x0
        variance = _extract(1.0 - self.alphas_cumprod, t, x0)
        log_variance = _extract(self.log_one_minus_alphas_cumprod, t, x0)
        return MeanVariance(mean, variance, log_variance)

    @_entry_point
    def q_sample(
        self,
        x0: torch.Tensor,
        t: TimestepLike,
        noise: Optional[torch.Tensor] = None,
        *,
        generator: Optional[torch.Generator] = None,
    ) -> torch.Tensor:
        """Draw x_t ~ q(x_t | x_0) in one step: x_t = √ᾱ_t x_0 + √(1 − ᾱ_t) ε.

        Derived in chapter 4, eq. (fwd-reparam).

        Args:
            x0: clean data, floating point, shape (B, ...).
            t: timestep indices (B,) in [0, T-1], or an int for the whole batch.
            noise: ε with the shape of x0; drawn from N(0, I) (using ``generator``) if None.
            generator: random generator for the noise, for reproducible draws.
        """
        self._check_x("x0", x0)
        t = self._check_t(t, x0.shape[0], x0.device)
        if noise is None:
            noise = randn_like_on(x0, generator)
        else:
            self._check_same_shape("noise", noise, "x0", x0)
        return (
            _extract(self.sqrt_alphas_cumprod, t, x0) * x0
            + _extract(self.sqrt_one_minus_alphas_cumprod, t, x0) * noise
        )

    @_entry_point
    def q_posterior_mean_variance(self, x0: torch.Tensor, x_t: torch.Tensor, t: TimestepLike) -> MeanVariance:
        """The posterior q(x_{t-1} | x_t, x_0) = N(μ̃_t(x_t, x_0), β̃_t I).

        Derived in chapter 5, eqs. (rev-posterior-mean) and (rev-posterior-var):
        μ̃_t = √ᾱ_{t−1} β_t/(1 − ᾱ_t) · x_0 + √α_t (1 − ᾱ_{t−1})/(1 − ᾱ_t) · x_t and
        β̃_t = (1 − ᾱ_{t−1})/(1 − ᾱ_t) · β_t.

        Returns:
            ``MeanVariance(mean, variance, log_variance)`` where the log-variance at t = 0 is
            clipped to log β̃ of the next step (β̃ is 0 there), so it is always finite.
        """
        self._check_x("x0", x0)
        self._check_same_shape("x_t", x_t, "x0", x0)
        t = self._check_t(t, x0.shape[0], x0.device)
        mean = (
            _extract(self.posterior_mean_coef1, t, x_t) * x0
            + _extract(self.posterior_mean_coef2, t, x_t) * x_t
        )
        variance = _extract(self.posterior_variance, t, x_t)
        log_variance = _extract(self.posterior_log_variance_clipped, t, x_t)
        return MeanVariance(mean, variance, log_variance)

    @_entry_point
    def predict_x0_from_eps(self, x_t: torch.Tensor, t: TimestepLike, eps: torch.Tensor) -> torch.Tensor:
        """Invert the reparameterisation: x_0 = (x_t − √(1 − ᾱ_t) ε)/√ᾱ_t.

        Derived in chapter 5, eq. (rev-x0-from-eps).
        """
        self._check_x("x_t", x_t)
        self._check_same_shape("eps", eps, "x_t", x_t)
        t = self._check_t(t, x_t.shape[0], x_t.device)
        return (
            _extract(self.sqrt_recip_alphas_cumprod, t, x_t) * x_t
            - _extract(self.sqrt_recipm1_alphas_cumprod, t, x_t) * eps
        )

    @_entry_point
    def predict_eps_from_x0(self, x_t: torch.Tensor, t: TimestepLike, x0: torch.Tensor) -> torch.Tensor:
        """The noise that takes x_0 to x_t: ε = (x_t − √ᾱ_t x_0)/√(1 − ᾱ_t).

        Derived in chapter 5, eq. (rev-x0-from-eps), solved for ε.
        """
        self._check_x("x_t", x_t)
        self._check_same_shape("x0", x0, "x_t", x_t)
        t = self._check_t(t, x_t.shape[0], x_t.device)
        return (_extract(self.sqrt_recip_alphas_cumprod, t, x_t) * x_t - x0) / _extract(
            self.sqrt_recipm1_alphas_cumprod, t, x_t
        )

    @_entry_point
    def v_target(self, x0: torch.Tensor, t: TimestepLike, eps: torch.Tensor) -> torch.Tensor:
        """The velocity v = √ᾱ_t ε − √(1 − ᾱ_t) x_0 of Salimans & Ho (2022).

        Derived in chapter 7, eq. (fast-v-def): with a = √ᾱ_t and b = √(1 − ᾱ_t), x_t = a x_0 + b ε
        and v = a ε − b x_0 are a rotation of (x_0, ε) by the angle φ_t = arctan(b/a).
        """
        self._check_x("x0", x0)
        self._check_same_shape("eps", eps, "x0", x0)
        t = self._check_t(t, x0.shape[0], x0.device)
        return (
            _extract(self.sqrt_alphas_cumprod, t, x0) * eps
            - _extract(self.sqrt_one_minus_alphas_cumprod, t, x0) * x0
        )

    @_entry_point
    def split_model_output(
        self, x_t: torch.Tensor, t: TimestepLike, model_output: torch.Tensor, prediction_type: str = "epsilon"
    ) -> Prediction:
        """Read a model output as the pair (x̂_0, ε̂) that satisfies x_t = √ᾱ_t x̂_0 + √(1 − ᾱ_t) ε̂.

        Derived in chapter 7, eq. (fast-v-inverse). With a = √ᾱ_t and b = √(1 − ᾱ_t):
        ``"epsilon"``: x̂_0 = (x_t − b ε̂)/a; ``"x0"``: ε̂ = (x_t − a x̂_0)/b;
        ``"v"``: x̂_0 = a x_t − b v̂ and ε̂ = b x_t + a v̂ (a² + b² = 1 inverts the rotation).

        Args:
            x_t: the noisy input the model saw, shape (B, ...).
            t: its timestep indices (B,) or an int.
            model_output: the network's output, shape of x_t.
            prediction_type: what the network predicts, one of :data:`PREDICTION_TYPES`.

        Returns:
            :class:`Prediction` ``(x0, eps)``.
        """
        check_prediction_type(prediction_type)
        self._check_x("x_t", x_t)
        out = model_output
        if not torch.is_tensor(out) or out.shape != x_t.shape:
            shape = tuple(out.shape) if torch.is_tensor(out) else type(out).__name__
            raise ValueError(f"model output must have the shape of x_t {tuple(x_t.shape)}, got {shape}")
        t = self._check_t(t, x_t.shape[0], x_t.device)
        if prediction_type == "epsilon":  # the reciprocal buffers: the same digits as chapter 5
            return Prediction(self.predict_x0_from_eps(x_t, t, model_output), model_output)
        alpha = _extract(self.sqrt_alphas_cumprod, t, x_t)
        sigma = _extract(self.sqrt_one_minus_alphas_cumprod, t, x_t)
        return split_prediction(x_t, model_output, alpha, sigma, prediction_type)

    # ----------------------------------------------------------------- reverse process
    @_entry_point
    def p_mean_variance(
        self,
        model: Model,
        x_t: torch.Tensor,
        t: TimestepLike,
        clip_denoised: bool = True,
        *,
        prediction_type: str = "epsilon",
    ) -> dict:
        """The reverse step p_θ(x_{t−1} | x_t) = N(μ_θ(x_t, t), σ_t² I).

        Derived in chapter 5, eq. (rev-mu-eps): μ_θ is the posterior mean with x_0 replaced by
        the model's estimate x̂_0 = (x_t − √(1 − ᾱ_t) ε_θ)/√ᾱ_t; without clipping this equals
        (1/√α_t)(x_t − β_t/√(1 − ᾱ_t) · ε_θ).

        Args:
            model: ``model(x_t, t)`` with an output of the shape of x_t.
            x_t: the current noisy sample, shape (B, ...).
            t: timestep indices (B,) in [0, T-1], or an int.
            clip_denoised: clamp x̂_0 to [-1, 1] before forming the mean (data lie in [-1, 1]).
            prediction_type: what the model predicts (:data:`PREDICTION_TYPES`), default ε.

        Returns:
            dict with ``mean``, ``variance``, ``log_variance`` (σ_t², broadcastable), ``pred_x0``
            (x̂_0, clipped if asked) and ``eps`` (the ε the unclipped output implies; the model
            output itself for an ε-predictor).
        """
        check_prediction_type(prediction_type)
        self._check_x("x_t", x_t)
        t = self._check_t(t, x_t.shape[0], x_t.device)
        pred_x0, eps = self.split_model_output(x_t, t, model(x_t, t), prediction_type)
        if clip_denoised:
            pred_x0 = pred_x0.clamp(-1.0, 1.0)
        mean, _, _ = self.q_posterior_mean_variance(pred_x0, x_t, t)
        log_variance = _extract(self.model_log_variance, t, x_t)
        return {
            "mean": mean,
            "variance": torch.exp(log_variance),
            "log_variance": log_variance,
            "pred_x0": pred_x0,
            "eps": eps,
        }

    @_entry_point
    def p_sample(
        self,
        model: Model,
        x_t: torch.Tensor,
        t: TimestepLike,
        *,
        noise: Optional[torch.Tensor] = None,
        generator: Optional[torch.Generator] = None,
        clip_denoised: bool = True,
        prediction_type: str = "epsilon",
    ) -> dict:
        """One ancestral step x_t → x_{t−1} = μ_θ + σ_t z, with no noise at the last step (t = 0).

        Derived in chapter 5, eq. (rev-ancestral-step) (Ho et al., 2020, Algorithm 2).

        Returns:
            dict with ``sample`` (x_{t−1}) and ``pred_x0``.
        """
        self._check_x("x_t", x_t)
        t = self._check_t(t, x_t.shape[0], x_t.device)
        out = self.p_mean_variance(
            model, x_t, t, clip_denoised=clip_denoised, prediction_type=prediction_type
        )
        if noise is None:
            noise = randn_like_on(x_t, generator)
        else:
            self._check_same_shape("noise", noise, "x_t", x_t)
        nonzero = (t != 0).to(x_t.dtype).reshape((-1,) + (1,) * (x_t.ndim - 1))
        sample = out["mean"] + nonzero * torch.exp(0.5 * out["log_variance"]) * noise
        return {"sample": sample, "pred_x0": out["pred_x0"]}

    # ----------------------------------------------------------------- losses
    def sample_timesteps(
        self,
        batch_size: int,
        *,
        generator: Optional[torch.Generator] = None,
        device: Union[str, torch.device] = "cpu",
    ) -> torch.Tensor:
        """Timestep indices drawn uniformly from [0, T-1], int64 of shape (batch_size,)."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
        where = generator.device if generator is not None else device  # drawn where the generator is
        t = torch.randint(0, self.num_timesteps, (batch_size,), generator=generator, device=where)
        return t.to(device)

    @_entry_point
    def training_losses(
        self,
        model: Model,
        x0: torch.Tensor,
        t: Optional[TimestepLike] = None,
        noise: Optional[torch.Tensor] = None,
        *,
        generator: Optional[torch.Generator] = None,
        prediction_type: str = "epsilon",
    ) -> dict:
        """L_simple per example: the mean over dimensions of ‖ε − ε_θ(√ᾱ_t x_0 + √(1 − ᾱ_t) ε, t)‖².

        Derived in chapter 5, eq. (rev-l-simple) (Ho et al., 2020, eq. (14)): the VLB's KL terms
        with their weights w_t (``vlb_weights``) dropped. For an x_0- or v-predictor the
        regression target is x_0 or v (:meth:`v_target`) instead of ε, as in diffusers' training
        scripts.

        Args:
            model: ``model(x_t, t)`` with an output of the shape of x_0.
            x0: clean data in [-1, 1], shape (B, ...).
            t: timestep indices; drawn uniformly (with ``generator``) if None.
            noise: ε; drawn from N(0, I) (with ``generator``) if None.
            generator: random generator for t and ε.
            prediction_type: what the model predicts (:data:`PREDICTION_TYPES`), default ε.

        Returns:
            dict with ``loss`` (B,), and the ``t``, ``noise``, ``x_t`` and ``eps`` (the model
            output) used.
        """
        check_prediction_type(prediction_type)
        self._check_x("x0", x0)
        if t is None:
            t = self.sample_timesteps(x0.shape[0], generator=generator, device=x0.device)
        t = self._check_t(t, x0.shape[0], x0.device)
        if noise is None:
            noise = randn_like_on(x0, generator)
        x_t = self.q_sample(x0, t, noise)
        eps = model(x_t, t)
        if not torch.is_tensor(eps) or eps.shape != x0.shape:
            shape = tuple(eps.shape) if torch.is_tensor(eps) else type(eps).__name__
            raise ValueError(f"model output must have the shape of x_t {tuple(x0.shape)}, got {shape}")
        target = {"epsilon": noise, "x0": x0, "v": None}[prediction_type]
        if target is None:
            target = self.v_target(x0, t, noise)
        return {"loss": mean_flat((target - eps) ** 2), "t": t, "noise": noise, "x_t": x_t, "eps": eps}

    @_entry_point
    def vlb_terms(
        self,
        model: Model,
        x0: torch.Tensor,
        x_t: torch.Tensor,
        t: TimestepLike,
        *,
        clip_denoised: bool = False,
        prediction_type: str = "epsilon",
    ) -> dict:
        """One term of the VLB per example, in bits per dimension.

        Derived in chapter 5, eq. (rev-vlb-split): for t > 0 (index) it is
        L_t = KL(q(x_{t−1} | x_t, x_0) ‖ p_θ(x_{t−1} | x_t)); at t = 0 it is the decoder term
        L_0 = −log p_θ(x_0 | x_1) under the discretised Gaussian.

        Args:
            prediction_type: what the model predicts (:data:`PREDICTION_TYPES`), default ε; the
                terms depend only on μ_θ, so the three agree for models that imply the same x̂_0.

        Returns:
            dict with ``output`` (B,) in bits/dim, ``pred_x0`` and ``eps`` (the ε the model's
            output implies; the output itself for an ε-predictor).
        """
        self._check_x("x0", x0)
        self._check_same_shape("x_t", x_t, "x0", x0)
        decoder_step = t == 0 if isinstance(t, int) else None  # known on the host for an int t
        t = self._check_t(t, x0.shape[0], x0.device)
        true_mean, _, true_log_variance = self.q_posterior_mean_variance(x0, x_t, t)
        out = self.p_mean_variance(
            model, x_t, t, clip_denoised=clip_denoised, prediction_type=prediction_type
        )
        output = mean_flat(normal_kl(true_mean, true_log_variance, out["mean"], out["log_variance"]))
        if decoder_step is True:  # an int t = 0: every example's term is the decoder's
            decoder_nll = discretized_gaussian_log_likelihood(
                x0, means=out["mean"], log_scales=0.5 * out["log_variance"]
            )
            return {
                "output": -mean_flat(decoder_nll) / math.log(2.0),
                "pred_x0": out["pred_x0"],
                "eps": out["eps"],
            }
        first = t == 0
        if decoder_step is None:  # a tensor t: one read of the device (a sync on a GPU)
            decoder_step = bool(first.any())
        if decoder_step:  # the decoder costs four erfc per pixel: only where it is needed
            decoder_nll = -mean_flat(
                discretized_gaussian_log_likelihood(
                    x0[first], means=out["mean"][first], log_scales=0.5 * out["log_variance"][first]
                )
            )
            output = output.masked_scatter(first, decoder_nll)
        return {"output": output / math.log(2.0), "pred_x0": out["pred_x0"], "eps": out["eps"]}

    @_entry_point
    def prior_bpd(self, x0: torch.Tensor) -> torch.Tensor:
        """L_T = KL(q(x_T | x_0) ‖ N(0, I)) per example, in bits per dimension.

        Derived in chapter 4, eq. (fwd-prior-kl). It has no parameters: a constant of training.
        """
        self._check_x("x0", x0)
        mean, _, log_variance = self.q_mean_variance(x0, self.num_timesteps - 1)
        zero = torch.zeros((), dtype=x0.dtype, device=x0.device)
        return mean_flat(normal_kl(mean, log_variance, zero, zero)) / math.log(2.0)

    @_entry_point
    def bits_per_dim(
        self,
        model: Model,
        x0: torch.Tensor,
        *,
        clip_denoised: bool = False,
        generator: Optional[torch.Generator] = None,
        prediction_type: str = "epsilon",
    ) -> dict:
        """The whole VLB in bits per dimension: L_T + Σ_{t>1} L_{t−1} + L_0, one x_t per step.

        Derived in chapter 5, eq. (rev-bpd). Each KL term uses one draw of x_t ~ q(x_t | x_0),
        so the total is an unbiased single-sample estimate of the VLB. Costs T model calls.

        Args:
            prediction_type: what the model predicts (:data:`PREDICTION_TYPES`), default ε.

        Returns:
            dict with ``total`` (B,), ``prior`` (B,), ``terms`` (B, T) indexed by t, and ``mse``
            (B, T), the mean-squared error of the ε the model implies, at each t.
        """
        self._check_x("x0", x0)
        check_prediction_type(prediction_type)
        batch = x0.shape[0]
        terms = torch.zeros(batch, self.num_timesteps, dtype=x0.dtype, device=x0.device)
        mse = torch.zeros_like(terms)
        with torch.no_grad():
            for i in reversed(range(self.num_timesteps)):
                noise = randn_like_on(x0, generator)  # t as the int i: no sync per step
                x_t = self.q_sample(x0, i, noise)
                out = self.vlb_terms(
                    model, x0, x_t, i, clip_denoised=clip_denoised, prediction_type=prediction_type
                )
                terms[:, i] = out["output"]
                mse[:, i] = mean_flat((out["eps"] - noise) ** 2)
            prior = self.prior_bpd(x0)
        return {"total": terms.sum(dim=1) + prior, "prior": prior, "terms": terms, "mse": mse}
