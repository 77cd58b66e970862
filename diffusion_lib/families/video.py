"""The video diffusion family: a space–time U-Net over clips of frames (chapter 15).

A :class:`~diffusion_lib.nets.video.SpaceTimeUNet` with a
:class:`~diffusion_lib.diffusion.GaussianDiffusion`, trained with L_simple on videos
(B, F, C, H, W) in [-1, 1], all frames of a clip denoised together (Ho et al., 2022). The same
network without temporal layers (``"temporal": False``) is the baseline that makes each frame
on its own. Sampled like the image models (DDPM, DDIM, DPM-Solver++; by default DDIM with 50
steps and η = 1); ``--gif FILE`` also writes the clips as one animation.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .. import viz
from ..diffusion import GaussianDiffusion, check_prediction_type
from ..family import (
    Family,
    SampleOption,
    Trained,
    bind_labels,
    register_family,
    sampled_output,
)
from ..files import check_output_path
from ..nets.video import SpaceTimeUNet
from ..sampling import (
    LABEL_OPTION,
    SAMPLER_OPTIONS,
    check_label,
    describe_sampler,
    sample_reverse_process,
    sampler_options,
)
from ..schedules import check_schedule, get_beta_schedule

__all__ = ["VideoSpec", "VideoFamily", "GIF_OPTION", "GIF_MAX_CLIPS", "DEFAULT_ETA"]

GIF_OPTION = SampleOption(
    "--gif", {"metavar": "FILE.gif", "help": "also save the clips as one animated GIF (a grid per frame)"}
)
GIF_MAX_CLIPS = 64  # the clips a --gif shows (an 8 × 8 grid per frame)
_GIF_FPS = 4  # frames per second of --gif: a digit moving 1–2 px per frame is easy to follow
# DDIM's η when --eta is not given: 1, fresh noise at every step. With η = 0 the small video
# models' clips came out grey or speckled far more often (chapter 15, drafts/README.md).
DEFAULT_ETA = 1.0


@dataclass(frozen=True)
class VideoSpec:
    """A video diffusion model.

    Attributes:
        network: :class:`~diffusion_lib.nets.video.SpaceTimeUNet`'s keyword arguments; a
            ``num_classes`` makes it class-conditional (one label per clip).
        schedule, num_timesteps: the β schedule (:func:`~diffusion_lib.schedules.get_beta_schedule`).
        prediction_type: what the network predicts, ``"epsilon"``, ``"x0"`` or ``"v"`` (Imagen
            Video's choice for video, Ho et al. 2022); the loss and the samplers read its
            output accordingly.
    """

    network: dict
    schedule: str = "cosine"
    num_timesteps: int = 1000
    prediction_type: str = "epsilon"


class VideoFamily(Family):
    """Video diffusion models (chapter 15). The cache holds the EMA denoiser."""

    name = "video-diffusion"
    spec_type = VideoSpec
    sample_options = (*SAMPLER_OPTIONS, LABEL_OPTION, GIF_OPTION)
    sample_arrays = {
        "videos": "float32 (N, frames, C, H, W) in [0, 1]",
        "labels": "int64 (N,), the classes in turn (or --label), for class-conditional models",
    }

    outputs = {
        "samples": "the clips of `sample` as tensors, 'videos' (N, F, C, H, W) in [0, 1] and 'labels' "
        "(kwargs: n, seed, batch_size and sampling options such as steps; family.sampled_output)",
    }

    def check_spec(self, spec) -> None:
        super().check_spec(spec)
        if not isinstance(spec.network, dict):
            raise ValueError(f"network must be a dict of SpaceTimeUNet's arguments, got {spec.network!r}")
        check_schedule(spec.schedule, spec.num_timesteps)
        check_prediction_type(spec.prediction_type)

    def build(self, entry) -> nn.Module:
        torch.manual_seed(entry.init_seed)
        return SpaceTimeUNet(**entry.spec.network)

    def process(self, entry) -> GaussianDiffusion:
        return GaussianDiffusion(get_beta_schedule(entry.spec.schedule, entry.spec.num_timesteps))

    def train(self, entry, data, *, dependencies, checkpoint, progress, device) -> Trained:
        diffusion = self.process(entry)
        conditional = entry.spec.network.get("num_classes") is not None

        def video_loss(model, batch, generator):
            net = bind_labels(model, batch[1]) if conditional else model
            return diffusion.training_losses(
                net, batch[0], generator=generator, prediction_type=entry.spec.prediction_type
            )["loss"].mean()

        return self.train_network(
            entry, video_loss, data, checkpoint=checkpoint, progress=progress, device=device
        )

    # ------------------------------------------------------------ sampling
    def sampling_options(self, entry, given: dict) -> dict:
        """DDIM with 50 steps and η = :data:`DEFAULT_ETA` by default; ``--gif FILE`` is checked
        here, before any work."""
        num_classes = entry.spec.network.get("num_classes")
        label = given.get("label")
        check_label(entry.name, label, num_classes)
        options = sampler_options(given, entry.spec.num_timesteps, default="ddim", default_eta=DEFAULT_ETA)
        gif = given.get("gif")
        if gif is not None:
            check_output_path("--gif", gif, ".gif")
        return {**options, "label": label, "gif": gif}

    def sample(self, loaded, n, *, batch_size, generator, options) -> dict:
        arrays = sample_reverse_process(
            loaded, n, batch_size=batch_size, generator=generator, options=options
        )
        videos = ((arrays.pop("points") + 1.0) / 2.0).clip(0.0, 1.0)  # [-1, 1] → [0, 1]
        return {"videos": videos.astype("float32"), **arrays}

    def write_files(self, arrays: dict, options: dict) -> list:
        """``--gif FILE``: the first :data:`GIF_MAX_CLIPS` clips, a grid per frame, looping."""
        path = options.get("gif")
        if path is None:
            return []
        clips = torch.from_numpy(arrays["videos"][:GIF_MAX_CLIPS]) * 2.0 - 1.0  # (N, F, C, H, W)
        viz.save_gif(clips.transpose(0, 1), path, fps=_GIF_FPS, scale=4)
        return [str(path)]

    def describe(self, entry, options) -> str:
        """The sampler and, with ``--label``, the label, for the command's summary line."""
        what = describe_sampler(options, entry.spec.num_timesteps)
        return what + (f", label {options['label']}" if options.get("label") is not None else "")

    def output(self, loaded, name, *, progress=True, **kwargs) -> dict:
        """``"samples"``: :func:`~diffusion_lib.family.sampled_output` of :meth:`sample` (chapter 15)."""
        if name != "samples":
            return super().output(loaded, name, progress=progress, **kwargs)
        return sampled_output(self, loaded, **kwargs)


register_family(VideoFamily())
