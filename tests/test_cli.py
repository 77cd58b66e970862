"""The command line, ``python -m diffusion_lib`` (DESIGN §5), on tiny models registered here."""

import json
import os
import subprocess
import sys
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from diffusion_lib import data, zoo
from diffusion_lib.__main__ import main
from diffusion_lib.families.diffusion import DiffusionSpec
from diffusion_lib.families.gan import GANSpec
from diffusion_lib.family import families
from diffusion_lib.gan import GANConfig
from diffusion_lib.train import TrainConfig

ROOT = Path(__file__).resolve().parents[1]

TINY_CONFIG = TrainConfig(steps=3, batch_size=8, warmup_steps=1, checkpoint_every=2)
TINY_UNET = {
    "type": "unet",
    "in_channels": 1,
    "image_size": 8,
    "base_channels": 8,
    "channel_mults": [1],
    "num_res_blocks": 1,
    "attention_resolutions": [],
}
# 64 fixed points: the point models do not depend on data.ring.
POINTS = zoo.DataSpec.dataset("test-cli-points")
DIGITS = zoo.DataSpec.dataset("digits")
COMMON = {"train": TINY_CONFIG, "train_threads": 1, "chapter": 6}
TINY = [
    zoo.ZooEntry(
        name="test-images",
        description="a tiny U-Net on the digits, for tests",
        family="diffusion",
        spec=DiffusionSpec(network=TINY_UNET, schedule="cosine", num_timesteps=8),
        data=DIGITS,
        sample_shape=(1, 8, 8),
        **COMMON,
    ),
    zoo.ZooEntry(
        name="test-points",
        description="a tiny MLP on 2-D points, for tests",
        family="diffusion",
        spec=DiffusionSpec(
            network={"type": "mlp", "data_dim": 2, "hidden": 16, "num_layers": 1, "time_dim": 8},
            schedule="cosine",
            num_timesteps=8,
        ),
        data=POINTS,
        sample_shape=(2,),
        **COMMON,
    ),
    zoo.ZooEntry(
        name="test-conditional",
        description="a tiny class-conditional U-Net on the digits, for tests",
        family="diffusion",
        spec=DiffusionSpec(network={**TINY_UNET, "num_classes": 10}, schedule="cosine", num_timesteps=8),
        data=DIGITS,
        sample_shape=(1, 8, 8),
        **COMMON,
    ),
    zoo.ZooEntry(
        name="test-guided",
        description="a tiny class-conditional U-Net with a null label (classifier-free guidance), for tests",
        family="diffusion",
        spec=DiffusionSpec(
            network={**TINY_UNET, "num_classes": 10, "null_label": True},
            schedule="cosine",
            num_timesteps=8,
            label_dropout=0.2,
        ),
        data=DIGITS,
        sample_shape=(1, 8, 8),
        **COMMON,
    ),
    zoo.ZooEntry(
        name="test-gan-images",
        description="a tiny GAN on the digits, for tests",
        family="gan",
        spec=GANSpec(
            generator={"z_dim": 4, "hidden": 16, "num_layers": 1, "output": "tanh"},
            discriminator={"hidden": 16, "num_layers": 1},
            gan=GANConfig(loss="non-saturating"),
        ),
        data=DIGITS,
        sample_shape=(1, 8, 8),
        **COMMON,
    ),
    zoo.ZooEntry(
        name="test-gan-points",
        description="a tiny GAN on 2-D points, for tests",
        family="gan",
        spec=GANSpec(
            generator={"z_dim": 3, "hidden": 8, "num_layers": 1},
            discriminator={"hidden": 8, "num_layers": 1},
            gan=GANConfig(loss="hinge"),
        ),
        data=POINTS,
        sample_shape=(2,),
        **COMMON,
    ),
]


@pytest.fixture
def home(tmp_path, monkeypatch):
    """The tiny models registered (public API), a model cache in tmp_path/cache, and the names of
    the models each family trained, in order (each family's public ``train`` wrapped)."""
    cache = tmp_path / "cache"
    monkeypatch.setenv(zoo.ENV_HOME, str(cache))
    trained = []
    for family in families().values():

        def counted(entry, *args, _train=family.train, **kwargs):
            trained.append(entry.name)
            return _train(entry, *args, **kwargs)

        monkeypatch.setattr(family, "train", counted)
    data.register_dataset(
        "test-cli-points", lambda: [0.5 * torch.randn(64, 2, generator=torch.Generator().manual_seed(0))]
    )
    for entry in TINY:
        zoo.register(entry)
    yield cache, trained
    for entry in TINY:
        zoo.unregister(entry.name)


def one_line(text: str) -> str:
    lines = text.splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def files_under(folder: Path) -> list:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def read_npz(path: Path, key: str, shape: tuple) -> np.ndarray:
    """The one array of a sample file, checked: float32, the shape, finite; images in [0, 1]."""
    with np.load(path) as npz:
        assert sorted(npz.files) == [key]
        values = npz[key]
    assert values.dtype == np.float32 and values.shape == shape and np.isfinite(values).all()
    if key == "images":
        assert values.min() >= 0.0 and values.max() <= 1.0
    return values


