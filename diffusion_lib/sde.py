"""Continuous-time diffusion: forward SDEs, their scores, samplers and exact likelihoods.

Song et al. (2021), "Score-Based Generative Modeling through Stochastic Differential Equations".
Time runs over t ∈ [0, 1]; every process here is a Gaussian path

    x_t = alpha(t) · x_0 + sigma(t) · ε,    ε ~ N(0, I),

written as the forward SDE dx = f(x, t) dt + g(t) dw with a linear drift f = a(t) x. Four paths:
:class:`VPSDE` (DDPM's chain in continuous time), :class:`SubVPSDE`, :class:`VESDE` (NCSN's
noise levels) and :class:`FlowMatchingPath` (rectified flow, as in Stable Diffusion 3). For any
such path g² = dσ²/dt − 2 (d log α/dt) σ², which the tests check by finite differences.

A score function is a callable ``score_fn(x_t, t)`` returning ∇_x log p_t(x_t), ``t`` a float
tensor of shape (B,). :func:`score_from_eps` and :func:`score_from_velocity` turn networks into
score functions; :class:`GaussianMixture` gives exact ones for toy data, against which the
samplers (:func:`euler_maruyama`, :func:`predictor_corrector`, :func:`probability_flow_sample`,
:func:`langevin`, :func:`annealed_langevin`) and the likelihood (:func:`ode_log_likelihood`)
are tested. Schedule quantities are computed in float64 and cast to the data's dtype at use.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Callable, Optional, Union

import numpy as np
import torch

from .diffusion import GaussianDiffusion, randn_like_on

__all__ = [
    "SDE",
    "VPSDE",
    "SubVPSDE",
    "VESDE",
    "FlowMatchingPath",
    "GaussianMixture",
    "DIVERGENCE_METHODS",
    "CORRECTOR_NORMS",
    "divergence",
    "ode_log_likelihood",
    "score_from_eps",
    "score_from_velocity",
    "langevin",
    "annealed_langevin",
    "euler_maruyama",
    "predictor_corrector",
    "probability_flow_sample",
]

ScoreFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
TimeLike = Union[torch.Tensor, float]

DIVERGENCE_METHODS = ("exact", "hutchinson")
# How the Langevin corrector's step size reads ‖z‖/‖s‖: batch averages of the norms (Song et
# al.'s reference code) or each example's own norms (samples independent of their batch).
CORRECTOR_NORMS = ("batch", "example")
# The flow-matching path x_t = (1 − t) x_0 + t ε is pure noise at t = 1, where its SDE's drift
# −x/(1 − t) and g² = 2t/(1 − t) blow up; the prior is taken just before. At t = 1 − 1e-3 the
# data's share of x_t is 1e-3 and its variance (1 − 1e-3)² ≈ 0.998, so N(0, I) is still the
# prior to a few 1e-3 nats per dimension, and the ODE's right-hand side stays bounded.
_FLOW_T_END = 1.0 - 1e-3
# Smallest ‖score‖ in the corrector's step size (guards a division by zero at a mode).
_TINY = 1e-12


# ----------------------------------------------------------------------------- small checks
def _finite_number(name: str, value) -> float:
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    if not ok or not math.isfinite(float(value)):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def _positive(name: str, value) -> float:
    number = _finite_number(name, value) if _is_number(value) else None
    if number is None or number <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return number


def _is_number(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def _greater(name: str, value, other_name: str, other: float) -> float:
    if not _is_number(value) or not math.isfinite(float(value)) or float(value) <= other:
        raise ValueError(f"{name} must be a finite number > {other_name} = {other!r}, got {value!r}")
    return float(value)


def _check_int(name: str, value, minimum: int) -> int:
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
    if not ok or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def _check_batch(name: str, x) -> torch.Tensor:
    """``x`` if it is a floating-point tensor of shape (B, ...) with B >= 1 and one more dim."""
    if not torch.is_tensor(x) or not x.is_floating_point():
        what = f"dtype {x.dtype}" if torch.is_tensor(x) else type(x).__name__
        raise TypeError(f"{name} must be a floating-point tensor of shape (B, ...), got {what}")
    if x.ndim < 2 or x.shape[0] < 1:
        raise ValueError(f"{name} must have shape (B, ...) with a batch dimension, got {tuple(x.shape)}")
    return x


def _check_shape(shape) -> tuple:
    shape = tuple(shape)
    if len(shape) < 2 or any((not isinstance(s, int)) or isinstance(s, bool) or s < 1 for s in shape):
        raise ValueError(f"shape must be a tuple (B, ...) of at least two ints >= 1, got {shape!r}")
    return shape


def _check_process(process) -> SDE:
    if not isinstance(process, SDE):
        raise TypeError(
            "process must be an SDE of diffusion_lib.sde (VPSDE, SubVPSDE, VESDE or FlowMatchingPath), "
            f"got {type(process).__name__}"
        )
    return process


def _check_t_min(t_min, process: SDE) -> float:
    ok = _is_number(t_min) and 0.0 < float(t_min) < 1.0 and float(t_min) < process.t_end
    if not ok:
        raise ValueError(
            f"t_min must be a number in (0, 1) below the process's t_end = {process.t_end:g}, got {t_min!r}"
        )
    return float(t_min)


def _check_output(name: str, value, x: torch.Tensor) -> torch.Tensor:
    if not torch.is_tensor(value) or value.shape != x.shape:
        got = tuple(value.shape) if torch.is_tensor(value) else type(value).__name__
        raise ValueError(f"{name} must return a tensor of shape {tuple(x.shape)}, got {got}")
    return value


def _check_same_shape(name: str, value, x: torch.Tensor) -> torch.Tensor:
    if not torch.is_tensor(value) or value.shape != x.shape:
        got = tuple(value.shape) if torch.is_tensor(value) else type(value).__name__
        raise ValueError(f"{name} must be a tensor of x's shape {tuple(x.shape)}, got {got}")
    return value


def _compute_dtype(device: torch.device) -> torch.dtype:
    """float64 for schedule arithmetic, except on devices without it (Apple's MPS)."""
    return torch.float32 if device.type == "mps" else torch.float64


def _as_time(t: TimeLike) -> tuple[torch.Tensor, torch.dtype]:
    """``t`` in float64 (same shape and device) and the dtype to return results in."""
    if torch.is_tensor(t):
        if not t.is_floating_point():
            raise TypeError(f"t must be a floating-point tensor or a number, got dtype {t.dtype}")
        return t.detach().to(_compute_dtype(t.device)), t.dtype
    if not _is_number(t):
        raise TypeError(f"t must be a floating-point tensor or a number, got {type(t).__name__}")
    return torch.tensor(float(t), dtype=torch.float64), torch.float64


def _batch_time(t: TimeLike, x: torch.Tensor, name: str = "t") -> torch.Tensor:
    """``t`` as a (B,) tensor for the batch ``x``, in float64 on x's device."""
    batch = x.shape[0]
    if torch.is_tensor(t) and not t.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor or a number, got dtype {t.dtype}")
    if not torch.is_tensor(t) and not _is_number(t):
        raise TypeError(f"{name} must be a floating-point tensor or a number, got {type(t).__name__}")
    t64, _ = _as_time(t)
    t64 = t64.to(x.device)
    if t64.ndim == 0:
        return t64.expand(batch)
    if tuple(t64.shape) != (batch,):
        raise ValueError(f"{name} must be a number or a tensor of shape ({batch},), got {tuple(t64.shape)}")
    return t64


def _per_example(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(B,) ``values`` cast to ``like``'s dtype and shaped (B, 1, …, 1) to broadcast against it."""
    return values.to(dtype=like.dtype).reshape(-1, *(1,) * (like.ndim - 1))


# ----------------------------------------------------------------------------- processes
class SDE:
    """A Gaussian path in continuous time and a forward SDE with those marginals.

    Derived in chapter 8, eq. (sde-forward): dx = f(x, t) dt + g(t) dw with f = a(t) x has
    Gaussian marginals x_t = alpha(t) x_0 + sigma(t) ε, where d log alpha/dt = a(t) and
    g² = dσ²/dt − 2 (d log α/dt) σ². Subclasses give log alpha, sigma, a and g²; the rest is
    common. ``t_end`` is the time the prior N(0, prior_std² I) is taken at.
    """

    t_end: float = 1.0
    prior_std: float = 1.0

    # what a subclass provides, on float64 tensors of times
    def _log_alpha(self, t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _sigma(self, t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _drift_coefficient(self, t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _g_squared(self, t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def marginal(self, t: TimeLike) -> tuple[torch.Tensor, torch.Tensor]:
        """(alpha(t), sigma(t)) of the marginal x_t = alpha x_0 + sigma ε, each of t's shape and dtype.

        ``t`` is a floating-point tensor of any shape, or a number (then float64 0-d tensors).
        Computed in float64 and cast.
        """
        t64, dtype = _as_time(t)
        return torch.exp(self._log_alpha(t64)).to(dtype), self._sigma(t64).to(dtype)

    def sde(self, x: torch.Tensor, t: TimeLike) -> tuple[torch.Tensor, torch.Tensor]:
        """The forward SDE's drift f(x, t) (x's shape) and diffusion g(t) (shape (B,)).

        Derived in chapter 8, eq. (sde-forward). ``t`` is a tensor (B,) or a number.
        """
        t64 = _batch_time(t, x)
        f = _per_example(self._drift_coefficient(t64), x) * x
        return f, torch.sqrt(self._g_squared(t64)).to(x.dtype)

    def probability_flow_drift(self, x: torch.Tensor, t: TimeLike, score: torch.Tensor) -> torch.Tensor:
        """f(x, t) − ½ g(t)² · score: the probability-flow ODE's velocity dx/dt.

        Derived in chapter 8, eq. (sde-pf-ode): the ODE whose solutions have the SDE's marginals
        p_t, given score = ∇_x log p_t(x) (a tensor of x's shape).
        """
        t64 = _batch_time(t, x)
        _check_same_shape("score", score, x)
        a = _per_example(self._drift_coefficient(t64), x)
        g2 = _per_example(self._g_squared(t64), x)
        return a * x - 0.5 * g2 * score

    def reverse_drift(self, x: torch.Tensor, t: TimeLike, score: torch.Tensor) -> torch.Tensor:
        """f(x, t) − g(t)² · score: the drift of the reverse-time SDE (Anderson, 1982).

        Derived in chapter 8, eq. (sde-reverse): dx = [f − g² ∇ log p_t] dt + g dw̄, run from
        t_end down to 0 (dt < 0, w̄ a Brownian motion in reverse time).
        """
        t64 = _batch_time(t, x)
        _check_same_shape("score", score, x)
        a = _per_example(self._drift_coefficient(t64), x)
        g2 = _per_example(self._g_squared(t64), x)
        return a * x - g2 * score

    def prior_sample(
        self,
        shape: Sequence[int],
        generator: Optional[torch.Generator] = None,
        dtype: torch.dtype = torch.float32,
        device: Optional[torch.device] = None,
    ) -> torch.Tensor:
        """A draw from the prior N(0, prior_std² I) of shape ``shape``, drawn on ``generator``'s device."""
        shape = _check_shape(shape)
        noise = randn_like_on(torch.empty(shape, dtype=dtype, device=device or "cpu"), generator)
        return noise * self.prior_std

    def prior_log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log N(z; 0, prior_std² I) per example, summed over the non-batch dims: (B,) float64."""
        z = _check_batch("z", z)
        z64 = z.detach().to(_compute_dtype(z.device)).reshape(z.shape[0], -1)
        d = z64.shape[1]
        var = self.prior_std**2
        return -0.5 * (z64**2).sum(dim=1) / var - 0.5 * d * math.log(2.0 * math.pi * var)


class _LinearBeta(SDE):
    """The VP and sub-VP processes' β(t) = beta_min + t (beta_max − beta_min)."""

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0):
        self.beta_min = _positive("beta_min", beta_min)
        self.beta_max = _greater("beta_max", beta_max, "beta_min", self.beta_min)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(beta_min={self.beta_min!r}, beta_max={self.beta_max!r})"

    def beta(self, t: TimeLike) -> torch.Tensor:
        """β(t) = beta_min + t (beta_max − beta_min), of t's shape and dtype."""
        t64, dtype = _as_time(t)
        return self._beta(t64).to(dtype)

    def _beta(self, t: torch.Tensor) -> torch.Tensor:
        return self.beta_min + t * (self.beta_max - self.beta_min)

    def _integral(self, t: torch.Tensor) -> torch.Tensor:
        """∫₀ᵗ β(s) ds."""
        return self.beta_min * t + 0.5 * (self.beta_max - self.beta_min) * t**2

    def _log_alpha(self, t):
        return -0.5 * self._integral(t)

    def _drift_coefficient(self, t):
        return -0.5 * self._beta(t)


class VPSDE(_LinearBeta):
    """The variance-preserving SDE dx = −½β(t) x dt + √β(t) dw: DDPM in continuous time.

    Derived in chapter 8, eqs. (sde-vp) and (sde-vp-marginal): alpha(t) = exp(−½∫₀ᵗβ) and
    sigma(t) = √(1 − alpha²), so alpha² + sigma² = 1 at every t. Defaults: Song et al. (2021),
    whose discretisation with N = 1000 steps is Ho et al.'s linear schedule (see
    :meth:`discrete_betas`).

    Args:
        beta_min: β(0) > 0.
        beta_max: β(1) > beta_min.
    """

    def _sigma(self, t):
        # 1 − exp(−∫β) via expm1: no cancellation at small t, where sigma ≈ √(beta_min t)
        return torch.sqrt(-torch.expm1(-self._integral(t)))

    def _g_squared(self, t):
        return self._beta(t)

    def discrete_betas(self, num_steps: int) -> torch.Tensor:
        """DDPM's β_1..β_N as this SDE discretised: β_i = β(t_i)/N at t_i = i/(N − 1), i = 0..N−1.

        Derived in chapter 8, eq. (sde-ddpm-map): float64 ``torch.linspace(beta_min/N,
        beta_max/N, N)``, as in Song et al.'s code. With the defaults and N = 1000 this is
        ``get_beta_schedule("linear", 1000)`` exactly.
        """
        n = _check_int("num_steps", num_steps, 2)
        return torch.linspace(self.beta_min / n, self.beta_max / n, n, dtype=torch.float64)

    @classmethod
    def from_diffusion(cls, diffusion: GaussianDiffusion) -> VPSDE:
        """The VPSDE whose discretisation (:meth:`discrete_betas`) is this diffusion's linear schedule.

        Derived in chapter 8, eq. (sde-ddpm-map): beta_min = N β_1 and beta_max = N β_N.

        Raises:
            TypeError: ``diffusion`` is not a GaussianDiffusion.
            ValueError: its betas are not linear (differ from linspace(β_1, β_N, N) by more than
                1e-12), or N < 2.
        """
        if not isinstance(diffusion, GaussianDiffusion):
            raise TypeError(f"diffusion must be a GaussianDiffusion, got {type(diffusion).__name__}")
        betas = diffusion.betas
        n = diffusion.num_timesteps
        if n < 2:
            raise ValueError(f"diffusion must have at least 2 timesteps for a linear schedule, got {n}")
        line = torch.linspace(float(betas[0]), float(betas[-1]), n, dtype=torch.float64)
        gap = float((betas - line).abs().max())
        if gap > 1e-12 or float(betas[-1]) <= float(betas[0]):
            raise ValueError(
                "diffusion's schedule must be the linear one (betas increasing, equal to "
                f"linspace(β_1, β_N, N) within 1e-12) to be a VP SDE discretised, got betas from "
                f"{float(betas[0]):.6g} to {float(betas[-1]):.6g}, off that line by up to {gap:.3g}"
            )
        return cls(beta_min=n * float(betas[0]), beta_max=n * float(betas[-1]))


class SubVPSDE(_LinearBeta):
    """The sub-VP SDE dx = −½β(t) x dt + √(β(t)(1 − exp(−2∫₀ᵗβ))) dw (Song et al., 2021).

    Derived in chapter 8, eq. (sde-subvp): the VP drift with a smaller diffusion; alpha as for
    the VP SDE, sigma = 1 − alpha² (the standard deviation, below the VP's √(1 − alpha²)).

    Args:
        beta_min: β(0) > 0.
        beta_max: β(1) > beta_min.
    """

    def _sigma(self, t):
        return -torch.expm1(-self._integral(t))

    def _g_squared(self, t):
        return self._beta(t) * -torch.expm1(-2.0 * self._integral(t))


class VESDE(SDE):
    """The variance-exploding SDE dx = σ_v(t) √(2 log(σ_max/σ_min)) dw, σ_v(t) = σ_min (σ_max/σ_min)^t.

    Derived in chapter 8, eq. (sde-ve): NCSN's noise levels in continuous time; f = 0, alpha = 1.
    Started at x_0 the SDE gives sigma(t)² = σ_v(t)² − σ_min² (zero at t = 0), which
    :meth:`marginal` returns. Song et al. instead treat p_0 as the data already smoothed at σ_min
    and use sigma = σ_v(t); the two differ by σ_min (0.01 by default) near t = 0 only. The prior
    is N(0, σ_max² I).

    Args:
        sigma_min: σ_v(0) > 0.
        sigma_max: σ_v(1) > sigma_min.
    """

    def __init__(self, sigma_min: float = 0.01, sigma_max: float = 50.0):
        self.sigma_min = _positive("sigma_min", sigma_min)
        self.sigma_max = _greater("sigma_max", sigma_max, "sigma_min", self.sigma_min)
        self.prior_std = self.sigma_max
        self._log_ratio = math.log(self.sigma_max / self.sigma_min)

    def __repr__(self) -> str:
        return f"VESDE(sigma_min={self.sigma_min!r}, sigma_max={self.sigma_max!r})"

    def sigma_v(self, t: TimeLike) -> torch.Tensor:
        """σ_v(t) = σ_min (σ_max/σ_min)^t, Song et al.'s noise level, of t's shape and dtype."""
        t64, dtype = _as_time(t)
        return (self.sigma_min * torch.exp(t64 * self._log_ratio)).to(dtype)

    def _log_alpha(self, t):
        return torch.zeros_like(t)

    def _sigma(self, t):
        return self.sigma_min * torch.sqrt(torch.expm1(2.0 * self._log_ratio * t))

    def _drift_coefficient(self, t):
        return torch.zeros_like(t)

    def _g_squared(self, t):
        return 2.0 * self._log_ratio * (self.sigma_min * torch.exp(t * self._log_ratio)) ** 2


class FlowMatchingPath(SDE):
    """The rectified-flow path x_t = (1 − t) x_0 + t ε (conditional OT with σ_min = 0, noise at t = 1).

    Derived in chapter 8, eq. (sde-fm-path): alpha = 1 − t, sigma = t, the path of Stable
    Diffusion 3. As an SDE with the same marginals, f = (d log α/dt) x = −x/(1 − t) and
    g² = dσ²/dt − 2 (d log α/dt) σ² = 2t/(1 − t). Its probability-flow drift is the velocity
    E[ε − x_0 | x_t] that flow matching regresses. ``t_end`` is 1 − 1e-3: at t = 1 the drift
    and g² are infinite; just before, the data's share of x_t is 1e-3 and N(0, I) is still the
    prior to a few 1e-3 nats per dimension.
    """

    t_end = _FLOW_T_END

    def __repr__(self) -> str:
        return "FlowMatchingPath()"

    def _log_alpha(self, t):
        return torch.log1p(-t)

    def _sigma(self, t):
        return t.clone()

    def _drift_coefficient(self, t):
        return -1.0 / (1.0 - t)

    def _g_squared(self, t):
        return 2.0 * t / (1.0 - t)


# ----------------------------------------------------------------------------- networks as scores
def score_from_eps(eps_model: Callable, process) -> ScoreFn:
    """An ε-prediction network as a score function: score(x, t) = −ε̂(x, ·) / sigma(t).

    Derived in chapter 8, eqs. (sde-dsm-eps) and (sde-vp-index): a network trained to predict
    the noise of x_t = alpha x_0 + sigma ε estimates E[ε | x_t] = −sigma ∇ log p_t(x_t).

    - ``process`` an :class:`SDE`: the network is called as ``eps_model(x, t)`` at the continuous
      time t.
    - ``process`` a :class:`~diffusion_lib.diffusion.GaussianDiffusion` (a discrete DDPM with the
      linear schedule): the score is that of the continuous ``VPSDE.from_diffusion(diffusion)``,
      which is the SDE to sample with. At time t the network is called at the fractional step
      index ``diffusion.fractional_timestep(alpha(t)²)`` (a float tensor (B,) of x's dtype; the
      U-Net's sinusoidal embedding accepts it), the step whose noise level is alpha(t)².

    The returned function has attribute ``process``: the SDE whose marginals it scores.
    """
    if isinstance(process, GaussianDiffusion):
        diffusion = process
        sde = VPSDE.from_diffusion(diffusion)

        def score_fn(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            t64 = _batch_time(t, x)
            alpha, sigma = sde.marginal(t64)
            index = diffusion.fractional_timestep(alpha**2).to(dtype=x.dtype, device=x.device)
            eps = _check_output("eps_model", eps_model(x, index), x)
            return -eps / _per_example(sigma, x)

    elif isinstance(process, SDE):
        sde = process

        def score_fn(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            t64 = _batch_time(t, x)
            eps = _check_output("eps_model", eps_model(x, t), x)
            return -eps / _per_example(sde.marginal(t64)[1], x)

    else:
        raise TypeError(
            "process must be an SDE of diffusion_lib.sde or a GaussianDiffusion, "
            f"got {type(process).__name__}"
        )
    score_fn.process = sde
    return score_fn


def score_from_velocity(v_model: Callable, path: FlowMatchingPath) -> ScoreFn:
    """A flow-matching velocity network v(x, t) ≈ E[ε − x_0 | x_t] as a score function.

    Derived in chapter 8, eq. (sde-fm-score): with x_t = (1 − t) x_0 + t ε, taking expectations
    given x_t, x = (1 − t) E[x_0 | x] + t E[ε | x] and v = E[ε | x] − E[x_0 | x]. Eliminating
    E[x_0 | x] = E[ε | x] − v gives E[ε | x] = x + (1 − t) v, and with E[ε | x] = −t ∇ log p_t(x)
    (Tweedie), score = −(x + (1 − t) v) / t. The network is called as ``v_model(x, t)``.
    """
    if not isinstance(path, FlowMatchingPath):
        raise TypeError(f"path must be a FlowMatchingPath, got {type(path).__name__}")

    def score_fn(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        t64 = _batch_time(t, x)
        v = _check_output("v_model", v_model(x, t), x)
        tt = _per_example(t64, x)
        return -(x + (1.0 - tt) * v) / tt

    score_fn.process = path
    return score_fn


# ----------------------------------------------------------------------------- an exact score
class GaussianMixture:
    """A mixture of isotropic Gaussians Σ_k w_k N(μ_k, s_k² I): toy data with an exact score.

    Every marginal of a Gaussian path started at a mixture is again one (means alpha μ_k,
    standard deviations √(alpha² s_k² + sigma²)), so scores, log densities and posterior means
    at every t are closed-form. With a class for each component, so are the class posteriors
    p(y | x_t), the conditional scores and the classifier's gradient of guidance (chapter 11):
    :meth:`class_log_posterior`, :meth:`conditional`, :meth:`class_score`. All arithmetic is
    float64.

    Args:
        means: (K, D) component means.
        stds: (K,) standard deviations, > 0.
        weights: (K,) non-negative weights summing to 1 (within 1e-6); default uniform.
    """

    def __init__(self, means, stds, weights=None):
        means = torch.as_tensor(means, dtype=torch.float64).detach().cpu()
        if means.ndim != 2 or means.shape[0] < 1 or means.shape[1] < 1:
            raise ValueError(f"means must have shape (K, D) with K, D >= 1, got {tuple(means.shape)}")
        k = means.shape[0]
        stds = torch.as_tensor(stds, dtype=torch.float64).detach().cpu()
        if tuple(stds.shape) != (k,) or not bool(((stds > 0) & torch.isfinite(stds)).all()):
            raise ValueError(f"stds must be a ({k},) tensor of finite values > 0, got {stds.tolist()!r}")
        if weights is None:
            weights = torch.full((k,), 1.0 / k, dtype=torch.float64)
        weights = torch.as_tensor(weights, dtype=torch.float64).detach().cpu()
        ok = (
            tuple(weights.shape) == (k,)
            and bool((weights >= 0).all())
            and abs(float(weights.sum()) - 1) <= 1e-6
        )
        if not ok:
            raise ValueError(
                f"weights must be a ({k},) tensor of values >= 0 summing to 1, got {weights.tolist()!r}"
            )
        self.means, self.stds, self.weights = means, stds, weights / weights.sum()
        self.num_components, self.dim = k, means.shape[1]

    def __repr__(self) -> str:
        return f"GaussianMixture(num_components={self.num_components}, dim={self.dim})"

    # the mixture alpha·X + sigma·ε, alpha and sigma per example (B,) float64 on x's device
    def _log_joint(self, x: torch.Tensor, alpha: torch.Tensor, sigma: torch.Tensor):
        """log w_k N(x; alpha μ_k, v_k I) (B, K), the differences x − alpha μ_k (B, K, D), v (B, K)."""
        device = x.device
        means, stds = self.means.to(device), self.stds.to(device)
        diff = x[:, None, :] - alpha[:, None, None] * means[None]
        var = alpha[:, None] ** 2 * stds[None] ** 2 + sigma[:, None] ** 2
        log_joint = (
            torch.log(self.weights.to(device))[None]
            - 0.5 * (diff**2).sum(dim=2) / var
            - 0.5 * self.dim * torch.log(2.0 * math.pi * var)
        )
        return log_joint, diff, var

    def _x64(self, name: str, x) -> torch.Tensor:
        if not torch.is_tensor(x) or not x.is_floating_point():
            what = f"dtype {x.dtype}" if torch.is_tensor(x) else type(x).__name__
            raise TypeError(f"{name} must be a floating-point tensor of shape (B, {self.dim}), got {what}")
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"{name} must have shape (B, {self.dim}), got {tuple(x.shape)}")
        return x.to(_compute_dtype(x.device))

    def _levels(self, x64: torch.Tensor, alpha, sigma) -> tuple[torch.Tensor, torch.Tensor]:
        a = _batch_time(alpha, x64, "alpha").to(x64.dtype)
        s = _batch_time(sigma, x64, "sigma").to(x64.dtype)
        return a, s

    def _log_prob_at(self, x64, alpha, sigma) -> torch.Tensor:
        log_joint, _, _ = self._log_joint(x64, alpha, sigma)
        return torch.logsumexp(log_joint, dim=1)

    def _score_at(self, x64, alpha, sigma) -> torch.Tensor:
        log_joint, diff, var = self._log_joint(x64, alpha, sigma)
        resp = torch.softmax(log_joint, dim=1)  # responsibilities p(k | x)
        return -((resp / var)[:, :, None] * diff).sum(dim=1)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log p(x) per example, (B,) float64, by logsumexp over the components (differentiable)."""
        x64 = self._x64("x", x)
        one, zero = torch.ones(x.shape[0], dtype=x64.dtype), torch.zeros(x.shape[0], dtype=x64.dtype)
        return self._log_prob_at(x64, one.to(x.device), zero.to(x.device))

    def score(self, x: torch.Tensor) -> torch.Tensor:
        """∇_x log p(x) = Σ_k p(k | x) (μ_k − x)/s_k², (B, D) of x's dtype.

        Derived in chapter 8, eq. (sde-score): the components' scores weighted by their
        responsibilities.
        """
        x64 = self._x64("x", x)
        one, zero = torch.ones(x.shape[0], dtype=x64.dtype), torch.zeros(x.shape[0], dtype=x64.dtype)
        return self._score_at(x64, one.to(x.device), zero.to(x.device)).to(x.dtype)

    def sample(
        self,
        n: int,
        generator: Optional[torch.Generator] = None,
        dtype: torch.dtype = torch.float32,
        device: Optional[torch.device] = None,
    ) -> torch.Tensor:
        """``n`` draws, (n, D): a component by its weight, then its Gaussian (drawn on the CPU)."""
        n = _check_int("n", n, 1)
        component = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        noise = torch.randn(n, self.dim, generator=generator, dtype=torch.float64)
        x = self.means[component] + self.stds[component, None] * noise
        return x.to(dtype=dtype, device=device or "cpu")

    def perturbed(self, alpha: float, sigma: float) -> GaussianMixture:
        """The law of alpha·X + sigma·ε: means alpha μ_k, standard deviations √(alpha² s_k² + sigma²)."""
        alpha = _positive("alpha", float(alpha) if torch.is_tensor(alpha) else alpha)
        sigma = _finite_number("sigma", float(sigma) if torch.is_tensor(sigma) else sigma)
        if sigma < 0:
            raise ValueError(f"sigma must be a finite number >= 0, got {sigma!r}")
        stds = torch.sqrt(alpha**2 * self.stds**2 + sigma**2)
        return GaussianMixture(alpha * self.means, stds, self.weights)

    def score_fn(self, process: SDE) -> ScoreFn:
        """The exact score of ``process``'s marginal p_t started at this mixture: ``fn(x, t)``.

        ``t`` is a number or a tensor (B,), one time per example; the result has x's dtype.
        """
        process = _check_process(process)

        def fn(x: torch.Tensor, t: TimeLike) -> torch.Tensor:
            x64 = self._x64("x", x)
            alpha, sigma = process.marginal(_batch_time(t, x64))
            return self._score_at(x64, alpha.to(x64.dtype), sigma.to(x64.dtype)).to(x.dtype)

        return fn

    def log_prob_fn(self, process: SDE) -> Callable[[torch.Tensor, TimeLike], torch.Tensor]:
        """log p_t(x) of ``process``'s marginal started at this mixture: ``fn(x, t)`` -> (B,) float64."""
        process = _check_process(process)

        def fn(x: torch.Tensor, t: TimeLike) -> torch.Tensor:
            x64 = self._x64("x", x)
            alpha, sigma = process.marginal(_batch_time(t, x64))
            return self._log_prob_at(x64, alpha.to(x64.dtype), sigma.to(x64.dtype))

        return fn

    def posterior_mean(self, x: torch.Tensor, alpha: TimeLike, sigma: TimeLike) -> torch.Tensor:
        """E[x_0 | x_t = x] for x_t = alpha x_0 + sigma ε, by Tweedie's formula.

        Derived in chapter 8, eq. (sde-tweedie): E[x_0 | x_t] = (x_t + sigma² ∇ log p_t(x_t)) / alpha.
        ``alpha`` and ``sigma`` are numbers or tensors (B,); the result has x's dtype.
        """
        x64 = self._x64("x", x)
        a, s = self._levels(x64, alpha, sigma)
        score = self._score_at(x64, a, s)
        return ((x64 + s[:, None] ** 2 * score) / a[:, None]).to(x.dtype)

    # ------------------------------------------------------------- class posteriors (chapter 11)
    def _at(self, x64: torch.Tensor, process, t) -> tuple[torch.Tensor, torch.Tensor]:
        """(alpha, sigma) per example (B,) for the data (process None) or ``process`` at time t."""
        batch, device = x64.shape[0], x64.device
        if process is None:
            if t is not None:
                raise ValueError(f"t must be None when process is None (the data itself), got {t!r}")
            one = torch.ones(batch, dtype=x64.dtype, device=device)
            return one, torch.zeros_like(one)
        process = _check_process(process)
        if t is None:
            raise ValueError("t must be given with a process: a number or a tensor (B,) of times")
        alpha, sigma = process.marginal(_batch_time(t, x64))
        return alpha.to(x64.dtype), sigma.to(x64.dtype)

    def _check_classes(self, classes) -> tuple[torch.Tensor, int]:
        """``classes`` as a LongTensor (K,) on the CPU and the number of classes C = max + 1.

        Every class 0..C − 1 must own at least one component.
        """
        k = self.num_components
        if isinstance(classes, (list, tuple, np.ndarray)):
            try:
                classes = torch.as_tensor(classes)
            except (TypeError, ValueError, RuntimeError) as error:
                raise ValueError(f"classes must be a ({k},) integer tensor, got {classes!r}") from error
        if not torch.is_tensor(classes):
            raise ValueError(f"classes must be a ({k},) integer tensor, got {type(classes).__name__}")
        if classes.is_floating_point() or classes.is_complex() or classes.dtype == torch.bool:
            raise ValueError(f"classes must be a ({k},) integer tensor, got dtype {classes.dtype}")
        if tuple(classes.shape) != (k,):
            raise ValueError(
                f"classes must be a ({k},) integer tensor (one class per component), "
                f"got shape {tuple(classes.shape)}"
            )
        classes = classes.detach().cpu().long()
        if bool((classes < 0).any()):
            raise ValueError(f"classes must be class indices >= 0, got {classes.tolist()!r}")
        num_classes = int(classes.max()) + 1
        counts = torch.bincount(classes, minlength=num_classes)
        if bool((counts == 0).any()):
            empty = int(torch.nonzero(counts == 0)[0])
            raise ValueError(
                f"classes must give every class 0..{num_classes - 1} at least one component, "
                f"but class {empty} has none: {classes.tolist()!r}"
            )
        return classes, num_classes

    def _check_y(self, y, num_classes: int, batch: Optional[int] = None) -> torch.Tensor:
        """``y`` as a LongTensor: 0-d for an int, (batch,) for a tensor (allowed only with ``batch``)."""
        allowed = f"a class in [0, {num_classes})"
        if isinstance(y, (int, np.integer)) and not isinstance(y, bool):
            if not 0 <= y < num_classes:
                raise ValueError(f"y must be {allowed}, got {int(y)}")
            return torch.tensor(int(y))
        integer_tensor = torch.is_tensor(y) and not (
            y.is_floating_point() or y.is_complex() or y.dtype == torch.bool
        )
        if batch is None or not integer_tensor:
            what = f"a tensor of dtype {y.dtype}" if torch.is_tensor(y) else repr(y)
            kind = "an int or an integer tensor (B,)" if batch is not None else "an int"
            raise ValueError(f"y must be {kind}: {allowed}, got {what}")
        if tuple(y.shape) != (batch,):
            raise ValueError(
                f"y must be an int or an integer tensor of shape ({batch},), got {tuple(y.shape)}"
            )
        y = y.detach().cpu().long()
        if y.numel() and not (0 <= int(y.min()) and int(y.max()) < num_classes):
            bad = int(y.min()) if int(y.min()) < 0 else int(y.max())
            raise ValueError(f"y must be {allowed}, got {bad}")
        return y

    def component_log_posterior(self, x: torch.Tensor, process: Optional[SDE] = None, t=None) -> torch.Tensor:
        """log p(k | x_t = x), the responsibilities of the components, (B, K) float64.

        Bayes' rule: p(k | x_t) = w_k N(x_t; alpha μ_k, v_k I) / Σ_j w_j N(x_t; alpha μ_j, v_j I),
        v_k = alpha² s_k² + sigma², normalised by logsumexp. Differentiable in x.

        Args:
            x: points (B, D), floating point.
            process: None for the data itself (alpha = 1, sigma = 0), or an :class:`SDE` whose
                marginal at time ``t`` is meant.
            t: with a process, a number or a tensor (B,) of times; None without one.

        Raises:
            ValueError: x has the wrong shape; t given without a process or missing with one.
            TypeError: x is not a floating-point tensor, or process not an SDE.
        """
        x64 = self._x64("x", x)
        alpha, sigma = self._at(x64, process, t)
        log_joint, _, _ = self._log_joint(x64, alpha, sigma)
        return torch.log_softmax(log_joint, dim=1)

    def class_log_posterior(
        self, x: torch.Tensor, classes, process: Optional[SDE] = None, t=None
    ) -> torch.Tensor:
        """log p(y | x_t = x) for every class y, (B, C) float64: the exact noise-aware classifier.

        Each component belongs to one class, so p(y | x_t) = Σ_{k: classes[k] = y} p(k | x_t):
        a logsumexp of :meth:`component_log_posterior` over the class's components. The class
        prior is p(y) = Σ_{k in y} w_k. Differentiable in x.

        Args:
            x: points (B, D).
            classes: a (K,) integer tensor (or list) giving each component's class in 0..C − 1,
                every class owning at least one component.
            process, t: as for :meth:`component_log_posterior`.

        Raises:
            ValueError: classes of the wrong shape or dtype, or a class with no component; and
                as for :meth:`component_log_posterior`.
        """
        classes, num_classes = self._check_classes(classes)
        log_resp = self.component_log_posterior(x, process, t)
        member = (
            classes.to(log_resp.device)[None, :] == torch.arange(num_classes, device=log_resp.device)[:, None]
        )
        masked = log_resp[:, None, :].masked_fill(~member[None], -math.inf)  # (B, C, K)
        return torch.logsumexp(masked, dim=2)

    def conditional(self, classes, y: int) -> GaussianMixture:
        """The mixture of class ``y``'s components, their weights renormalised: p(x | y).

        Its marginals under any process are those of the data's class y, so its score is the
        exact conditional score ∇ log p_t(x | y) (:meth:`score_fn`), the target of guidance.

        Args:
            classes: each component's class, as for :meth:`class_log_posterior`.
            y: an int in [0, C).

        Raises:
            ValueError: bad classes, y out of range or not an int, or class y of total weight 0.
        """
        classes, num_classes = self._check_classes(classes)
        label = int(self._check_y(y, num_classes))
        keep = classes == label
        weights = self.weights[keep]
        total = float(weights.sum())
        if total <= 0:
            raise ValueError(f"y = {label} has components of total weight 0; it has no conditional")
        return GaussianMixture(self.means[keep], self.stds[keep], weights / total)

    def class_score(self, x: torch.Tensor, classes, y, process: Optional[SDE] = None, t=None) -> torch.Tensor:
        """∇_x log p_t(y | x), the classifier's gradient in guidance: (B, D) of x's dtype.

        Bayes' rule on scores: log p_t(y | x) = log p_t(x | y) + log p(y) − log p_t(x), so
        ∇ log p_t(y | x) = ∇ log p_t(x | y) − ∇ log p_t(x), the conditional score (of
        :meth:`conditional`) minus the score. In closed form, with the components' scores
        −(x − alpha μ_k)/v_k, their weights are p(k | x_t, y) − p(k | x_t): the
        responsibilities within the class minus those in the whole mixture. No autograd.

        Args:
            x: points (B, D).
            classes: each component's class, as for :meth:`class_log_posterior`.
            y: an int in [0, C), or an integer tensor (B,) of them (one class per point).
            process, t: as for :meth:`component_log_posterior`.

        Raises:
            ValueError: bad classes, y out of range, and as for :meth:`component_log_posterior`.
        """
        classes, num_classes = self._check_classes(classes)
        x64 = self._x64("x", x)
        labels = self._check_y(y, num_classes, batch=x64.shape[0]).to(x64.device)
        alpha, sigma = self._at(x64, process, t)
        log_joint, diff, var = self._log_joint(x64, alpha, sigma)
        member = classes.to(x64.device)[None, :] == labels.reshape(-1, 1)  # (B or 1, K)
        within = torch.softmax(log_joint.masked_fill(~member, -math.inf), dim=1)  # p(k | x_t, y)
        weight = within - torch.softmax(log_joint, dim=1)  # p(k | x_t, y) − p(k | x_t)
        return -((weight / var)[:, :, None] * diff).sum(dim=1).to(x.dtype)


# ----------------------------------------------------------------------------- divergence
def _rademacher(shape, generator: Optional[torch.Generator], like: torch.Tensor) -> torch.Tensor:
    """±1 with equal probability, drawn on the generator's device (the CPU by default)."""
    device = generator.device if generator is not None else "cpu"
    bits = torch.randint(0, 2, shape, generator=generator, device=device)
    return (2.0 * bits - 1.0).to(dtype=like.dtype, device=like.device)


def _value_and_divergence(fn, x, t, method: str, probes, per_probe: bool = False, name: str = "fn"):
    """(fn(x, t) detached, its divergence per example (B,), or (P, B) with ``per_probe``)."""
    batch = x.shape[0]
    with torch.enable_grad():
        xr = x.detach().requires_grad_(True)
        out = _check_output(name, fn(xr, t), x)
        if not out.requires_grad:
            raise ValueError(
                f"{name}'s output does not depend on x through autograd (computed under torch.no_grad?); "
                "its divergence needs the graph"
            )
        if method == "exact":
            flat = out.reshape(batch, -1)
            div = torch.zeros(batch, dtype=out.dtype, device=out.device)
            for i in range(flat.shape[1]):  # one backward pass over the whole batch per dimension
                (grad,) = torch.autograd.grad(flat[:, i].sum(), xr, retain_graph=True, allow_unused=True)
                if grad is not None:
                    div = div + grad.reshape(batch, -1)[:, i]
        else:
            estimates = []
            for v in probes:
                (vjp,) = torch.autograd.grad(out, xr, grad_outputs=v, retain_graph=True, allow_unused=True)
                vjp = torch.zeros_like(v) if vjp is None else vjp
                estimates.append((vjp * v).reshape(batch, -1).sum(dim=1))
            div = torch.stack(estimates)
            if not per_probe:
                div = div.mean(dim=0)
    return out.detach(), div.detach()


def divergence(
    fn: Callable,
    x: torch.Tensor,
    t,
    *,
    method: str = "exact",
    probes: Optional[torch.Tensor] = None,
    per_probe: bool = False,
) -> torch.Tensor:
    """The divergence ∇_x · fn(x, t) = tr(∂fn/∂x) per example, (B,).

    Derived in chapter 8, eq. (sde-hutchinson) for ``method="hutchinson"``:
    tr(J) = E[vᵀ J v] for any probe v with E[v vᵀ] = I, each vᵀ J one vector-Jacobian product.

    - ``"exact"``: the Jacobian's diagonal by autograd, one backward pass over the whole batch
      per dimension (affordable for d up to a few hundred).
    - ``"hutchinson"``: the Skilling–Hutchinson estimate averaged over ``probes``, a (P, *x.shape)
      tensor (e.g. Rademacher ±1); ``per_probe=True`` returns the P single-probe estimates
      (P, B) instead of their mean, to measure the estimator's variance.

    ``fn(x, t)`` must return a tensor of x's shape built by autograd from x; ``t`` is passed
    through unchanged. The result is detached, in fn's dtype.
    """
    if method not in DIVERGENCE_METHODS:
        raise ValueError(f"method must be one of {', '.join(DIVERGENCE_METHODS)}, got {method!r}")
    x = _check_batch("x", x)
    if method == "hutchinson":
        if not torch.is_tensor(probes) or probes.ndim != x.ndim + 1 or probes.shape[1:] != x.shape:
            got = tuple(probes.shape) if torch.is_tensor(probes) else type(probes).__name__
            raise ValueError(
                f"probes must be a tensor of shape (P, {', '.join(map(str, x.shape))}), got {got}"
            )
        probes = probes.to(dtype=x.dtype, device=x.device)
    elif probes is not None:
        raise ValueError("probes must be None with method='exact'")
    return _value_and_divergence(fn, x, t, method, probes, per_probe=per_probe)[1]


# ----------------------------------------------------------------------------- likelihood
def _check_tolerance(name: str, value) -> float:
    if not _is_number(value) or not float(value) > 0 or not math.isfinite(float(value)):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)


def ode_log_likelihood(
    score_fn: ScoreFn,
    process: SDE,
    x: torch.Tensor,
    *,
    divergence: str = "exact",
    num_probes: int = 1,
    t_min: float = 1e-5,
    rtol: float = 1e-5,
    atol: float = 1e-5,
    generator: Optional[torch.Generator] = None,
) -> dict:
    """Exact log-likelihood log p_{t_min}(x) through the probability-flow ODE, in nats.

    Derived in chapter 8, eqs. (sde-cov) and (sde-pf-ode): along dx/dt = v(x, t) (the
    probability-flow drift) the density obeys d log p_t(x(t))/dt = −∇·v (the instantaneous change
    of variables, Chen et al., 2018), so log p_{t_min}(x) = log p_prior(x(t_end)) + ∫ ∇·v dt.
    The ODE and the integral Δ are solved together from t_min to ``process.t_end`` by SciPy's
    RK45 (``rtol``, ``atol``), in float64, the batch as one system.

    Args:
        score_fn: ``score_fn(x_t, t)`` -> ∇ log p_t(x_t), x_t of x's dtype and device, t a float
            tensor (B,) in [t_min, t_end].
        process: the SDE (:class:`VPSDE`, :class:`SubVPSDE`, :class:`VESDE`, :class:`FlowMatchingPath`).
        x: data (B, ...), floating point.
        divergence: ``"exact"`` (autograd, one backward pass per dimension) or ``"hutchinson"``
            (FFJORD's estimate with ``num_probes`` Rademacher probes drawn once from ``generator``
            and fixed for the whole solve; unbiased for log p, noisy).
        t_min: where the ODE starts, in (0, t_end); the result is the density of the marginal
            p_{t_min}, close to the data's for small t_min.
        rtol, atol: the solver's tolerances, > 0.

    Returns:
        dict with ``"log_likelihood"`` (B,) float64 = ``"prior"`` (log p_prior(z), (B,)) +
        ``"delta"`` (∫ ∇·v dt, (B,)); ``"nfe"``, the number of score_fn calls; ``"z"``, x(t_end)
        (x's shape, dtype and device).
    """
    from scipy.integrate import solve_ivp

    process = _check_process(process)
    x = _check_batch("x", x)
    if divergence not in DIVERGENCE_METHODS:
        raise ValueError(f"divergence must be one of {', '.join(DIVERGENCE_METHODS)}, got {divergence!r}")
    num_probes = _check_int("num_probes", num_probes, 1)
    t_min = _check_t_min(t_min, process)
    rtol, atol = _check_tolerance("rtol", rtol), _check_tolerance("atol", atol)
    if not callable(score_fn):
        raise TypeError(f"score_fn must be callable, got {type(score_fn).__name__}")

    shape, batch, n = tuple(x.shape), x.shape[0], x.numel()
    probes = _rademacher((num_probes, *shape), generator, x) if divergence == "hutchinson" else None
    calls = 0

    def drift(xt: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        nonlocal calls
        calls += 1
        score = _check_output("score_fn", score_fn(xt, t), xt)
        return process.probability_flow_drift(xt, t, score)

    def rhs(t: float, y: np.ndarray) -> np.ndarray:
        xt = torch.from_numpy(y[:n]).reshape(shape).to(dtype=x.dtype, device=x.device)
        tt = torch.full((batch,), t, dtype=x.dtype, device=x.device)
        v, div = _value_and_divergence(drift, xt, tt, divergence, probes, name="score_fn")
        v = v.to(device="cpu", dtype=torch.float64).reshape(-1).numpy()
        return np.concatenate([v, div.to(device="cpu", dtype=torch.float64).numpy()])

    y0 = np.concatenate(
        [x.detach().to(device="cpu", dtype=torch.float64).reshape(-1).numpy(), np.zeros(batch)]
    )
    solution = solve_ivp(rhs, (t_min, process.t_end), y0, method="RK45", rtol=rtol, atol=atol)
    if not solution.success:
        raise RuntimeError(f"the probability-flow ODE solve failed: {solution.message}")
    y = solution.y[:, -1]
    z64 = torch.from_numpy(y[:n].copy()).reshape(shape)
    delta = torch.from_numpy(y[n:].copy())
    prior = process.prior_log_prob(z64)
    return {
        "log_likelihood": prior + delta,
        "prior": prior,
        "delta": delta,
        "nfe": calls,
        "z": z64.to(dtype=x.dtype, device=x.device),
    }


# ----------------------------------------------------------------------------- samplers
def _progress(iterable, desc: str, progress: bool):
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, disable=not progress, leave=False, mininterval=1.0)


def _check_x(name: str, x) -> torch.Tensor:
    if not torch.is_tensor(x) or not x.is_floating_point():
        what = f"dtype {x.dtype}" if torch.is_tensor(x) else type(x).__name__
        raise TypeError(f"{name} must be a floating-point tensor, got {what}")
    return x


@torch.no_grad()
def langevin(
    score_fn: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    *,
    step_size: float,
    steps: int,
    generator: Optional[torch.Generator] = None,
    progress: bool = False,
    return_trajectory: bool = False,
):
    """Unadjusted Langevin dynamics x ← x + (step/2) ∇ log p(x) + √step · z, ``steps`` times.

    Derived in chapter 8, eq. (sde-langevin): for small steps and many of them, x is
    distributed as p (up to a bias of order step). ``score_fn(x)`` takes x only.

    Returns:
        the final x, or ``(x, trajectory)`` with ``return_trajectory`` (steps + 1 tensors).
    """
    x = _check_x("x", x)
    step = _positive("step_size", step_size)
    steps = _check_int("steps", steps, 1)
    trajectory = [x] if return_trajectory else None
    for _ in _progress(range(steps), "Langevin", progress):
        score = _check_output("score_fn", score_fn(x), x)
        x = x + 0.5 * step * score + math.sqrt(step) * randn_like_on(x, generator)
        if trajectory is not None:
            trajectory.append(x)
    return (x, trajectory) if return_trajectory else x


@torch.no_grad()
def annealed_langevin(
    score_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    sigmas,
    x: torch.Tensor,
    *,
    steps_per_level: int = 100,
    eps: float = 2e-5,
    generator: Optional[torch.Generator] = None,
    progress: bool = False,
    return_trajectory: bool = False,
):
    """Annealed Langevin dynamics (Song & Ermon, 2019, Algorithm 1).

    Derived in chapter 8, eq. (sde-annealed): for each noise level σ_1 > … > σ_L, the step
    α_i = eps · σ_i²/σ_L², then ``steps_per_level`` Langevin steps
    x ← x + (α_i/2) s(x, σ_i) + √α_i z on the data smoothed at σ_i. The large levels move mass
    between modes, which plain Langevin on the data cannot. ``score_fn(x, sigma)`` gets sigma as
    a tensor (B,) of x's dtype.

    Returns:
        the final x, or ``(x, trajectory)`` with ``return_trajectory``: x at the start and after
        each level (L + 1 tensors).
    """
    x = _check_x("x", x)
    levels = torch.as_tensor(sigmas, dtype=torch.float64).detach().cpu().reshape(-1)
    ok = levels.numel() >= 1 and bool((levels > 0).all()) and bool(torch.isfinite(levels).all())
    if not ok or bool((levels[1:] > levels[:-1]).any()):
        raise ValueError(f"sigmas must be finite values > 0 in descending order, got {levels.tolist()!r}")
    steps_per_level = _check_int("steps_per_level", steps_per_level, 1)
    eps = _positive("eps", eps)
    sigma_last = float(levels[-1])
    trajectory = [x] if return_trajectory else None
    for sigma in _progress(levels.tolist(), "annealed Langevin", progress):
        step = eps * sigma**2 / sigma_last**2
        level = torch.full((x.shape[0],), sigma, dtype=x.dtype, device=x.device)
        for _ in range(steps_per_level):
            score = _check_output("score_fn", score_fn(x, level), x)
            x = x + 0.5 * step * score + math.sqrt(step) * randn_like_on(x, generator)
        if trajectory is not None:
            trajectory.append(x)
    return (x, trajectory) if return_trajectory else x


def _start(process, shape, x_T, generator, device, dtype) -> torch.Tensor:
    """x_T from the prior, or the given one after checking its shape."""
    shape = _check_shape(shape)
    if x_T is None:
        return process.prior_sample(shape, generator=generator, dtype=dtype, device=device)
    if not torch.is_tensor(x_T) or tuple(x_T.shape) != shape or not x_T.is_floating_point():
        got = f"{tuple(x_T.shape)} {x_T.dtype}" if torch.is_tensor(x_T) else type(x_T).__name__
        raise ValueError(f"x_T must be a floating-point tensor of shape {shape}, got {got}")
    return x_T


def _grid(process: SDE, t_min: float, steps: int) -> list[float]:
    """steps + 1 uniformly spaced times from t_end down to t_min."""
    return torch.linspace(process.t_end, t_min, steps + 1, dtype=torch.float64).tolist()


def _em_step(score_fn, process, x, t: float, dt: float, generator, last: bool) -> torch.Tensor:
    """One Euler–Maruyama step of the reverse SDE from t to t − dt; the mean alone if ``last``."""
    tt = torch.full((x.shape[0],), t, dtype=x.dtype, device=x.device)
    score = _check_output("score_fn", score_fn(x, tt), x)
    mean = x - process.reverse_drift(x, tt, score) * dt
    if last:
        return mean
    _, g = process.sde(x, tt)
    return mean + _per_example(g, x) * math.sqrt(dt) * randn_like_on(x, generator)


@torch.no_grad()
def euler_maruyama(
    score_fn: ScoreFn,
    process: SDE,
    shape: Sequence[int],
    *,
    steps: int,
    x_T: Optional[torch.Tensor] = None,
    generator: Optional[torch.Generator] = None,
    t_min: float = 1e-3,
    progress: bool = False,
    return_trajectory: bool = False,
    device: Optional[torch.device] = None,
    dtype: torch.dtype = torch.float32,
):
    """Sample by the reverse-time SDE, Euler–Maruyama on a uniform grid from t_end to t_min.

    Derived in chapter 8, eq. (sde-em): with Δ = (t_end − t_min)/steps,
    x ← x − [f(x, t) − g(t)² s(x, t)] Δ + g(t) √Δ z. The last step adds no noise (its mean is
    returned, Song et al.'s "denoise"), so ``steps`` score calls in all.

    Args:
        score_fn: ``score_fn(x, t)``, t a tensor (B,) of x's dtype.
        process: the SDE the score belongs to.
        shape: the batch shape (B, ...).
        steps: number of steps, >= 1.
        x_T: starting point of that shape; drawn from the prior with ``generator`` if None.
        generator: random generator for x_T and every step's noise.
        t_min: where to stop, in (0, t_end).
        progress: show a tqdm bar on stderr.
        return_trajectory: also return [x_T, …, x_{t_min}] (steps + 1 tensors).
        device, dtype: where to draw x_T when it is None (default CPU float32).

    Returns:
        x at t_min, or ``(x, trajectory)`` when ``return_trajectory``.
    """
    process = _check_process(process)
    steps = _check_int("steps", steps, 1)
    t_min = _check_t_min(t_min, process)
    x = _start(process, shape, x_T, generator, device, dtype)
    ts = _grid(process, t_min, steps)
    trajectory = [x] if return_trajectory else None
    for i in _progress(range(steps), "Euler–Maruyama", progress):
        x = _em_step(score_fn, process, x, ts[i], ts[i] - ts[i + 1], generator, last=i == steps - 1)
        if trajectory is not None:
            trajectory.append(x)
    return (x, trajectory) if return_trajectory else x


@torch.no_grad()
def predictor_corrector(
    score_fn: ScoreFn,
    process: SDE,
    shape: Sequence[int],
    *,
    steps: int,
    snr: float = 0.16,
    corrector_steps: int = 1,
    norms: str = "batch",
    x_T: Optional[torch.Tensor] = None,
    generator: Optional[torch.Generator] = None,
    t_min: float = 1e-3,
    progress: bool = False,
    return_trajectory: bool = False,
    device: Optional[torch.device] = None,
    dtype: torch.dtype = torch.float32,
):
    """Predictor–corrector sampling (Song et al., 2021, Algorithm 1 with their reference code's steps).

    Derived in chapter 8, eq. (sde-pc): at each time t of the grid of :func:`euler_maruyama`,
    ``corrector_steps`` Langevin steps on p_t, x ← x + ε s + √(2ε) z with the step
    ε = 2 a (snr ‖z‖/‖s‖)² set by the signal-to-noise ratio ``snr``, then one Euler–Maruyama
    predictor step of the reverse SDE to t − Δ; the last predictor step adds no noise.
    Score calls: steps · (corrector_steps + 1). For the VP and sub-VP SDEs a is the discretised
    chain's α_i = ᾱ(t)/ᾱ(t − Δ) = exp(−∫β) (Song et al. use 1 − β_i, equal to first order and,
    unlike it, positive for coarse grids); 1 for the others.

    Arguments as for :func:`euler_maruyama`, and ``snr`` > 0, ``corrector_steps`` >= 0 (0 is
    plain Euler–Maruyama), ``norms``: ``"batch"`` (the default, as Song et al.'s code: ‖z‖ and
    ‖s‖ averaged over the batch) or ``"example"`` (each example's own norms, so that a sample does
    not depend on its batch; in low dimension ‖s‖ is often near zero and the step explodes, so
    use it only where the norms concentrate, e.g. images).
    """
    process = _check_process(process)
    steps = _check_int("steps", steps, 1)
    corrector_steps = _check_int("corrector_steps", corrector_steps, 0)
    snr = _positive("snr", snr)
    if norms not in CORRECTOR_NORMS:
        raise ValueError(f"norms must be one of {', '.join(CORRECTOR_NORMS)}, got {norms!r}")
    t_min = _check_t_min(t_min, process)
    x = _start(process, shape, x_T, generator, device, dtype)
    ts = _grid(process, t_min, steps)
    trajectory = [x] if return_trajectory else None
    for i in _progress(range(steps), "predictor–corrector", progress):
        t, dt = ts[i], ts[i] - ts[i + 1]
        tt = torch.full((x.shape[0],), t, dtype=x.dtype, device=x.device)
        a = 1.0
        if isinstance(process, _LinearBeta):  # the chain's α_i = ᾱ(t)/ᾱ(t − Δ) = exp(−∫β) ≈ 1 − β(t)Δ
            a = float(process.marginal(t)[0] / process.marginal(t - dt)[0]) ** 2
        for _ in range(corrector_steps):
            score = _check_output("score_fn", score_fn(x, tt), x)
            noise = randn_like_on(x, generator)
            score_norm = score.reshape(x.shape[0], -1).norm(dim=1)
            noise_norm = noise.reshape(x.shape[0], -1).norm(dim=1)
            if norms == "batch":
                score_norm, noise_norm = score_norm.mean().expand_as(score_norm), noise_norm.mean()
            step = _per_example(2.0 * a * (snr * noise_norm / score_norm.clamp(min=_TINY)) ** 2, x)
            x = x + step * score + torch.sqrt(2.0 * step) * noise
        x = _em_step(score_fn, process, x, t, dt, generator, last=i == steps - 1)
        if trajectory is not None:
            trajectory.append(x)
    return (x, trajectory) if return_trajectory else x


@torch.no_grad()
def probability_flow_sample(
    score_fn: ScoreFn,
    process: SDE,
    x_T: torch.Tensor,
    *,
    t_min: float = 1e-3,
    rtol: float = 1e-5,
    atol: float = 1e-5,
) -> dict:
    """Sample by solving the probability-flow ODE from t_end down to t_min (SciPy's RK45).

    Derived in chapter 8, eq. (sde-pf-ode): dx/dt = f(x, t) − ½ g(t)² s(x, t), deterministic,
    so the map x_T ↦ x_{t_min} is invertible (:func:`ode_log_likelihood` runs it forwards).
    The state is float64, the batch one system; score_fn sees x_T's dtype and device.

    Returns:
        dict with ``"x0"`` (x at t_min, x_T's shape and dtype) and ``"nfe"`` (score_fn calls).
    """
    from scipy.integrate import solve_ivp

    process = _check_process(process)
    x_T = _check_batch("x_T", x_T)
    t_min = _check_t_min(t_min, process)
    rtol, atol = _check_tolerance("rtol", rtol), _check_tolerance("atol", atol)
    shape, batch = tuple(x_T.shape), x_T.shape[0]
    calls = 0

    def rhs(t: float, y: np.ndarray) -> np.ndarray:
        nonlocal calls
        calls += 1
        xt = torch.from_numpy(y).reshape(shape).to(dtype=x_T.dtype, device=x_T.device)
        tt = torch.full((batch,), t, dtype=x_T.dtype, device=x_T.device)
        score = _check_output("score_fn", score_fn(xt, tt), xt)
        v = process.probability_flow_drift(xt, tt, score)
        return v.to(device="cpu", dtype=torch.float64).reshape(-1).numpy()

    y0 = x_T.detach().to(device="cpu", dtype=torch.float64).reshape(-1).numpy()
    solution = solve_ivp(rhs, (process.t_end, t_min), y0, method="RK45", rtol=rtol, atol=atol)
    if not solution.success:
        raise RuntimeError(f"the probability-flow ODE solve failed: {solution.message}")
    x0 = torch.from_numpy(solution.y[:, -1].copy()).reshape(shape).to(dtype=x_T.dtype, device=x_T.device)
    return {"x0": x0, "nfe": calls}
