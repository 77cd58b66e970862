"""Guidance: steer a diffusion model towards a class, with a classifier or without one.

Derived in chapter 11. Two ways to follow the score of the sharpened conditional
p_t(x | y)^s p_t(x)^{1−s} at every noise level (which does not make the samples those of
p_0(x | y)^s p_0(x)^{1−s}: chapter 11 shows it on a mixture):

- **Classifier guidance** (Dhariwal & Nichol, 2021, "Diffusion Models Beat GANs on Image
  Synthesis", eq. (14) and its scale s): an unconditional ε-network plus a noise-aware
  classifier p_φ(y | x_t, t). Bayes' rule on scores, ∇ log p_t(x | y) = ∇ log p_t(x) +
  ∇ log p_t(y | x), with score = −ε/√(1 − ᾱ_t), gives
  ε̂ = ε(x_t, t) − s · √(1 − ᾱ_t) · ∇_x log p_φ(y | x_t, t) (:func:`classifier_guided`).
- **Classifier-free guidance** (Ho & Salimans, 2022, "Classifier-Free Diffusion Guidance"): one
  network trained with and without its label (a learned null label), and at sampling time the
  extrapolation of its conditional prediction away from its unconditional one
  (:func:`classifier_free`).

Both combine an unconditional and a conditional prediction in the same way (:func:`combine`).
Two conventions for the scale are in use:

- the library's ``guidance_scale`` s (diffusers' convention, and Dhariwal & Nichol's s):
  ε̂ = ε_u + s · (ε_c − ε_u), so s = 0 is the unconditional model, s = 1 the conditional one
  and s > 1 guided;
- Ho & Salimans' w: ε̂ = (1 + w) · ε_c − w · ε_u, so w = 0 is the conditional model.

They are the same family, s = 1 + w (:func:`scale_from_w`, :func:`w_from_scale`).

A guided prediction is again an ε (or x_0, v, score) prediction, so every sampler of
:mod:`diffusion_lib.samplers` takes the returned ``net(x, t)`` in place of the network.
"""

from __future__ import annotations

import math
from typing import Callable, Union

import numpy as np
import torch

from .diffusion import GaussianDiffusion

__all__ = [
    "combine",
    "scale_from_w",
    "w_from_scale",
    "classifier_free",
    "classifier_guided",
    "classifier_gradient",
]

Labels = Union[torch.Tensor, int]
Net = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


