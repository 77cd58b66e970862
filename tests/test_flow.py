"""Flow matching (chapter 8): the path, the loss against its closed form for Gaussian data, the
time-scaled networks, the flow family through the zoo and the command line, and its entries."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn

from diffusion_lib import data, flow, samplers, zoo
from diffusion_lib.__main__ import main
from diffusion_lib.families.flow import FlowFamily, FlowSpec
from diffusion_lib.family import families, get_family
from diffusion_lib.train import TrainConfig

MU, S = 0.7, 0.5  # Gaussian data N(MU, S²) per coordinate


def exact_velocity(x, t):
    """E[ε − x_0 | x_t] for x_0 ~ N(MU, S²) (derived in tests/test_samplers.py): affine in x."""
    t = t.to(x.dtype).reshape(-1, *(1,) * (x.ndim - 1))
    variance = (1 - t) ** 2 * S**2 + t**2
    return -MU + (t - (1 - t) * S**2) / variance * (x - (1 - t) * MU)


# ---------------------------------------------------------------- the path and the loss
def test_the_path_runs_from_the_data_to_the_noise_at_the_target_velocity():
    generator = torch.Generator().manual_seed(0)
    x0, noise = torch.randn(4, 3, generator=generator), torch.randn(4, 3, generator=generator)
    assert torch.equal(flow.interpolate(x0, noise, 0.0), x0) and torch.equal(
        flow.interpolate(x0, noise, 1), noise
    )
    t = torch.tensor([0.1, 0.4, 0.5, 0.9])
    x_t = flow.interpolate(x0, noise, t)
    assert torch.allclose(x_t, (1 - t[:, None]) * x0 + t[:, None] * noise)
    h = 1e-3  # the velocity is the derivative along the path (exact: the path is straight)
    derivative = (flow.interpolate(x0, noise, t + h) - flow.interpolate(x0, noise, t - h)) / (2 * h)
    assert torch.allclose(derivative, flow.velocity_target(x0, noise), atol=1e-3)
    assert torch.equal(flow.velocity_target(x0, noise), noise - x0)


def test_the_loss_of_the_exact_velocity_is_the_irreducible_variance():
    """Var(ε − x_0 | x_t) per coordinate is s²/V_t with V_t = (1 − t)² s² + t² (1 + s² minus the
    explained part (t − (1 − t)s²)²/V_t): the loss at the exact velocity, and its minimum."""
    D, B = 8, 4000
    x0 = MU + S * torch.randn(B, D, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    out = flow.training_losses(exact_velocity, x0, generator=torch.Generator().manual_seed(2))
    t = out["t"]
    assert out["loss"].shape == (B,) and t.shape == (B,) and 0 <= t.min() and t.max() <= 1
    irreducible = S**2 / ((1 - t) ** 2 * S**2 + t**2)
    # loss/irreducible is χ²_D/D per example: mean 1, standard error √(2/D/B) ≈ 0.008
    assert (out["loss"] / irreducible).mean().item() == pytest.approx(1.0, abs=0.04)
    # A perturbed velocity pays δ² on top (same draws: the generator is seeded alike).
    for delta in (0.1, 0.3):
        worse = flow.training_losses(
            lambda x, t, d=delta: exact_velocity(x, t) + d, x0, generator=torch.Generator().manual_seed(2)
        )
        gap = (worse["loss"] - out["loss"]).mean().item()
        assert gap == pytest.approx(delta**2, abs=0.01 * delta), delta


def test_training_losses_draw_t_then_noise_from_the_generator():
    x0 = torch.randn(5, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    seen = []

    def model(x, t):
        seen.append((x, t))
        return torch.zeros_like(x)

    a = flow.training_losses(model, x0, generator=torch.Generator().manual_seed(4))
    b = flow.training_losses(model, x0, generator=torch.Generator().manual_seed(4))
    c = flow.training_losses(model, x0, generator=torch.Generator().manual_seed(5))
    assert (
        a["loss"].shape == (5,)
        and torch.equal(a["loss"], b["loss"])
        and not torch.equal(a["loss"], c["loss"])
    )
    generator = torch.Generator().manual_seed(4)
    t = torch.rand(5, generator=generator)
    noise = torch.randn(x0.shape, generator=generator)
    assert torch.equal(a["t"], t) and torch.equal(seen[0][1], t)
    assert torch.allclose(seen[0][0], flow.interpolate(x0, noise, t))
    assert torch.allclose(a["loss"], ((noise - x0) ** 2).mean(dim=(1, 2, 3)))


def test_flow_bad_input():
    x = torch.zeros(2, 3)
    with pytest.raises(ValueError, match=r"noise must have the shape of x0 \(2, 3\), got \(2, 2\)"):
        flow.interpolate(x, torch.zeros(2, 2), 0.5)
    with pytest.raises(ValueError, match=r"t must lie in \[0, 1\], got values from 1.5 to 1.5"):
        flow.interpolate(x, x, 1.5)
    with pytest.raises(ValueError, match=r"t must be a number or a tensor of shape \(2,\), got \(3,\)"):
        flow.interpolate(x, x, torch.zeros(3))
    with pytest.raises(ValueError, match="x0 must be a floating-point tensor"):
        flow.training_losses(lambda x, t: x, torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"model output must have the shape of x_t \(2, 3\), got \(2,\)"):
        flow.training_losses(lambda x, t: x[:, 0], x)
    with pytest.raises(ValueError, match="network must be a torch.nn.Module, got function"):
        flow.TimeScaled(lambda x, t: x)


def test_time_scaled_feeds_t_times_999_and_passes_labels():
    class Recorder(nn.Module):
        def forward(self, x, t, y=None):
            self.t, self.y = t, y
            return x

    net = Recorder()
    wrapped = flow.TimeScaled(net)
    t = torch.tensor([0.0, 0.5, 1.0])
    wrapped(torch.zeros(3, 2), t)
    assert flow.TIME_SCALE == 999.0 and torch.equal(net.t, t * 999.0) and net.y is None
    y = torch.tensor([1, 2, 3])
    wrapped(torch.zeros(3, 2), t, y)
    assert torch.equal(net.y, y)
    assert list(wrapped.state_dict()) == [], "no parameters of its own"


# ---------------------------------------------------------------- the family and the zoo
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
COMMON = {"train": TINY_CONFIG, "train_threads": 1, "chapter": 8}
TINY = [
    zoo.ZooEntry(
        name="test-flow-images",
        description="a tiny flow-matching U-Net on the digits, for tests",
        family="flow",
        spec=FlowSpec(network=TINY_UNET),
        data=zoo.DataSpec.dataset("digits"),
        sample_shape=(1, 8, 8),
        **COMMON,
    ),
    zoo.ZooEntry(
        name="test-flow-points",
        description="a tiny flow-matching MLP on Gaussian points, for tests",
        family="flow",
        spec=FlowSpec(network={"type": "mlp", "data_dim": 2, "hidden": 16, "num_layers": 1, "time_dim": 8}),
        data=zoo.DataSpec.dataset("test-flow-gaussian"),
        sample_shape=(2,),
        **COMMON,
    ),
    zoo.ZooEntry(
        name="test-flow-conditional",
        description="a tiny class-conditional flow-matching U-Net on the digits, for tests",
        family="flow",
        spec=FlowSpec(network={**TINY_UNET, "num_classes": 10}),
        data=zoo.DataSpec.dataset("digits"),
        sample_shape=(1, 8, 8),
        **COMMON,
    ),
]


@pytest.fixture
def home(tmp_path, monkeypatch):
    """The tiny flow models registered, a model cache in tmp_path/cache, trainings counted."""
    cache = tmp_path / "cache"
    monkeypatch.setenv(zoo.ENV_HOME, str(cache))
    trained = []
    family = get_family("flow")

    def counted(entry, *args, _train=family.train, **kwargs):
        trained.append(entry.name)
        return _train(entry, *args, **kwargs)

    monkeypatch.setattr(family, "train", counted)
    data.register_dataset(
        "test-flow-gaussian",
        lambda: [MU + S * torch.randn(256, 2, generator=torch.Generator().manual_seed(0))],
    )
    for entry in TINY:
        zoo.register(entry)
    yield cache, trained
    for entry in TINY:
        zoo.unregister(entry.name)


def test_the_flow_family_is_registered_and_checks_its_spec():
    assert isinstance(families()["flow"], FlowFamily)
    base = TINY[0]
    with pytest.raises(
        ValueError, match="network type must be one of 'unet', 'mlp' for a flow model, got 'resnet'"
    ):
        zoo.register(replace(base, name="test-flow-bad", spec=FlowSpec(network={"type": "resnet"})))
    with pytest.raises(ValueError, match="spec must be a FlowSpec for family 'flow', got dict"):
        zoo.register(replace(base, name="test-flow-bad", spec={"network": TINY_UNET}))
    assert "test-flow-bad" not in zoo.names()


def test_a_flow_model_trains_through_the_zoo_and_samples_with_the_library(home):
    cache, trained = home
    loaded = zoo.load("test-flow-images", progress=False)
    assert trained == ["test-flow-images"] and loaded.record["family"] == "flow" and loaded.diffusion is None
    assert isinstance(loaded.model, flow.TimeScaled) and len(loaded.record["losses"]) == 3
    again = zoo.load("test-flow-images", progress=False)
    assert trained == ["test-flow-images"], "the second load reads the cache"
    for name, p in loaded.model.state_dict().items():
        assert torch.equal(p, again.model.state_dict()[name]), name
    # build is seeded by the entry: the same initial network every time
    family = get_family("flow")
    entry = zoo.entry("test-flow-images")
    first, second = family.build(entry), family.build(entry)
    assert all(torch.equal(a, b) for a, b in zip(first.parameters(), second.parameters()))


def test_the_command_line_samples_a_flow_model_like_the_library(home, tmp_path, capsys):
    cache, trained = home
    out = tmp_path / "s.npz"
    argv = ["sample", "test-flow-images", "--n", "4", "--out", str(out), "--seed", "7"]
    assert main([*argv, "--solver", "euler", "--steps", "4"]) == 0
    line = capsys.readouterr().out
    assert line.startswith(
        "sampled 4 images from test-flow-images with euler (4 steps, 4 network evaluations)"
    )
    loaded = zoo.load("test-flow-images", progress=False)
    expected = samplers.flow_euler(
        loaded.model, (4, 1, 8, 8), steps=4, generator=torch.Generator().manual_seed(7)
    )
    images = np.load(out)["images"]
    assert images.shape == (4, 1, 8, 8) and images.dtype == np.float32
    assert np.allclose(images, ((expected.clamp(-1, 1) + 1) / 2).numpy(), atol=1e-6)
    assert main(argv) == 0
    assert "with heun (10 steps, 20 network evaluations) (seed 7)" in capsys.readouterr().out, "the defaults"
    assert trained == ["test-flow-images"]


def test_the_command_line_samples_flow_points_and_labels(home, tmp_path, capsys):
    out = tmp_path / "p.npz"
    assert (
        main(
            ["sample", "test-flow-points", "--n", "5", "--out", str(out), "--solver", "heun", "--steps", "3"]
        )
        == 0
    )
    assert (
        "sampled 5 points from test-flow-points with heun (3 steps, 6 network evaluations)"
        in capsys.readouterr().out
    )
    with np.load(out) as npz:
        assert npz["points"].shape == (5, 2) and np.isfinite(npz["points"]).all()
    out = tmp_path / "c.npz"
    argv = [
        "sample",
        "test-flow-conditional",
        "--n",
        "12",
        "--out",
        str(out),
        "--batch-size",
        "5",
        "--steps",
        "2",
    ]
    assert main(argv) == 0
    with np.load(out) as npz:
        assert sorted(npz.files) == ["images", "labels"] and npz["images"].shape == (12, 1, 8, 8)
        assert npz["labels"].tolist() == [*range(10), 0, 1]
        assert 0 <= npz["images"].min() and npz["images"].max() <= 1


OK = "sample test-flow-images --n 1 --out {t}/x.npz"


@pytest.mark.parametrize(
    "command, expected",
    [
        (OK + " --eta 0.5", "--eta applies to diffusion, diffwave, latent-diffusion, unclip and "
         "video-diffusion models; "
         "'test-flow-images' is a flow model and takes --solver, --steps"),
        (OK + " --sampler ddim", "--sampler applies to diffusion, diffwave, latent-diffusion, unclip and "
         "video-diffusion models; "
         "'test-flow-images' is a flow model"),
        (OK + " --spacing leading", "--spacing applies to diffusion, diffwave, latent-diffusion, unclip and "
         "video-diffusion models; "
         "'test-flow-images' is a flow"),
        (OK + " --steps 0", "argument --steps: must be an int >= 1, got '0'"),
        (OK + " --solver rk4", "argument --solver: invalid choice: 'rk4' (choose from"),
    ],
)  # fmt: skip
def test_flow_user_errors_are_one_line_exit_2(home, tmp_path, capsys, command, expected):
    cache, trained = home
    argv = [a.replace("{t}", str(tmp_path)) for a in command.split()]
    assert main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], lines
    assert captured.out == "" and not (tmp_path / "x.npz").exists() and trained == [] and not cache.exists()


# ---------------------------------------------------------------- the book's entries
def test_the_chapter_8_entries_match_chapter_6s_models():
    for flow_name, ddpm_name in (("ring-flow", "ring-ddpm"), ("digits-flow", "digits-ddpm")):
        entry, ddpm = zoo.entry(flow_name), zoo.entry(ddpm_name)
        assert entry.family == "flow" and entry.chapter == 8
        assert entry.spec.network == ddpm.spec.network and entry.data == ddpm.data
        assert entry.sample_shape == ddpm.sample_shape and entry.train_threads == ddpm.train_threads
        assert entry.train.steps <= ddpm.train.steps


@pytest.mark.parametrize(
    "name, key, shape", [("ring-flow", "points", (5, 2)), ("digits-flow", "images", (5, 1, 8, 8))]
)
def test_sample_the_zoo_flows_end_to_end(name, key, shape, home, tmp_path, request, capsys):
    """The real entries (their data and networks), with training cut to 3 steps."""
    cache, trained = home
    real = zoo.entry(name)
    zoo.register(replace(real, train=replace(real.train, steps=3)))
    request.addfinalizer(lambda: zoo.register(real))
    out = tmp_path / f"{name}.npz"
    assert main(["sample", name, "--n", "5", "--out", str(out), "--steps", "2"]) == 0
    assert capsys.readouterr().out.startswith(f"sampled 5 {key} from {name} with heun (2 steps")
    assert trained == [name]
    with np.load(out) as npz:
        assert npz[key].shape == shape and np.isfinite(npz[key]).all()
    record = json.loads(next(cache.glob(f"{name}-*.json")).read_text())
    assert record["family"] == "flow" and len(record["losses"]) == 3
    assert math.isfinite(record["losses"][-1])
