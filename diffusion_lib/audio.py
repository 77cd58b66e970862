"""Audio for chapter 15: WAV files, pitch, mel spectrograms and the checks of generated sound.

Clips are float arrays in [-1, 1], one row per clip: (N, L), or (N, 1, L) as the networks see
them, or one clip (L,). WAV files are 16-bit PCM mono (:func:`wav_bytes`, :func:`write_wav`,
:func:`read_wav`), the format every browser plays, so the book embeds them in its pages
(``viz.audio_html``). :func:`fundamental_frequency` estimates a clip's pitch from its
autocorrelation; :func:`mel_spectrogram` is the differentiable time-frequency picture that
audio models condition on; :func:`log_spectral_distance`, :func:`dc_offset` and
:func:`clipped_fraction` check generated clips against references and for the usual defects.
"""

from __future__ import annotations

import io
import math
import os
from functools import cache
from typing import Union

import numpy as np
import scipy.io.wavfile
import torch

from .files import atomic_write_bytes

__all__ = [
    "MAX_SAMPLE_RATE",
    "wav_bytes",
    "write_wav",
    "read_wav",
    "fundamental_frequency",
    "hz_to_mel",
    "mel_to_hz",
    "mel_filterbank",
    "mel_spectrogram",
    "log_spectral_distance",
    "dc_offset",
    "clipped_fraction",
]

MAX_SAMPLE_RATE = 384_000  # the highest rate common audio hardware plays (384 kHz); WAV allows more
_PCM_SCALE = 32767  # 16-bit PCM: x in [-1, 1] is stored as round(32767 x), symmetric about 0
# The octave guard of fundamental_frequency: the first autocorrelation peak within 90% of the
# highest wins, so that a period's multiples (2T, 3T: an octave and more too low), which a
# decaying or vibrating note can make marginally higher, do not.
_OCTAVE_GUARD = 0.9
_LAG_STEPS = 8  # the autocorrelation is evaluated every 1/8 of a sample
_POWER_FLOOR = 1e-10  # the power floor of log_spectral_distance: -100 dB, far below 16-bit noise


def _check_sample_rate(sample_rate) -> int:
    ok = isinstance(sample_rate, (int, np.integer)) and not isinstance(sample_rate, bool)
    if not ok or not 1 <= sample_rate <= MAX_SAMPLE_RATE:
        raise ValueError(f"sample_rate must be an int in [1, {MAX_SAMPLE_RATE}], got {sample_rate!r}")
    return int(sample_rate)


def _as_float64(audio, name: str) -> torch.Tensor:
    """``audio`` (a tensor, an array or a list) as a float64 CPU tensor, checked to be finite and real."""
    if torch.is_tensor(audio):
        x = audio.detach()
    else:
        try:
            array = np.asarray(audio)
        except Exception as exc:  # ragged lists and the like
            raise ValueError(f"{name} must be an array of numbers, got {type(audio).__name__}") from exc
        if array.dtype == object or not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
            raise ValueError(f"{name} must be an array of numbers, got dtype {array.dtype}")
        x = torch.from_numpy(np.array(array))
    if x.is_complex() or x.dtype == torch.bool:
        raise ValueError(f"{name} must hold real numbers, got dtype {x.dtype}")
    x = x.to("cpu", torch.float64)
    if x.numel() and not bool(torch.isfinite(x).all()):
        raise ValueError(
            f"{name} must be finite, got {int((~torch.isfinite(x)).sum())} NaN or infinite values"
        )
    return x


def _clips(audio, name: str = "audio", *, min_length: int = 1) -> tuple[torch.Tensor, bool]:
    """Clips (N, L), (N, 1, L) or (L,) as float64 (N, L), and whether one clip (L,) was given."""
    x = _as_float64(audio, name)
    single = x.ndim == 1
    if x.ndim == 3 and x.shape[1] == 1:
        x = x[:, 0]
    elif single:
        x = x[None]
    elif x.ndim != 2:
        raise ValueError(f"{name} must have shape (N, L), (N, 1, L) or (L,), got {tuple(x.shape)}")
    if x.shape[0] < 1 or x.shape[1] < min_length:
        raise ValueError(
            f"{name} must hold at least one clip of >= {min_length} samples, got shape {tuple(x.shape)}"
        )
    return x, single


