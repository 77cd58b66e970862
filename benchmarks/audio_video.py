"""The targets of chapter 15 (audio and video diffusion), measured on the zoo's models.

    python benchmarks/audio_video.py [--seed-shift K] [--clips 256] [--videos 200]
                                     [--fast-steps 6] [--only audio|video]

- `audio-diffwave`: ``--clips`` class-conditional clips (the classes in turn) sampled with every
  step (DDPM, T = 50) and with the fast schedule (DDIM, ``--fast-steps``, η = 1); the share whose pitch
  (`audio.fundamental_frequency`) is within 3% of the class's (target ≥ 95%; the fast schedule
  within 10% of the full one), the share of samples at full scale (clipping) and the largest
  |mean| of a clip (DC offset); the test clips' own figures beside them;
- `audio-vocoder`: ``--clips`` test clips rendered from their log-mel spectrograms, with every
  step and with the fast schedule: the log-spectral distance to the originals, beside that of
  an `audio-diffwave` clip of the same class (a model that knows the note, not the
  spectrogram) and of another test clip of the class, and the renderings' pitch;
- `video-ddpm` and the independent-frame baseline `video-frames`: ``--videos`` clips each (DDIM,
  50 steps, the classes in turn): the share whose digit (the digits classifier on each frame's
  glyph) is one class on every frame (target ≥ 90%), the share of frames of the clip's label,
  and the trajectory residual from a bouncing path (target ≤ 1 px), beside the test clips';
- training times from the zoo records (target ≤ 300 s each).

``--seed-shift K`` loads the models trained under the book-wide seed shift K (trained on first
use). Nothing here is a timed test; the README reports what this prints.
"""

from __future__ import annotations

import argparse
import os

import numpy as np
import torch

from diffusion_lib import audio, data, video, zoo
from diffusion_lib.seeds import ENV_SEED_SHIFT

AUDIO_SEED, VOCODER_SEED, VIDEO_SEED = 1, 2, 3  # sampling seeds, not shifted (chapter 15's)
TARGETS = {"pitch": 0.95, "fast_ratio": 0.9, "same_class": 0.9, "residual": 1.0, "train_seconds": 300.0}
THREADS = 2  # the CI machine's cores
F0 = np.array([c.frequency for c in data.WAVEFORM_CLASSES])
RATE = data.WAVEFORM_SAMPLE_RATE


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def sound(clips: np.ndarray, labels: np.ndarray) -> dict:
    """Pitch within 3%, clipping and DC offset of clips (N, L) with their class labels."""
    error = np.abs(audio.fundamental_frequency(clips, RATE) / F0[labels] - 1)
    return {
        "within 3%": float((error < 0.03).mean()),
        "median error": float(np.median(error)),
        "clipped": float(audio.clipped_fraction(clips).mean()),
        "|DC| max": float(np.abs(audio.dc_offset(clips)).max()),
    }


def audio_report(n: int, fast_steps: int) -> None:
    test = data.waveforms(n, seed=0, split="test")
    rows = {"test clips": sound(test.audio[:, 0].numpy(), test.labels.numpy())}
    schedules = {
        "full (DDPM, 50 steps)": {},
        f"fast (DDIM, {fast_steps} steps)": {"steps": fast_steps, "eta": 1.0},
    }
    for name, options in schedules.items():
        out = zoo.outputs("audio-diffwave", "samples", n=n, seed=AUDIO_SEED, **options).tensors
        rows[f"audio-diffwave, {name}"] = sound(out["audio"].numpy(), out["labels"].numpy())
    print(f"{'':<40}" + "".join(f"{k:>14}" for k in rows["test clips"]))
    for name, row in rows.items():
        print(f"{name:<40}" + "".join(f"{v:>14.4f}" for v in row.values()))
    full, fast = (rows[f"audio-diffwave, {name}"]["within 3%"] for name in schedules)
    print(
        f"pitch within 3% (full): {full:.3f}, target >= {TARGETS['pitch']}: "
        f"{verdict(full >= TARGETS['pitch'])}"
    )
    ratio = fast / full if full else float("nan")
    print(
        f"fast / full: {ratio:.3f}, target >= {TARGETS['fast_ratio']}: "
        f"{verdict(ratio >= TARGETS['fast_ratio'])}"
    )

    renders = {
        name: zoo.outputs("audio-vocoder", "vocoded", n=n, seed=VOCODER_SEED, **options).tensors
        for name, options in schedules.items()
    }
    first = next(iter(renders.values()))
    originals, labels = first["reference"], first["labels"]
    everyone = torch.arange(n)
    partner = torch.stack([((labels == k) & (everyone != i)).nonzero()[0, 0] for i, k in enumerate(labels)])
    generated = zoo.outputs("audio-diffwave", "samples", n=n, seed=AUDIO_SEED).tensors
    by_class = [(generated["labels"] == k).nonzero()[:, 0] for k in range(len(F0))]
    same = torch.stack([by_class[k][i % len(by_class[k])] for i, k in enumerate(labels.tolist())])
    print(f"{'log-spectral distance (dB)':<40}{'mean':>10}{'median':>10}{'pitch within 3%':>18}")
    references = {
        "another test clip of the class": originals[partner],
        "audio-diffwave, a clip of the class": generated["audio"][same],
    }
    for name, clips in references.items():
        lsd = audio.log_spectral_distance(clips, originals, RATE)
        print(f"{name:<40}{lsd.mean():>10.2f}{np.median(lsd):>10.2f}")
    for name, out in renders.items():
        lsd = audio.log_spectral_distance(out["audio"], originals, RATE)
        pitch = sound(out["audio"].numpy(), labels.numpy())["within 3%"]
        print(f"{'audio-vocoder, ' + name:<40}{lsd.mean():>10.2f}{np.median(lsd):>10.2f}{pitch:>18.3f}")


