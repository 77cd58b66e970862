"""Training on several processes (chapter 16): two gloo ranks started by torchrun against one
process, the distributed CLIP loss, a rank that dies or stalls, the command line under torchrun,
and the helpers of diffusion_lib.distributed in one process.

Each multi-process test starts ``torchrun --standalone --nproc_per_node=2`` on
tests/distributed_worker.py (or on the CLI) in a subprocess, bounded by a timeout; the
single-process reference runs the worker's own functions here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import distributed_worker as worker
import pytest
import torch
from safetensors.torch import load_file

from diffusion_lib import distributed, zoo
from diffusion_lib.__main__ import main
from diffusion_lib.seeds import ENV_SEED_SHIFT
from diffusion_lib.train import load_checkpoint

WORKER = Path(__file__).with_name("distributed_worker.py")
# The collective timeout the failing runs use, in seconds: far above a healthy step (ms).
TIMEOUT = 5
# A healthy two-process run starts in about 4 s on 2 cores; the subprocess gets this long at most.
RUN_LIMIT = 180
LAUNCHER_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def torchrun(*args, env: dict | None = None, limit: float = RUN_LIMIT) -> subprocess.CompletedProcess:
    """``torchrun --standalone --nproc_per_node=2 ARGS`` with one thread per rank."""
    environment = {k: v for k, v in os.environ.items() if k not in LAUNCHER_VARIABLES}
    environment.update({"OMP_NUM_THREADS": "1", "PYTHONPATH": str(WORKER.parent), **(env or {})})
    environment.pop(ENV_SEED_SHIFT, None)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", *args]
    return subprocess.run(command, env=environment, capture_output=True, text=True, timeout=limit)


def run_worker(scenario: str, out: Path, **env) -> list[dict]:
    result = torchrun(str(WORKER), scenario, str(out), env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return [load_file(str(out / f"rank{rank}.safetensors")) for rank in (0, 1)]


def named(**modules) -> dict:
    return {f"{prefix}.{k}": v for prefix, m in modules.items() for k, v in m.state_dict().items()}


def max_difference(a: dict, b: dict) -> float:
    assert set(a) == set(b)
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a)


@pytest.fixture(scope="module")
def regression(tmp_path_factory):
    out = tmp_path_factory.mktemp("regression")
    return out, run_worker("regression", out)


# ---------------------------------------------------------------- two ranks against one process
def test_two_ranks_give_the_weights_of_one_process(regression):
    _, (rank0, _) = regression
    one = worker.regression_run()
    reference = named(model=one.model, ema=one.ema)
    # Two ranks of 8 rows against one process of 16: the same minibatches, the gradient a mean
    # of two means instead of one mean of 16, so they differ by rounding only.
    assert max_difference({k: rank0[k] for k in reference}, reference) < 1e-5
    assert torch.allclose(rank0["losses"], torch.tensor(one.losses, dtype=torch.float64), atol=1e-5)
    # ... and training moved the weights far more than that (the check can fail).
    start = named(model=worker.regression_model())
    assert max_difference({k: rank0[k] for k in start}, start) > 0.05


def test_parameters_are_identical_on_both_ranks(regression):
    _, (rank0, rank1) = regression
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), key


def test_rank_zero_writes_the_checkpoint(regression):
    out, (rank0, _) = regression
    tensors, meta = load_checkpoint(out / "run")
    assert meta["step"] == worker.STEPS
    for key in [k for k in rank0 if k.startswith(("model.", "ema."))]:
        assert torch.equal(tensors[key], rank0[key]), key
    # One process with the same config resumes the two-process checkpoint: nothing left to do.
    resumed = worker.regression_run(checkpoint=out / "run")
    assert max_difference(named(model=resumed.model), {k: rank0[k] for k in named(model=resumed.model)}) == 0


@pytest.mark.parametrize("loss", ["non-saturating", "wgan-gp"])
def test_gan_on_two_ranks(loss, tmp_path):
    rank0, rank1 = run_worker(f"gan-{loss}", tmp_path)
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), key
    one = worker.gan_run(loss)
    reference = named(generator=one.generator, discriminator=one.discriminator, ema=one.ema)
    difference = max_difference({k: rank0[k] for k in reference}, reference)
    if loss == "non-saturating":  # every draw comes from the run's generator: one process again
        assert difference < 1e-5
    else:  # the penalty's ε is drawn per rank, so only the two ranks agree
        assert difference > 1e-3


# ---------------------------------------------------------------- CLIP's loss across ranks
def test_distributed_clip_loss_equals_the_single_process_loss(tmp_path):
    from diffusion_lib.families.clip import clip_loss

    rank0, rank1 = run_worker("clip", tmp_path)
    model, batch = worker.clip_batch()
    loss = clip_loss(model, batch, torch.Generator())
    loss.backward()
    for rank in (rank0, rank1):
        assert abs(float(rank["loss"]) - float(loss.detach())) < 1e-6
    # The averaged gradients are the single-process gradient of the whole batch's loss.
    grads = {f"grad.{k}": p.grad for k, p in model.named_parameters() if p.grad is not None}
    assert max_difference({k: rank0[k] for k in grads}, grads) < 1e-4
    assert max(float(g.abs().max()) for g in grads.values()) > 1.0
    # Without the gathered negatives each rank would score a batch of 4: another loss.
    half_model, _ = worker.clip_batch()
    half = clip_loss(half_model, [b[:4] for b in batch], torch.Generator())
    assert abs(float(half.detach()) - float(rank0["loss"])) > 0.1


# ---------------------------------------------------------------- failures
@pytest.mark.parametrize("scenario", ["dies", "hangs"])
def test_a_failed_rank_fails_the_run_within_the_timeout(scenario, tmp_path):
    started = time.perf_counter()
    result = torchrun(str(WORKER), scenario, str(tmp_path), env={distributed.ENV_TIMEOUT: str(TIMEOUT)})
    seconds = time.perf_counter() - started
    assert result.returncode != 0
    # Start-up (about 4 s) plus the timeout plus slack; without a timeout a stalled rank would
    # hold the other for torch's default 30 minutes (the subprocess limit would fail the test).
    assert seconds < TIMEOUT + 40, seconds
    if scenario == "hangs":  # rank 0 notices by itself and says what happened
        assert "RankFailure" in result.stderr
        assert f"did not answer within {TIMEOUT} s" in result.stderr
    else:  # torchrun stops the run when a rank exits with an error
        assert "exitcode  : 3" in result.stderr


# ---------------------------------------------------------------- the command line under torchrun
@pytest.mark.parametrize(
    "name",
    [
        "digits-ddpm",
        "digits-gan",
        "digits-classifier",
        "scenes-clip",
        "scenes-vae",
        "digits-flow",
        "audio-diffwave",
        "video-ddpm",
    ],
)
def test_torchrun_trains_every_family_into_the_cache(name, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    result = torchrun("-m", "diffusion_lib", "train", name, "--steps", "2", env={zoo.ENV_HOME: str(cache)})
    assert result.returncode == 0, result.stderr[-3000:]
    summary = [line for line in result.stdout.splitlines() if line.startswith("trained")]
    assert len(summary) == 1 and "2 processes" in summary[0], result.stdout  # rank 0 alone prints
    monkeypatch.setenv(zoo.ENV_HOME, str(cache))
    monkeypatch.delenv(ENV_SEED_SHIFT, raising=False)
    entry = zoo.resolve(name, steps=2)
    _, record_path, partial = zoo.paths(entry)
    record = json.loads(record_path.read_text())
    assert record["processes"] == 2 and record["key"] == entry.key()
    assert not any(p.exists() for p in zoo.checkpoint_paths(partial))  # rank 0 tidied up
    loaded = zoo.load(name, steps=2, progress=False)  # from the cache: nothing to train
    assert loaded.record["weights_sha256"] == record["weights_sha256"]


def test_cli_refuses_a_batch_the_processes_cannot_share(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv(zoo.ENV_HOME, str(tmp_path))
    monkeypatch.setenv("WORLD_SIZE", "3")
    assert main(["train", "digits-ddpm", "--steps", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "batches of 128" in err and "3 processes" in err
    assert not list(tmp_path.iterdir())


# ---------------------------------------------------------------- one process: nothing changes
def test_one_process_world(monkeypatch):
    for name in LAUNCHER_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert not distributed.launched()
    assert distributed.setup() == distributed.World(0, 1, 0) == distributed.world()
    assert distributed.is_main() and distributed.local_size() == 1
    assert distributed.shard(7) == slice(0, 7)
    x = torch.randn(3, 2, requires_grad=True)
    assert distributed.gather_with_grad(x) is x
    assert distributed.mean_over_ranks(2.5) == 2.5
    distributed.barrier()
    distributed.check_same("anything", 3)
    model = torch.nn.Linear(2, 1)
    assert distributed.replicate(model) is model
    objective = distributed.replicate(model, lambda m, batch: m(batch).sum())
    assert torch.equal(objective(x), model(x).sum())


def test_shards_make_up_the_batch():
    blocks = [distributed.shard(12, distributed.World(r, 3, r)) for r in range(3)]
    assert [list(range(12))[b] for b in blocks] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]
    with pytest.raises(
        ValueError, match="batch_size must be a multiple of the number of processes \\(3\\), got 10"
    ):
        distributed.shard(10, distributed.World(0, 3, 0))


def test_loss_generators_differ_by_rank_and_step_and_repeat():
    def draw(seed, step, rank):
        return torch.randn(
            4, generator=distributed.loss_generator(seed, step, distributed.World(rank, 2, rank))
        )

    assert torch.equal(draw(0, 5, 1), draw(0, 5, 1))
    assert not torch.equal(draw(0, 5, 0), draw(0, 5, 1))
    assert not torch.equal(draw(0, 5, 0), draw(0, 6, 0))
    assert not torch.equal(draw(0, 5, 0), draw(1, 5, 0))


@pytest.mark.parametrize("raw", ["0", "-3", "soon", "nan", "inf"])
def test_bad_timeout(raw, monkeypatch):
    monkeypatch.setenv(distributed.ENV_TIMEOUT, raw)
    with pytest.raises(
        ValueError, match=f"DIFFUSION_LIB_DIST_TIMEOUT must be a number of seconds > 0, got '{raw}'"
    ):
        distributed.timeout_seconds()


def test_timeout_default_and_override(monkeypatch):
    monkeypatch.delenv(distributed.ENV_TIMEOUT, raising=False)
    assert distributed.timeout_seconds() == distributed.DEFAULT_TIMEOUT
    monkeypatch.setenv(distributed.ENV_TIMEOUT, "2.5")
    assert distributed.timeout_seconds() == 2.5


def test_bad_world_size(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(ValueError, match="WORLD_SIZE must be an integer, got 'two'"):
        distributed.launched()
