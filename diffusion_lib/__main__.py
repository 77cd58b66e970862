"""The command line (DESIGN §5): list the zoo, train a model into the cache, sample from it, edit
images with it.

::

    python -m diffusion_lib list
    python -m diffusion_lib train NAME [--steps N] [--seed S]
    torchrun --standalone --nproc_per_node=P -m diffusion_lib train NAME [--steps N] [--seed S]
    python -m diffusion_lib sample NAME --n N --out FILE.npz [--seed S] [--grid FILE.png]
           [--batch-size B] [the options of NAME's family]
    python -m diffusion_lib edit NAME --input FILE.npz (--mask HOLE | --mask-file FILE.npz)
           --out FILE.npz [--method repaint|replacement] [--resample R] [--jump J] [--steps K]

Every command goes through the model's family (:mod:`diffusion_lib.family`): ``sample`` takes
the options the families declare (a diffusion model's --sampler, --steps, --eta, --spacing,
--label, --guidance; a GAN takes none: it samples in one generator pass; a waveform model's
--wav DIR and a video model's --gif FILE ask for files besides the .npz, which the family writes:
``Family.write_files``), and a family's options given for a model of another family are an
error. So a new family gets a working command line without a change here. ``train`` launched
by torchrun trains on P processes (:mod:`diffusion_lib.distributed`; the batch is split between
them) into the same cache, rank 0 writing it and printing the summary line.

Progress bars go to stderr and each command prints one summary line on stdout. A user error
(an unknown model, a bad number, an output folder that does not exist …) prints one line,
``error: …``, on stderr and exits with status 2, before anything is trained or written.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
import zipfile
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from . import distributed, editing, zoo
from .family import SampleOption, families, int_in
from .files import atomic_write_bytes, check_output_path
from .seeds import seed_shift
from .train import default_device

__all__ = ["main"]

MAX_SEED = 2**63 - 1
GRID_MAX_IMAGES = 256


class UserError(Exception):
    """A mistake in the command line: reported in one line, exit status 2."""


def family_options() -> dict[str, tuple[SampleOption, list]]:
    """Every family's sampling options by flag: the option and the families that take it.

    Raises:
        ValueError: two families declare one flag with different argparse settings.
    """
    options: dict[str, tuple[SampleOption, list]] = {}
    for name, family in families().items():
        for option in family.sample_options:
            if option.flag in options and options[option.flag][0].kwargs != option.kwargs:
                raise ValueError(
                    f"family {name!r} declares {option.flag} unlike {', '.join(options[option.flag][1])}"
                )
            options.setdefault(option.flag, (option, []))[1].append(name)
    return options


def _sampling_options(args, entry: zoo.ZooEntry) -> dict:
    """The family's options for ``entry``, checked and completed; another family's are refused."""
    family = zoo.family_of(entry)
    own = {option.flag for option in family.sample_options}
    for flag, (option, owners) in family_options().items():
        if flag not in own and getattr(args, option.dest) is not None:
            takes = ", ".join(sorted(own)) if own else "no sampling options"
            raise UserError(
                f"{flag} applies to {_and(owners)} models; {entry.name!r} is a {family.name} "
                f"model and takes {takes}"
            )
    given = {option.dest: getattr(args, option.dest) for option in family.sample_options}
    try:
        return family.sampling_options(entry, given)
    except ValueError as err:
        raise UserError(str(err)) from None


def _and(names: list) -> str:
    """'a', 'a and b', 'a, b and c'."""
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


# ---------------------------------------------------------------- argument checks
class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr and exit status 2."""

    def error(self, message: str):
        message = " ".join(message.split())
        self.exit(2, f"error: {message} (see '{self.prog} --help')\n")


def _model_entry(name: str, *, sampling: bool) -> zoo.ZooEntry:
    if name not in zoo.names():
        raise UserError(f"unknown model {name!r}; choose one of {', '.join(zoo.names())}")
    entry = zoo.entry(name)
    family = zoo.family_of(entry)
    if sampling and not family.samplable:
        samplable = [n for n in zoo.names() if zoo.family_of(zoo.entry(n)).samplable]
        raise UserError(
            f"model {name!r} is a {family.name} and cannot be sampled; choose one of {', '.join(samplable)}"
        )
    return entry


def _output_path(option: str, value: str, suffix: str) -> Path:
    """Check, before any work, that ``value`` can be written: right suffix, folder exists, writable."""
    try:
        return check_output_path(option, value, suffix)
    except ValueError as err:
        raise UserError(str(err)) from None


