"""Numerical checks that can fail: the book's ``check(...)`` helper.

Every identity a chapter derives is followed by a cell that computes both sides and calls
:func:`check`. It raises ``AssertionError`` (failing the cell, the notebook test and the book
build) when they disagree, and otherwise prints one line with the measured error.
"""

from __future__ import annotations

import math
import textwrap
from typing import Any, Optional

import numpy as np

__all__ = ["check", "check_le", "check_outcome", "glue", "LINE_WIDTH", "OUTCOME_PREFIX"]

# The book's code column holds 88 characters (ruff's line length for chapters/): a printed
# check wraps there, so that no output line is wider than the page.
LINE_WIDTH = 88
# What a claim about a trained model prints first; benchmarks/robustness.py reads these lines.
OUTCOME_PREFIX = "✓ outcome: "


def _say(line: str) -> None:
    """Print ``line`` wrapped at :data:`LINE_WIDTH`, continuation lines indented."""
    print(textwrap.fill(line, width=LINE_WIDTH, subsequent_indent="    ", break_on_hyphens=False))


def _as_float64_array(name: str, value: Any) -> np.ndarray:
    """Convert a tensor, array or number to a float64 NumPy array."""
    if hasattr(value, "detach"):  # a torch tensor, on any device
        value = value.detach().to("cpu").double().numpy()
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be a number, array or tensor, got {type(value).__name__}") from err
    return array


def _validate_claim_and_tolerance(claim: str, **tolerances: float) -> None:
    if not isinstance(claim, str) or not claim.strip():
        raise ValueError(f"claim must be a non-empty string, got {claim!r}")
    for name, value in tolerances.items():
        if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")


def check(
    claim: str, actual: Any, expected: Any, *, atol: Optional[float] = None, rtol: float = 0.0
) -> float:
    """Assert that ``actual`` equals ``expected`` within tolerance, and say so in one line.

    The test is elementwise, ``|actual - expected| <= atol + rtol * |expected|``, after
    broadcasting the two sides against each other. NaN on either side always fails.

    Args:
        claim: what is being checked, in words ("posterior variance equals Bayes' rule").
        actual: the computed side (number, NumPy array or torch tensor).
        expected: the reference side, broadcastable against ``actual``.
        atol: absolute tolerance, >= 0. Default: 1e-6 for an absolute check, 0 when ``rtol``
            is given, so a relative check of small numbers is not silently loosened.
        rtol: relative tolerance, >= 0, relative to ``|expected|``.

    Returns:
        The largest absolute error, as a float.

    Raises:
        AssertionError: when any element is outside the tolerance; the message names the claim,
            the largest error and where it occurs.
        ValueError: when the two sides cannot be broadcast together or a tolerance is invalid.
    """
    if atol is None:
        atol = 0.0 if rtol else 1e-6
    _validate_claim_and_tolerance(claim, atol=atol, rtol=rtol)
    a = _as_float64_array("actual", actual)
    e = _as_float64_array("expected", expected)
    try:
        a, e = np.broadcast_arrays(a, e)
    except ValueError as err:
        raise ValueError(
            f"actual and expected must have broadcastable shapes, got {a.shape} and {e.shape}"
        ) from err
    error = np.abs(a - e)
    allowed = atol + rtol * np.abs(e)
    bad = ~(error <= allowed)  # NaN compares False, so it counts as bad
    max_error = float(np.max(error)) if error.size else 0.0  # NaN propagates into the report
    bound = _describe_bound(atol, rtol)
    if np.any(bad):
        worst_bad = np.where(bad, np.nan_to_num(error, nan=np.inf), -1.0)
        index = np.unravel_index(int(np.argmax(worst_bad)), error.shape)
        where = f" at index {tuple(int(i) for i in index)}" if error.ndim else ""
        raise AssertionError(
            f"✗ {claim}: max |error| {max_error:.3g} > {bound}{where} "
            f"(actual {a[index]:.6g}, expected {e[index]:.6g}; {int(bad.sum())} of {bad.size} elements fail)"
        )
    _say(f"✓ {claim} (max |error| {max_error:.2g} ≤ {bound})")
    return max_error


def check_le(claim: str, smaller: Any, larger: Any, *, atol: float = 0.0) -> float:
    """Assert the inequality ``smaller <= larger + atol`` elementwise, and say so in one line.

    Used for bounds, e.g. "the VLB is at least the negative log-likelihood".

    Args:
        claim: what is being checked, in words.
        smaller: the side that should be smaller (number, array or tensor).
        larger: the side that should be larger, broadcastable against ``smaller``.
        atol: slack allowed for rounding, >= 0.

    Returns:
        ``max(smaller - larger)``, as a float (negative when the bound holds strictly).

    Raises:
        AssertionError: when the inequality fails anywhere (or either side is NaN).
    """
    _validate_claim_and_tolerance(claim, atol=atol)
    s = _as_float64_array("smaller", smaller)
    g = _as_float64_array("larger", larger)
    try:
        s, g = np.broadcast_arrays(s, g)
    except ValueError as err:
        raise ValueError(
            f"smaller and larger must have broadcastable shapes, got {s.shape} and {g.shape}"
        ) from err
    excess = s - g
    worst = float(np.max(excess)) if excess.size else -math.inf
    if excess.size and (np.any(np.isnan(excess)) or worst > atol):
        raise AssertionError(
            f"✗ {claim}: max(smaller − larger) = {worst:.3g} > {atol:.3g}"
            f" ({int(np.sum(~(excess <= atol)))} of {excess.size} elements fail)"
        )
    _say(f"✓ {claim} (max(smaller − larger) = {worst:.2g} ≤ {atol:.2g})")
    return worst


