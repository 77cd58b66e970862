"""The training loop (train.py), the model zoo (zoo.py) and the DDPM sampler (samplers.py)."""

import json
import math
import os
from dataclasses import replace

import pytest
import torch
from safetensors.torch import load as load_safetensors
from torch import nn

from diffusion_lib import data, files, samplers, train, zoo
from diffusion_lib.__main__ import main as main_cli
from diffusion_lib.diffusion import GaussianDiffusion
from diffusion_lib.families.classifier import ClassifierSpec
from diffusion_lib.families.diffusion import DiffusionSpec, reference_samples
from diffusion_lib.families.gan import GANSpec
from diffusion_lib.family import families
from diffusion_lib.gan import GANConfig
from diffusion_lib.nets import MLPDenoiser
from diffusion_lib.schedules import get_beta_schedule
from diffusion_lib.seeds import ENV_SEED_SHIFT, SEED_STRIDE
from diffusion_lib.train import TrainConfig

# ---------------------------------------------------------------- helpers


DIFFUSION = GaussianDiffusion(get_beta_schedule("cosine", 10))
POINTS = torch.randn(64, 2, generator=torch.Generator().manual_seed(0))
CONFIG = TrainConfig(steps=10, batch_size=8, lr=1e-2, warmup_steps=3, ema_decay=0.9, checkpoint_every=5)


def tiny_net(seed=0):
    torch.manual_seed(seed)
    return MLPDenoiser(data_dim=2, hidden=16, num_layers=1, time_dim=8)


def diffusion_loss(model, batch, generator):
    return DIFFUSION.training_losses(model, batch[0], generator=generator)["loss"].mean()


def run(config=CONFIG, *, seed=0, loss_fn=diffusion_loss, checkpoint=None):
    return train.train(tiny_net(seed), loss_fn, POINTS, config, checkpoint=checkpoint, progress=False)


def assert_same_weights(a: nn.Module, b: nn.Module):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


def weights_differ(a: nn.Module, b: nn.Module) -> bool:
    return any(not torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


# ---------------------------------------------------------------- TrainConfig
@pytest.mark.parametrize(
    "change, message",
    [
        ({"steps": 0}, "steps must be an int >= 1, got 0"),
        ({"steps": 2.0}, "steps must be an int >= 1, got 2.0"),
        ({"steps": True}, "steps must be an int >= 1, got True"),
        ({"batch_size": 0}, "batch_size must be an int >= 1, got 0"),
        ({"checkpoint_every": -1}, "checkpoint_every must be an int >= 1, got -1"),
        ({"warmup_steps": -1}, "warmup_steps must be an int >= 0, got -1"),
        ({"lr": 0.0}, "lr must be a finite number > 0, got 0.0"),
        ({"lr": math.nan}, "lr must be a finite number > 0, got nan"),
        ({"lr": True}, "lr must be a finite number > 0, got True"),
        ({"weight_decay": -0.1}, "weight_decay must be a finite number >= 0, got -0.1"),
        ({"weight_decay": math.inf}, "weight_decay must be a finite number >= 0, got inf"),
        ({"ema_decay": 1.0}, r"ema_decay must be in \[0, 1\), got 1.0"),
        ({"ema_decay": -0.5}, r"ema_decay must be in \[0, 1\), got -0.5"),
        ({"grad_clip": 0}, "grad_clip must be a finite number > 0, got 0"),
        ({"seed": 1.5}, "seed must be an int, got 1.5"),
        ({"seed": False}, "seed must be an int, got False"),
    ],
)
def test_train_config_rejects_bad_values(change, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**change)


def test_train_rejects_bad_data_and_loss():
    with pytest.raises(ValueError, match="share a non-empty first dimension"):
        train.train(tiny_net(), diffusion_loss, [POINTS, torch.zeros(3)], CONFIG, progress=False)
    with pytest.raises(TypeError, match="data must be a tensor or a sequence of tensors"):
        train.train(tiny_net(), diffusion_loss, [[1.0, 2.0]], CONFIG, progress=False)
    with pytest.raises(ValueError, match=r"loss_fn must return a scalar tensor, got torch.Size\(\[8\]\)"):
        run(loss_fn=lambda m, b, g: DIFFUSION.training_losses(m, b[0], generator=g)["loss"])


# ---------------------------------------------------------------- EMA
def test_ema_update_by_hand():
    model, ema = nn.BatchNorm1d(2), nn.BatchNorm1d(2)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([1.0, 3.0]))
        model.bias.copy_(torch.tensor([-2.0, 0.5]))
        model.running_mean.copy_(torch.tensor([7.0, 8.0]))
        ema.weight.copy_(torch.tensor([0.0, 1.0]))
        ema.bias.copy_(torch.tensor([4.0, 0.5]))
    train.ema_update(ema, model, 0.75)
    # 0.75 · ema + 0.25 · model, e.g. 0.75·0 + 0.25·1 = 0.25 and 0.75·4 + 0.25·(−2) = 2.5
    assert torch.allclose(ema.weight, torch.tensor([0.25, 1.5]))
    assert torch.allclose(ema.bias, torch.tensor([2.5, 0.5]))
    assert torch.equal(ema.running_mean, torch.tensor([7.0, 8.0])), "buffers are copied"
    assert torch.equal(model.weight, torch.tensor([1.0, 3.0])), "the model is untouched"
    train.ema_update(ema, model, 0.0)
    assert torch.equal(ema.weight, model.weight)
    train.ema_update(ema, model, 1.0)
    assert torch.equal(ema.weight, model.weight)


def test_ema_update_rejects_bad_input():
    with pytest.raises(ValueError, match=r"decay must be in \[0, 1\], got 1.5"):
        train.ema_update(nn.Linear(2, 2), nn.Linear(2, 2), 1.5)
    with pytest.raises(ValueError, match=r"ema must have the model's parameters \(2 tensors\), got 1"):
        train.ema_update(nn.Linear(2, 2, bias=False), nn.Linear(2, 2), 0.5)


