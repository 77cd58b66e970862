"""The command line (DESIGN §5): list the zoo, train a model into the cache, sample from it.

::

    python -m diffusion_lib list
    python -m diffusion_lib train NAME [--steps N] [--seed S]
    python -m diffusion_lib sample NAME --n N --out FILE.npz [--sampler ddpm|ddim|dpm-solver++]
           [--steps K] [--eta E] [--spacing leading|trailing|linspace] [--seed S]
           [--grid FILE.png] [--batch-size B]

A GAN (kind "gan" in ``list``) samples in one generator pass, G(z) with z ~ N(0, I) drawn from
the seeded generator, so ``sample`` rejects --sampler, --steps, --eta and --spacing for it.

Progress bars go to stderr and each command prints one summary line on stdout. A user error
(an unknown model, a bad number, an output folder that does not exist …) prints one line,
``error: …``, on stderr and exits with status 2, before anything is trained or written.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Callable, NamedTuple, Optional

import numpy as np
import torch

from . import gan, samplers, zoo
from .files import atomic_write_bytes

__all__ = ["main", "SAMPLERS"]

MAX_SEED = 2**63 - 1
SAMPLABLE_KINDS = ("diffusion", "gan")
GRID_MAX_IMAGES = 256


class UserError(Exception):
    """A mistake in the command line: reported in one line, exit status 2."""


# ---------------------------------------------------------------- samplers
class SamplerSpec(NamedTuple):
    """How `sample --sampler NAME` runs: the function, its defaults, the options it takes."""

    run: Callable[..., torch.Tensor]
    default_steps: Optional[int]  # None: every training step (T)
    default_spacing: Optional[str]
    takes_eta: bool


def _ddpm(model, diffusion, shape, *, generator, clip_denoised, steps, eta, spacing) -> torch.Tensor:
    return samplers.ddpm(model, diffusion, shape, generator=generator, clip_denoised=clip_denoised)


def _ddim(model, diffusion, shape, *, generator, clip_denoised, steps, eta, spacing) -> torch.Tensor:
    return samplers.ddim(
        model, diffusion, shape, steps=steps, eta=eta, spacing=spacing, generator=generator,
        clip_denoised=clip_denoised,
    )  # fmt: skip


def _dpm_solver_pp(model, diffusion, shape, *, generator, clip_denoised, steps, eta, spacing) -> torch.Tensor:
    return samplers.dpm_solver_pp(
        model,
        diffusion,
        shape,
        steps=steps,
        spacing=spacing,
        generator=generator,
        clip_denoised=clip_denoised,
    )


# The samplers `sample --sampler` accepts, in one place. Defaults: chapter 7's measurements.
SAMPLERS: dict[str, SamplerSpec] = {
    "ddpm": SamplerSpec(_ddpm, None, None, False),
    "ddim": SamplerSpec(_ddim, 50, "leading", True),
    "dpm-solver++": SamplerSpec(_dpm_solver_pp, 20, "linspace", False),
}


def _sampler_options(args, entry: zoo.ZooEntry) -> dict:
    """--steps, --eta and --spacing checked against the sampler and the model; defaults filled in.

    A GAN takes none of them (nor --sampler): it samples in one generator pass.
    """
    if entry.kind == "gan":
        for option in ("sampler", "steps", "eta", "spacing"):
            if getattr(args, option) is not None:
                raise UserError(
                    f"--{option} applies to diffusion models; {entry.name!r} is a GAN, sampled in one "
                    "generator pass"
                )
        return {}
    if args.sampler is None:
        args.sampler = "ddpm"
    spec = SAMPLERS[args.sampler]
    T = entry.num_timesteps
    if spec.default_steps is None:
        for option, value in (("--steps", args.steps), ("--spacing", args.spacing)):
            if value is not None:
                raise UserError(f"{option} applies to ddim and dpm-solver++; ddpm takes all {T} steps")
    if args.eta is not None and not spec.takes_eta:
        raise UserError(f"--eta applies to ddim only, not to {args.sampler}")
    if args.steps is not None and args.steps > T:
        raise UserError(f"--steps must be at most the model's {T} training steps, got {args.steps}")
    steps = args.steps if args.steps is not None else spec.default_steps
    return {
        "steps": min(steps, T) if steps is not None else None,  # a default is capped at T
        "eta": args.eta if args.eta is not None else 0.0,
        "spacing": args.spacing or spec.default_spacing,
    }


# ---------------------------------------------------------------- argument checks
class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr and exit status 2."""

    def error(self, message: str):
        message = " ".join(message.split())
        self.exit(2, f"error: {message} (see '{self.prog} --help')\n")