def _per_clip(values: torch.Tensor, single: bool) -> np.ndarray:
    out = values.numpy()
    return out[0] if single else out


# ---------------------------------------------------------------- WAV files
def wav_bytes(audio, sample_rate: int) -> bytes:
    """One clip as a 16-bit PCM mono WAV file, in memory.

    Used in chapter 15 to listen to the data and to samples (``viz.audio_html`` embeds the bytes
    in the page). Each sample x is stored as round(32767 x): the round trip through
    :func:`read_wav` is off by at most 0.5 / 32767.

    Args:
        audio: one clip (L,), L >= 1, a numpy array or a torch tensor with values in [-1, 1].
        sample_rate: the rate in Hz, an int in [1, 384000].

    Returns:
        The WAV file's bytes (RIFF header, then the samples).

    Raises:
        ValueError: ``audio`` not one-dimensional, empty, not finite or outside [-1, 1];
            ``sample_rate`` not an int in [1, 384000].
    """
    rate = _check_sample_rate(sample_rate)
    x = _as_float64(audio, "audio")
    if x.ndim != 1 or x.numel() < 1:
        raise ValueError(f"audio must be one clip of shape (L,) with L >= 1, got shape {tuple(x.shape)}")
    low, high = x.min().item(), x.max().item()
    if low < -1 or high > 1:
        raise ValueError(f"audio must lie in [-1, 1], got values from {low:.6g} to {high:.6g}")
    pcm = np.clip(np.round(x.numpy() * _PCM_SCALE), -_PCM_SCALE, _PCM_SCALE).astype("<i2")
    buffer = io.BytesIO()
    scipy.io.wavfile.write(buffer, rate, pcm)
    return buffer.getvalue()


def write_wav(path: Union[str, os.PathLike], audio, sample_rate: int) -> None:
    """Write :func:`wav_bytes` ``(audio, sample_rate)`` to ``path`` atomically (chapter 15).

    Raises:
        ValueError: as :func:`wav_bytes`.
        FileNotFoundError: the folder does not exist.
    """
    atomic_write_bytes(path, wav_bytes(audio, sample_rate))


def read_wav(path: Union[str, os.PathLike]) -> tuple[np.ndarray, int]:
    """Read a mono WAV file as written by :func:`write_wav` (chapter 15; tests and readers).

    Args:
        path: a mono WAV file of 16-bit PCM (divided by 32767, clipped to [-1, 1]) or of 32- or
            64-bit floats (taken as they are).

    Returns:
        ``(audio, sample_rate)``: float32 (L,) and the rate in Hz.

    Raises:
        ValueError: a file with several channels or another sample format.
        FileNotFoundError: no such file.
    """
    rate, data = scipy.io.wavfile.read(os.fspath(path))
    if data.ndim != 1:
        raise ValueError(f"path must be a mono WAV file, got {data.shape[1]} channels in {str(path)!r}")
    if data.dtype == np.int16:
        audio = np.clip(data.astype(np.float32) / _PCM_SCALE, -1.0, 1.0)
    elif data.dtype in (np.float32, np.float64):
        audio = data.astype(np.float32)
    else:
        raise ValueError(f"path must hold 16-bit PCM or float samples, got {data.dtype} in {str(path)!r}")
    return audio, int(rate)


