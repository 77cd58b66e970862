"""Editing with a trained diffusion model (chapter 14): inpainting, SDEdit, restoration.

Each method is a short function in the samplers' style (:mod:`diffusion_lib.samplers`): a
network ``model(x_t, t)``, its :class:`~diffusion_lib.diffusion.GaussianDiffusion`, what is
known about the image, and a ``torch.Generator``. None of them trains anything: they change
only how the reverse process is run.

- :func:`inpaint`: fill the pixels where ``mask`` is 0 given those where it is 1, by the
  replacement method or by RePaint's resampling (Lugmayr et al., 2022);
- :func:`sdedit` and :func:`denoise_from`: noise a guide to t₀ and denoise it (Meng et al., 2022);
- :func:`ddrm`: posterior sampling for a linear measurement y = A x + σ_y n (Kawar et al., 2022),
  e.g. ×2 super-resolution (:func:`average_pool_matrix`) or denoising (A = I).

And the exact answers chapter 14 measures them against, for a Gaussian data distribution
N(μ, Σ): its exact ε-predictor (:func:`gaussian_eps_model`), the conditional of missing pixels
given known ones (:func:`gaussian_conditional`) and the linear MMSE (Wiener) estimate from a
linear measurement (:func:`wiener`).
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple, Optional

import torch

from .diffusion import GaussianDiffusion, check_prediction_type, randn_like_on
from .samplers import ddim_sigma, ddim_step, denoise, timesteps

__all__ = [
    "HOLES",
    "INPAINT_METHODS",
    "hole_mask",
    "check_mask",
    "repaint_path",
    "inpaint",
    "denoise_from",
    "sdedit",
    "Measurement",
    "average_pool_matrix",
    "ddrm",
    "gaussian_eps_model",
    "gaussian_conditional",
    "wiener",
]

Model = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

# The holes :func:`hole_mask` knows, by name: the region that is filled in.
HOLES = ("top", "bottom", "left", "right", "centre")
INPAINT_METHODS = ("replacement", "repaint")


def _check_int(name: str, value, minimum: int, maximum: Optional[int] = None) -> int:
    ok = isinstance(value, int) and not isinstance(value, bool)
    if not ok or value < minimum or (maximum is not None and value > maximum):
        allowed = f"an int >= {minimum}" if maximum is None else f"an int in [{minimum}, {maximum}]"
        raise ValueError(f"{name} must be {allowed}, got {value!r}")
    return value


def _check_number(name: str, value, low: float, high: float) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok or not low <= float(value) <= high:
        raise ValueError(f"{name} must be a number in [{low:g}, {high:g}], got {value!r}")
    return float(value)


def _check_images(name: str, x) -> torch.Tensor:
    if not torch.is_tensor(x) or not x.is_floating_point() or x.ndim < 2:
        got = f"a {x.dtype} tensor of shape {tuple(x.shape)}" if torch.is_tensor(x) else type(x).__name__
        raise ValueError(f"{name} must be a floating-point tensor (B, ...), got {got}")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} must be finite, got non-finite values")
    return x


# ---------------------------------------------------------------- masks
def hole_mask(name: str, shape) -> torch.Tensor:
    """A mask of ``shape`` (C, H, W): 1 where pixels are known, 0 in the hole called ``name``.

    ``"top"``, ``"bottom"``, ``"left"``, ``"right"``: that half of the image is the hole (for an
    odd size, the larger half); ``"centre"``: the centre square of half the height and width.
    So ``hole_mask("bottom", ...)`` keeps the top half: chapter 14's "top half known".

    Raises:
        ValueError: an unknown name, or a shape that is not three ints >= 1 with H, W >= 2.
    """
    if name not in HOLES:
        raise ValueError(f"mask must be one of {', '.join(HOLES)}, got {name!r}")
    shape = tuple(shape)
    if len(shape) != 3 or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in shape):
        raise ValueError(f"shape must be (C, H, W), three ints >= 1, got {shape!r}")
    _, H, W = shape
    if H < 2 or W < 2:
        raise ValueError(f"shape must have H, W >= 2 to hold a hole, got {shape!r}")
    mask = torch.ones(shape)
    if name == "top":
        mask[:, : (H + 1) // 2] = 0
    elif name == "bottom":
        mask[:, H // 2 :] = 0
    elif name == "left":
        mask[:, :, : (W + 1) // 2] = 0
    elif name == "right":
        mask[:, :, W // 2 :] = 0
    else:
        h, w = max(H // 2, 1), max(W // 2, 1)
        top, left = (H - h) // 2, (W - w) // 2
        mask[:, top : top + h, left : left + w] = 0
    return mask


def check_mask(mask, known: torch.Tensor) -> torch.Tensor:
    """``mask`` as a float tensor that broadcasts against ``known`` (B, C, H, W or B, D).

    A mask has ``known``'s shape without the batch (one mask for all) or with it (one per
    example); its channel dimension may be 1. Its values are 0 (to fill in) and 1 (known), and it
    must leave something to fill in.

    Raises:
        ValueError: not a tensor, a shape that does not fit, values other than 0 and 1, or no 0.
    """
    if not torch.is_tensor(mask):
        raise ValueError(f"mask must be a tensor of 0s and 1s, got {type(mask).__name__}")
    item, shape, batch = tuple(known.shape[1:]), tuple(mask.shape), known.shape[0]
    body = shape if len(shape) == len(item) else None
    if len(shape) == len(item) + 1 and shape[0] in (1, batch):
        body = shape[1:]
    one_channel = len(item) == 3  # images: a mask may have one channel for all
    fits = body is not None and all(
        m == k or (i == 0 and m == 1 and one_channel) for i, (m, k) in enumerate(zip(body, item))
    )
    if not fits:
        raise ValueError(
            f"mask must have shape {item} (or with a batch dimension of 1 or {known.shape[0]}, or one "
            f"channel), got {shape}"
        )
    mask = mask.to(device=known.device, dtype=known.dtype)
    if not bool(((mask == 0) | (mask == 1)).all()):
        raise ValueError("mask must hold only 0 (fill in) and 1 (known)")
    if bool((mask == 1).all()):
        raise ValueError("mask must leave something to fill in (a 0), got all 1s")
    return mask


# ---------------------------------------------------------------- inpainting
def repaint_path(steps: int, resample: int, jump: int) -> list:
    """The positions RePaint visits on a list of ``steps`` noise levels (0: noisiest, ``steps``: x_0).

    Derived in chapter 14, eq. (edit-repaint-schedule), after Lugmayr et al. (2022), Algorithm 1
    and the time schedule of their code: go down one level at a time; on reaching a position
    n < ``steps`` whose distance to the last one before x_0, ``steps − 1 − n``, is a multiple of
    ``jump`` and that lies at least ``jump`` below the start (n >= ``jump``), go back up ``jump``
    levels and come down again, until that stretch has been run ``resample`` times. So the
    stretch that ends just before x_0 is always resampled, and the first one, from pure noise,
    only when ``jump`` divides ``steps − 1``.
    ``resample = 1`` never goes back: the replacement method. There are
    ``steps + (resample − 1) · jump · ⌊(steps − 1)/jump⌋`` steps down, about ``resample × steps``.

    Returns:
        The list of positions, starting at 0 and ending at ``steps``.
    """
    steps = _check_int("steps", steps, 1)
    resample = _check_int("resample", resample, 1)
    jump = _check_int("jump", jump, 1)
    position, path, done = 0, [0], {}
    while position < steps:
        position += 1
        path.append(position)
        turn = jump <= position < steps and (steps - 1 - position) % jump == 0
        if turn and done.get(position, 0) < resample - 1:
            done[position] = done.get(position, 0) + 1
            position -= jump
            path.append(position)
    return path


@torch.no_grad()
def inpaint(
    model: Model,
    diffusion: GaussianDiffusion,
    known: torch.Tensor,
    mask: torch.Tensor,
    *,
    method: str = "repaint",
    resample: Optional[int] = None,
    jump: int = 10,
    steps: Optional[int] = None,
    generator: Optional[torch.Generator] = None,
    clip_denoised: bool = True,
    prediction_type: str = "epsilon",
    progress: bool = False,
) -> torch.Tensor:
    """Fill in the pixels of ``known`` where ``mask`` is 0, sampling from p(x | known pixels).

    Derived in chapter 14, eqs. (edit-replacement) and (edit-repaint). Each step down runs the
    reverse process on the whole image (DDPM's posterior step, DDIM with η = 1, over ``steps``
    levels), then replaces the known pixels by a fresh draw of q(x_{t'} | x_0 = known): the
    **replacement** method. The unknown pixels never see the known ones except through the
    network at the next step, so the result is biased towards the unconditional model. **RePaint**
    (``method="repaint"``) goes back up ``jump`` levels by the forward process, q(x_t | x_{t'}),
    and down again, ``resample`` times per stretch (:func:`repaint_path`), which lets the two parts
    agree. The known pixels of the result are ``known`` exactly.

    Args:
        model: ``model(x_t, t)``, read according to ``prediction_type``.
        diffusion: the process the model was trained with.
        known: the image(s) whose masked-in pixels are kept, (B, ...) in the model's units.
        mask: 1 where a pixel is known, 0 where it is filled in (:func:`check_mask`).
        method: ``"replacement"`` or ``"repaint"``.
        resample, jump: RePaint's r (passes through each stretch, >= 1; default 10) and j (its
            length in steps, >= 1); the replacement method takes only r = 1 (its default).
        steps: levels visited on the way down, "trailing" spacing (default: every timestep).
        generator: the source of every draw.
        clip_denoised: clamp x̂_0 to [-1, 1] (images).
        prediction_type: ``"epsilon"``, ``"x0"`` or ``"v"``.
        progress: show a progress bar.

    Returns:
        The completed images, shape of ``known``.

    Raises:
        ValueError: an unknown method, r or j not ints >= 1 (or r > 1 for the replacement method),
            steps not in [1, T], a bad mask (:func:`check_mask`), non-finite ``known``.
    """
    from tqdm.auto import tqdm

    if method not in INPAINT_METHODS:
        raise ValueError(f"method must be one of {', '.join(INPAINT_METHODS)}, got {method!r}")
    if resample is None:
        resample = 1 if method == "replacement" else 10
    resample = _check_int("resample", resample, 1)
    jump = _check_int("jump", jump, 1)
    if method == "replacement" and resample != 1:
        raise ValueError(f"resample must be 1 for the replacement method, got {resample!r}")
    check_prediction_type(prediction_type)
    known = _check_images("known", known)
    mask = check_mask(mask, known)
    T = diffusion.num_timesteps
    steps = T if steps is None else _check_int("steps", steps, 1, T)
    ts = timesteps(T, steps, "trailing")
    levels = diffusion.alphas_cumprod[ts].tolist() + [1.0]
    path = repaint_path(steps, resample, jump)

    def noised_known(level: float) -> torch.Tensor:
        return math.sqrt(level) * known + math.sqrt(1.0 - level) * randn_like_on(known, generator)

    x = randn_like_on(known, generator)
    x = mask * noised_known(levels[0]) + (1 - mask) * x
    for here, there in tqdm(
        list(zip(path[:-1], path[1:])), desc="inpainting", disable=not progress, leave=False, mininterval=1.0
    ):
        a, a_next = levels[here], levels[there]
        if there < here:  # back up: x_t ~ q(x_t | x_t'), in closed form over the jump
            ratio = a_next / a
            x = math.sqrt(ratio) * x + math.sqrt(1.0 - ratio) * randn_like_on(x, generator)
            continue
        x0, eps = denoise(model, x, int(ts[here]), a, prediction_type, clip_denoised, clip_denoised)
        unknown = ddim_step(x0, eps, a_next, ddim_sigma(a, a_next, 1.0), generator)
        x = mask * (known if there == steps else noised_known(a_next)) + (1 - mask) * unknown
    return x


# ---------------------------------------------------------------- SDEdit
@torch.no_grad()
def denoise_from(
    model: Model,
    diffusion: GaussianDiffusion,
    x_t: torch.Tensor,
    t0: int,
    *,
    steps: int,
    eta: float = 0.0,
    generator: Optional[torch.Generator] = None,
    clip_denoised: bool = True,
    prediction_type: str = "epsilon",
) -> torch.Tensor:
    """DDIM from x_{t₀} (timestep index ``t0``) down to x_0, visiting ``steps`` timesteps.

    The second half of SDEdit (chapter 14, eq. (edit-sdedit)), and of editing by inversion: the
    timesteps are ``t0`` and the "trailing" list below it (:func:`~diffusion_lib.samplers.timesteps`
    of t₀ + 1 timesteps), so the first network call is at t₀ itself.

    Raises:
        ValueError: t0 not in [0, T − 1], steps not in [1, t0 + 1], eta not in [0, 1].
    """
    T = diffusion.num_timesteps
    t0 = _check_int("t0", t0, 0, T - 1)
    steps = _check_int("steps", steps, 1, t0 + 1)
    eta = _check_number("eta", eta, 0.0, 1.0)
    check_prediction_type(prediction_type)
    x = _check_images("x_t", x_t)
    ts = timesteps(t0 + 1, steps, "trailing")
    levels = diffusion.alphas_cumprod[ts].tolist() + [1.0]
    for k in range(len(ts)):
        a, a_next = levels[k], levels[k + 1]
        x0, eps = denoise(model, x, int(ts[k]), a, prediction_type, clip_denoised, clip_denoised)
        x = ddim_step(x0, eps, a_next, ddim_sigma(a, a_next, eta), generator)
    return x


def sdedit(
    model: Model,
    diffusion: GaussianDiffusion,
    guide: torch.Tensor,
    *,
    t0: int,
    steps: int,
    eta: float = 0.0,
    generator: Optional[torch.Generator] = None,
    clip_denoised: bool = True,
    prediction_type: str = "epsilon",
) -> torch.Tensor:
    """SDEdit (Meng et al., 2022): noise ``guide`` to x_{t₀} ~ q(x_{t₀} | x_0 = guide), then denoise.

    Derived in chapter 14, eq. (edit-sdedit). A small t₀ keeps the guide (faithful, not always
    realistic); t₀ near T forgets it (realistic, not faithful). ``steps`` DDIM steps from t₀
    (:func:`denoise_from`); the generator draws the noise (and each step's, for η > 0).

    Raises:
        ValueError: t0 not in [0, T − 1], steps not in [1, t0 + 1], eta not in [0, 1], a guide that
            is not a finite floating-point tensor.
    """
    guide = _check_images("guide", guide)
    t0 = _check_int("t0", t0, 0, diffusion.num_timesteps - 1)
    _check_int("steps", steps, 1, t0 + 1)
    x_t = diffusion.q_sample(guide, t0, generator=generator)
    return denoise_from(
        model, diffusion, x_t, t0, steps=steps, eta=eta, generator=generator,
        clip_denoised=clip_denoised, prediction_type=prediction_type,
    )  # fmt: skip


# ---------------------------------------------------------------- restoration
class Measurement(NamedTuple):
    """A linear measurement y = A x + σ_y n of flattened images, with A's SVD A = U diag(s) Vᵀ.

    ``V`` is square (D × D, full), ``s`` has D entries, zero beyond A's rank: the null space.
    """

    A: torch.Tensor
    U: torch.Tensor
    s: torch.Tensor
    V: torch.Tensor
    sigma_y: float

    @classmethod
    def of(cls, A: torch.Tensor, sigma_y: float = 0.0) -> Measurement:
        """The measurement with matrix ``A`` (M × D, M <= D) and noise σ_y >= 0, its SVD computed once
        in float64.

        Raises:
            ValueError: A not a 2-D floating-point tensor with M <= D, or sigma_y not a number >= 0.
        """
        if not torch.is_tensor(A) or A.ndim != 2 or not A.is_floating_point() or A.shape[0] > A.shape[1]:
            got = f"shape {tuple(A.shape)}" if torch.is_tensor(A) else type(A).__name__
            raise ValueError(f"A must be a floating-point matrix (M, D) with M <= D, got {got}")
        sigma_y = _check_number("sigma_y", sigma_y, 0.0, math.inf)
        if not math.isfinite(sigma_y):
            raise ValueError(f"sigma_y must be a finite number >= 0, got {sigma_y!r}")
        U, s, Vh = torch.linalg.svd(A.double(), full_matrices=True)
        s_full = torch.zeros(A.shape[1], dtype=torch.float64)
        s_full[: len(s)] = s
        # Rank as numpy's matrix_rank decides it: below max(M, D) · eps(A's dtype) · s_max is zero.
        tolerance = max(A.shape) * torch.finfo(A.dtype).eps * max(float(s.max()), 1e-300)
        s_full[s_full <= tolerance] = 0.0
        return cls(A.double(), U, s_full, Vh.T.contiguous(), sigma_y)

    def __call__(self, x: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """y = A x (+ σ_y n, drawn from ``generator``) for images x (B, ...): shape (B, M)."""
        y = x.flatten(1).double() @ self.A.T
        if self.sigma_y > 0:
            y = y + self.sigma_y * randn_like_on(y, generator)
        return y.to(x.dtype)


def average_pool_matrix(channels: int, size: int, factor: int) -> torch.Tensor:
    """The matrix of ``factor`` × ``factor`` average pooling of (channels, size, size) images.

    Shape (channels · (size/factor)², channels · size²), acting on images flattened in C, H, W
    order: ``A @ x.flatten()`` equals ``F.avg_pool2d(x, factor).flatten()``. Its rows are
    orthogonal, each of norm 1/factor: the singular values of ×``factor`` super-resolution.

    Raises:
        ValueError: not ints >= 1, or ``factor`` not dividing ``size``.
    """
    channels = _check_int("channels", channels, 1)
    size = _check_int("size", size, 1)
    factor = _check_int("factor", factor, 1)
    if size % factor:
        raise ValueError(f"factor must divide size {size}, got {factor}")
    eye = torch.eye(channels * size * size, dtype=torch.float64).reshape(-1, channels, size, size)
    return torch.nn.functional.avg_pool2d(eye, factor).reshape(channels * size * size, -1).T.contiguous()


@torch.no_grad()
def ddrm(
    model: Model,
    diffusion: GaussianDiffusion,
    y: torch.Tensor,
    measurement: Measurement,
    shape,
    *,
    steps: int = 20,
    eta: float = 0.85,
    eta_b: float = 1.0,
    generator: Optional[torch.Generator] = None,
    clip_denoised: bool = True,
    prediction_type: str = "epsilon",
) -> torch.Tensor:
    """DDRM (Kawar et al., 2022): samples of x given y = A x + σ_y n, with an unconditional model.

    Derived in chapter 14, eq. (edit-ddrm). In the spectral coordinates x̄ = Vᵀ x and
    ȳ = diag(s)⁺ Uᵀ y, the measurement is ȳ_i = x̄_i + (σ_y/s_i) n_i, one number per direction of
    A's row space, and says nothing in its null space (s_i = 0). DDRM runs the process in the
    variance-exploding scale x/√ᾱ = x_0 + σ_t ε, σ_t = √((1 − ᾱ_t)/ᾱ_t), and moves each spectral
    coordinate from σ_t to the next level σ' on its own, with x̄_θ = Vᵀ x̂_0 from the network:

    - null space: x̄_θ + √(1 − η²) σ' (x̄_t − x̄_θ)/σ_t + η σ' z (a DDIM step);
    - σ' < σ_y/s_i (the measurement noisier than the level): x̄_θ + √(1 − η²) σ' (ȳ_i − x̄_θ)/(σ_y/s_i)
      + η σ' z;
    - σ' >= σ_y/s_i: (1 − η_b) x̄_θ + η_b ȳ_i + √(σ'² − η_b² σ_y²/s_i²) z.

    It starts from x̄_T ~ N(ȳ, σ_T² − σ_y²/s²) in the row space and N(0, σ_T²) in the null space.
    With σ_y = 0 and η_b = 1 the result satisfies A x = y exactly. The defaults η = 0.85,
    η_b = 1 are the paper's.

    Args:
        model, diffusion: the unconditional network and its process.
        y: measurements (B, M).
        measurement: A, its SVD and σ_y (:meth:`Measurement.of`).
        shape: one image's shape (C, H, W), with C·H·W = D.
        steps: DDIM-like steps ("trailing" spacing), 1..T.
        eta, eta_b: DDRM's η and η_b in [0, 1].
        generator: the source of every draw.
        clip_denoised, prediction_type: as for the samplers.

    Returns:
        Images (B, *shape).

    Raises:
        ValueError: y not (B, M) for the measurement's M, a shape whose size is not D, steps not
            in [1, T], eta or eta_b not in [0, 1].
    """
    M, D = measurement.A.shape
    shape = tuple(shape)
    if math.prod(shape) != D:
        raise ValueError(f"shape must hold D = {D} numbers (A's columns), got {shape!r}")
    y = _check_images("y", y)
    if y.ndim != 2 or y.shape[1] != M:
        raise ValueError(f"y must have shape (B, {M}) for this measurement, got {tuple(y.shape)}")
    T = diffusion.num_timesteps
    steps = _check_int("steps", steps, 1, T)
    eta = _check_number("eta", eta, 0.0, 1.0)
    eta_b = _check_number("eta_b", eta_b, 0.0, 1.0)
    check_prediction_type(prediction_type)
    dtype, device = y.dtype, y.device
    U, s, V = (m.to(device=device, dtype=dtype) for m in (measurement.U, measurement.s, measurement.V))
    seen = s > 0
    safe_s = torch.where(seen, s, torch.ones_like(s))
    y_bar = torch.zeros(len(y), D, dtype=dtype, device=device)
    y_bar[:, :M] = y @ U  # Uᵀ y, one row per example
    y_bar = torch.where(seen, y_bar / safe_s, torch.zeros_like(y_bar))
    noise_bar = torch.where(seen, measurement.sigma_y / safe_s, torch.full_like(s, math.inf))  # σ_y/s_i

    ts = timesteps(T, steps, "trailing")
    levels = diffusion.alphas_cumprod[ts].tolist() + [1.0]
    sigmas = [math.sqrt((1.0 - a) / a) for a in levels]

    def z() -> torch.Tensor:
        return randn_like_on(y_bar, generator)

    sigma_T = sigmas[0]
    x_bar = torch.where(
        seen, y_bar + (sigma_T**2 - noise_bar.clamp(max=sigma_T) ** 2).sqrt() * z(), sigma_T * z()
    )
    for k in range(len(ts)):
        a, sigma, sigma_next = levels[k], sigmas[k], sigmas[k + 1]
        x_t = (math.sqrt(a) * (x_bar @ V.T)).reshape(len(y), *shape)  # back to the VP scale
        x0, _ = denoise(model, x_t, int(ts[k]), a, prediction_type, clip_denoised, False)
        theta = x0.flatten(1) @ V
        null = theta + math.sqrt(1 - eta**2) * sigma_next * (x_bar - theta) / sigma + eta * sigma_next * z()
        finite = torch.where(seen & (noise_bar > 0), noise_bar, torch.ones_like(s))
        below = theta + math.sqrt(1 - eta**2) * sigma_next * (y_bar - theta) / finite + eta * sigma_next * z()
        above = (
            (1 - eta_b) * theta
            + eta_b * y_bar
            + ((sigma_next**2 - eta_b**2 * noise_bar.clamp(max=sigma_next) ** 2).clamp(min=0).sqrt() * z())
        )
        x_bar = torch.where(~seen, null, torch.where(sigma_next < noise_bar, below, above))
    return (x_bar @ V.T).reshape(len(y), *shape)


# ---------------------------------------------------------------- exact answers for Gaussian data
def _check_gaussian(mean, cov) -> tuple[torch.Tensor, torch.Tensor]:
    if not torch.is_tensor(mean) or mean.ndim != 1:
        raise ValueError(f"mean must be a 1-D tensor (D,), got {getattr(mean, 'shape', type(mean).__name__)}")
    D = len(mean)
    if not torch.is_tensor(cov) or tuple(cov.shape) != (D, D):
        raise ValueError(f"cov must be a ({D}, {D}) tensor, got {getattr(cov, 'shape', type(cov).__name__)}")
    cov = cov.double()
    if not torch.allclose(cov, cov.T, atol=1e-10) or float(torch.linalg.eigvalsh(cov).min()) <= 0:
        raise ValueError("cov must be symmetric positive definite")
    return mean.double(), cov


def gaussian_eps_model(mean: torch.Tensor, cov: torch.Tensor, diffusion: GaussianDiffusion) -> Model:
    """The exact ε-predictor of data x_0 ~ N(μ, Σ): ``eps(x_t, t)`` = E[ε | x_t].

    Derived in chapter 14, eq. (edit-gaussian-eps): x_t = √ᾱ x_0 + √(1 − ᾱ) ε is Gaussian with
    mean √ᾱ μ and covariance ᾱ Σ + (1 − ᾱ) I, and E[ε | x_t] = √(1 − ᾱ) (ᾱ Σ + (1 − ᾱ) I)⁻¹ (x_t − √ᾱ μ).
    The network a perfectly trained model would be: with it, the only errors of an editing method
    are its own. x_t may have any shape (B, ...) whose items hold D numbers.

    Raises:
        ValueError: mean not (D,), cov not a symmetric positive definite (D, D) matrix.
    """
    mean, cov = _check_gaussian(mean, cov)
    eye = torch.eye(len(mean), dtype=torch.float64)
    abar = diffusion.alphas_cumprod
    gains = {}

    def eps(x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        index = int(t.flatten()[0]) if torch.is_tensor(t) else int(t)
        if index not in gains:
            a = float(abar[index])
            gains[index] = (math.sqrt(1 - a) * torch.linalg.inv(a * cov + (1 - a) * eye), math.sqrt(a))
        gain, root = gains[index]
        flat = x_t.flatten(1).double() - root * mean
        return (flat @ gain.T).to(x_t.dtype).reshape(x_t.shape)

    return eps


def gaussian_conditional(
    mean: torch.Tensor, cov: torch.Tensor, known: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The conditional N(m, C) of the missing entries (``mask`` 0) given the known ones, for N(μ, Σ).

    Derived in chapter 14, eq. (edit-gaussian-conditional) (chapter 2's Gaussian conditioning):
    m = μ_u + Σ_uk Σ_kk⁻¹ (x_k − μ_k), C = Σ_uu − Σ_uk Σ_kk⁻¹ Σ_ku.

    Args:
        mean, cov: the Gaussian (D,), (D, D).
        known: one example's values (D numbers, any shape); only the known entries are read.
        mask: D numbers, 1 for known, 0 for missing.

    Returns:
        (m, C) in float64, over the missing entries in their flattened order.
    """
    mean, cov = _check_gaussian(mean, cov)
    k = mask.flatten().bool()
    if k.numel() != len(mean) or known.numel() != len(mean):
        raise ValueError(
            f"known and mask must hold D = {len(mean)} numbers each, got {known.numel()} and {k.numel()}"
        )
    u = ~k
    x_k = known.flatten().double()[k]
    gain = torch.linalg.solve(cov[k][:, k], cov[k][:, u]).T  # Σ_uk Σ_kk⁻¹
    return mean[u] + gain @ (x_k - mean[k]), cov[u][:, u] - gain @ cov[k][:, u]


def wiener(mean: torch.Tensor, cov: torch.Tensor, measurement: Measurement, y: torch.Tensor) -> torch.Tensor:
    """The linear MMSE estimate of x ~ N(μ, Σ) from y = A x + σ_y n: μ + Σ Aᵀ (A Σ Aᵀ + σ_y² I)⁻¹ (y − A μ).

    Derived in chapter 14, eq. (edit-wiener): the posterior mean when the data are Gaussian, and
    the best estimate linear in y whatever they are (the Wiener filter); chapter 14's baseline.

    Returns:
        Estimates (B, D), float64.
    """
    mean, cov = _check_gaussian(mean, cov)
    A = measurement.A
    gram = A @ cov @ A.T + measurement.sigma_y**2 * torch.eye(len(A), dtype=torch.float64)
    return mean + (y.double() - mean @ A.T) @ torch.linalg.solve(gram, A @ cov)