def _eta(text: str) -> float:
    """An argparse type: a number in [0, 1]."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0.0 <= value <= 1.0:  # also rejects nan
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1], got {text!r}")
    return value


_eta.__name__ = "number"


def _int_in(minimum: int, maximum: Optional[int] = None):
    """An argparse type: an int in [minimum, maximum], with a message naming the allowed range."""
    allowed = f"an int >= {minimum}" if maximum is None else f"an int in [{minimum}, {maximum}]"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {allowed}, got {text!r}") from None
        if value < minimum or (maximum is not None and value > maximum):
            raise argparse.ArgumentTypeError(f"must be {allowed}, got {text!r}")
        return value

    parse.__name__ = "int"
    return parse


def _model_entry(name: str, *, sampling: bool) -> zoo.ZooEntry:
    if name not in zoo.names():
        raise UserError(f"unknown model {name!r}; choose one of {', '.join(zoo.names())}")
    entry = zoo.entry(name)
    if sampling and entry.kind not in SAMPLABLE_KINDS:
        samplable = [n for n in zoo.names() if zoo.entry(n).kind in SAMPLABLE_KINDS]
        raise UserError(
            f"model {name!r} is a {entry.kind} and cannot be sampled; choose one of {', '.join(samplable)}"
        )
    return entry


def _output_path(option: str, value: str, suffix: str) -> Path:
    """Check, before any work, that ``value`` can be written: right suffix, folder exists, writable."""
    path = Path(value)
    if path.suffix.lower() != suffix:
        raise UserError(f"{option} must be a {suffix} file, got {value!r}")
    if path.is_dir():
        raise UserError(f"{option} must be a file, got the folder {value!r}")
    folder = path.parent
    if not folder.is_dir():
        raise UserError(f"{option} {value!r}: its folder {str(folder)!r} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UserError(f"{option} {value!r}: its folder {str(folder)!r} is not writable")
    return path


def _check_cache() -> Path:
    """The model cache exists (created if missing) and is writable."""
    try:
        folder = zoo.cache_dir()
    except OSError as err:
        raise UserError(f"cannot create the model cache (${zoo.ENV_HOME}): {err}") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UserError(f"the model cache {str(folder)!r} (${zoo.ENV_HOME}) is not writable")
    return folder


def _num_classes(entry: zoo.ZooEntry) -> Optional[int]:
    value = entry.network.get("num_classes")
    return int(value) if value is not None else None


# ---------------------------------------------------------------- commands
def _cached_status(entry: zoo.ZooEntry) -> str:
    try:
        weights, record, _ = zoo._paths(entry)
        if (
            weights.is_file()
            and record.is_file()
            and json.loads(record.read_text()).get("key") == entry.key()
        ):
            return f"cached ({weights})"
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return "not cached"


def _list(args) -> int:
    entries = [zoo.entry(name) for name in zoo.names()]
    width = max((len(e.name) for e in entries), default=0)
    kind_width = max((len(e.kind) for e in entries), default=0)
    for e in entries:
        print(f"{e.name:<{width}}  {e.kind:<{kind_width}}  {_cached_status(e)}  {e.description}")
    return 0


def _train(args) -> int:
    _model_entry(args.name, sampling=False)
    _check_cache()
    loaded = zoo.load(args.name, retrain=True, progress=True, steps=args.steps, seed=args.seed)
    weights, _, _ = zoo._paths(loaded.entry)
    print(
        f"trained {args.name} ({loaded.entry.train.steps} steps, seed {loaded.entry.train.seed}) "
        f"in {loaded.record['train_seconds']:.1f} s; saved to {weights}"
    )
    return 0


def _sample(args) -> int:
    entry = _model_entry(args.name, sampling=True)
    options = _sampler_options(args, entry)
    out = _output_path("--out", args.out, ".npz")
    grid = _output_path("--grid", args.grid, ".png") if args.grid is not None else None
    _check_cache()

    loaded = zoo.load(args.name, progress=True)
    points = len(entry.sample_shape) == 1
    num_classes = _num_classes(entry)
    labels = torch.arange(args.n) % num_classes if num_classes else None
    generator = torch.Generator().manual_seed(args.seed)
    sampler = SAMPLERS[args.sampler].run if entry.kind == "diffusion" else None

    start = time.perf_counter()
    batches = []
    for first in range(0, args.n, args.batch_size):
        size = min(args.batch_size, args.n - first)
        model = loaded.model
        if labels is not None:
            y = labels[first : first + size]
            model = lambda x, t, _net=loaded.model, _y=y: _net(x, t, _y)  # noqa: E731
        if sampler is None:  # a GAN: G(z), z ~ N(0, I) drawn batch after batch
            batches.append(gan.sample(loaded.model, size, generator=generator).to("cpu", torch.float32))
            continue
        # Images live in [-1, 1], so x̂_0 is clipped there; 2-D points are in data units.
        x0 = sampler(
            model,
            loaded.diffusion,
            (size, *entry.sample_shape),
            generator=generator,
            clip_denoised=not points,
            **options,
        )
        batches.append(x0.detach().to("cpu", torch.float32))
    x0 = torch.cat(batches)
    seconds = time.perf_counter() - start

    arrays = {}
    if points:
        arrays["points"] = x0.numpy().astype(np.float32)
    else:
        arrays["images"] = ((x0 + 1.0) / 2.0).clamp(0.0, 1.0).numpy().astype(np.float32)
    if labels is not None:
        arrays["labels"] = labels.numpy().astype(np.int64)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    atomic_write_bytes(out, buffer.getvalue())
    if grid is not None:
        picture = _scatter_png(arrays["points"]) if points else _grid_png(x0[:GRID_MAX_IMAGES])
        atomic_write_bytes(grid, picture)

    what = "points" if points else "images"
    also = f" and {grid}" if grid is not None else ""
    print(
        f"sampled {args.n} {what} from {args.name} with {_describe(args.sampler, options, entry)} "
        f"(seed {args.seed}) "
        f"in {seconds:.1f} s; wrote {out}{also}"
    )
    return 0


def _describe(sampler: Optional[str], options: dict, entry: zoo.ZooEntry) -> str:
    """E.g. 'ddim (50 steps, eta 0, leading)', 'ddpm (1000 steps)' or 'one generator pass'."""
    if entry.kind == "gan":
        return "one generator pass"
    if options["steps"] is None:
        return f"{sampler} ({entry.num_timesteps} steps)"
    eta = f", eta {options['eta']:g}" if SAMPLERS[sampler].takes_eta else ""
    return f"{sampler} ({options['steps']} steps{eta}, {options['spacing']})"


def _grid_png(images: torch.Tensor) -> bytes:
    """A PNG of the images (in [-1, 1]) tiled by viz.image_grid, pixels enlarged to be visible."""
    from PIL import Image

    from .viz import image_grid

    grid = image_grid(images)
    picture = Image.fromarray(np.round(grid * 255).astype(np.uint8))
    scale = max(1, 256 // max(picture.width, picture.height))
    picture = picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def _scatter_png(points: np.ndarray) -> bytes:
    """A PNG scatter plot of 2-D points (matplotlib's Figure API: no pyplot, no display needed)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4, 4), dpi=100)
    ax = fig.subplots()
    ax.scatter(points[:, 0], points[:, 1], s=3, alpha=0.5)
    ax.set_aspect("equal")
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


# ---------------------------------------------------------------- the parser
def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m diffusion_lib",
        description="The named models of 'AIGC: Principles and Code': list, train, sample. Trained "
        f"models are cached in ${zoo.ENV_HOME} (default ~/.cache/diffusion_lib).",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    commands.add_parser("list", help="the named models: name, kind, cached or not, description")

    train = commands.add_parser(
        "train", help="train (or retrain) a model into the cache", description="Train NAME into the cache."
    )
    train.add_argument("name", metavar="NAME", help="a model from 'list'")
    train.add_argument(
        "--steps", type=_int_in(1), help="training steps (default: the model's own; changes its cache key)"
    )
    train.add_argument(
        "--seed", type=_int_in(0, MAX_SEED), help="training seed (default: the model's own; changes its key)"
    )

    sample = commands.add_parser(
        "sample",
        help="draw samples from a diffusion model or a GAN into an .npz file (training it first if not "
        "cached)",
        description="Draw N samples from NAME (trained first if it is not cached) into FILE.npz. A GAN "
        "samples in one generator pass from seeded noise and takes no --sampler, --steps, --eta or "
        "--spacing. "
        "For image models the file holds 'images': float32 in [0, 1], shape (N, C, H, W). For models "
        "of 2-D points (such as ring-ddpm) it holds 'points' instead: float32 (N, 2) in data units. "
        "Class-conditional models also store 'labels' (int64, N), cycling through the classes. The "
        "same --seed and --batch-size give the same samples.",
    )
    sample.add_argument("name", metavar="NAME", help="a diffusion model or a GAN from 'list'")
    sample.add_argument("--n", type=_int_in(1), required=True, help="number of samples")
    sample.add_argument("--out", required=True, metavar="FILE.npz", help="where to write the samples")
    sample.add_argument(
        "--sampler",
        choices=list(SAMPLERS),
        help="a diffusion model's sampler (default: ddpm, all T steps)",
    )
    sample.add_argument(
        "--steps",
        type=_int_in(1),
        help="network evaluations for ddim (default 50) and dpm-solver++ (default 20), at most T",
    )
    sample.add_argument("--eta", type=_eta, help="ddim's noise scale η in [0, 1] (default 0: deterministic)")
    sample.add_argument(
        "--spacing",
        choices=samplers.SPACINGS,
        help="which timesteps ddim and dpm-solver++ visit (default: leading for ddim, linspace for "
        "dpm-solver++); see chapter 7",
    )
    sample.add_argument("--seed", type=_int_in(0, MAX_SEED), default=0, help="sampling seed (default: 0)")
    sample.add_argument(
        "--grid",
        metavar="FILE.png",
        help=f"also save a picture: a grid of the first {GRID_MAX_IMAGES} images, or a scatter plot of "
        "the points",
    )
    sample.add_argument(
        "--batch-size", type=_int_in(1), default=256, help="samples drawn at once (default: 256)"
    )
    return parser


def main(argv: Optional[list] = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); return the exit status."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse: --help (0) or a usage error (2, already printed)
        return int(exit_.code or 0)
    command = {"list": _list, "train": _train, "sample": _sample}[args.command]
    try:
        return command(args)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "interrupted; run the same command again to resume training from its checkpoint", file=sys.stderr
        )
        return 130


if __name__ == "__main__":
    sys.exit(main())