# ---------------------------------------------------------------- pitch
def fundamental_frequency(audio, sample_rate: int, *, fmin: float = 80.0, fmax: float = 1000.0) -> np.ndarray:
    """The fundamental frequency f0 of each clip, from its autocorrelation, in Hz.

    Used in chapter 15 to check that a generated note has its class's pitch. For each clip, the
    mean is removed and the autocorrelation r(τ) = Σ_t x(t) x(t + τ) is computed through an FFT
    zero-padded to at least 2L (so it is linear, not circular), evaluated every 1/8 of a sample
    (the power spectrum zero-padded eightfold: band-limited interpolation, so that a period
    between two samples keeps its peak), normalised by r(0). Among the
    local maxima of r at lags τ in [sample_rate / fmax, sample_rate / fmin] (a period T gives
    peaks at T, 2T, 3T, …), the estimate takes the *first* whose value is at least 0.9 × the
    highest: the octave guard, so that a multiple of the period, which a decaying or vibrating
    note can make marginally higher than T itself, does not halve f0 (a sub-harmonic weaker
    than about a fifth of the fundamental's amplitude is ignored for the same reason). The peak's
    lag is refined by a parabola through r at τ − 1, τ, τ + 1 (vertex at
    τ + (r₋ − r₊) / (2 (r₋ − 2 r₀ + r₊)), kept within the searched lags), and
    f0 = sample_rate / lag.

    There is no voicing decision: a clip with no period (white noise) still gets an estimate, the
    lag of its largest chance correlation, an arbitrary value in [fmin, fmax]. A clip that is
    constant (zero after removing the mean) or has no local maximum in the range gets NaN.

    Args:
        audio: clips (N, L), (N, 1, L) or one clip (L,), numpy or torch, finite.
        sample_rate: the rate in Hz, an int in [1, 384000].
        fmin: the lowest frequency searched, > 0 Hz; sample_rate / fmin must be <= L − 2.
        fmax: the highest, in (fmin, sample_rate / 2].

    Returns:
        float64 array (N,) in Hz, or a 0-d array for one clip (L,).

    Raises:
        ValueError: bad ``audio`` (shape, values), ``sample_rate``, or a frequency range that is
            empty, above the Nyquist frequency or longer in period than the clip allows.
    """
    rate = _check_sample_rate(sample_rate)
    for name, value in (("fmin", fmin), ("fmax", fmax)):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) or not value > 0:
            raise ValueError(f"{name} must be a number > 0 Hz, got {value!r}")
    if not math.isfinite(fmax) or not fmin < fmax <= rate / 2:
        raise ValueError(
            f"fmax must be finite and in (fmin, sample_rate / 2] = ({fmin}, {rate / 2}], got {fmax!r}"
        )
    x, single = _clips(audio)
    length = x.shape[1]
    lo, hi = math.ceil(rate / fmax), math.floor(rate / fmin)
    if hi > length - 2:
        raise ValueError(
            f"fmin must leave a period of at most L - 2 = {length - 2} samples, got fmin={fmin!r} "
            f"(sample_rate / fmin = {rate / fmin:.4g}); raise fmin or pass longer clips"
        )
    x = x - x.mean(dim=1, keepdim=True)
    n_fft = 1 << (2 * length - 1).bit_length()  # a power of two >= 2L: no circular wrap-around
    spectrum = torch.fft.rfft(x, n=n_fft)
    # The inverse transform of the power spectrum zero-padded to _LAG_STEPS times the length: r at
    # lags of 1/_LAG_STEPS of a sample (band-limited interpolation, exact for a sampled signal).
    # On whole lags only, a period between two samples (11.47 for 261.63 Hz at 3 kHz) can lose
    # so much of its peak that the peak at twice the period wins: an octave error.
    power = spectrum.real**2 + spectrum.imag**2
    r = torch.fft.irfft(power, n=n_fft * _LAG_STEPS)[:, : length * _LAG_STEPS]
    energy = r[:, :1]
    r = r / torch.where(energy > 0, energy, torch.ones_like(energy))
    lo, hi = lo * _LAG_STEPS, hi * _LAG_STEPS  # in steps of 1/_LAG_STEPS of a sample
    lags = torch.arange(lo, hi + 1)
    centre, left, right = r[:, lags], r[:, lags - 1], r[:, lags + 1]
    peak = (centre >= left) & (centre >= right) & (centre > 0)
    best = torch.where(peak, centre, torch.full_like(centre, -math.inf)).amax(dim=1, keepdim=True)
    chosen = peak & (centre >= _OCTAVE_GUARD * best)
    first = torch.argmax(chosen.to(torch.int8), dim=1)  # the first True (argmax returns the first)
    tau = lags[first]
    rows = torch.arange(x.shape[0])
    r_minus, r_0, r_plus = r[rows, tau - 1], r[rows, tau], r[rows, tau + 1]
    curvature = r_minus - 2 * r_0 + r_plus
    shift = torch.where(curvature < 0, 0.5 * (r_minus - r_plus) / curvature.clamp(max=-1e-300), 0.0)
    lag = (tau + shift.clamp(-0.5, 0.5)) / _LAG_STEPS
    f0 = rate / lag.clamp(rate / fmax, rate / fmin)  # within [fmin, fmax]
    f0 = torch.where(chosen.any(dim=1) & (energy[:, 0] > 0), f0, math.nan)
    return _per_clip(f0, single)