# ---------------------------------------------------------------- list and train
def test_list_names_every_model_and_its_cache(home, capsys):
    cache, _ = home
    assert main(["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == zoo.names()
    images = next(line for line in lines if line.startswith("test-images "))
    assert images.split()[1:4] == ["diffusion", "not", "cached"] and "a tiny U-Net" in images
    assert any(line.split()[:2] == ["digits-classifier", "classifier"] for line in lines)
    assert any(line.split()[:2] == ["ring-gan", "gan"] for line in lines)
    assert any(line.split()[:2] == ["digits-gan", "gan"] for line in lines)

    assert main(["train", "test-images"]) == 0
    capsys.readouterr()
    assert main(["list"]) == 0
    images = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("test-images "))
    entry = zoo.entry("test-images")
    assert f"cached ({cache / f'test-images-{entry.key()}.safetensors'})" in images


def test_train_a_gan(home, capsys):
    cache, trained = home
    assert main(["train", "test-gan-points", "--steps", "2", "--seed", "3"]) == 0
    line = one_line(capsys.readouterr().out)
    assert line.startswith("trained test-gan-points (2 steps, seed 3) in ") and " s; saved to " in line
    weights = Path(line.rsplit("saved to ", 1)[1])
    record = json.loads(weights.with_name(weights.name.replace(".safetensors", ".json")).read_text())
    assert len(record["losses"]) == len(record["d_losses"]) == 2 and trained == ["test-gan-points"]


def test_train_always_trains_and_says_where(home, capsys):
    cache, trained = home
    assert main(["train", "test-images", "--steps", "2", "--seed", "7"]) == 0
    captured = capsys.readouterr()
    line = one_line(captured.out)
    assert line.startswith("trained test-images (2 steps, seed 7) in ") and " s; saved to " in line
    weights = Path(line.rsplit("saved to ", 1)[1])
    assert weights.parent == cache and weights.is_file()
    record = json.loads(weights.with_name(weights.name.replace(".safetensors", ".json")).read_text())
    assert record["config"]["train"]["steps"] == 2 and record["config"]["train"]["seed"] == 7
    assert "training test-images" in captured.err, "progress goes to stderr"
    assert main(["train", "test-images", "--steps", "2", "--seed", "7"]) == 0
    assert trained == ["test-images", "test-images"], "train retrains even when cached"


# ---------------------------------------------------------------- sample
def test_sample_images_trains_first_and_writes_npz_and_grid(home, tmp_path, capsys):
    cache, trained = home
    out, grid = tmp_path / "samples.npz", tmp_path / "grid.png"
    argv = ["sample", "test-images", "--n", "5", "--out", str(out), "--grid", str(grid), "--batch-size", "2"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert one_line(captured.out).startswith("sampled 5 images from test-images with ddpm (8 steps) (seed 0)")
    assert trained == ["test-images"], "not cached, so trained first"
    images = read_npz(out, "images", (5, 1, 8, 8))
    assert images.std() > 0
    with Image.open(grid) as picture:
        picture.load()
        assert picture.format == "PNG" and min(picture.size) >= 8 * 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "grid.png", "samples.npz"]


def test_sample_is_deterministic_given_the_seed(home, tmp_path, capsys):
    _, trained = home
    paths = {name: tmp_path / f"{name}.npz" for name in ("a", "b", "c")}
    for name, seed in (("a", "3"), ("b", "3"), ("c", "4")):
        assert main(["sample", "test-images", "--n", "3", "--seed", seed, "--out", str(paths[name])]) == 0
    assert trained == ["test-images"], "trained once, then loaded from the cache"
    a, b, c = (np.load(paths[name])["images"] for name in ("a", "b", "c"))
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_sample_points_writes_points_and_a_scatter_plot(home, tmp_path, capsys):
    out, grid = tmp_path / "points.npz", tmp_path / "points.png"
    assert main(["sample", "test-points", "--n", "7", "--out", str(out), "--grid", str(grid)]) == 0
    assert one_line(capsys.readouterr().out).startswith("sampled 7 points from test-points")
    read_npz(out, "points", (7, 2))
    with Image.open(grid) as picture:
        assert picture.format == "PNG" and picture.size == (400, 400)


def test_sample_a_conditional_model_stores_labels(home, tmp_path, capsys):
    out = tmp_path / "conditional.npz"
    assert main(["sample", "test-conditional", "--n", "12", "--out", str(out), "--batch-size", "5"]) == 0
    with np.load(out) as npz:
        assert sorted(npz.files) == ["images", "labels"]
        assert npz["images"].shape == (12, 1, 8, 8)
        assert npz["labels"].dtype == np.int64 and npz["labels"].tolist() == [*range(10), 0, 1]


def test_sample_one_class_with_classifier_free_guidance(home, tmp_path, capsys):
    from diffusion_lib import guidance, samplers

    out = tmp_path / "guided.npz"
    argv = ["sample", "test-guided", "--n", "5", "--out", str(out), "--batch-size", "3", "--seed", "4"]
    assert main([*argv, "--label", "3", "--guidance", "2.5", "--sampler", "ddim", "--steps", "4"]) == 0
    assert one_line(capsys.readouterr().out).startswith(
        "sampled 5 images from test-guided with ddim (4 steps, eta 0, leading), label 3, guidance scale 2.5 "
        "(seed 4)"
    )
    with np.load(out) as npz:
        assert sorted(npz.files) == ["images", "labels"]
        images, labels = npz["images"], npz["labels"]
    assert labels.dtype == np.int64 and labels.tolist() == [3] * 5
    loaded = zoo.load("test-guided", progress=False)
    net = guidance.classifier_free(loaded.model, 3, 2.5, null_label=10)
    generator = torch.Generator().manual_seed(4)
    expected = torch.cat(
        [samplers.ddim(net, loaded.diffusion, (size, 1, 8, 8), steps=4, generator=generator, progress=False,
                       clip_denoised=True) for size in (3, 2)]
    )  # fmt: skip
    assert np.allclose(images, ((expected + 1) / 2).clamp(0, 1).numpy(), atol=1e-6)


def test_sample_a_model_with_a_null_label_defaults_to_plain_conditioning(home, tmp_path, capsys):
    paths = {name: tmp_path / f"{name}.npz" for name in ("default", "one", "zero")}
    for name, extra in (("default", []), ("one", ["--guidance", "1"]), ("zero", ["--guidance", "0"])):
        assert main(["sample", "test-guided", "--n", "12", "--out", str(paths[name]), *extra]) == 0
        scale = "0" if name == "zero" else "1"
        assert f"with ddpm (8 steps), guidance scale {scale} (seed 0)" in one_line(capsys.readouterr().out)
    default, one, zero = (np.load(paths[name]) for name in ("default", "one", "zero"))
    assert default["labels"].tolist() == [*range(10), 0, 1] == zero["labels"].tolist()
    assert np.array_equal(default["images"], one["images"]), "s = 1 is the conditional model itself"
    assert not np.array_equal(default["images"], zero["images"]), "s = 0 is the null label's"


@pytest.mark.parametrize(
    "extra, summary",
    [
        ([], "with ddpm (8 steps) (seed 0)"),
        (["--sampler", "ddim"], "with ddim (8 steps, eta 0, leading) (seed 0)"),
        (["--sampler", "ddim", "--steps", "3", "--eta", "0.5"], "with ddim (3 steps, eta 0.5, leading)"),
        (
            ["--sampler", "ddim", "--steps", "3", "--spacing", "trailing"],
            "with ddim (3 steps, eta 0, trailing)",
        ),
        (["--sampler", "dpm-solver++", "--steps", "4"], "with dpm-solver++ (4 steps, linspace)"),
        (["--sampler", "dpm-solver++"], "with dpm-solver++ (8 steps, linspace)"),
    ],
)
def test_sample_with_each_sampler(home, tmp_path, capsys, extra, summary):
    """Defaults (ddim 50, dpm-solver++ 20 steps) are capped at the model's T = 8."""
    out = tmp_path / "s.npz"
    assert main(["sample", "test-images", "--n", "3", "--out", str(out), *extra]) == 0
    assert summary in one_line(capsys.readouterr().out)
    with np.load(out) as npz:
        assert npz["images"].shape == (3, 1, 8, 8) and np.isfinite(npz["images"]).all()


def test_fast_samplers_follow_the_library(home, tmp_path, capsys):
    """The CLI's ddim equals samplers.ddim with the same seed, options and clipping."""
    from diffusion_lib import samplers

    out = tmp_path / "s.npz"
    argv = ["sample", "test-images", "--n", "4", "--out", str(out), "--sampler", "ddim", "--steps", "5"]
    assert main([*argv, "--eta", "0.3", "--spacing", "linspace", "--seed", "7"]) == 0
    loaded = zoo.load("test-images", progress=False)
    expected = samplers.ddim(
        loaded.model, loaded.diffusion, (4, 1, 8, 8), steps=5, eta=0.3, spacing="linspace",
        generator=torch.Generator().manual_seed(7), progress=False,
    )  # fmt: skip
    images = np.load(out)["images"]
    assert np.allclose(images, ((expected + 1) / 2).clamp(0, 1).numpy(), atol=1e-6)


def test_sample_a_gan_is_one_generator_pass(home, tmp_path, capsys):
    from diffusion_lib import gan

    _, trained = home
    out, grid = tmp_path / "gan.npz", tmp_path / "gan.png"
    argv = ["sample", "test-gan-images", "--n", "6", "--out", str(out), "--grid", str(grid), "--seed", "5"]
    assert main(argv) == 0
    line = one_line(capsys.readouterr().out)
    assert line.startswith("sampled 6 images from test-gan-images with one generator pass (seed 5) in ")
    assert trained == ["test-gan-images"], "not cached, so trained first"
    images = read_npz(out, "images", (6, 1, 8, 8))
    assert images.std() > 0
    loaded = zoo.load("test-gan-images", progress=False)
    expected = gan.sample(loaded.model, 6, generator=torch.Generator().manual_seed(5))
    assert np.allclose(images, ((expected + 1) / 2).numpy(), atol=1e-6), "G(z), z from the seeded generator"
    with Image.open(grid) as picture:
        assert picture.format == "PNG" and min(picture.size) >= 8 * 3
    again = tmp_path / "again.npz"
    assert main([*argv[:5], str(again), "--seed", "5"]) == 0
    other = tmp_path / "other.npz"
    assert main([*argv[:5], str(other), "--seed", "6"]) == 0
    assert np.array_equal(np.load(again)["images"], images)
    assert not np.array_equal(np.load(other)["images"], images)
    assert trained == ["test-gan-images"], "then loaded from the cache"


def test_sample_gan_points_in_batches(home, tmp_path, capsys):
    out, grid = tmp_path / "points.npz", tmp_path / "points.png"
    argv = [
        "sample",
        "test-gan-points",
        "--n",
        "7",
        "--out",
        str(out),
        "--grid",
        str(grid),
        "--batch-size",
        "3",
    ]
    assert main(argv) == 0
    assert one_line(capsys.readouterr().out).startswith(
        "sampled 7 points from test-gan-points with one generator"
    )
    read_npz(out, "points", (7, 2))
    with Image.open(grid) as picture:
        assert picture.format == "PNG" and picture.size == (400, 400)


def test_help_exits_0(capsys):
    assert main(["sample", "--help"]) == 0
    assert "'points'" in capsys.readouterr().out


# ---------------------------------------------------------------- edit
def write_images(path: Path, n: int = 3, seed: int = 0) -> np.ndarray:
    """n random (1, 8, 8) images in [0, 1] as an edit input, 'images' as `sample` writes them."""
    images = np.random.default_rng(seed).random((n, 1, 8, 8)).astype(np.float32)
    np.savez(path, images=images)
    return images


def read_edit(path: Path, shape: tuple) -> tuple:
    """The two arrays of an edit's output, checked: float32 of the shape, images in [0, 1], a 0/1 mask."""
    with np.load(path) as npz:
        assert sorted(npz.files) == ["images", "mask"]
        images, mask = npz["images"], npz["mask"]
    assert images.dtype == mask.dtype == np.float32 and images.shape == mask.shape == shape
    assert np.isfinite(images).all() and images.min() >= 0.0 and images.max() <= 1.0
    assert set(np.unique(mask).tolist()) <= {0.0, 1.0}
    return images, mask


def library_inpaint(images: np.ndarray, mask, batches, seed: int = 0, **options) -> np.ndarray:
    """What `edit` should write: editing.inpaint on the loaded model, batch by batch, one generator."""
    from diffusion_lib import editing

    loaded = zoo.load("test-images", progress=False)
    generator = torch.Generator().manual_seed(seed)
    x = torch.from_numpy(images) * 2 - 1
    out, first = [], 0
    for size in batches:
        part = mask[first : first + size] if mask.ndim == 4 and len(mask) > 1 else mask
        out.append(
            editing.inpaint(
                loaded.model, loaded.diffusion, x[first : first + size], part, generator=generator, **options
            )
        )
        first += size
    return ((torch.cat(out) + 1) / 2).clamp(0, 1).numpy()


def test_edit_fills_in_the_bottom_half_and_keeps_the_top(home, tmp_path, capsys):
    _, trained = home
    source, out = tmp_path / "in.npz", tmp_path / "out.npz"
    images = write_images(source)
    argv = ["edit", "test-images", "--input", str(source), "--mask", "bottom", "--out", str(out)]
    assert main([*argv, "--batch-size", "2"]) == 0
    line = one_line(capsys.readouterr().out)
    assert line.startswith(
        "edited 3 images with test-images by repaint (8 steps, r = 10, j = 10) (seed 0) in "
    )
    assert line.endswith(f" s; wrote {out}")
    assert trained == ["test-images"], "not cached, so trained first"
    edited, mask = read_edit(out, (3, 1, 8, 8))
    assert np.array_equal(mask, np.broadcast_to(np.repeat([1.0, 0.0], 4)[:, None], (3, 1, 8, 8)))
    assert np.allclose(edited[:, :, :4], images[:, :, :4], atol=1e-6, rtol=0), "the top half kept"
    assert np.abs(edited[:, :, 4:] - images[:, :, 4:]).min() > 0, "the bottom half filled in"
    expected = library_inpaint(images, torch.from_numpy(mask[0]), (2, 1), steps=8, resample=10, jump=10)
    assert np.allclose(edited, expected, atol=1e-6)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "in.npz", "out.npz"]


