"""The book-wide seed shift moves every training seed, and so every zoo model's cache key."""

import pytest

from diffusion_lib.seeds import ENV_SEED_SHIFT, SEED_STRIDE, seed_shift, shifted


def test_no_shift_by_default(monkeypatch):
    monkeypatch.delenv(ENV_SEED_SHIFT, raising=False)
    assert seed_shift() == 0
    assert shifted(0) == 0 and shifted(7) == 7
    monkeypatch.setenv(ENV_SEED_SHIFT, " ")
    assert seed_shift() == 0


def test_shift_moves_seeds_by_the_stride(monkeypatch):
    monkeypatch.setenv(ENV_SEED_SHIFT, "2")
    assert seed_shift() == 2
    assert shifted(0) == 2 * SEED_STRIDE
    assert shifted(5) == 2 * SEED_STRIDE + 5
    # the small seeds of different shifts never coincide
    monkeypatch.setenv(ENV_SEED_SHIFT, "1")
    one = {shifted(s) for s in range(3)}
    monkeypatch.setenv(ENV_SEED_SHIFT, "0")
    assert one.isdisjoint({shifted(s) for s in range(3)})


@pytest.mark.parametrize("raw", ["-1", "1.5", "one", "1e3"])
def test_bad_shift_is_refused_with_its_value(monkeypatch, raw):
    monkeypatch.setenv(ENV_SEED_SHIFT, raw)
    with pytest.raises(ValueError, match=rf"{ENV_SEED_SHIFT} must be a whole number >= 0, got '{raw}'"):
        seed_shift()


@pytest.mark.parametrize("seed", [-1, 1.0, True, "0"])
def test_bad_seed_is_refused(seed):
    with pytest.raises(ValueError, match="seed must be an int >= 0"):
        shifted(seed)