def _check_environment() -> None:
    """The environment variables the library reads hold what is allowed (the seed shift, the
    training device), checked before anything is trained."""
    try:
        seed_shift()
        default_device()
    except ValueError as err:
        raise UserError(str(err)) from None


def _check_cache() -> Path:
    """The model cache exists (created if missing) and is writable."""
    _check_environment()
    try:
        folder = zoo.cache_dir()
    except OSError as err:
        raise UserError(f"cannot create the model cache (${zoo.ENV_HOME}): {err}") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UserError(f"the model cache {str(folder)!r} (${zoo.ENV_HOME}) is not writable")
    return folder


# ---------------------------------------------------------------- commands
def _cached_status(entry: zoo.ZooEntry) -> str:
    """Whether the model that `sample` would load (under the seed shift) is in the cache."""
    try:
        entry = zoo.resolve(entry.name)
        weights, record, _ = zoo.paths(entry)
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
    family_width = max((len(e.family) for e in entries), default=0)
    for e in entries:
        print(f"{e.name:<{width}}  {e.family:<{family_width}}  {_cached_status(e)}  {e.description}")
    return 0


def _train(args) -> int:
    entry = _model_entry(args.name, sampling=False)
    size = int(os.environ.get("WORLD_SIZE", "1")) if distributed.launched() else 1
    if entry.train.batch_size % size:
        raise UserError(
            f"{args.name!r} trains on batches of {entry.train.batch_size}, which {size} processes "
            "cannot share evenly; launch a number of processes that divides it"
        )
    _check_cache()
    loaded = zoo.load(args.name, retrain=True, progress=True, steps=args.steps, seed=args.seed)
    weights, _, _ = zoo.paths(loaded.entry)
    processes = loaded.record.get("processes", 1)
    if distributed.is_main():
        print(
            f"trained {args.name} ({loaded.entry.train.steps} steps, seed {loaded.entry.train.seed}"
            f"{f', {processes} processes' if processes > 1 else ''}) "
            f"in {loaded.record['train_seconds']:.1f} s; saved to {weights}"
        )
    return 0


def _sample(args) -> int:
    entry = _model_entry(args.name, sampling=True)
    options = _sampling_options(args, entry)
    out = _output_path("--out", args.out, ".npz")
    grid = _output_path("--grid", args.grid, ".png") if args.grid is not None else None
    shape = tuple(entry.sample_shape)
    if grid is not None and len(shape) == 1 and shape[0] != 2:
        raise UserError(f"--grid draws images or 2-D points; {args.name!r} makes points of {shape[0]}")
    if grid is not None and len(shape) not in (1, 3):
        raise UserError(f"--grid draws images or 2-D points; {args.name!r} makes samples of shape {shape}")
    _check_cache()

    loaded = zoo.load(args.name, progress=True)
    family = zoo.family_of(entry)
    generator = torch.Generator().manual_seed(args.seed)
    start = time.perf_counter()
    arrays = family.sample(loaded, args.n, batch_size=args.batch_size, generator=generator, options=options)
    seconds = time.perf_counter() - start
    undeclared = sorted(set(arrays) - set(family.sample_arrays))
    if undeclared:  # a family's bug, not the user's: a traceback, not exit status 2
        raise RuntimeError(f"family {family.name!r} returned arrays it does not declare: {undeclared}")

    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    atomic_write_bytes(out, buffer.getvalue())
    what = next((name for name in ("images", "points", *family.sample_arrays) if name in arrays), "samples")
    if grid is not None:
        if what == "images":
            picture = _grid_png(torch.from_numpy(arrays["images"][:GRID_MAX_IMAGES]) * 2.0 - 1.0)
        elif what == "points" and arrays["points"].shape[1] == 2:
            picture = _scatter_png(arrays["points"])
        else:
            raise UserError(f"--grid draws images or 2-D points; {args.name!r} made {what}")
        atomic_write_bytes(grid, picture)

    try:
        written = family.write_files(arrays, options)
    except (ValueError, OSError) as err:
        raise UserError(" ".join(str(err).split())) from None
    also = "".join(f" and {item}" for item in ([str(grid)] if grid is not None else []) + written)
    count = len(arrays[what]) if what in arrays else args.n  # n per prompt for text-to-image models
    print(
        f"sampled {count} {what} from {args.name} with {family.describe(entry, options)} (seed {args.seed}) "
        f"in {seconds:.1f} s; wrote {out}{also}"
    )
    return 0