# ----------------------------------------------------------------------------- checks
def _is_number(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def _check_scale(guidance_scale) -> float:
    """``guidance_scale`` as a float if it is a finite number >= 0, else ValueError."""
    ok = _is_number(guidance_scale) and math.isfinite(float(guidance_scale)) and guidance_scale >= 0
    if not ok:
        raise ValueError(
            "guidance_scale must be a number >= 0 (0 unconditional, 1 conditional, > 1 guided), "
            f"got {guidance_scale!r}"
        )
    return float(guidance_scale)


def _check_int(name: str, value, minimum: int) -> int:
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
    if not ok or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def _check_labels(y, upper: Union[int, None], what: str) -> Labels:
    """``y``, an int or an integer tensor (B,), if every label lies in [0, upper) (upper None: >= 0).

    ``what`` says where ``upper`` comes from, for the message.
    """
    allowed = f"class labels in [0, {upper}) ({what})" if upper is not None else "class labels >= 0"
    if isinstance(y, (int, np.integer)) and not isinstance(y, bool):
        if y < 0 or (upper is not None and y >= upper):
            raise ValueError(f"y must be {allowed}, got {int(y)}")
        return int(y)
    if not torch.is_tensor(y) or y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        what_y = f"a tensor of dtype {y.dtype}" if torch.is_tensor(y) else type(y).__name__
        raise ValueError(f"y must be an int or an integer tensor (B,) of {allowed}, got {what_y}")
    if y.ndim != 1:
        raise ValueError(f"y must be an int or an integer tensor of shape (B,), got shape {tuple(y.shape)}")
    if y.numel():
        lo, hi = int(y.min()), int(y.max())
        if lo < 0 or (upper is not None and hi >= upper):
            raise ValueError(f"y must be {allowed}, got {lo if lo < 0 else hi}")
    return y.long()


def _batch_labels(y: Labels, batch: int, device: torch.device) -> torch.Tensor:
    """Checked labels as a LongTensor (batch,) on ``device``; an int is broadcast."""
    if isinstance(y, int):
        return torch.full((batch,), y, dtype=torch.long, device=device)
    if y.shape[0] != batch:
        raise ValueError(f"y must have one label per example, shape ({batch},), got {tuple(y.shape)}")
    return y.to(device)


def _check_x(x) -> torch.Tensor:
    if not torch.is_tensor(x) or not x.is_floating_point() or x.ndim < 1:
        what = f"a {x.dtype} tensor of shape {tuple(x.shape)}" if torch.is_tensor(x) else type(x).__name__
        raise ValueError(f"x must be a floating-point tensor (B, ...), got {what}")
    return x


def _check_callable(name: str, value) -> None:
    if not callable(value):
        raise TypeError(f"{name} must be callable, got {type(value).__name__}")


# ----------------------------------------------------------------------------- the combination
def combine(uncond: torch.Tensor, cond: torch.Tensor, guidance_scale: float) -> torch.Tensor:
    """The guided prediction uncond + s · (cond − uncond), s = ``guidance_scale``.

    Derived in chapter 11, eq. (guid-cfg). The same formula serves scores, ε, x_0 and v
    predictions alike: for fixed x_t and t each is an affine function of the others (score =
    −ε/σ_t, x_0 = (x_t − σ_t ε)/α_t, v = α_t ε − σ_t x_0), and the weights 1 − s and s sum to 1,
    so combining any one of them and converting gives the combination of any other. With Ho &
    Salimans' w this is (1 + w) · cond − w · uncond (s = 1 + w).

    Args:
        uncond: the unconditional prediction, a floating-point tensor.
        cond: the conditional prediction, of uncond's shape.
        guidance_scale: s >= 0; 0 returns ``uncond`` and 1 returns ``cond`` (the tensors
            themselves, so bit for bit, not uncond + 1 · (cond − uncond) rounded).

    Returns:
        A tensor of uncond's shape.

    Raises:
        ValueError: guidance_scale is not a finite number >= 0, or the shapes differ.
    """
    s = _check_scale(guidance_scale)
    for name, value in (("uncond", uncond), ("cond", cond)):
        if not torch.is_tensor(value) or not value.is_floating_point():
            what = f"dtype {value.dtype}" if torch.is_tensor(value) else type(value).__name__
            raise ValueError(f"{name} must be a floating-point tensor, got {what}")
    if uncond.shape != cond.shape:
        raise ValueError(f"cond must have the shape of uncond {tuple(uncond.shape)}, got {tuple(cond.shape)}")
    if s == 0.0:
        return uncond
    if s == 1.0:
        return cond
    return uncond + s * (cond - uncond)


def scale_from_w(w: float) -> float:
    """Ho & Salimans' guidance weight w as the library's ``guidance_scale`` s = 1 + w.

    Args:
        w: a finite number >= −1 (w = 0 is the conditional model, w = −1 the unconditional one).

    Raises:
        ValueError: w is not a finite number >= −1.
    """
    if not _is_number(w) or not math.isfinite(float(w)) or w < -1:
        raise ValueError(f"w must be a number >= -1 (so that s = 1 + w >= 0), got {w!r}")
    return 1.0 + float(w)


def w_from_scale(guidance_scale: float) -> float:
    """The library's ``guidance_scale`` s as Ho & Salimans' guidance weight w = s − 1.

    Raises:
        ValueError: guidance_scale is not a finite number >= 0.
    """
    return _check_scale(guidance_scale) - 1.0


# ----------------------------------------------------------------------------- classifier-free
def classifier_free(model: Callable, y: Labels, guidance_scale: float, null_label: int) -> Net:
    """A class-conditional network guided without a classifier, as ``net(x, t)``.

    Derived in chapter 11, eq. (guid-cfg) (Ho & Salimans, 2022): the network is trained
    with its label replaced by ``null_label`` some of the time, so it is both a conditional model
    ``model(x, t, y)`` and an unconditional one ``model(x, t, null_label)``; the guided prediction is
    :func:`combine` of the two. For s ∉ {0, 1} both are evaluated in one batched call (x, t and the labels
    concatenated along the batch, the unconditional half first); s = 0 calls only the unconditional branch
    and s = 1 only the conditional one (half the cost, and exact). The combination is linear, so it works
    for any prediction type: ε, x_0 and v predictions are affine in each other for fixed x_t and t, with
    the same weights (see :func:`combine`).

    Args:
        model: ``model(x, t, y)`` -> a prediction whose first dimension is the batch; y a
            LongTensor (B,) of labels in [0, null_label], ``null_label`` meaning "no label".
        y: the class to guide towards: an int (every example) or a LongTensor (B,) of labels in
            [0, null_label).
        guidance_scale: s >= 0 (0 unconditional, 1 conditional, > 1 guided).
        null_label: the learned null label, an int >= 1 (usually the number of classes).

    Returns:
        ``net(x, t)``: the guided prediction, with the model's output shape. ``t`` is passed to the
        model as given (a tensor (B,) is concatenated with itself for the batched call; a number
        or a 0-d tensor is passed once). The function has attributes ``guidance_scale`` and
        ``null_label``.

    Raises:
        ValueError: a bad guidance_scale, null_label or y (at the call: y's batch differs from
            x's, or the model's output has the wrong batch size).
        TypeError: model is not callable.
    """
    _check_callable("model", model)
    s = _check_scale(guidance_scale)
    null_label = _check_int("null_label", null_label, 1)
    y = _check_labels(y, null_label, f"null_label = {null_label} means no label")

    def net(x: torch.Tensor, t) -> torch.Tensor:
        x = _check_x(x)
        batch = x.shape[0]
        labels = _batch_labels(y, batch, x.device)
        if s == 0.0:
            return model(x, t, torch.full_like(labels, null_label))
        if s == 1.0:
            return model(x, t, labels)
        doubled_t = torch.cat([t, t]) if torch.is_tensor(t) and t.ndim >= 1 else t
        both = model(torch.cat([x, x]), doubled_t, torch.cat([torch.full_like(labels, null_label), labels]))
        if not torch.is_tensor(both) or both.ndim < 1 or both.shape[0] != 2 * batch:
            got = tuple(both.shape) if torch.is_tensor(both) else type(both).__name__
            raise ValueError(f"model must return a tensor with batch size {2 * batch} for 2 × x, got {got}")
        uncond, cond = both[:batch], both[batch:]
        return combine(uncond, cond, s)

    net.guidance_scale, net.null_label = s, null_label
    return net


# ----------------------------------------------------------------------------- classifier guidance
def classifier_gradient(classifier: Callable, x: torch.Tensor, t, y: Labels) -> torch.Tensor:
    """∇_x log softmax(classifier(x, t))[y] for every example: (B, ...) like x, detached.

    The log-probabilities of the chosen labels are summed over the batch and differentiated once;
    since example b's log-probability depends on x_b alone, row b of the gradient is that
    example's own gradient. This holds for a classifier that treats examples independently (in
    ``eval()`` mode: batch normalisation in training mode would couple them). Computed under
    ``torch.enable_grad()`` (so also inside ``torch.no_grad()``), in x's dtype promoted to at
    least float32 (half-precision inputs are upcast), and returned in x's dtype.

    Args:
        classifier: ``classifier(x_t, t)`` -> logits (B, C), differentiable in x_t.
        x: the inputs (B, ...), floating point.
        t: passed to the classifier unchanged (the samplers' timesteps: a tensor (B,)).
        y: an int or a LongTensor (B,) of labels in [0, C).

    Returns:
        The gradient, x's shape and dtype.

    Raises:
        ValueError: y is not a label of the classifier's C classes; the logits are not (B, C)
            or do not depend on x through autograd.
        TypeError: classifier is not callable.
    """
    _check_callable("classifier", classifier)
    x = _check_x(x)
    y = _check_labels(y, None, "")
    work = torch.promote_types(x.dtype, torch.float32)
    with torch.enable_grad():
        xr = x.detach().to(work).requires_grad_(True)
        logits = classifier(xr, t)
        if not torch.is_tensor(logits) or logits.ndim != 2 or logits.shape[0] != x.shape[0]:
            got = tuple(logits.shape) if torch.is_tensor(logits) else type(logits).__name__
            raise ValueError(f"classifier must return logits of shape ({x.shape[0]}, C), got {got}")
        if not logits.requires_grad:
            raise ValueError(
                "classifier's logits do not depend on x through autograd (computed under torch.no_grad "
                "or detached?); guidance needs their gradient"
            )
        num_classes = logits.shape[1]
        y = _check_labels(y, num_classes, f"the classifier returns {num_classes} logits")
        labels = _batch_labels(y, x.shape[0], logits.device)
        chosen = torch.log_softmax(logits.to(work), dim=1).gather(1, labels[:, None])
        (grad,) = torch.autograd.grad(chosen.sum(), xr, allow_unused=True)
    if grad is None:
        grad = torch.zeros_like(xr)
    return grad.detach().to(x.dtype)


def _noise_std(diffusion: GaussianDiffusion, t, x: torch.Tensor) -> torch.Tensor:
    """√(1 − ᾱ_t) per example, shaped (B, 1, …, 1) in x's dtype on x's device.

    ``t`` is an int, or a tensor (B,) (or 0-d) of step indices in [0, T − 1], integer or
    fractional (:meth:`GaussianDiffusion.alpha_bar_at`, the inverse of ``fractional_timestep``).
    """
    batch = x.shape[0]
    if isinstance(t, (int, np.integer)) and not isinstance(t, bool):
        t = torch.full((batch,), int(t), dtype=torch.long)
    if not torch.is_tensor(t) or t.dtype == torch.bool or t.is_complex():
        what = f"dtype {t.dtype}" if torch.is_tensor(t) else type(t).__name__
        raise ValueError(f"t must be an int or a tensor ({batch},) of step indices, got {what}")
    if t.ndim == 0:
        t = t.expand(batch)
    if tuple(t.shape) != (batch,):
        raise ValueError(f"t must have shape ({batch},) to match the batch, got {tuple(t.shape)}")
    last = diffusion.num_timesteps - 1
    t64 = t.detach().to(device="cpu", dtype=torch.float64)
    if t64.numel() and not (0.0 <= float(t64.min()) and float(t64.max()) <= last):
        bad = float(t64.min()) if float(t64.min()) < 0 else float(t64.max())
        raise ValueError(f"t must be step indices in [0, {last}], got {bad:g}")
    std = torch.sqrt(1.0 - diffusion.alpha_bar_at(t.detach().cpu()))
    return std.to(dtype=x.dtype).to(x.device).reshape(-1, *(1,) * (x.ndim - 1))


def classifier_guided(
    model: Net, classifier: Callable, diffusion: GaussianDiffusion, y: Labels, guidance_scale: float
) -> Net:
    """An ε-prediction network guided by a noise-aware classifier, as ``net(x, t)``.

    Derived in chapter 11, eq. (guid-classifier) (Dhariwal & Nichol, 2021, eq. (14)): with
    score = −ε/√(1 − ᾱ_t) and ∇ log p_t(x | y) = ∇ log p_t(x) + ∇ log p_t(y | x),

        ε̂(x_t, t) = ε(x_t, t) − s · √(1 − ᾱ_t) · ∇_x log p_φ(y | x_t, t),

    which is :func:`combine` of the unconditional score and the classifier's conditional one with
    scale s. The gradient is :func:`classifier_gradient` (autograd, also under
    ``torch.no_grad()``); the output is detached. s = 0 returns ε itself and calls no classifier.

    Args:
        model: ``model(x, t)`` -> ε, an ε-prediction network (bind a conditional one first, e.g.
            ``lambda x, t: cond_model(x, t, labels)``).
        classifier: ``classifier(x_t, t)`` -> logits (B, C) of a classifier trained on noisy
            inputs at the same timesteps.
        diffusion: the GaussianDiffusion the model was trained with (for ᾱ_t).
        y: the class to guide towards: an int or a LongTensor (B,) of labels >= 0 (checked
            against C at the call).
        guidance_scale: s >= 0.

    Returns:
        ``net(x, t)`` -> ε̂ of x's shape; t an int or a tensor (B,) of step indices (integer, as
        the DDPM/DDIM samplers pass them, or fractional, as ``samplers.vp_denoiser`` does). The
        function has attribute ``guidance_scale``.

    Raises:
        TypeError: diffusion is not a GaussianDiffusion, or model/classifier not callable.
        ValueError: a bad guidance_scale or y (at the call: a label >= C, a batch mismatch, t
            out of range, or the model's output not of x's shape).
    """
    _check_callable("model", model)
    _check_callable("classifier", classifier)
    if not isinstance(diffusion, GaussianDiffusion):
        raise TypeError(f"diffusion must be a GaussianDiffusion, got {type(diffusion).__name__}")
    s = _check_scale(guidance_scale)
    y = _check_labels(y, None, "")

    def net(x: torch.Tensor, t) -> torch.Tensor:
        x = _check_x(x)
        eps = model(x, t)
        if not torch.is_tensor(eps) or eps.shape != x.shape:
            got = tuple(eps.shape) if torch.is_tensor(eps) else type(eps).__name__
            raise ValueError(f"model must return ε of x's shape {tuple(x.shape)}, got {got}")
        if s == 0.0:
            return eps.detach()
        std = _noise_std(diffusion, t, x)
        grad = classifier_gradient(classifier, x, t, y)
        return (eps - s * std.to(eps.dtype) * grad.to(eps.dtype)).detach()

    net.guidance_scale = s
    return net