def check_outcome(
    claim: str, value: Any, *, at_least: Optional[float] = None, at_most: Optional[float] = None
) -> float:
    """Assert a claim about what a trained model does, with a margin measured across seeds.

    Training is not reproducible across processors, torch builds and seeds, so a claim about a
    trained model (modes hit, a Fréchet distance, "A beats B" as a difference) is a range
    that every training seed tried satisfies, not one run's exact value. The thresholds come
    from runs under several seeds (``benchmarks/robustness.py``); the line printed, starting
    with :data:`OUTCOME_PREFIX`, shows the measured value next to them.

    Args:
        claim: what is claimed, in words ("ring-gan hits all 8 modes").
        value: the measured number (a scalar: number, 0-d array or one-element tensor).
        at_least: the smallest value the claim allows, or None.
        at_most: the largest value the claim allows, or None; at least one bound is required.

    Returns:
        The measured value, as a float.

    Raises:
        AssertionError: the value is outside the bounds, or NaN.
        ValueError: no bound, a non-finite bound, ``at_least > at_most``, or a non-scalar value.
    """
    if not isinstance(claim, str) or not claim.strip():
        raise ValueError(f"claim must be a non-empty string, got {claim!r}")
    if at_least is None and at_most is None:
        raise ValueError("at_least or at_most must be given, got neither")
    for name, bound in (("at_least", at_least), ("at_most", at_most)):
        if bound is not None and (
            isinstance(bound, bool) or not isinstance(bound, (int, float)) or not math.isfinite(bound)
        ):
            raise ValueError(f"{name} must be a finite number or None, got {bound!r}")
    if at_least is not None and at_most is not None and at_least > at_most:
        raise ValueError(f"at_least must be <= at_most, got {at_least!r} > {at_most!r}")
    array = _as_float64_array("value", value)
    if array.size != 1:
        raise ValueError(f"value must be a single number, got shape {array.shape}")
    measured = float(array.reshape(()))
    low = -math.inf if at_least is None else float(at_least)
    high = math.inf if at_most is None else float(at_most)
    if at_least is None:
        allowed = f"≤ {high:.4g}"
    elif at_most is None:
        allowed = f"≥ {low:.4g}"
    else:
        allowed = f"in [{low:.4g}, {high:.4g}]"
    if not low <= measured <= high:  # NaN fails
        raise AssertionError(f"✗ {claim}: measured {measured:.4g}, allowed {allowed}")
    _say(f"{OUTCOME_PREFIX}{claim}: measured {measured:.4g}, allowed {allowed}")
    return measured


def glue(name: str, value: Any) -> Any:
    """Make ``value`` available to the chapter's prose as ``{glue:text}`name``` (MyST-NB).

    A number the text states comes from the computation this way, so it cannot drift from it.
    Where MyST-NB is installed (the book build, nbval, ``make``'s environment) this is
    ``myst_nb.glue(name, value, display=False)``; elsewhere (e.g. Colab) it does nothing, and
    the text shows the role itself. Returns ``value``, so a cell can glue and use it at once.

    Raises:
        ValueError: ``name`` is not a non-empty identifier-like string (letters, digits, ``_``).
    """
    if not isinstance(name, str) or not name.replace("_", "a").isalnum() or not name.isascii():
        raise ValueError(f"name must be letters, digits and '_', got {name!r}")
    try:
        from myst_nb import glue as myst_glue
    except ImportError:
        return value
    myst_glue(name, _plain(value), display=False)
    return value


def _plain(value: Any) -> Any:
    """A NumPy or torch scalar (anything 0-dimensional with ``.item()``) as a Python number.

    MyST-NB formats ``{glue:text}`name:.2f``` from the glued value's ``text/plain`` repr; for a
    NumPy 2 scalar that is ``np.float64(0.5)``, which no format spec can read.
    """
    if getattr(value, "ndim", None) == 0 and callable(getattr(value, "item", None)):
        return value.item()
    return value


def _describe_bound(atol: float, rtol: float) -> str:
    if rtol == 0:
        return f"{atol:.2g}"
    if atol == 0:
        return f"{rtol:.2g}·|expected|"
    return f"{atol:.2g} + {rtol:.2g}·|expected|"
