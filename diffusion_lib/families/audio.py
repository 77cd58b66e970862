"""The DiffWave family: diffusion over waveforms (chapter 15).

A :class:`~diffusion_lib.nets.diffwave.DiffWave` denoiser with a
:class:`~diffusion_lib.diffusion.GaussianDiffusion`, trained with L_simple on clips (B, 1, L) in
[-1, 1]. Conditioned on a class (a class-conditional generator: ``sample NAME --label L``), or on
the clip's own mel spectrogram (a vocoder: :func:`vocode` renders given spectrograms, the
second half of a text-to-speech system). Sampled by DDPM with every step (the full schedule) or
by DDIM with a few and η = 1 (the fast one, ``--steps K``); ``--wav DIR`` also writes one 16-bit
WAV per clip.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from torch import nn

from .. import audio, data
from ..diffusion import GaussianDiffusion
from ..family import (
    Family,
    SampleOption,
    Trained,
    bind_labels,
    check_counts,
    register_family,
    sampled_output,
)
from ..files import check_output_folder
from ..nets.diffwave import DiffWave
from ..sampling import (
    LABEL_OPTION,
    SAMPLER_OPTIONS,
    SAMPLERS,
    check_label,
    describe_sampler,
    sample_reverse_process,
    sampler_options,
)
from ..schedules import check_schedule, get_beta_schedule

__all__ = ["AudioSpec", "DiffWaveFamily", "mel_of", "vocode", "WAV_OPTION", "FAST_ETA"]

# DDIM's η for the fast schedule when --eta is not given: 1, a stochastic sampler like DiffWave's
# own six-step one (DDIM with η = 1 on a subsequence of the steps is DDPM on that subsequence).
# On audio-diffwave (shift 0, 128 clips, six steps) η = 1 kept 90.6% of clips within 3% of their
# pitch against 85.9% with η = 0 (drafts/README.md).
FAST_ETA = 1.0

# `sample --wav DIR`: one WAV per clip, named by index and label.
WAV_OPTION = SampleOption(
    "--wav",
    {"metavar": "DIR", "help": "also write one 16-bit WAV file per clip into DIR (created if missing)"},
)


@dataclass(frozen=True)
class AudioSpec:
    """A waveform diffusion model.

    Attributes:
        network: :class:`~diffusion_lib.nets.diffwave.DiffWave`'s keyword arguments (``length``,
            ``residual_channels``, ``num_layers``, ``dilation_cycle``, and ``num_classes`` for a
            class-conditional model or ``n_mels`` and ``hop`` for a vocoder).
        sample_rate: the clips' sample rate in Hz (stored with the samples and in WAV files).
        schedule, num_timesteps: the β schedule (:func:`~diffusion_lib.schedules.get_beta_schedule`).
        mel: a vocoder's spectrogram settings, :func:`diffusion_lib.audio.mel_spectrogram`'s
            ``n_fft``, ``hop`` and ``n_mels`` (the last two must match the network's).
    """

    network: dict
    sample_rate: int
    schedule: str = "linear"
    num_timesteps: int = 50
    mel: dict = field(default_factory=dict)


class DiffWaveFamily(Family):
    """DiffWave models (chapter 15). The cache holds the EMA denoiser."""

    name = "diffwave"
    spec_type = AudioSpec
    sample_options = (*SAMPLER_OPTIONS, LABEL_OPTION, WAV_OPTION)
    sample_arrays = {
        "audio": "float32 (N, L) in [-1, 1]",
        "sample_rate": "int64 (), the clips' sample rate in Hz",
        "labels": "int64 (N,), the classes in turn (or --label)",
    }

    outputs = {
        "samples": "the clips of `sample` as tensors, 'audio' (N, L) and 'labels' (kwargs: n, seed, "
        "batch_size and sampling options such as steps; family.sampled_output)",
        "vocoded": "a vocoder's renderings of test clips (data.waveforms(n, seed=seed, split='test')) "
        "from their mel spectrograms: 'audio', 'reference', 'labels' (kwargs: n, seed, steps, eta, "
        "batch_size; see vocode)",
    }

    def check_spec(self, spec) -> None:
        super().check_spec(spec)
        if not isinstance(spec.network, dict):
            raise ValueError(f"network must be a dict of DiffWave's arguments, got {spec.network!r}")
        check_schedule(spec.schedule, spec.num_timesteps)
        rate = spec.sample_rate
        if isinstance(rate, bool) or not isinstance(rate, int) or not 1 <= rate <= audio.MAX_SAMPLE_RATE:
            raise ValueError(f"sample_rate must be an int in [1, {audio.MAX_SAMPLE_RATE}], got {rate!r}")
        vocoder = spec.network.get("n_mels") is not None
        if vocoder != bool(spec.mel):
            raise ValueError(
                f"a vocoder (a network with n_mels) needs mel settings and only a vocoder takes them; got "
                f"n_mels={spec.network.get('n_mels')!r}, mel={spec.mel!r}"
            )
        if vocoder:
            for key in ("n_mels", "hop"):
                if spec.mel.get(key) != spec.network.get(key):
                    raise ValueError(
                        f"mel[{key!r}] must equal the network's {key} ({spec.network.get(key)!r}), "
                        f"got {spec.mel.get(key)!r}"
                    )

    def build(self, entry) -> nn.Module:
        torch.manual_seed(entry.init_seed)
        return DiffWave(**entry.spec.network)

    def process(self, entry) -> GaussianDiffusion:
        return GaussianDiffusion(get_beta_schedule(entry.spec.schedule, entry.spec.num_timesteps))

    def train(self, entry, data, *, dependencies, checkpoint, progress, device) -> Trained:
        diffusion = self.process(entry)
        spec = entry.spec
        vocoder = spec.network.get("n_mels") is not None
        conditional = spec.network.get("num_classes") is not None

        def diffwave_loss(model, batch, generator):
            x0 = batch[0]
            if vocoder:
                mel = mel_of(x0, spec)
                net = lambda x, t: model(x, t, mel=mel)  # noqa: E731
            else:
                net = bind_labels(model, batch[1]) if conditional else model
            return diffusion.training_losses(net, x0, generator=generator)["loss"].mean()

        return self.train_network(
            entry, diffwave_loss, data, checkpoint=checkpoint, progress=progress, device=device
        )

    # ------------------------------------------------------------ sampling
    def sampling_options(self, entry, given: dict) -> dict:
        """DDPM with all T steps by default (the full schedule); ``--steps K`` alone means DDIM
        with K steps and η = :data:`FAST_ETA` (the fast schedule). ``--wav DIR`` is checked here,
        before any work."""
        if entry.spec.network.get("n_mels") is not None:
            raise ValueError(
                f"model {entry.name!r} is a vocoder: it renders given mel spectrograms "
                "(diffusion_lib.families.audio.vocode in Python), it cannot be sampled on its own"
            )
        num_classes = entry.spec.network.get("num_classes")
        label = given.get("label")
        check_label(entry.name, label, num_classes)
        default = "ddim" if given.get("steps") is not None else "ddpm"
        options = sampler_options(given, entry.spec.num_timesteps, default=default, default_eta=FAST_ETA)
        wav = given.get("wav")
        if wav is not None:
            check_output_folder("--wav", wav)
        return {**options, "label": label, "wav": wav, "sample_rate": entry.spec.sample_rate}

    def sample(self, loaded, n, *, batch_size, generator, options) -> dict:
        arrays = sample_reverse_process(
            loaded, n, batch_size=batch_size, generator=generator, options=options
        )
        clips = arrays.pop("points")[:, 0]  # (N, 1, L) → (N, L)
        return {"audio": clips, "sample_rate": np.int64(loaded.entry.spec.sample_rate), **arrays}

    def write_files(self, arrays: dict, options: dict) -> list:
        """``--wav DIR``: DIR/clip-0000-label-3.wav, … (16-bit PCM, :func:`diffusion_lib.audio.write_wav`)."""
        folder = options.get("wav")
        if folder is None:
            return []
        folder = Path(folder)
        folder.mkdir(exist_ok=True)
        labels = arrays.get("labels")
        for k, clip in enumerate(arrays["audio"]):
            name = f"clip-{k:04d}" + (f"-label-{int(labels[k])}" if labels is not None else "") + ".wav"
            audio.write_wav(folder / name, clip, int(arrays["sample_rate"]))
        return [f"{len(arrays['audio'])} WAV files in {folder}"]

    def describe(self, entry, options) -> str:
        """The sampler and, with ``--label``, the label, for the command's summary line."""
        what = describe_sampler(options, entry.spec.num_timesteps)
        return what + (f", label {options['label']}" if options.get("label") is not None else "")

    def output(self, loaded, name, *, progress=True, **kwargs) -> dict:
        """``"samples"`` (:func:`~diffusion_lib.family.sampled_output` of :meth:`sample`) and a
        vocoder's ``"vocoded"`` test clips (chapter 15)."""
        if name == "samples":
            return sampled_output(self, loaded, **kwargs)
        if name == "vocoded":
            return _vocoded(loaded, progress=progress, **kwargs)
        return super().output(loaded, name, progress=progress, **kwargs)


register_family(DiffWaveFamily())


def mel_of(clips: torch.Tensor, spec: AudioSpec) -> torch.Tensor:
    """The log-mel spectrogram a vocoder of ``spec`` is conditioned on: (B, n_mels, frames) of
    clips (B, 1, L), by :func:`diffusion_lib.audio.mel_spectrogram` with ``spec.mel``."""
    return audio.mel_spectrogram(clips, spec.sample_rate, **spec.mel)


def vocode(
    loaded,
    mel: torch.Tensor,
    *,
    steps: Optional[int] = None,
    eta: float = FAST_ETA,
    generator: Optional[torch.Generator] = None,
    progress: bool = False,
) -> torch.Tensor:
    """Waveforms (B, 1, L) in [-1, 1] for the mel spectrograms ``mel`` (B, n_mels, frames) by a
    loaded vocoder: DDPM with every step, or DDIM with ``steps`` and noise scale ``eta``
    (default :data:`FAST_ETA`; chapter 15).

    Raises:
        ValueError: a model that is not a vocoder, steps not an int in [1, T], eta not in [0, 1],
            or a misshapen mel.
    """
    entry = loaded.entry
    if entry.family != DiffWaveFamily.name or entry.spec.network.get("n_mels") is None:
        raise ValueError(f"model {entry.name!r} is not a vocoder (a diffwave model with n_mels)")
    T = entry.spec.num_timesteps
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= T):
        raise ValueError(f"steps must be None or an int in [1, {T}], got {steps!r}")
    if isinstance(eta, bool) or not isinstance(eta, (int, float)) or not 0.0 <= eta <= 1.0:
        raise ValueError(f"eta must be a number in [0, 1], got {eta!r}")
    model = loaded.model.eval()
    net = lambda x, t: model(x, t, mel=mel)  # noqa: E731
    shape = (mel.shape[0], *entry.sample_shape)
    run = SAMPLERS["ddpm" if steps is None else "ddim"].run
    with torch.no_grad():
        return run(net, loaded.diffusion, shape, generator=generator, clip_denoised=True, steps=steps,
                   eta=float(eta), spacing="leading", progress=progress)  # fmt: skip


def _vocoded(
    loaded,
    *,
    n: int,
    seed: int = 0,
    steps: Optional[int] = None,
    eta: float = FAST_ETA,
    batch_size: int = 256,
    progress=True,
) -> dict:
    """The ``"vocoded"`` output: ``n`` test clips and the vocoder's renderings of their mel spectrograms."""
    check_counts(n=n, seed=seed, batch_size=batch_size)
    clips = data.waveforms(n, seed=seed, split="test")
    generator = torch.Generator().manual_seed(seed)
    batches = []
    for first in range(0, n, batch_size):
        mel = mel_of(clips.audio[first : first + batch_size], loaded.entry.spec)
        batches.append(vocode(loaded, mel, steps=steps, eta=eta, generator=generator, progress=progress))
    return {"audio": torch.cat(batches)[:, 0], "reference": clips.audio[:, 0], "labels": clips.labels}