# ---------------------------------------------------------------- mel spectrograms
def hz_to_mel(f):
    """The HTK mel scale m = 2595 log10(1 + f / 700) (O'Shaughnessy 1987, as HTK uses it; not
    Slaney's piecewise linear-then-logarithmic scale of the Auditory Toolbox and librosa's
    default). Chapter 15. Works on numbers, numpy arrays and tensors; 1000 Hz ↦ 1000 mel."""
    if torch.is_tensor(f):
        return 2595.0 * torch.log10(1.0 + f / 700.0)
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def mel_to_hz(m):
    """The inverse of :func:`hz_to_mel`: f = 700 (10^(m / 2595) − 1). Chapter 15."""
    if torch.is_tensor(m):
        return 700.0 * (torch.pow(10.0, m / 2595.0) - 1.0)
    return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)


def _check_positive_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


@cache
def _filterbank(n_fft: int, n_mels: int, rate: int, fmin: float, fmax: float) -> torch.Tensor:
    edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))  # (n_mels + 2,)
    bins = np.arange(n_fft // 2 + 1) * rate / n_fft  # the FFT bins' frequencies
    low, centre, high = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bins - low) / (centre - low)
    falling = (high - bins) / (high - centre)
    weights = np.clip(np.minimum(rising, falling), 0.0, None)
    empty = np.flatnonzero(weights.max(axis=1) <= 0)
    if empty.size:
        raise ValueError(
            f"n_mels must leave every filter an FFT bin: with n_fft={n_fft} (bins {rate / n_fft:.4g} Hz "
            f"apart) filter {int(empty[0])} of n_mels={n_mels} covers none; use fewer mels or a "
            "longer n_fft"
        )
    return torch.from_numpy(weights.astype(np.float32))