# ---------------------------------------------------------------- determinism
def test_training_is_deterministic():
    a, b, c = run(), run(), run(replace(CONFIG, seed=1))
    assert_same_weights(a.model, b.model)
    assert_same_weights(a.ema, b.ema)
    assert a.losses == b.losses and len(a.losses) == CONFIG.steps
    assert weights_differ(a.model, c.model) and a.losses != c.losses
    assert weights_differ(a.model, a.ema), "the EMA is an average, not a copy"
    assert not a.ema.training and not any(p.requires_grad for p in a.ema.parameters())


def test_training_works_when_the_caller_switched_gradients_off():
    # A chapter that evaluates with torch.set_grad_enabled(False) may ask the zoo to train.
    with torch.no_grad():
        quiet = run()
        assert not torch.is_grad_enabled(), "the caller's mode is restored after training"
    assert_same_weights(quiet.model, run().model)
    assert_same_weights(quiet.ema, run().ema)


# ---------------------------------------------------------------- checkpoints
def test_checkpoint_round_trip(tmp_path):
    tensors = {"a": torch.randn(3, 2), "b": torch.arange(4), "c": torch.tensor([1, 2], dtype=torch.uint8)}
    meta = {"step": 5, "losses": [0.5, 0.25], "nested": {"x": [1, 2]}}
    train.save_checkpoint(tmp_path / "run.v1", tensors, meta)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.v1.json", "run.v1.safetensors"]
    loaded, loaded_meta = train.load_checkpoint(tmp_path / "run.v1")
    assert loaded.keys() == tensors.keys()
    for key in tensors:
        assert loaded[key].dtype == tensors[key].dtype and torch.equal(loaded[key], tensors[key])
    assert {k: loaded_meta[k] for k in meta} == meta and loaded_meta["format"] == train.CHECKPOINT_FORMAT


def test_load_checkpoint_rejects_missing_and_corrupt_files(tmp_path):
    prefix = tmp_path / "ck"
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        train.load_checkpoint(prefix)
    train.save_checkpoint(prefix, {"a": torch.zeros(2)}, {"step": 1})
    json_path = tmp_path / "ck.json"
    good = json_path.read_text()
    json_path.write_text("{not json")
    with pytest.raises(ValueError, match="corrupt checkpoint"):
        train.load_checkpoint(prefix)
    json_path.write_text("[1, 2]")
    with pytest.raises(ValueError, match=f"has format 'list', expected {train.CHECKPOINT_FORMAT}"):
        train.load_checkpoint(prefix)
    json_path.write_text(good)
    (tmp_path / "ck.safetensors").write_bytes(b"\x00garbage")
    with pytest.raises(ValueError, match="corrupt checkpoint"):
        train.load_checkpoint(prefix)


def test_a_crash_between_the_two_checkpoint_files_is_detected(tmp_path, monkeypatch):
    prefix = tmp_path / "ck"
    train.save_checkpoint(prefix, {"a": torch.zeros(2)}, {"step": 1})
    real_write, calls = files.atomic_write_bytes, []

    def write_then_crash(path, data):
        calls.append(path)
        if len(calls) == 2:  # the JSON, written after the tensors
            raise KeyboardInterrupt
        return real_write(path, data)

    monkeypatch.setattr(train, "atomic_write_bytes", write_then_crash)
    with pytest.raises(KeyboardInterrupt):
        train.save_checkpoint(prefix, {"a": torch.ones(2)}, {"step": 2})
    with pytest.raises(ValueError, match="does not match its .json"):
        train.load_checkpoint(prefix)  # new tensors, old JSON: not a checkpoint


class Interrupt(Exception):
    pass


def test_an_interrupted_run_resumes_to_the_same_weights(tmp_path):
    straight = run()
    prefix = tmp_path / "partial"
    calls = []

    def crash_at_step_8(model, batch, generator):
        calls.append(1)
        if len(calls) == 8:
            raise Interrupt
        return diffusion_loss(model, batch, generator)

    with pytest.raises(Interrupt):
        run(loss_fn=crash_at_step_8, checkpoint=prefix)
    _, meta = train.load_checkpoint(prefix)
    assert meta["step"] == 5 and len(meta["losses"]) == 5

    calls.clear()

    def counting(model, batch, generator):
        calls.append(1)
        return diffusion_loss(model, batch, generator)

    resumed = run(seed=123, loss_fn=counting, checkpoint=prefix)  # other initial weights: overwritten
    assert len(calls) == 5, "only steps 5..9 are run again"
    assert_same_weights(resumed.model, straight.model)
    assert_same_weights(resumed.ema, straight.ema)
    assert resumed.losses == straight.losses
    _, meta = train.load_checkpoint(prefix)
    assert meta["step"] == CONFIG.steps