def test_edit_with_a_mask_file_of_height_by_width(home, tmp_path, capsys):
    source, masks, out = tmp_path / "in.npz", tmp_path / "mask.npz", tmp_path / "out.npz"
    images = write_images(source, n=2)
    hole = np.ones((8, 8), dtype=np.uint8)  # any dtype of 0s and 1s
    hole[2:6, 1:7] = 0
    np.savez(masks, mask=hole)
    assert (
        main(["edit", "test-images", "--input", str(source), "--mask-file", str(masks), "--out", str(out)])
        == 0
    )
    assert one_line(capsys.readouterr().out).startswith("edited 2 images with test-images by repaint")
    edited, mask = read_edit(out, (2, 1, 8, 8))
    assert np.array_equal(mask, np.broadcast_to(hole, (2, 1, 8, 8)))
    known = mask == 1
    assert np.allclose(edited[known], images[known], atol=1e-6, rtol=0)
    assert np.abs(edited[~known] - images[~known]).min() > 0


def test_edit_with_a_mask_per_image_in_batches(home, tmp_path, capsys):
    """One mask per image, batch by batch; an image whose mask keeps everything is kept as it is."""
    from diffusion_lib.editing import hole_mask

    source, masks, out = tmp_path / "in.npz", tmp_path / "mask.npz", tmp_path / "out.npz"
    images = write_images(source, n=3, seed=1)
    each = np.stack([hole_mask("left", (1, 8, 8)), np.ones((1, 8, 8)), hole_mask("centre", (1, 8, 8))])
    np.savez(masks, mask=each.astype(np.float32))
    argv = ["edit", "test-images", "--input", str(source), "--mask-file", str(masks), "--out", str(out)]
    assert main([*argv, "--batch-size", "1", "--steps", "4", "--jump", "2", "--resample", "2"]) == 0
    assert "by repaint (4 steps, r = 2, j = 2)" in one_line(capsys.readouterr().out)
    edited, mask = read_edit(out, (3, 1, 8, 8))
    assert np.array_equal(mask, each)
    assert np.allclose(edited[each == 1], images[each == 1], atol=1e-6, rtol=0)
    assert np.abs(edited[each == 0] - images[each == 0]).min() > 0
    assert np.allclose(edited[1], images[1], atol=1e-6, rtol=0)