def mel_filterbank(
    n_fft: int, n_mels: int, sample_rate: int, fmin: float = 0.0, fmax: Union[float, None] = None
) -> torch.Tensor:
    """Triangular filters evenly spaced on the HTK mel scale (chapter 15's mel spectrogram).

    The n_mels + 2 edge frequencies are evenly spaced in mel (:func:`hz_to_mel`, the HTK formula
    m = 2595 log10(1 + f / 700), not Slaney's) from fmin to fmax; filter k rises linearly from 0
    at edge k to 1 at edge k + 1, its centre, and falls to 0 at edge k + 2. Neighbouring filters
    overlap by half, so between the first and the last centre the filters sum to 1. Row k holds
    the triangle at the frequencies j · sample_rate / n_fft of the rfft's bins j = 0 … n_fft/2
    (no area normalisation: each filter peaks at 1 at its centre, which a bin may miss).

    Args:
        n_fft: the FFT length, an int >= 2.
        n_mels: the number of filters, an int >= 1.
        sample_rate: the rate in Hz, an int in [1, 384000].
        fmin: the lowest edge in Hz, >= 0.
        fmax: the highest edge in Hz, in (fmin, sample_rate / 2]; default sample_rate / 2.

    Returns:
        float32 (n_mels, n_fft // 2 + 1), a fresh tensor.

    Raises:
        ValueError: bad arguments, or a filter that covers no FFT bin (too many mels for n_fft).
    """
    n_fft = _check_positive_int("n_fft", n_fft, 2)
    n_mels = _check_positive_int("n_mels", n_mels, 1)
    rate = _check_sample_rate(sample_rate)
    if isinstance(fmin, bool) or not isinstance(fmin, (int, float, np.floating)) or not 0 <= fmin < rate / 2:
        raise ValueError(f"fmin must be a number in [0, sample_rate / 2) = [0, {rate / 2}), got {fmin!r}")
    top = rate / 2 if fmax is None else fmax
    if isinstance(top, bool) or not isinstance(top, (int, float, np.floating)) or not fmin < top <= rate / 2:
        raise ValueError(
            f"fmax must be None or a number in (fmin, sample_rate / 2] = ({fmin}, {rate / 2}], got {fmax!r}"
        )
    return _filterbank(n_fft, n_mels, rate, float(fmin), float(top)).clone()


def _stft_magnitude(x: torch.Tensor, n_fft: int, hop: int, name: str) -> torch.Tensor:
    """|STFT| (N, n_fft // 2 + 1, frames) of clips (N, L): a periodic Hann window, centred frames."""
    if x.shape[-1] <= n_fft // 2:
        raise ValueError(
            f"{name} must be longer than n_fft // 2 = {n_fft // 2} samples (the reflection padding of "
            f"centred frames), got length {x.shape[-1]}"
        )
    window = torch.hann_window(n_fft, dtype=x.dtype, device=x.device)
    spectrum = torch.stft(x, n_fft, hop_length=hop, window=window, center=True, return_complex=True)
    return spectrum.abs()


def mel_spectrogram(
    audio: torch.Tensor,
    sample_rate: int,
    *,
    n_fft: int = 256,
    hop: int = 64,
    n_mels: int = 40,
    log: bool = True,
    floor: float = 1e-5,
) -> torch.Tensor:
    """The (log-)mel spectrogram of each clip, differentiable (chapter 15).

    The short-time Fourier transform (``torch.stft``: a periodic Hann window of ``n_fft``
    samples every ``hop`` samples, frames centred on t = 0, hop, 2 hop, … with reflection
    padding), its magnitude |X| (not the power), summed through :func:`mel_filterbank`, and,
    when ``log``, the natural log of max(floor, ·). Frames: 1 + L // hop.

    Args:
        audio: a floating tensor (N, L) or (N, 1, L), L > n_fft // 2, on any device.
        sample_rate: the rate in Hz, an int in [1, 384000] (it places the filters).
        n_fft: the window and FFT length, an int >= 2.
        hop: the step between frames, an int >= 1.
        n_mels: the number of mel filters, an int >= 1.
        log: whether to take log(max(floor, ·)).
        floor: the floor under the log, a number > 0 (1e-5: -100 dB of magnitude).

    Returns:
        (N, n_mels, frames) in ``audio``'s dtype and on its device; gradients flow to ``audio``.

    Raises:
        ValueError: ``audio`` not a floating tensor of those shapes or too short; bad arguments.
    """
    if not torch.is_tensor(audio) or not audio.is_floating_point():
        what = f"dtype {audio.dtype}" if torch.is_tensor(audio) else type(audio).__name__
        raise ValueError(f"audio must be a floating-point tensor, got {what}")
    if audio.ndim == 3 and audio.shape[1] == 1:
        x = audio[:, 0]
    elif audio.ndim == 2:
        x = audio
    else:
        raise ValueError(f"audio must have shape (N, L) or (N, 1, L), got {tuple(audio.shape)}")
    if x.shape[0] < 1:
        raise ValueError("audio must hold at least one clip, got 0")
    hop = _check_positive_int("hop", hop, 1)
    if not isinstance(log, bool):
        raise ValueError(f"log must be True or False, got {log!r}")
    ok = isinstance(floor, (int, float, np.floating)) and not isinstance(floor, bool)
    if not ok or not (math.isfinite(floor) and floor > 0):
        raise ValueError(f"floor must be a finite number > 0, got {floor!r}")
    bank = mel_filterbank(n_fft, n_mels, sample_rate).to(device=x.device, dtype=x.dtype)
    mel = bank @ _stft_magnitude(x, n_fft, hop, "audio")
    return torch.log(torch.clamp(mel, min=floor)) if log else mel


