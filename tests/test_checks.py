"""The book's check helpers must pass what is equal and fail what is not."""

import math

import numpy as np
import pytest
import torch

from diffusion_lib import check, check_le


def test_check_passes_and_prints_one_line(capsys):
    error = check("two sides agree", torch.tensor([1.0, 2.0]), np.array([1.0, 2.0 + 1e-9]))
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    assert out.startswith("✓ two sides agree (max |error| ")
    assert error == pytest.approx(1e-9, rel=1e-3)


def test_check_fails_with_the_measured_error():
    with pytest.raises(AssertionError, match=r"✗ wrong formula: max \|error\| 0\.5 > 1e-06 at index \(1,\)"):
        check("wrong formula", [1.0, 2.5], [1.0, 2.0])


def test_check_relative_tolerance():
    check("within 1%", 101.0, 100.0, atol=0.0, rtol=0.011)
    with pytest.raises(AssertionError):
        check("outside 1%", 102.0, 100.0, atol=0.0, rtol=0.011)
    # With rtol given, atol defaults to 0: a relative check of tiny numbers stays relative.
    with pytest.raises(AssertionError, match=r"> 0\.01·\|expected\|"):
        check("tiny numbers, 50% apart", 1.5e-9, 1e-9, rtol=0.01)


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_check_never_passes_nan_or_inf(bad):
    with pytest.raises(AssertionError):
        check("non-finite", [1.0, bad], [1.0, 2.0], atol=1e9)


def test_check_rejects_shape_mismatch_and_bad_tolerance():
    with pytest.raises(ValueError, match="broadcastable shapes"):
        check("shapes", np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="atol must be a finite number >= 0, got -1"):
        check("tol", 1.0, 1.0, atol=-1)
    with pytest.raises(ValueError, match="claim must be a non-empty string"):
        check("", 1.0, 1.0)
    with pytest.raises(TypeError, match="actual must be a number, array or tensor"):
        check("type", {"a": 1}, 1.0)


def test_check_le(capsys):
    worst = check_le("bound holds", [1.0, 2.0], [1.5, 2.0])
    assert worst == 0.0
    assert capsys.readouterr().out.startswith("✓ bound holds")
    with pytest.raises(AssertionError, match=r"✗ bound fails: max\(smaller − larger\) = 0\.5 > 0"):
        check_le("bound fails", 2.0, 1.5)
    check_le("slack", 1.0 + 1e-12, 1.0, atol=1e-9)
    with pytest.raises(AssertionError):
        check_le("nan", math.nan, 1.0)


def test_check_outcome_passes_inside_and_fails_outside(capsys):
    from diffusion_lib import check_outcome
    from diffusion_lib.checks import OUTCOME_PREFIX

    assert check_outcome("modes hit", 8, at_least=7) == 8.0
    assert capsys.readouterr().out == f"{OUTCOME_PREFIX}modes hit: measured 8, allowed ≥ 7\n"
    check_outcome("ratio", torch.tensor([0.5]), at_least=0.25, at_most=0.75)
    assert "allowed in [0.25, 0.75]" in capsys.readouterr().out
    check_outcome("FD", np.float64(3.0), at_most=3.0)
    with pytest.raises(AssertionError, match=r"✗ modes hit: measured 6, allowed ≥ 7"):
        check_outcome("modes hit", 6, at_least=7)
    with pytest.raises(AssertionError, match=r"measured 1\.5, allowed in \[0, 1\]"):
        check_outcome("share", 1.5, at_least=0, at_most=1)
    with pytest.raises(AssertionError, match="measured nan"):
        check_outcome("nan", math.nan, at_least=0)


def test_check_outcome_rejects_bad_arguments():
    from diffusion_lib import check_outcome

    with pytest.raises(ValueError, match="at_least or at_most must be given"):
        check_outcome("no bound", 1.0)
    with pytest.raises(ValueError, match="at_least must be <= at_most, got 2 > 1"):
        check_outcome("crossed", 1.5, at_least=2, at_most=1)
    with pytest.raises(ValueError, match="at_most must be a finite number or None, got inf"):
        check_outcome("inf", 1.0, at_most=math.inf)
    with pytest.raises(ValueError, match=r"value must be a single number, got shape \(2,\)"):
        check_outcome("two", [1.0, 2.0], at_least=0)
    with pytest.raises(ValueError, match="claim must be a non-empty string"):
        check_outcome(" ", 1.0, at_least=0)


def test_long_check_lines_wrap_at_the_page_width(capsys):
    from diffusion_lib.checks import LINE_WIDTH

    check("a claim " * 20, 1.0, 1.0)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) > 1
    assert max(map(len, lines)) <= LINE_WIDTH
    assert lines[0].startswith("✓ a claim") and lines[-1].endswith("≤ 1e-06)")


def test_glue_records_the_value_for_the_prose(monkeypatch):
    import sys
    import types

    from diffusion_lib.checks import glue

    calls = []
    fake = types.ModuleType("myst_nb")
    fake.glue = lambda name, value, display=True: calls.append((name, value, display))
    monkeypatch.setitem(sys.modules, "myst_nb", fake)
    assert glue("ch3_modes", 8) == 8
    assert calls == [("ch3_modes", 8, False)], "glued without displaying it"
    monkeypatch.setitem(sys.modules, "myst_nb", None)  # not installed (e.g. Colab)
    assert glue("ch3_modes", 7) == 7 and len(calls) == 1
    for bad in ("", "two words", "a-b", 3, "ε"):
        with pytest.raises(ValueError, match="name must be letters, digits and '_'"):
            glue(bad, 1.0)


@pytest.mark.parametrize(
    "value, plain",
    [
        (np.float64(0.25), 0.25),
        (np.float32(0.5), 0.5),
        (np.int64(7), 7),
        (np.array(1.5), 1.5),
        (torch.tensor(2.0), 2.0),
        (torch.tensor(3), 3),
    ],
)
def test_glue_hands_myst_nb_plain_python_numbers(monkeypatch, value, plain):
    # {glue:text}`name:.2f` formats the glued value's text/plain repr; NumPy 2's
    # repr of a scalar is np.float64(0.25), which no format spec reads.
    import sys
    import types

    from diffusion_lib.checks import glue

    calls = []
    fake = types.ModuleType("myst_nb")
    fake.glue = lambda name, value, display=True: calls.append(value)
    monkeypatch.setitem(sys.modules, "myst_nb", fake)
    assert glue("x", value) is value, "the caller gets its own value back"
    assert type(calls[0]) is type(plain) and calls[0] == plain
    format(calls[0], ".2f")
    assert f"{calls[0]!r}" == repr(plain)


def test_glue_leaves_arrays_and_other_values_alone(monkeypatch):
    import sys
    import types

    from diffusion_lib.checks import glue

    calls = []
    fake = types.ModuleType("myst_nb")
    fake.glue = lambda name, value, display=True: calls.append(value)
    monkeypatch.setitem(sys.modules, "myst_nb", fake)
    array = np.arange(3.0)
    glue("x", array)
    glue("y", "text")
    assert calls[0] is array and calls[1] == "text"