def test_edit_is_deterministic_given_the_seed(home, tmp_path, capsys):
    _, trained = home
    source = tmp_path / "in.npz"
    write_images(source, n=2)
    paths = {name: tmp_path / f"{name}.npz" for name in ("a", "b", "c")}
    for name, seed in (("a", "3"), ("b", "3"), ("c", "4")):
        argv = ["edit", "test-images", "--input", str(source), "--mask", "centre", "--out", str(paths[name])]
        assert main([*argv, "--seed", seed, "--steps", "5"]) == 0
        assert f"(seed {seed})" in one_line(capsys.readouterr().out)
    assert trained == ["test-images"], "trained once, then loaded from the cache"
    a, b, c = (np.load(paths[name])["images"] for name in ("a", "b", "c"))
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_edit_by_the_replacement_method(home, tmp_path, capsys):
    source, out = tmp_path / "in.npz", tmp_path / "out.npz"
    images = write_images(source, n=2, seed=2)
    argv = [
        "edit",
        "test-images",
        "--input",
        str(source),
        "--mask",
        "right",
        "--out",
        str(out),
        "--seed",
        "5",
    ]
    assert main([*argv, "--method", "replacement", "--steps", "6"]) == 0
    line = one_line(capsys.readouterr().out)
    assert line.startswith("edited 2 images with test-images by replacement (6 steps) (seed 5) in ")
    edited, mask = read_edit(out, (2, 1, 8, 8))
    assert np.allclose(edited[:, :, :, :4], images[:, :, :, :4], atol=1e-6, rtol=0)
    expected = library_inpaint(images, torch.from_numpy(mask[0]), (2,), seed=5, method="replacement", steps=6)
    assert np.allclose(edited, expected, atol=1e-6)
    # --resample 1 is the replacement method's own: allowed
    assert main([*argv, "--method", "replacement", "--resample", "1", "--steps", "6"]) == 0
    capsys.readouterr()
    assert np.array_equal(np.load(out)["images"], edited)