def a_state(seed=0):
    """A TrainingState of a tiny network after two AdamW steps (so the optimiser has state)."""
    model = tiny_net(seed)
    ema = tiny_net(seed + 1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    schedule = train.warmup_schedule(optimizer, CONFIG)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(2):
        optimizer.zero_grad()
        model(POINTS, torch.zeros(64, dtype=torch.long)).pow(2).mean().backward()
        optimizer.step()
        schedule.step()
    torch.randn(3, generator=generator)
    series = {"losses": [1.0, 0.5]}
    modules = {"model": model, "ema": ema}
    return train.TrainingState(modules, {"opt": (optimizer, schedule)}, generator, series)


def test_a_training_state_restores_what_it_snapshot(tmp_path):
    state = a_state(0)
    tensors, meta = state.snapshot()
    expected_next = torch.randn(4, generator=state.generator)
    other = a_state(7)  # other weights, optimiser moments, generator and losses
    other.restore(tensors, meta)
    assert_same_weights(other.modules["model"], state.modules["model"])
    assert_same_weights(other.modules["ema"], state.modules["ema"])
    a, b = other.optimizers["opt"][0].state_dict(), state.optimizers["opt"][0].state_dict()
    for index in a["state"]:
        for key, value in a["state"][index].items():
            assert torch.equal(torch.as_tensor(value), torch.as_tensor(b["state"][index][key])), key
    assert other.optimizers["opt"][1].state_dict() == state.optimizers["opt"][1].state_dict()
    assert torch.equal(torch.randn(4, generator=other.generator), expected_next), "the generator too"
    assert other.series == {"losses": [1.0, 0.5]}
    # and through a checkpoint on disk
    state.save(tmp_path / "ck", config={"a": 1}, step=2)
    third = a_state(9)
    assert third.resume(tmp_path / "ck", config={"a": 1}, steps=10) == 2
    assert_same_weights(third.modules["model"], state.modules["model"])


def test_a_training_state_resumes_only_its_own_config_and_step_count(tmp_path):
    state = a_state(0)
    state.save(tmp_path / "ck", config={"a": 1}, step=2)
    for config, steps in (({"a": 2}, 10), ({"a": 1}, 1)):  # another run; more steps than asked
        other = a_state(7)
        before = other.snapshot()
        assert other.resume(tmp_path / "ck", config=config, steps=steps) == 0
        assert all(torch.equal(before[0][k], v) for k, v in other.snapshot()[0].items() if k != "torch_rng")
    assert a_state(7).resume(tmp_path / "missing", config={"a": 1}, steps=10) == 0


def test_a_checkpoint_of_an_older_format_is_started_afresh(tmp_path):
    state = a_state(0)
    tensors, meta = state.snapshot()
    train.save_checkpoint(tmp_path / "ck", tensors, {**meta, "config": {"a": 1}, "step": 2})
    json_path = tmp_path / "ck.json"
    old = json.loads(json_path.read_text())
    old["format"] = train.CHECKPOINT_FORMAT - 1
    json_path.write_text(json.dumps(old))
    other = a_state(7)
    model_before = {k: v.clone() for k, v in other.modules["model"].state_dict().items()}
    assert other.resume(tmp_path / "ck", config={"a": 1}, steps=10) == 0
    assert all(torch.equal(v, model_before[k]) for k, v in other.modules["model"].state_dict().items())


def test_a_training_state_with_fewer_losses_than_steps_is_not_resumed(tmp_path):
    state = a_state(0)
    state.save(tmp_path / "ck", config={"a": 1}, step=3)  # 2 losses recorded, 3 steps claimed
    other = a_state(7)
    model_before = {k: v.clone() for k, v in other.modules["model"].state_dict().items()}
    assert other.resume(tmp_path / "ck", config={"a": 1}, steps=10) == 0
    assert all(torch.equal(v, model_before[k]) for k, v in other.modules["model"].state_dict().items())
    assert other.series == {"losses": [1.0, 0.5]}, "restored as it was, not half-loaded"


def test_a_training_state_refuses_names_that_would_clash_in_its_checkpoint():
    state = a_state(0)
    model, opt = state.modules["model"], state.optimizers["opt"]
    for modules, optimizers, series in (
        ({"opt": model}, {"opt": opt}, {}),  # a network and an optimiser of one name
        ({"model": model}, {"opt": opt}, {"model": []}),
        ({"model": model}, {"opt": opt}, {"opt_schedule": []}),
        ({"rng": model}, {"opt": opt}, {}),
        ({"model": model}, {"opt": opt}, {"step": []}),
    ):
        with pytest.raises(ValueError, match="must be distinct and not among rng, torch_rng"):
            train.TrainingState(modules, optimizers, state.generator, series)


def test_the_running_loss_and_the_ema_warm_up():
    assert train.smoothed(None, 3.0) == 3.0
    assert train.smoothed(1.0, 3.0) == pytest.approx(0.98 * 1.0 + 0.02 * 3.0)
    assert train.ema_decay_at(0, 0.999) == pytest.approx(1 / 10)
    assert train.ema_decay_at(90, 0.999) == pytest.approx(91 / 100)
    assert train.ema_decay_at(10**6, 0.999) == 0.999


def test_a_checkpoint_of_another_config_is_not_resumed(tmp_path):
    prefix = tmp_path / "partial"
    run(checkpoint=prefix)
    other = replace(CONFIG, lr=5e-3)
    assert_same_weights(run(other, checkpoint=prefix).model, run(other).model)


def test_a_checkpoint_that_fails_half_way_through_loading_is_ignored_whole(tmp_path):
    # Model and EMA weights load, then the optimizer state is missing a tensor: training must
    # start from the fresh initial state, not from the checkpoint's weights.
    prefix = tmp_path / "partial"
    run(replace(CONFIG, steps=5), checkpoint=prefix)
    json_path = tmp_path / "partial.json"
    meta = json.loads(json_path.read_text())
    meta["config"]["steps"] = CONFIG.steps
    meta["optimizer"]["state"]["0"]["no_such_tensor"] = "tensor"
    json_path.write_text(json.dumps(meta))
    assert_same_weights(run(checkpoint=prefix).model, run().model)


# ---------------------------------------------------------------- atomic writes
@pytest.mark.parametrize("crash_in", ["replace", "fsync"])
def test_a_crash_mid_write_leaves_the_old_file(tmp_path, monkeypatch, crash_in):
    path = tmp_path / "model.json"
    path.write_bytes(b"old")

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(files.os, crash_in, crash)
    with pytest.raises(OSError, match="disk full"):
        files.atomic_write_bytes(path, b"new content")
    monkeypatch.undo()
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["model.json"], "no temporary file is left"
    files.atomic_write_bytes(path, b"new content")
    assert path.read_bytes() == b"new content"


# ---------------------------------------------------------------- the zoo
# The tiny models' data: 32 fixed points, registered as a dataset (the public API).
data.register_dataset("test-fixed-points", lambda: [POINTS * 0.5])

TINY = zoo.ZooEntry(
    name="test-tiny.points",
    description="a tiny MLP on 64 fixed points, for tests",
    family="diffusion",
    spec=DiffusionSpec(
        network={"type": "mlp", "data_dim": 2, "hidden": 16, "num_layers": 1, "time_dim": 8},
        schedule="cosine",
        num_timesteps=10,
    ),
    data=zoo.DataSpec.dataset("test-fixed-points"),
    sample_shape=(2,),
    train=TrainConfig(steps=4, batch_size=8, warmup_steps=1, checkpoint_every=2),
    train_threads=1,
    chapter=6,
)


def registered(entry, tmp_path, monkeypatch):
    """Register `entry` with a cache in tmp_path; yield the entries each family trained."""
    monkeypatch.setenv(zoo.ENV_HOME, str(tmp_path / "cache"))
    monkeypatch.delenv(ENV_SEED_SHIFT, raising=False)  # the tests name the unshifted keys
    trained = []
    for family in families().values():

        def counted(zoo_entry, *args, _train=family.train, **kwargs):
            trained.append(zoo_entry)
            return _train(zoo_entry, *args, **kwargs)

        monkeypatch.setattr(family, "train", counted)
    zoo.register(entry)
    yield trained
    zoo.unregister(entry.name)


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    """TINY registered, with a cache in tmp_path and its trainings counted."""
    yield from registered(TINY, tmp_path, monkeypatch)


def cache_files(tmp_path):
    return sorted(p.name for p in (tmp_path / "cache").iterdir())


def test_zoo_trains_once_then_loads_from_the_cache(tiny, tmp_path):
    first = zoo.load(TINY.name, progress=False)
    stem = f"{TINY.name}-{TINY.key()}"
    assert cache_files(tmp_path) == [f"{stem}.json", f"{stem}.safetensors"], "no checkpoint left over"
    mtimes = [os.stat(tmp_path / "cache" / name).st_mtime_ns for name in cache_files(tmp_path)]
    second = zoo.load(TINY.name, progress=False)
    assert len(tiny) == 1, "the second load does not train"
    assert second.record == first.record and second.record["key"] == TINY.key()
    assert len(second.record["losses"]) == TINY.train.steps
    assert second.record["family"] == "diffusion" and second.record["device"] == "cpu"
    assert_same_weights(second.model, first.model)
    assert [os.stat(tmp_path / "cache" / n).st_mtime_ns for n in cache_files(tmp_path)] == mtimes
    assert not second.model.training and isinstance(second.diffusion, GaussianDiffusion)
    zoo.load(TINY.name, retrain=True, progress=False)
    assert len(tiny) == 2, "retrain=True trains again"


def test_the_zoo_trains_what_train_would(tiny):
    """The cached network is the EMA of train() on the entry's data with the family's loss."""
    loaded = zoo.load(TINY.name, progress=False)
    torch.manual_seed(TINY.init_seed)
    net = MLPDenoiser(data_dim=2, hidden=16, num_layers=1, time_dim=8)
    diffusion = GaussianDiffusion(get_beta_schedule("cosine", 10))

    def loss(model, batch, generator):
        return diffusion.training_losses(model, batch[0], generator=generator)["loss"].mean()

    by_hand = train.train(net, loss, [POINTS * 0.5], TINY.train, progress=False)
    assert_same_weights(loaded.model, by_hand.ema)
    assert loaded.record["losses"] == by_hand.losses


@pytest.mark.parametrize("suffix", [".safetensors", ".json"])
@pytest.mark.parametrize("garbage", [b"", b"\x00\x01garbage", b'{"key": "0"}'])
def test_zoo_retrains_a_corrupt_cache(tiny, tmp_path, capsys, suffix, garbage):
    first = zoo.load(TINY.name, progress=False)
    path = tmp_path / "cache" / f"{TINY.name}-{TINY.key()}{suffix}"
    path.write_bytes(garbage)
    again = zoo.load(TINY.name, progress=False)
    assert len(tiny) == 2, "the corrupt cache was retrained"
    assert "is unusable" in capsys.readouterr().err
    assert_same_weights(again.model, first.model)  # the same seed gives the same model
    weights = load_safetensors((tmp_path / "cache" / f"{TINY.name}-{TINY.key()}.safetensors").read_bytes())
    assert weights.keys() == first.model.state_dict().keys(), "the file is valid again"
    zoo.load(TINY.name, progress=False)
    assert len(tiny) == 2


def test_zoo_retrains_weights_that_do_not_match_their_record(tiny, tmp_path):
    zoo.load(TINY.name, progress=False)
    path = tmp_path / "cache" / f"{TINY.name}-{TINY.key()}.safetensors"
    from safetensors.torch import save as save_safetensors

    weights = load_safetensors(path.read_bytes())
    path.write_bytes(save_safetensors({k: torch.zeros_like(v) for k, v in weights.items()}))
    zoo.load(TINY.name, progress=False)
    assert len(tiny) == 2


def test_a_changed_config_is_another_model(tiny, tmp_path):
    assert replace(TINY, train=replace(TINY.train, steps=5)).key() != TINY.key()
    network = {**TINY.spec.network, "hidden": 8}
    assert replace(TINY, spec=replace(TINY.spec, network=network)).key() != TINY.key()
    assert replace(TINY, spec=replace(TINY.spec, num_timesteps=11)).key() != TINY.key()
    assert replace(TINY, spec=replace(TINY.spec, prediction_type="v")).key() != TINY.key()
    assert replace(TINY, data=zoo.DataSpec.dataset("ring", n=64)).key() != TINY.key()
    assert replace(TINY, train_threads=2).key() != TINY.key()
    # what only describes the model is not part of its identity
    assert replace(TINY, description="another line", chapter=9).key() == TINY.key()
    zoo.load(TINY.name, progress=False)
    other = zoo.load(TINY.name, steps=3, seed=1, progress=False)
    assert other.entry.train.steps == 3 and other.entry.train.seed == 1
    assert len(other.record["losses"]) == 3 and other.record["key"] != TINY.key()
    assert len(cache_files(tmp_path)) == 4, "both models are cached"
    zoo.load(TINY.name, progress=False)
    zoo.load(TINY.name, steps=3, seed=1, progress=False)
    zoo.load(TINY.name, steps=None, progress=False)  # None means "the model's own"
    assert len(tiny) == 2


def test_the_training_device_is_part_of_the_key(tiny, monkeypatch):
    on_cpu = TINY.key()
    monkeypatch.setenv(train.ENV_DEVICE, "meta")  # a device torch knows; nothing is trained here
    assert train.default_device() == torch.device("meta") and TINY.key() != on_cpu
    monkeypatch.setenv(train.ENV_DEVICE, "cpu")
    assert TINY.key() == on_cpu
    for bad, message in (("gpu0", "must name a torch device"), ("cuda", "torch sees no CUDA device")):
        if bad == "cuda" and torch.cuda.is_available():
            continue
        monkeypatch.setenv(train.ENV_DEVICE, bad)
        with pytest.raises(ValueError, match=f"DIFFUSION_LIB_DEVICE .*{message}|{message}"):
            train.default_device()


def test_the_seed_shift_trains_and_caches_another_model(tiny, tmp_path, monkeypatch):
    base = zoo.load(TINY.name, progress=False)
    monkeypatch.setenv(ENV_SEED_SHIFT, "1")
    moved = zoo.load(TINY.name, progress=False)
    assert len(tiny) == 2, "the shifted model is trained, not read from the default's cache"
    assert moved.entry.train.seed == SEED_STRIDE and moved.entry.init_seed == SEED_STRIDE
    assert moved.record["key"] != base.record["key"]
    assert weights_differ(moved.model, base.model)
    # a chapter's "another seed" run moves with the shift too: seed 1 under shift 1 is 1001
    other = zoo.load(TINY.name, seed=1, progress=False)
    assert other.entry.train.seed == SEED_STRIDE + 1
    assert other.record["key"] not in {base.record["key"], moved.record["key"]}
    zoo.load(TINY.name, progress=False)
    assert len(tiny) == 3, "the shifted models are cached under their own keys"
    monkeypatch.setenv(ENV_SEED_SHIFT, "0")
    assert_same_weights(zoo.load(TINY.name, progress=False).model, base.model)
    assert len(tiny) == 3


def test_reference_samples_are_ddpm_from_seeded_noise_and_cached(tiny, tmp_path, monkeypatch):
    ref = reference_samples(TINY.name, 7, seed=3, batch_size=4, progress=False)
    assert ref.x_T.shape == ref.x0.shape == (7, 2) and ref.seconds_per_sample > 0
    assert torch.equal(ref.x_T, torch.randn(7, 2, generator=torch.Generator().manual_seed(3)))
    loaded = zoo.load(TINY.name, progress=False)
    noise = torch.Generator().manual_seed(4)
    by_hand = torch.cat(
        [
            samplers.ddpm(loaded.model, loaded.diffusion, (n, 2), x_T=ref.x_T[k : k + n], generator=noise,
                          clip_denoised=False, progress=False)
            for k, n in ((0, 4), (4, 3))
        ]
    )  # fmt: skip
    assert torch.equal(ref.x0, by_hand), "2-D points: no clipping; noise drawn batch after batch"
    assert sum(name.startswith(f"{TINY.name}-{TINY.key()}.out-") for name in cache_files(tmp_path)) == 2

    def no_sampling(*args, **kwargs):
        raise AssertionError("cached samples must not be drawn again")

    monkeypatch.setattr(samplers, "ddpm", no_sampling)
    again = reference_samples(TINY.name, 7, seed=3, batch_size=4, progress=False)
    assert torch.equal(again.x0, ref.x0) and again.seconds_per_sample == ref.seconds_per_sample


def test_reference_samples_of_a_corrupt_cache_are_drawn_again(tiny, tmp_path, capsys):
    ref = reference_samples(TINY.name, 3, progress=False)
    (path,) = (tmp_path / "cache").glob("*.out-*.safetensors")
    path.write_bytes(b"\x00garbage")
    again = reference_samples(TINY.name, 3, progress=False)
    assert "is unusable" in capsys.readouterr().err
    assert torch.equal(again.x0, ref.x0)
    other = reference_samples(TINY.name, 3, seed=1, progress=False)
    assert not torch.equal(other.x0, ref.x0)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"n": 0}, "n must be an int >= 1, got 0"),
        ({"n": 2.0}, "n must be an int >= 1, got 2.0"),
        ({"n": 2, "seed": -1}, "seed must be an int >= 0, got -1"),
        ({"n": 2, "batch_size": 0}, "batch_size must be an int >= 1, got 0"),
    ],
)
def test_reference_samples_bad_input(tiny, kwargs, message):
    with pytest.raises(ValueError, match=message):
        reference_samples(TINY.name, **kwargs)
    assert len(tiny) == 0, "checked before anything is trained"


