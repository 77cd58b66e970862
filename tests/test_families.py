"""A model family added from outside the library, through the public API only: the registry
(``family.register_family``), a dataset (``data.register_dataset``) and zoo entries
(``zoo.register``), one trained on the outputs of the other. Adding it touched this file alone:
no shared module of the library learns its name, and the zoo and the command line train, cache
and sample it like the book's own families."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import pytest
import torch
from torch import nn

from diffusion_lib import data, zoo
from diffusion_lib.__main__ import family_options, main
from diffusion_lib.family import (
    Family,
    SampleOption,
    as_arrays,
    families,
    get_family,
    number_in,
    register_family,
    unregister_family,
)
from diffusion_lib.train import TrainConfig

MEAN, STD = 3.0, 0.5  # the data: N(MEAN, STD²) in each of 2 coordinates


class Gaussian(nn.Module):
    """A diagonal Gaussian with a learned mean and log standard deviation."""

    def __init__(self, dim: int):
        super().__init__()
        self.mean = nn.Parameter(torch.zeros(dim))
        self.log_std = nn.Parameter(torch.zeros(dim))


@dataclass(frozen=True)
class GaussianSpec:
    dim: int = 2


def gaussian_nll(model: Gaussian, batch: list, generator: torch.Generator) -> torch.Tensor:
    """The negative log-likelihood per coordinate, up to ½ log 2π."""
    z = (batch[0] - model.mean) / model.log_std.exp()
    return (0.5 * z**2 + model.log_std).mean()


class GaussianFamily(Family):
    name = "test-gaussian"
    spec_type = GaussianSpec
    sample_options = (SampleOption("--temperature", {"type": number_in(0.0, 10.0), "help": "scales σ"}),)
    sample_arrays = {"points": "float32 (N, 2)"}
    outputs = {"samples": "n draws (kwargs: n, seed, temperature)"}

    def build(self, entry):
        torch.manual_seed(entry.init_seed)
        return Gaussian(entry.spec.dim)

    def train(self, entry, data, *, dependencies, checkpoint, progress, device):
        return self.train_network(
            entry, gaussian_nll, data, checkpoint=checkpoint, progress=progress, device=device
        )

    def sampling_options(self, entry, given):
        temperature = given["temperature"]
        return {"temperature": 1.0 if temperature is None else temperature}

    def draw(self, model, n, generator, temperature=1.0):
        z = torch.randn(n, model.mean.shape[0], generator=generator)
        return model.mean + temperature * model.log_std.exp() * z

    def sample(self, loaded, n, *, batch_size, generator, options):
        with torch.no_grad():
            return as_arrays(self.draw(loaded.model, n, generator, options["temperature"]))

    def describe(self, entry, options):
        return f"temperature {options['temperature']:g}"

    def output(self, loaded, name, *, progress=True, **kwargs):
        if name != "samples":
            return super().output(loaded, name, progress=progress, **kwargs)
        with torch.no_grad():
            generator = torch.Generator().manual_seed(kwargs["seed"])
            return {"points": self.draw(loaded.model, kwargs["n"], generator, kwargs.get("temperature", 1.0))}


def gaussian_data(n: int = 512, seed: int = 0) -> list:
    generator = torch.Generator().manual_seed(seed)
    return [MEAN + STD * torch.randn(n, 2, generator=generator)]


CONFIG = TrainConfig(steps=300, batch_size=128, lr=0.05, warmup_steps=1, ema_decay=0.95)
BASE = zoo.ZooEntry(
    name="test-gauss",
    description="a Gaussian fitted to Gaussian data, for tests",
    family="test-gaussian",
    spec=GaussianSpec(),
    data=zoo.DataSpec.dataset("test-gaussian-data", n=512, seed=0),
    sample_shape=(2,),
    train=CONFIG,
    train_threads=1,
    chapter=16,
)
# A second model trained on 512 samples of the first at temperature 3 (σ three times the first's,
# so that what it learnt tells which data it saw): a dependency through its data.
ON_TOP = replace(
    BASE,
    name="test-gauss-of-gauss",
    description="a Gaussian fitted to the first one's samples, for tests",
    data=zoo.DataSpec.outputs_of("test-gauss", "samples", n=512, seed=1, temperature=3.0),
)


@pytest.fixture
def gaussian(tmp_path, monkeypatch):
    """The family, its dataset and both entries registered; a cache in tmp_path; trainings counted."""
    monkeypatch.setenv(zoo.ENV_HOME, str(tmp_path / "cache"))
    family = register_family(GaussianFamily())
    trained = []
    real_train = family.train

    def counted(entry, *args, **kwargs):
        trained.append(entry.name)
        return real_train(entry, *args, **kwargs)

    family.train = counted
    data.register_dataset("test-gaussian-data", gaussian_data)
    zoo.register(BASE)
    zoo.register(ON_TOP)
    yield trained
    for name in (BASE.name, ON_TOP.name, "test-cycle-a", "test-cycle-b"):
        zoo.unregister(name)
    unregister_family(GaussianFamily.name)


def test_a_family_registers_and_trains_through_the_public_api(gaussian):
    assert get_family("test-gaussian").name == "test-gaussian" and "test-gaussian" in families()
    loaded = zoo.load(BASE.name, progress=False)
    assert (
        gaussian == ["test-gauss"] and loaded.diffusion is None and loaded.record["family"] == "test-gaussian"
    )
    # Maximum likelihood on 512 points: the mean within 4 standard errors (σ/√512 ≈ 0.022).
    fitted_mean, fitted_std = loaded.model.mean.detach(), loaded.model.log_std.detach().exp()
    assert (fitted_mean - MEAN).abs().max() < 4 * STD / math.sqrt(512), fitted_mean
    assert (fitted_std - STD).abs().max() < 0.1, fitted_std
    again = zoo.load(BASE.name, progress=False)
    assert gaussian == ["test-gauss"], "the second load reads the cache"
    assert torch.equal(again.model.mean, loaded.model.mean)


def test_a_model_trains_on_another_models_outputs(gaussian, tmp_path):
    top = zoo.load(ON_TOP.name, progress=False)
    assert gaussian == ["test-gauss", "test-gauss-of-gauss"], "the dependency is trained first"
    base = zoo.load(BASE.name, progress=False)
    out = zoo.outputs(BASE.name, "samples", n=512, seed=1, temperature=3.0, progress=False)
    points = out.tensors["points"]
    assert points.shape == (512, 2) and gaussian == ["test-gauss", "test-gauss-of-gauss"], "cached output"
    # It fits the first model's samples at temperature 3, not the first model's data: its σ is
    # three times the first's (0.5 → 1.5), its mean theirs (standard error 1.5/√512 ≈ 0.066).
    top_std, base_std = top.model.log_std.detach().exp(), base.model.log_std.detach().exp()
    assert (top_std - points.std(0)).abs().max() < 0.15 and (top_std - 3 * base_std).abs().max() < 0.3
    assert (top.model.mean - points.mean(0)).abs().max() < 0.15
    assert top.record["config"]["dependency_keys"] == {"test-gauss": zoo.entry("test-gauss").key()}


def test_retraining_a_dependency_retrains_the_model_on_top(gaussian):
    zoo.load(ON_TOP.name, progress=False)
    before = zoo.entry(ON_TOP.name).key()
    zoo.register(replace(BASE, train=replace(CONFIG, steps=301)))  # another base model
    assert zoo.entry(ON_TOP.name).key() != before, "the dependency's key is part of the key"
    zoo.load(ON_TOP.name, progress=False)
    assert gaussian == ["test-gauss", "test-gauss-of-gauss", "test-gauss", "test-gauss-of-gauss"]
    zoo.register(BASE)
    assert zoo.entry(ON_TOP.name).key() == before
    zoo.load(ON_TOP.name, progress=False)
    assert len(gaussian) == 4, "back to the first base model: both are still cached"


def test_dependency_cycles_and_unknown_outputs_are_refused(gaussian):
    zoo.register(replace(BASE, name="test-cycle-a", depends_on=("test-cycle-b",)))
    zoo.register(replace(BASE, name="test-cycle-b", depends_on=("test-cycle-a",)))
    with pytest.raises(
        ValueError, match="depends_on must not form a cycle, got test-cycle-a -> test-cycle-b -> test-cycle-a"
    ):
        zoo.entry("test-cycle-a").key()
    with pytest.raises(ValueError, match="output must be one of 'samples' for 'test-gauss' .*got 'latents'"):
        zoo.outputs(BASE.name, "latents", progress=False)
    zoo.register(replace(ON_TOP, data=zoo.DataSpec.outputs_of("nope", "samples")))
    with pytest.raises(ValueError, match="name must be one of .*, got 'nope'"):
        zoo.load(ON_TOP.name, progress=False)
    assert gaussian == []


def test_the_command_line_samples_a_new_family_with_its_own_options(gaussian, tmp_path, capsys):
    out = tmp_path / "g.npz"
    assert main(["sample", BASE.name, "--n", "6", "--out", str(out), "--temperature", "0"]) == 0
    assert capsys.readouterr().out.startswith(
        f"sampled 6 points from {BASE.name} with temperature 0 (seed 0)"
    )
    points = np.load(out)["points"]
    mean = zoo.load(BASE.name, progress=False).model.mean.detach().numpy()
    assert points.shape == (6, 2) and np.allclose(points, mean), "temperature 0 draws the mean"
    assert main(["sample", "--help"]) == 0
    help_text = " ".join(capsys.readouterr().out.split())
    assert "--temperature" in help_text and "'points' float32 (N, 2)" in help_text
    assert main(["list"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith(f"{BASE.name} "))
    assert line.split()[1] == "test-gaussian"
    for argv, message in (
        (["sample", BASE.name, "--n", "1", "--out", str(out), "--steps", "3"],
         "--steps applies to diffusion, diffwave, flow, latent-diffusion, unclip and video-diffusion models; "
         "'test-gauss' is a "
         "test-gaussian model and takes --temperature"),
        (["sample", "digits-ddpm", "--n", "1", "--out", str(out), "--temperature", "2"],
         "--temperature applies to test-gaussian models; 'digits-ddpm' is a diffusion model and takes"),
        (["sample", BASE.name, "--n", "1", "--out", str(out), "--temperature", "11"],
         "argument --temperature: must be a number in [0, 10], got '11'"),
    ):  # fmt: skip
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, err
    assert gaussian == ["test-gauss"]


def test_two_families_may_declare_one_flag_alike(gaussian):
    from diffusion_lib.family import int_in

    diffusion_steps = {o.flag: o for o in get_family("diffusion").sample_options}["--steps"]

    class Stepped(GaussianFamily):
        name = "test-stepped"
        # a new call of int_in(1): the same argparse type object, so the declarations agree
        sample_options = (
            SampleOption("--steps", {"type": int_in(1), "help": diffusion_steps.kwargs["help"]}),
        )

    register_family(Stepped())
    try:
        assert family_options()["--steps"][1] == [
            "diffusion",
            "diffwave",
            "flow",
            "latent-diffusion",
            "test-stepped",
            "unclip",
            "video-diffusion",
        ]
    finally:
        unregister_family("test-stepped")


def test_two_families_may_not_declare_one_flag_differently(gaussian):
    class Clash(GaussianFamily):
        name = "test-clash"
        sample_options = (SampleOption("--steps", {"type": int, "help": "something else"}),)

    register_family(Clash())
    try:
        with pytest.raises(ValueError, match="family 'test-clash' declares --steps unlike diffusion"):
            family_options()
    finally:
        unregister_family("test-clash")


def test_bad_families_are_refused():
    class NoName(GaussianFamily):
        name = "Bad Name"

    class NotADataclass(GaussianFamily):
        name = "test-bad"
        spec_type = dict

    with pytest.raises(ValueError, match="family name must be lowercase letters"):
        register_family(NoName())
    with pytest.raises(ValueError, match="spec_type of family 'test-bad' must be a dataclass"):
        register_family(NotADataclass())
    with pytest.raises(ValueError, match="family must be a Family instance, got str"):
        register_family("gan")
    with pytest.raises(
        ValueError,
        match="family must be one of 'classifier', 'clip', 'clip-prior', 'diffusion', 'diffwave', 'flow', "
        "'gan', "
        "'latent-diffusion', 'progressive-distillation', 'unclip', 'unclip-decoder', 'vae', "
        "'video-diffusion', got 'gans'",
    ):
        get_family("gans")


def test_a_family_that_returns_undeclared_arrays_is_a_bug_not_a_user_error(gaussian, tmp_path):
    get_family("test-gaussian").sample_arrays = {}  # the instance's own, dropped with the family
    with pytest.raises(
        RuntimeError, match=r"family 'test-gaussian' returned arrays it does not declare: \['points'\]"
    ):
        main(["sample", BASE.name, "--n", "2", "--out", str(tmp_path / "x.npz")])
    assert not (tmp_path / "x.npz").exists()