def edit_inputs(folder: Path) -> None:
    """The input files of the edit error cases, good and bad."""
    rng = np.random.default_rng(0)
    good = rng.random((2, 1, 8, 8)).astype(np.float32)
    np.savez(folder / "good.npz", images=good)
    np.savez(folder / "points.npz", points=rng.random((4, 2)))
    np.savez(folder / "small.npz", images=good[:, :, :4, :4])
    np.savez(folder / "ints.npz", images=np.ones((2, 1, 8, 8), dtype=np.int64))
    np.savez(folder / "three.npz", images=good[0])
    np.savez(folder / "big.npz", images=good + 0.5)
    np.savez(folder / "negative.npz", images=good - 0.5)
    np.savez(folder / "nan.npz", images=np.where(good > 0.5, np.nan, good))
    np.savez(folder / "empty.npz", images=good[:0])
    (folder / "text.npz").write_text("not a zip archive")
    with open(folder / "one.npz", "wb") as f:
        np.save(f, good)  # a .npy under a .npz name
    half = np.ones((8, 8), dtype=np.float32)
    half[4:] = 0
    np.savez(folder / "halves.npz", mask=np.where(half == 1, 1.0, 0.5))
    np.savez(folder / "ones.npz", mask=np.ones((8, 8)))
    np.savez(folder / "mask44.npz", mask=half[:4, :4])
    np.savez(folder / "mask3.npz", mask=np.broadcast_to(half, (3, 1, 8, 8)))
    np.savez(folder / "channels.npz", mask=np.broadcast_to(half, (2, 8, 8)))
    np.savez(folder / "masks.npz", masks=half)
    np.savez(folder / "words.npz", mask=np.where(half == 1, "known", "fill"))


EDIT = "edit test-images --input {t}/good.npz --mask bottom --out {t}/x.npz"  # valid, spoilt below