def log_spectral_distance(a, b, sample_rate: int, *, n_fft: int = 256, hop: int = 64) -> np.ndarray:
    """The log-spectral distance between clips ``a`` and ``b``, per clip, in dB (chapter 15).

    The usual LSD of speech enhancement and super-resolution, as WaveGrad and its successors
    evaluate with it: with power spectra P = |STFT|² (as :func:`mel_spectrogram`'s STFT),
    floored at 1e-10,

        LSD = mean over frames of sqrt( mean over bins k of (10 log10 (P_a / P_b))² ),

    so a copy scaled by s is at exactly |20 log10 s| dB (6.02 dB for s = 1/2), and LSD is
    symmetric and 0 for identical clips. ``sample_rate`` is checked but does not change the value
    (every bin counts alike).

    Args:
        a, b: clips of the same shape, (N, L), (N, 1, L) or (L,), L > n_fft // 2, finite.
        sample_rate: the rate in Hz, an int in [1, 384000].
        n_fft: the window and FFT length, an int >= 2.
        hop: the step between frames, an int >= 1.

    Returns:
        float64 array (N,) in dB, or a 0-d array for one clip (L,).

    Raises:
        ValueError: bad or mismatched clips, bad arguments.
    """
    _check_sample_rate(sample_rate)
    n_fft = _check_positive_int("n_fft", n_fft, 2)
    hop = _check_positive_int("hop", hop, 1)
    x, single = _clips(a, "a")
    y, _ = _clips(b, "b")
    if x.shape != y.shape:
        raise ValueError(f"a and b must have the same shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    power_a = _stft_magnitude(x, n_fft, hop, "a").square().clamp(min=_POWER_FLOOR)
    power_b = _stft_magnitude(y, n_fft, hop, "b").square().clamp(min=_POWER_FLOOR)
    decibels = 10.0 * torch.log10(power_a / power_b)  # (N, bins, frames)
    return _per_clip(decibels.square().mean(dim=1).sqrt().mean(dim=1), single)


# ---------------------------------------------------------------- defects
def dc_offset(audio) -> np.ndarray:
    """The mean of each clip (chapter 15): a generated clip should be centred like its data.

    Args:
        audio: clips (N, L), (N, 1, L) or one clip (L,), finite.

    Returns:
        float64 array (N,), or a 0-d array for one clip (L,).
    """
    x, single = _clips(audio)
    return _per_clip(x.mean(dim=1), single)


def clipped_fraction(audio, threshold: float = 0.999) -> np.ndarray:
    """The fraction of each clip's samples with |x| >= ``threshold`` (chapter 15): clipping, the
    flat tops of a model that saturates at the edge of [-1, 1].

    Args:
        audio: clips (N, L), (N, 1, L) or one clip (L,), finite.
        threshold: a number in (0, 1].

    Returns:
        float64 array (N,) in [0, 1], or a 0-d array for one clip (L,).
    """
    ok = isinstance(threshold, (int, float, np.floating)) and not isinstance(threshold, bool)
    if not ok or not 0 < threshold <= 1:
        raise ValueError(f"threshold must be a number in (0, 1], got {threshold!r}")
    x, single = _clips(audio)
    return _per_clip((x.abs() >= threshold).to(torch.float64).mean(dim=1), single)