def test_reference_samples_need_a_diffusion_model(tiny):
    with pytest.raises(ValueError, match="'digits-classifier' is a classifier; reference samples need"):
        reference_samples("digits-classifier", 2)


def test_outputs_reject_unknown_outputs_and_bad_kwargs(tiny):
    known = "'ddpm_samples', 'ddim_samples'"
    with pytest.raises(ValueError, match=f"output must be one of {known} for 'test-tiny.points'"):
        zoo.outputs(TINY.name, "latents", progress=False)
    with pytest.raises(ValueError, match="kwargs must be JSON-able"):
        zoo.outputs(TINY.name, "ddpm_samples", n=torch.ones(1), progress=False)


def test_zoo_rejects_bad_names_overrides_and_entries(tiny):
    with pytest.raises(ValueError, match=r"name must be one of .*digits-ddpm.*, got 'nope'"):
        zoo.entry("nope")
    with pytest.raises(ValueError, match="name must be one of"):
        zoo.load("nope")
    with pytest.raises(ValueError, match="overrides must be among steps, seed, got lr"):
        zoo.load(TINY.name, lr=0.1)
    with pytest.raises(ValueError, match="steps must be an int >= 1, got 0"):
        zoo.load(TINY.name, steps=0)
    with pytest.raises(
        ValueError,
        match=r"family must be one of 'classifier', 'clip', 'clip-prior', 'diffusion', 'diffwave', 'flow', "
        r"'gan'.*"
        r"got 'gs'",
    ):
        zoo.register(replace(TINY, name="test-vae", family="gs"))
    for bad in ("", "a/b", "../up", ".hidden"):
        with pytest.raises(ValueError, match="name must be letters, digits"):
            zoo.register(replace(TINY, name=bad))
    bad_entries = [
        (dict(spec={"network": {}}), "spec must be a DiffusionSpec for family 'diffusion', got dict"),
        (dict(spec=replace(TINY.spec, network={"type": "vit"})), "network type must be one of 'unet', 'mlp'"),
        (dict(spec=replace(TINY.spec, prediction_type="noise")), "prediction_type must be one of"),
        (dict(spec=replace(TINY.spec, model_var_type="learned")), "model_var_type must be one of"),
        (dict(data="ring"), "data must be a DataSpec, got str"),
        (dict(train={"steps": 3}), "train must be a TrainConfig, got dict"),
        (dict(sample_shape=[2]), r"sample_shape must be a non-empty tuple of ints >= 1, got \[2\]"),
        (dict(sample_shape=(0,)), "sample_shape must be a non-empty tuple"),
        (dict(train_threads=0), "train_threads must be an int >= 1, got 0"),
        (dict(chapter=0), "chapter must be an int >= 1, got 0"),
        (dict(depends_on=["x"]), "depends_on must be a tuple of model names"),
        (dict(depends_on=("test-bad",)), "depends_on must not name the model itself"),
    ]
    for change, message in bad_entries:
        with pytest.raises(ValueError, match=message):
            zoo.register(replace(TINY, name="test-bad", **change))
    with pytest.raises(ValueError, match="a data spec names a dataset or a model, not both or neither"):
        zoo.DataSpec(name="ring", model="ring-ddpm", output="ddpm_samples")
    with pytest.raises(ValueError, match="a data spec names a dataset or a model"):
        zoo.DataSpec()
    with pytest.raises(ValueError, match="output must be given exactly with model"):
        zoo.DataSpec(model="ring-ddpm")
    with pytest.raises(ValueError, match="data kwargs must be JSON-able"):
        zoo.DataSpec.dataset("ring", n=torch.ones(1))
    with pytest.raises(ValueError, match=r"data must be one of .*'digits'.*, got 'mnist-online'"):
        data.training_tensors("mnist-online")
    assert "test-bad" not in zoo.names() and len(tiny) == 0