@pytest.mark.parametrize(
    "command, expected",
    [
        (
            "edit foo --input {t}/good.npz --mask bottom --out {t}/x.npz",
            "unknown model 'foo'; choose one of ",
        ),
        ("edit test-images --mask bottom --out {t}/x.npz", "the following arguments are required: --input"),
        (
            "edit test-images --input {t}/good.npz --mask bottom",
            "the following arguments are required: --out",
        ),
        # the input
        (EDIT.replace("good", "missing"), "--input '{t}/missing.npz' does not exist"),
        (EDIT.replace("good.npz", "good.txt"), "--input must be a .npz file, got '{t}/good.txt'"),
        (EDIT.replace("good", "text"), "--input '{t}/text.npz' is not a readable .npz file: "),
        (
            EDIT.replace("good", "one"),
            "--input '{t}/one.npz' is not a readable .npz file: it holds one array, not a .npz archive",
        ),
        (
            EDIT.replace("good", "points"),
            "--input '{t}/points.npz' holds no array 'images' (it holds points)",
        ),
        (
            EDIT.replace("good", "small"),
            "--input 'images' must be floating point (N, 1, 8, 8) for 'test-images', got float32 "
            "(2, 1, 4, 4)",
        ),
        (EDIT.replace("good", "ints"), "must be floating point (N, 1, 8, 8) for 'test-images', got int64"),
        (
            EDIT.replace("good", "three"),
            "must be floating point (N, 1, 8, 8) for 'test-images', got float32 (1, 8, 8)",
        ),
        *(
            (
                EDIT.replace("good", name),
                "--input 'images' must hold at least one image, every value finite in [0, 1]",
            )
            for name in ("big", "negative", "nan", "empty")
        ),
        # the mask
        (EDIT + " --mask-file {t}/ones.npz", "argument --mask-file: not allowed with argument --mask"),
        (
            "edit test-images --input {t}/good.npz --out {t}/x.npz",
            "one of the arguments --mask --mask-file is required",
        ),
        (EDIT.replace("bottom", "middle"), "argument --mask: invalid choice: 'middle'"),
        *(
            (EDIT.replace("--mask bottom", f"--mask-file {{t}}/{name}.npz"), message)
            for name, message in (
                ("halves", "--mask-file: mask must hold only 0 (fill in) and 1 (known)"),
                ("ones", "--mask-file: mask must leave something to fill in (a 0), got all 1s"),
                (
                    "mask44",
                    "--mask-file: mask must have shape (1, 8, 8) (or with a batch dimension of 1 or 2",
                ),
                ("mask3", "--mask-file: mask must have shape (1, 8, 8)"),
                ("channels", "--mask-file: mask must have shape (1, 8, 8)"),
                ("masks", "--mask-file '{t}/masks.npz' holds no array 'mask' (it holds masks)"),
                ("words", "--mask-file 'mask' must hold numbers (0 and 1), got <U5"),
                ("missing", "--mask-file '{t}/missing.npz' does not exist"),
                ("text", "--mask-file '{t}/text.npz' is not a readable .npz file"),
            )
        ),
        (
            EDIT.replace("--mask bottom", "--mask-file {t}/m.png"),
            "--mask-file must be a .npz file, got '{t}/m.png'",
        ),
        # the model
        (
            EDIT.replace("test-images", "test-gan-images"),
            "model 'test-gan-images' is a gan and cannot edit images; models that can edit: digits-ddpm, "
            "test-images",
        ),
        (
            EDIT.replace("test-images", "digits-classifier"),
            "model 'digits-classifier' is a classifier and cannot edit images; models that can edit: ",
        ),
        (
            EDIT.replace("test-images", "test-points"),
            "edit needs an image model; 'test-points' makes points of (2,); models that can edit: "
            "digits-ddpm, test-images",
        ),
        (
            EDIT.replace("test-images", "test-conditional"),
            "edit needs an unconditional model; 'test-conditional' is class-conditional",
        ),
        (EDIT.replace("test-images", "test-guided"), "edit needs an unconditional model; 'test-guided' is"),
        # the options
        (
            EDIT + " --method replacement --resample 2",
            "--resample applies to repaint; the replacement method takes 1, got 2",
        ),
        (EDIT + " --method blend", "argument --method: invalid choice: 'blend'"),
        (EDIT + " --steps 9", "--steps must be an int in [1, 8] for 'test-images', got 9"),
        (EDIT + " --steps 0", "argument --steps: must be an int >= 1, got '0'"),
        (EDIT + " --resample 0", "argument --resample: must be an int >= 1, got '0'"),
        (EDIT + " --jump 0", "argument --jump: must be an int >= 1, got '0'"),
        (EDIT + " --jump two", "argument --jump: must be an int >= 1, got 'two'"),
        (EDIT + " --seed -1", "argument --seed: must be an int in [0, 9223372036854775807], got '-1'"),
        (EDIT + " --batch-size 0", "argument --batch-size: must be an int >= 1, got '0'"),
        # the output
        (EDIT.replace("x.npz", "x.txt"), "--out must be a .npz file, got '{t}/x.txt'"),
        (
            EDIT.replace("{t}/x.npz", "{t}/no/x.npz"),
            "--out '{t}/no/x.npz': its folder '{t}/no' does not exist",
        ),
        (EDIT.replace("x.npz", "folder.npz"), "--out must be a file, got the folder '{t}/folder.npz'"),
    ],
)
def test_edit_user_errors_print_one_line_exit_2_and_write_nothing(home, tmp_path, capsys, command, expected):
    cache, trained = home
    (tmp_path / "folder.npz").mkdir()
    edit_inputs(tmp_path)
    before = files_under(tmp_path)
    argv = [a.replace("{t}", str(tmp_path)) for a in command.split()]
    assert main(argv) == 2
    captured = capsys.readouterr()
    line = one_line(captured.err)
    assert line.startswith("error: ") and expected.replace("{t}", str(tmp_path)) in line
    assert captured.out == ""
    assert files_under(tmp_path) == before and not cache.exists() and trained == []


def test_edit_help_exits_0(capsys):
    assert main(["edit", "--help"]) == 0
    assert "--mask-file" in capsys.readouterr().out


# ---------------------------------------------------------------- user errors
OK = "sample test-images --n 1 --out {t}/x.npz"  # a valid command line, spoilt by each case below