def _read_npz(option: str, value: str, array: str) -> np.ndarray:
    """The array ``array`` of the .npz file ``value`` (no pickles), or a one-line error."""
    path = Path(value)
    if path.suffix.lower() != ".npz":
        raise UserError(f"{option} must be a .npz file, got {value!r}")
    if not path.is_file():
        raise UserError(f"{option} {value!r} does not exist")
    try:
        arrays = np.load(path, allow_pickle=False)
        if not isinstance(arrays, np.lib.npyio.NpzFile):
            raise ValueError("it holds one array, not a .npz archive of named arrays")
        with arrays:
            if array not in arrays.files:
                held = ", ".join(arrays.files) or "none"
                raise UserError(f"{option} {value!r} holds no array {array!r} (it holds {held})")
            return arrays[array]
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise UserError(
            f"{option} {value!r} is not a readable .npz file: {' '.join(str(err).split())}"
        ) from None


_NO_EDIT_OPTIONS = {"method": None, "resample": None, "jump": None, "steps": None}


def _can_edit(entry: zoo.ZooEntry) -> bool:
    """Whether ``edit`` takes ``entry`` with its default options."""
    try:
        zoo.family_of(entry).editing_options(entry, dict(_NO_EDIT_OPTIONS))
    except ValueError:
        return False
    return True