def test_zoo_names_and_entries():
    assert {"digits-ddpm", "ring-ddpm", "digits-classifier", "ring-gan", "digits-gan"} <= set(zoo.names())
    assert zoo.names() == sorted(zoo.names())
    digits = zoo.entry("digits-ddpm")
    assert digits.family == "diffusion" and tuple(digits.sample_shape) == (1, 8, 8)
    assert digits.spec.prediction_type == "epsilon" and digits.chapter == 6
    assert zoo.family_of(digits).process(digits).num_timesteps == digits.spec.num_timesteps
    classifier = zoo.entry("digits-classifier")
    assert zoo.family_of(classifier).process(classifier) is None
    assert json.loads(json.dumps(digits.config())) == digits.config()
    assert {zoo.entry(n).chapter for n in ("ring-gan", "digits-gan")} == {3}


# ---------------------------------------------------------------- GANs in the zoo
TINY_GAN = zoo.ZooEntry(
    name="test-tiny.gan",
    description="a tiny GAN on 64 fixed points, for tests",
    family="gan",
    spec=GANSpec(
        generator={"z_dim": 3, "hidden": 8, "num_layers": 1},
        discriminator={"hidden": 8, "num_layers": 1},
        gan=GANConfig(loss="hinge"),
    ),
    data=zoo.DataSpec.dataset("test-fixed-points"),
    sample_shape=(2,),
    train=TrainConfig(steps=4, batch_size=8, warmup_steps=1, checkpoint_every=2),
    train_threads=1,
    chapter=3,
)