@pytest.mark.parametrize(
    "command, expected",
    [
        ("sample foo --n 1 --out {t}/x.npz", "unknown model 'foo'; choose one of "),
        ("train foo", "unknown model 'foo'; choose one of "),
        ("sample test-images --n 0 --out {t}/x.npz", "argument --n: must be an int >= 1, got '0'"),
        ("sample test-images --n -3 --out {t}/x.npz", "argument --n: must be an int >= 1, got '-3'"),
        ("sample test-images --n many --out {t}/x.npz", "argument --n: must be an int >= 1, got 'many'"),
        ("sample test-images --n 1", "the following arguments are required: --out"),
        (OK + " --batch-size 0", "argument --batch-size: must be an int >= 1, got '0'"),
        (OK + " --seed -1", "argument --seed: must be an int in [0, 9223372036854775807], got '-1'"),
        ("train test-images --steps 0", "argument --steps: must be an int >= 1, got '0'"),
        ("train test-images --steps -5", "argument --steps: must be an int >= 1, got '-5'"),
        (
            "sample test-images --n 1 --out {t}/no/x.npz",
            "--out '{t}/no/x.npz': its folder '{t}/no' does not exist",
        ),
        ("sample test-images --n 1 --out {t}/file.txt/x.npz", "its folder '{t}/file.txt' does not exist"),
        ("sample test-images --n 1 --out {t}/x.txt", "--out must be a .npz file, got '{t}/x.txt'"),
        (
            "sample test-images --n 1 --out {t}/folder.npz",
            "--out must be a file, got the folder '{t}/folder.npz'",
        ),
        (OK + " --grid {t}/g.jpg", "--grid must be a .png file, got '{t}/g.jpg'"),
        (OK + " --grid {t}/no/g.png", "--grid '{t}/no/g.png': its folder '{t}/no' does not exist"),
        (OK + " --sampler euler", "argument --sampler: invalid choice: 'euler' (choose from"),
        (OK + " --sampler ddim --steps 9", "--steps must be at most the model's 8 training steps, got 9"),
        (OK + " --sampler ddim --steps 0", "argument --steps: must be an int >= 1, got '0'"),
        (OK + " --steps 4", "--steps applies to ddim and dpm-solver++; ddpm takes all 8 steps"),
        (OK + " --spacing trailing", "--spacing applies to ddim and dpm-solver++; ddpm takes all 8 steps"),
        (OK + " --sampler dpm-solver++ --eta 0.5", "--eta applies to ddim only, not to dpm-solver++"),
        (OK + " --sampler ddim --eta 1.5", "argument --eta: must be a number in [0, 1], got '1.5'"),
        (OK + " --sampler ddim --eta nan", "argument --eta: must be a number in [0, 1], got 'nan'"),
        (OK + " --sampler ddim --eta x", "argument --eta: must be a number in [0, 1], got 'x'"),
        (OK + " --sampler ddim --spacing uniform", "argument --spacing: invalid choice: 'uniform'"),
        (OK + " --label 3", "--label applies to class-conditional models; 'test-images' is unconditional"),
        (
            OK + " --guidance 2",
            "--guidance applies to class-conditional models; 'test-images' is unconditional",
        ),
        (
            "sample test-guided --n 1 --out {t}/x.npz --label 10",
            "--label must be an int in [0, 9] for 'test-guided' (10 classes), got 10",
        ),
        (
            "sample test-guided --n 1 --out {t}/x.npz --label -1",
            "argument --label: must be an int >= 0, got '-1'",
        ),
        (
            "sample test-guided --n 1 --out {t}/x.npz --label two",
            "argument --label: must be an int >= 0, got 'two'",
        ),
        (
            "sample test-guided --n 1 --out {t}/x.npz --guidance -1",
            "argument --guidance: must be a number in [0, inf], got '-1'",
        ),
        (
            "sample test-guided --n 1 --out {t}/x.npz --guidance nan",
            "argument --guidance: must be a number in [0, inf], got 'nan'",
        ),
        (
            "sample test-guided --n 1 --out {t}/x.npz --guidance inf",
            "--guidance must be a finite number >= 0, got inf",
        ),
        (
            "sample test-conditional --n 1 --out {t}/x.npz --guidance 2",
            "--guidance needs a model with a null label (trained with label_dropout); 'test-conditional' "
            "has none",
        ),
        (
            "sample digits-classifier --n 1 --out {t}/x.npz",
            "'digits-classifier' is a classifier and cannot be",
        ),
        *(
            (
                f"sample test-gan-images --n 1 --out {{t}}/x.npz {option}",
                f"{option.split()[0]} applies to {owners} models; 'test-gan-images' is a gan model and "
                "takes no sampling options",
            )
            for option, owners in (
                ("--sampler ddpm", "diffusion, diffwave, latent-diffusion, unclip and video-diffusion"),
                ("--sampler ddim", "diffusion, diffwave, latent-diffusion, unclip and video-diffusion"),
                ("--steps 3", "diffusion, diffwave, flow, latent-diffusion, unclip and video-diffusion"),
                ("--eta 0.5", "diffusion, diffwave, latent-diffusion, unclip and video-diffusion"),
                ("--spacing trailing", "diffusion, diffwave, latent-diffusion, unclip and video-diffusion"),
                ("--solver euler", "flow"),
                ("--label 1", "diffusion, diffwave and video-diffusion"),
                ("--guidance 2", "diffusion, latent-diffusion and unclip"),
                ("--prompt red", "latent-diffusion and unclip"),
            )
        ),
        (
            OK + " --solver heun",
            "--solver applies to flow models; 'test-images' is a diffusion model and takes",
        ),
        ("fly", "invalid choice: 'fly'"),
        ("", "the following arguments are required: COMMAND"),
    ],
)
def test_user_errors_print_one_line_exit_2_and_write_nothing(home, tmp_path, capsys, command, expected):
    cache, trained = home
    (tmp_path / "file.txt").write_text("not a folder")
    (tmp_path / "folder.npz").mkdir()
    before = files_under(tmp_path)
    argv = [a.replace("{t}", str(tmp_path)) for a in command.split()]
    assert main(argv) == 2
    captured = capsys.readouterr()
    line = one_line(captured.err)
    assert line.startswith("error: ") and expected.replace("{t}", str(tmp_path)) in line
    assert captured.out == ""
    assert files_under(tmp_path) == before and not cache.exists() and trained == []


def test_unknown_model_lists_the_known_ones(home, capsys):
    assert main(["sample", "foo", "--n", "1", "--out", "x.npz"]) == 2
    assert (
        one_line(capsys.readouterr().err)
        == f"error: unknown model 'foo'; choose one of {', '.join(zoo.names())}"
    )