def video_report(n: int) -> None:
    classifier = zoo.load("digits-classifier").model.eval()
    test = data.moving_digits(n, seed=0, split="test")
    wall = test.videos.shape[-1] - data.MOVING_DIGITS_GLYPH

    def measure(videos: torch.Tensor, labels: torch.Tensor) -> dict:
        crops = video.glyph_crops(videos)
        with torch.no_grad():
            predicted = classifier(crops.flatten(0, 1).float()).argmax(1).view(videos.shape[:2]).numpy()
        residual = video.trajectory_residual(video.glyph_positions(videos), wall=wall)
        return {
            "one class": float(video.class_consistency(predicted).mean()),
            "label's class": float((predicted == labels.numpy()[:, None]).mean()),
            "residual (px)": float(residual.mean()),
            "residual <= 1 px": float((residual <= 1.0).mean()),
        }

    rows = {"test clips": measure(test.videos, test.labels)}
    for name in ("video-ddpm", "video-frames"):
        out = zoo.outputs(name, "samples", n=n, seed=VIDEO_SEED).tensors
        rows[name] = measure(out["videos"] * 2 - 1, out["labels"])
    print(f"{'':<14}" + "".join(f"{k:>18}" for k in rows["test clips"]))
    for name, row in rows.items():
        print(f"{name:<14}" + "".join(f"{v:>18.3f}" for v in row.values()))
    ours = rows["video-ddpm"]
    ok = ours["one class"] >= TARGETS["same_class"]
    print(f"video-ddpm one class on every frame: {ours['one class']:.3f}, target >= 0.9: {verdict(ok)}")
    ok = ours["residual (px)"] <= TARGETS["residual"]
    print(f"video-ddpm mean residual: {ours['residual (px)']:.3f} px, target <= 1: {verdict(ok)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed-shift", type=int, default=0, help="the book-wide seed shift (default 0)")
    parser.add_argument("--clips", type=int, default=256, help="audio clips per schedule (default 256)")
    parser.add_argument("--videos", type=int, default=200, help="video clips per model (default 200)")
    parser.add_argument(
        "--fast-steps", type=int, default=6, help="DDIM steps of the fast schedule (default 6)"
    )
    parser.add_argument("--only", choices=("audio", "video"), help="measure one half only")
    args = parser.parse_args()
    os.environ[ENV_SEED_SHIFT] = str(args.seed_shift)
    torch.set_num_threads(THREADS)
    print(f"seed shift {args.seed_shift}; {THREADS} threads")
    if args.only != "video":
        audio_report(args.clips, args.fast_steps)
    if args.only != "audio":
        video_report(args.videos)
    names = [n for n in ("audio-diffwave", "audio-vocoder", "video-ddpm", "video-frames")
             if args.only is None or n.startswith(args.only)]  # fmt: skip
    for name in names:
        seconds = zoo.load(name).record["train_seconds"]
        print(f"{name} trained in {seconds:.1f} s: {verdict(seconds <= TARGETS['train_seconds'])}")


if __name__ == "__main__":
    main()