@pytest.fixture
def tiny_gan(tmp_path, monkeypatch):
    """TINY_GAN registered, with a cache in tmp_path and its trainings counted."""
    yield from registered(TINY_GAN, tmp_path, monkeypatch)


def test_zoo_gan_caches_the_generators_ema(tiny_gan, tmp_path):
    from diffusion_lib.gan import MLPDiscriminator, MLPGenerator, train_gan

    first = zoo.load(TINY_GAN.name, progress=False)
    stem = f"{TINY_GAN.name}-{TINY_GAN.key()}"
    assert cache_files(tmp_path) == [f"{stem}.json", f"{stem}.safetensors"], "no checkpoint left over"
    assert isinstance(first.model, MLPGenerator) and first.diffusion is None and not first.model.training
    assert not any(p.requires_grad for p in first.model.parameters())
    record = first.record
    assert len(record["losses"]) == len(record["d_losses"]) == TINY_GAN.train.steps
    # The cached weights are the EMA of train_gan's generator, from init_seed's networks.
    torch.manual_seed(TINY_GAN.init_seed)
    g = MLPGenerator(sample_shape=(2,), **TINY_GAN.spec.generator)
    d = MLPDiscriminator(sample_shape=(2,), **TINY_GAN.spec.discriminator)
    by_hand = train_gan(g, d, POINTS * 0.5, TINY_GAN.train, GANConfig(loss="hinge"), progress=False)
    assert_same_weights(first.model, by_hand.ema)
    again = zoo.load(TINY_GAN.name, progress=False)
    assert len(tiny_gan) == 1 and again.record == record
    assert_same_weights(again.model, first.model)
    (tmp_path / "cache" / f"{stem}.safetensors").write_bytes(b"\x00garbage")
    assert_same_weights(zoo.load(TINY_GAN.name, progress=False).model, first.model)
    assert len(tiny_gan) == 2, "a corrupt cache is retrained, to the same weights"