def test_an_unwritable_output_folder_is_an_error(home, tmp_path, capsys, monkeypatch):
    _, trained = home
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):  # root can write anyway: pretend it cannot
            real_access = os.access
            monkeypatch.setattr(os, "access", lambda p, mode: Path(p) != locked and real_access(p, mode))
        assert main(["sample", "test-images", "--n", "1", "--out", str(locked / "x.npz")]) == 2
    finally:
        locked.chmod(0o700)
    assert (
        one_line(capsys.readouterr().err)
        == f"error: --out '{locked / 'x.npz'}': its folder '{locked}' is not writable"
    )
    assert list(locked.iterdir()) == [] and trained == []


def test_an_unusable_cache_folder_is_an_error(home, tmp_path, capsys, monkeypatch):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the cache folder should go")
    monkeypatch.setenv(zoo.ENV_HOME, str(blocker / "cache"))
    assert main(["train", "test-images"]) == 2
    line = one_line(capsys.readouterr().err)
    assert line.startswith("error: cannot create the model cache ($DIFFUSION_LIB_HOME)")


def test_entry_config_change_is_a_new_model_for_the_cli(home, tmp_path, capsys):
    # `train --steps` trains another model (another key); `sample` uses the model's own config.
    cache, trained = home
    assert main(["train", "test-points", "--steps", "2"]) == 0
    assert main(["sample", "test-points", "--n", "2", "--out", str(tmp_path / "p.npz")]) == 0
    assert trained == ["test-points", "test-points"]
    entry = zoo.entry("test-points")
    short = replace(entry, train=replace(entry.train, steps=2))
    assert {p.name for p in cache.iterdir()} == {
        f"test-points-{key}.{suffix}"
        for key in (entry.key(), short.key())
        for suffix in ("json", "safetensors")
    }


# ---------------------------------------------------------------- as a program
def run_module(*args, cwd):
    env = {**os.environ, zoo.ENV_HOME: str(cwd / "cache")}
    return subprocess.run(
        [sys.executable, "-m", "diffusion_lib", *args],
        cwd=cwd,
        env={**env, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_program_list(tmp_path):
    result = run_module("list", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert any(line.split()[:2] == ["digits-ddpm", "diffusion"] for line in result.stdout.splitlines())


def test_program_user_error_is_one_line_without_traceback(tmp_path):
    result = run_module("sample", "nope", "--n", "1", "--out", "x.npz", cwd=tmp_path)
    assert result.returncode == 2
    assert one_line(result.stderr).startswith("error: unknown model 'nope'; choose one of ")
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert not (tmp_path / "x.npz").exists()


@pytest.mark.parametrize(
    "name, key, shape", [("ring-gan", "points", (5, 2)), ("digits-gan", "images", (5, 1, 8, 8))]
)
def test_sample_the_zoo_gans_end_to_end(name, key, shape, home, tmp_path, request, capsys):
    """The real entries (their data, networks and loss), with training cut to 3 steps."""
    _, trained = home
    real = zoo.entry(name)
    zoo.register(replace(real, train=replace(real.train, steps=3)))
    request.addfinalizer(lambda: zoo.register(real))
    out = tmp_path / f"{name}.npz"
    assert main(["sample", name, "--n", "5", "--out", str(out), "--seed", "1"]) == 0
    assert one_line(capsys.readouterr().out).startswith(
        f"sampled 5 {key} from {name} with one generator pass"
    )
    assert trained == [name]
    read_npz(out, key, shape)
    record = json.loads(next((home[0]).glob(f"{name}-*.json")).read_text())
    assert record["config"]["spec"]["gan"] == asdict(real.spec.gan)
    assert record["config"]["data"] == asdict(real.data) and record["family"] == "gan"


def test_list_shows_the_model_of_the_current_seed_shift(home, capsys, monkeypatch):
    from diffusion_lib.seeds import ENV_SEED_SHIFT

    def status():
        assert main(["list"]) == 0
        line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("test-points "))
        return line.split()[2]

    monkeypatch.setenv(ENV_SEED_SHIFT, "0")
    assert main(["train", "test-points"]) == 0
    capsys.readouterr()
    assert status() == "cached"
    monkeypatch.setenv(ENV_SEED_SHIFT, "1")
    assert status() == "not", "shift 1 samples another model, not yet trained"
    assert main(["train", "test-points"]) == 0
    capsys.readouterr()
    assert status() == "cached"


@pytest.mark.parametrize(
    "variable, value, expected",
    [
        ("DIFFUSION_LIB_SEED_SHIFT", "-1", "DIFFUSION_LIB_SEED_SHIFT must be a whole number >= 0, got '-1'"),
        (
            "DIFFUSION_LIB_DEVICE",
            "gpu0",
            "DIFFUSION_LIB_DEVICE must name a torch device such as 'cpu' or 'cuda'",
        ),
    ],
)
def test_a_bad_environment_variable_is_a_user_error(
    home, tmp_path, capsys, monkeypatch, variable, value, expected
):
    cache, trained = home
    monkeypatch.setenv(variable, value)
    for argv in (
        ["train", "test-images"],
        ["sample", "test-images", "--n", "1", "--out", str(tmp_path / "x.npz")],
    ):
        assert main(argv) == 2
        line = one_line(capsys.readouterr().err)
        assert line.startswith("error: ") and expected in line
    assert trained == [] and not (tmp_path / "x.npz").exists()