def _edit(args) -> int:
    entry = _model_entry(args.name, sampling=False)
    family = zoo.family_of(entry)
    if not _can_edit(entry):
        editable = [n for n in zoo.names() if _can_edit(zoo.entry(n))]
        try:
            family.editing_options(entry, dict(_NO_EDIT_OPTIONS))
        except ValueError as err:
            reason = str(err)
        raise UserError(f"{reason}; models that can edit: {', '.join(editable) or 'none'}")
    given = {"method": args.method, "resample": args.resample, "jump": args.jump, "steps": args.steps}
    try:
        options = family.editing_options(entry, given)
    except ValueError as err:
        raise UserError(str(err)) from None
    images = _read_npz("--input", args.input, "images")
    shape = tuple(entry.sample_shape)
    if images.ndim != 4 or tuple(images.shape[1:]) != shape or not np.issubdtype(images.dtype, np.floating):
        raise UserError(
            f"--input 'images' must be floating point (N, {', '.join(map(str, shape))}) for {args.name!r}, "
            f"got {images.dtype} {images.shape}"
        )
    if len(images) == 0 or not np.isfinite(images).all() or images.min() < 0 or images.max() > 1:
        raise UserError("--input 'images' must hold at least one image, every value finite in [0, 1]")
    if args.mask is not None:
        mask = editing.hole_mask(args.mask, shape).numpy()
    else:
        mask = _read_npz("--mask-file", args.mask_file, "mask")
        if not (np.issubdtype(mask.dtype, np.number) or mask.dtype == np.bool_):
            raise UserError(f"--mask-file 'mask' must hold numbers (0 and 1), got {mask.dtype}")
        if mask.ndim == 2:  # (H, W): one mask for every channel and image
            mask = mask[None]
    try:
        editing.check_mask(torch.as_tensor(mask, dtype=torch.float32), torch.zeros(len(images), *shape))
    except ValueError as err:
        raise UserError(f"--mask-file: {err}") from None
    out = _output_path("--out", args.out, ".npz")
    _check_cache()

    loaded = zoo.load(args.name, progress=True)
    generator = torch.Generator().manual_seed(args.seed)
    start = time.perf_counter()
    arrays = family.edit(
        loaded, images.astype(np.float32), mask.astype(np.float32), options=options, generator=generator,
        batch_size=args.batch_size,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    arrays["mask"] = np.broadcast_to(mask.astype(np.float32), arrays["images"].shape).copy()
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    atomic_write_bytes(out, buffer.getvalue())
    print(
        f"edited {len(images)} images with {args.name} by {family.describe_edit(options)} (seed {args.seed}) "
        f"in {seconds:.1f} s; wrote {out}"
    )
    return 0


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
        description="The named models of 'AIGC: Principles and Code': list, train, sample, edit. Trained "
        f"models are cached in ${zoo.ENV_HOME} (default ~/.cache/diffusion_lib).",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    commands.add_parser("list", help="the named models: name, family, cached or not, description")

    train = commands.add_parser(
        "train",
        help="train (or retrain) a model into the cache",
        description="Train NAME into the cache. Launched as 'torchrun --standalone --nproc_per_node=P "
        "-m diffusion_lib train NAME', P processes share every batch.",
    )
    train.add_argument("name", metavar="NAME", help="a model from 'list'")
    train.add_argument(
        "--steps", type=int_in(1), help="training steps (default: the model's own; changes its cache key)"
    )
    train.add_argument(
        "--seed", type=int_in(0, MAX_SEED), help="training seed (default: the model's own; changes its key)"
    )

    arrays = "; ".join(
        f"{name}: {', '.join(f'{a!r} {d}' for a, d in family.sample_arrays.items())}"
        for name, family in families().items()
        if family.samplable
    )
    sample = commands.add_parser(
        "sample",
        epilog=f"Arrays in FILE.npz, by family: {arrays}.",
        help="draw samples from a model (a diffusion model, a GAN, …) into an .npz file (training it first "
        "if not cached)",
        description="Draw N samples from NAME (trained first if it is not cached) into FILE.npz. For image "
        "models the file holds 'images': float32 in [0, 1], shape (N, C, H, W). For models of points "
        "(such as ring-ddpm) it holds 'points' instead: float32 (N, D) in data units. Class-conditional "
        "models also store 'labels' (int64, N): the classes in turn, or --label for every sample. The "
        "same --seed and --batch-size give the same samples. Each family takes its own options (in "
        "brackets: the families that take it).",
    )
    sample.add_argument("name", metavar="NAME", help="a model from 'list' that can be sampled")
    sample.add_argument("--n", type=int_in(1), required=True, help="number of samples")
    sample.add_argument("--out", required=True, metavar="FILE.npz", help="where to write the samples")
    for flag, (option, owners) in family_options().items():
        kwargs = dict(option.kwargs)
        kwargs["help"] = f"{kwargs.get('help', '')} [{', '.join(owners)}]".strip()
        sample.add_argument(flag, dest=option.dest, default=None, **kwargs)
    sample.add_argument("--seed", type=int_in(0, MAX_SEED), default=0, help="sampling seed (default: 0)")
    sample.add_argument(
        "--grid",
        metavar="FILE.png",
        help=f"also save a picture: a grid of the first {GRID_MAX_IMAGES} images, or a scatter plot of "
        "the points",
    )
    sample.add_argument(
        "--batch-size", type=int_in(1), default=256, help="samples drawn at once (default: 256)"
    )

    edit = commands.add_parser(
        "edit",
        help="fill in part of images with a diffusion model (inpainting) into an .npz file",
        description="Fill in the pixels of the images in FILE.npz ('images': float32 (N, C, H, W) in [0, 1], "
        "as 'sample' writes them) where the mask is 0, keeping the rest. --mask names the hole: top, "
        "bottom, left, right (that half) or centre (the centre square of half the size); --mask-file reads "
        "'mask' (0 fill in, 1 known) of shape (H, W), (C, H, W) or (N, C, H, W). The output holds 'images' "
        "(the known pixels unchanged) and 'mask'. Chapter 14 derives the methods.",
    )
    edit.add_argument("name", metavar="NAME", help="an unconditional image diffusion model from 'list'")
    edit.add_argument("--input", required=True, metavar="FILE.npz", help="the images to complete")
    where = edit.add_mutually_exclusive_group(required=True)
    where.add_argument("--mask", choices=editing.HOLES, help="the hole to fill in, by name")
    where.add_argument("--mask-file", metavar="FILE.npz", help="a mask of 0s (fill in) and 1s (known)")
    edit.add_argument("--out", required=True, metavar="FILE.npz", help="where to write the completed images")
    edit.add_argument(
        "--method", choices=editing.INPAINT_METHODS, help="repaint (default) or replacement (chapter 14)"
    )
    edit.add_argument("--resample", type=int_in(1), help="RePaint's resamplings r per stretch (default: 10)")
    edit.add_argument("--jump", type=int_in(1), help="RePaint's stretch length j in steps (default: 10)")
    edit.add_argument("--steps", type=int_in(1), help="noise levels on the way down (default: 250)")
    edit.add_argument("--seed", type=int_in(0, MAX_SEED), default=0, help="the seed (default: 0)")
    edit.add_argument("--batch-size", type=int_in(1), default=256, help="images at once (default: 256)")
    return parser


def main(argv: Optional[list] = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); return the exit status."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse: --help (0) or a usage error (2, already printed)
        return int(exit_.code or 0)
    command = {"list": _list, "train": _train, "sample": _sample, "edit": _edit}[args.command]
    try:
        return command(args)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except distributed.RankFailure as err:  # torchrun: another process died or stalled
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(
            "interrupted; run the same command again to resume training from its checkpoint", file=sys.stderr
        )
        return 130


if __name__ == "__main__":
    sys.exit(main())