def test_zoo_gan_resumes_an_interrupted_training(tiny_gan, tmp_path, monkeypatch):
    from diffusion_lib import gan

    straight = zoo.load(TINY_GAN.name, progress=False)
    real_loss, calls = gan.generator_loss, []

    def crash_at_step_3(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise Interrupt
        return real_loss(*args, **kwargs)

    monkeypatch.setattr(gan, "generator_loss", crash_at_step_3)
    with pytest.raises(Interrupt):
        zoo.load(TINY_GAN.name, retrain=True, progress=False)
    assert any(name.endswith(".partial.json") for name in cache_files(tmp_path))
    monkeypatch.setattr(gan, "generator_loss", real_loss)
    resumed = zoo.load(TINY_GAN.name, retrain=True, progress=False)
    assert_same_weights(resumed.model, straight.model)
    assert resumed.record["losses"] == straight.record["losses"]
    assert resumed.record["d_losses"] == straight.record["d_losses"]


def test_zoo_gan_rejects_a_bad_spec(tiny_gan):
    with pytest.raises(ValueError, match="generator must be a dict of constructor kwargs"):
        zoo.register(replace(TINY_GAN, name="test-bad-gan", spec=replace(TINY_GAN.spec, generator=None)))
    with pytest.raises(ValueError, match="gan must be a GANConfig, got dict"):
        zoo.register(
            replace(TINY_GAN, name="test-bad-gan", spec=replace(TINY_GAN.spec, gan={"loss": "hinge"}))
        )
    assert "test-bad-gan" not in zoo.names()


def test_zoo_gan_entries():
    family = families()["gan"]
    for name, shape, loss in (("ring-gan", (2,), "hinge"), ("digits-gan", (1, 8, 8), "non-saturating")):
        entry = zoo.entry(name)
        assert entry.family == "gan" and tuple(entry.sample_shape) == shape and family.process(entry) is None
        assert entry.spec.gan.loss == loss
        generator, discriminator = family.networks(entry)
        z = torch.randn(3, generator.z_dim)
        assert generator(z).shape == (3, *shape) and discriminator(generator(z)).shape == (3,)
        loaded = family.build(entry)  # what the cache's weights load into
        assert loaded.state_dict().keys() == generator.state_dict().keys()
        assert json.loads(json.dumps(entry.config())) == entry.config()
    assert zoo.entry("digits-gan").spec.generator["output"] == "tanh"


# ---------------------------------------------------------------- samplers.ddpm
def point_mass_eps(diffusion, point):
    """The exact ε-predictor when all the data is one point c: ε = (x_t − √ᾱ_t c)/√(1 − ᾱ_t)."""

    def model(x, t):
        return diffusion.predict_eps_from_x0(x, t, point.to(x.dtype).expand_as(x))

    return model


def test_ddpm_shapes_and_reproducibility():
    model = tiny_net()
    a = samplers.ddpm(model, DIFFUSION, (3, 2), generator=torch.Generator().manual_seed(5), progress=False)
    b = samplers.ddpm(model, DIFFUSION, (3, 2), generator=torch.Generator().manual_seed(5), progress=False)
    c = samplers.ddpm(model, DIFFUSION, (3, 2), generator=torch.Generator().manual_seed(6), progress=False)
    assert a.shape == (3, 2) and a.dtype == torch.float32
    assert torch.equal(a, b) and not torch.equal(a, c)
    d = samplers.ddpm(lambda x, t: 0.5 * x, DIFFUSION, [2, 2], progress=False, dtype=torch.float64)
    assert d.shape == (2, 2) and d.dtype == torch.float64


def test_ddpm_trajectory_and_given_noise():
    model = tiny_net()
    x_T = torch.randn(4, 2, generator=torch.Generator().manual_seed(1))
    x0, trajectory = samplers.ddpm(
        model,
        DIFFUSION,
        (4, 2),
        x_T=x_T,
        generator=torch.Generator().manual_seed(2),
        progress=False,
        return_trajectory=True,
    )
    assert len(trajectory) == DIFFUSION.num_timesteps + 1
    assert torch.equal(trajectory[0], x_T) and torch.equal(trajectory[-1], x0)
    assert all(x.shape == (4, 2) for x in trajectory)
    again = samplers.ddpm(
        model, DIFFUSION, (4, 2), x_T=x_T, generator=torch.Generator().manual_seed(2), progress=False
    )
    assert torch.equal(again, x0)


@pytest.mark.parametrize(
    "shape, x_T, message",
    [
        ((3, 2), torch.zeros(2, 2), r"x_T must have shape \(3, 2\), got \(2, 2\)"),
        ((3, 2), [[0.0, 0.0]], r"x_T must have shape \(3, 2\), got list"),
        ((0, 2), None, r"shape must be a tuple of ints >= 1, got \(0, 2\)"),
        ((), None, r"shape must be a tuple of ints >= 1, got \(\)"),
        ((2.0, 2), None, "shape must be a tuple of ints >= 1"),
    ],
)
def test_ddpm_rejects_bad_shapes(shape, x_T, message):
    with pytest.raises(ValueError, match=message):
        samplers.ddpm(tiny_net(), DIFFUSION, shape, x_T=x_T, progress=False)


def test_ddpm_with_the_exact_denoiser_of_a_point_mass_returns_the_point():
    # With ε exact, x̂_0 = c at every step, and the last step's mean is c itself (its posterior
    # coefficient of x_1 is 0), whatever the noise: a test of the whole chain x_T → x_0.
    diffusion = GaussianDiffusion(get_beta_schedule("linear", 1000))
    point = torch.tensor([2.5, -3.0], dtype=torch.float64)
    model = point_mass_eps(diffusion, point)
    generator = torch.Generator().manual_seed(0)
    x0 = samplers.ddpm(
        model,
        diffusion,
        (4, 2),
        generator=generator,
        clip_denoised=False,
        progress=False,
        dtype=torch.float64,
    )
    assert torch.allclose(x0, point.expand(4, 2), atol=1e-9, rtol=0)
    clipped = samplers.ddpm(
        model, diffusion, (4, 2), generator=generator, clip_denoised=True, progress=False, dtype=torch.float64
    )
    assert torch.allclose(clipped, torch.tensor([1.0, -1.0], dtype=torch.float64).expand(4, 2), atol=1e-9)


def test_every_book_model_fixes_its_training_threads():
    # The thread count changes the rounding of a training run, so a model must not depend on
    # which process (a chapter, the CLI, a one-thread test run) happened to train it first.
    # ZooEntry requires train_threads and register checks it; here: the book's own are set
    # deliberately (1 for the small MLPs, 2 for the convolutional networks).
    threads = {name: zoo.entry(name).train_threads for name in zoo.names()}
    assert threads == {
        "audio-diffwave": 2,
        "audio-vocoder": 2,
        "digits-classifier": 2,
        "digits-cond-ddpm": 2,
        "digits-ddpm": 2,
        "digits-flow": 2,
        "digits-gan": 1,
        "digits-mlp-96": 1,
        "digits-mlp-192": 1,
        "digits-mlp-384": 1,
        "digits-mlp-192-n32": 1,
        "digits-mlp-192-n128": 1,
        "digits-mlp-192-n360": 1,
        "digits-noisy-classifier": 2,
        "digits-pd-8": 2,
        "digits-pd-4": 2,
        "digits-pd-2": 2,
        "digits-pd-1": 2,
        "ring-ddpm": 1,
        "ring-flow": 1,
        "ring-gan": 1,
        "scenes-clip": 2,
        "scenes-judge": 2,
        "scenes-ldm": 2,
        "scenes-pixel-dm": 2,
        "scenes-unclip": 2,
        "scenes-unclip-decoder": 2,
        "scenes-unclip-prior": 2,
        "scenes-vae": 2,
        "video-ddpm": 2,
        "video-frames": 2,
    }


def test_zoo_gan_outputs_its_samples(tiny_gan):
    from diffusion_lib import gan

    out = zoo.outputs(TINY_GAN.name, "samples", n=5, seed=1, progress=False)
    loaded = zoo.load(TINY_GAN.name, progress=False)
    expected = gan.sample(loaded.model, 5, generator=torch.Generator().manual_seed(1))
    assert list(out.tensors) == ["samples"] and torch.equal(out.tensors["samples"], expected)
    with pytest.raises(ValueError, match="n must be an int >= 1, got None"):
        zoo.outputs(TINY_GAN.name, "samples", seed=2, progress=False)
    assert len(tiny_gan) == 1


TINY_CLASSIFIER = zoo.ZooEntry(
    name="test-tiny.classifier",
    description="a tiny digits classifier, for tests",
    family="classifier",
    spec=ClassifierSpec(network={"type": "digits_classifier", "width": 4, "feature_dim": 8}),
    data=zoo.DataSpec.dataset("digits"),
    sample_shape=(1, 8, 8),
    train=TrainConfig(steps=3, batch_size=8, warmup_steps=1, checkpoint_every=2),
    train_threads=1,
    chapter=6,
)


def test_zoo_classifier_trains_on_labels_and_outputs_logits(tmp_path, monkeypatch):
    trained = registered(TINY_CLASSIFIER, tmp_path, monkeypatch)
    next(trained)
    try:
        loaded = zoo.load(TINY_CLASSIFIER.name, progress=False)
        assert loaded.diffusion is None and len(loaded.record["losses"]) == 3
        out = zoo.outputs(TINY_CLASSIFIER.name, "logits", data="digits", split="test", progress=False)
        images = data.digits("test").images
        with torch.no_grad():
            assert torch.equal(out.tensors["logits"], loaded.model(images))
        assert out.tensors["logits"].shape == (len(images), 10)
        with pytest.raises(ValueError, match="data must name a dataset for the output 'logits', got None"):
            zoo.outputs(TINY_CLASSIFIER.name, "logits", split="test", progress=False)
        with pytest.raises(ValueError, match="a classifier trains on \\[inputs, labels\\]"):
            zoo.register(replace(TINY_CLASSIFIER, data=zoo.DataSpec.dataset("ring", n=16)))
            zoo.load(TINY_CLASSIFIER.name, progress=False)
        assert main_cli(["sample", TINY_CLASSIFIER.name, "--n", "1", "--out", str(tmp_path / "x.npz")]) == 2
    finally:
        zoo.unregister(TINY_CLASSIFIER.name)


def test_a_readers_entry_replaces_the_books_even_before_the_zoo_is_used(tmp_path):
    """In a fresh process, registering an entry called like a book model first, then using the
    zoo, keeps the reader's entry (the book's entries are found before it is registered)."""
    import subprocess
    import sys

    fresh = (
        "from diffusion_lib import zoo, train\n"
        "from diffusion_lib.families.diffusion import DiffusionSpec\n"
        "entry = zoo.ZooEntry(name='ring-ddpm', description='mine', family='diffusion',\n"
        "    spec=DiffusionSpec(network={'type': 'mlp', 'data_dim': 2}), data=zoo.DataSpec.dataset('ring'),\n"
        "    sample_shape=(2,), train=train.TrainConfig(steps=3), train_threads=1, chapter=6)\n"
        "zoo.register(entry)\n"
        "print(zoo.entry('ring-ddpm').description, len(zoo.names()) >= 5)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", fresh], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["mine", "True"]
