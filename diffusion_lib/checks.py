"""Numerical checks that can fail: the book's ``check(...)`` helper.

Every identity a chapter derives is followed by a cell that computes both sides and calls
:func:`check`. It raises ``AssertionError`` (failing the cell, the notebook test and the book
build) when they disagree, and otherwise prints one line with the measured error.
"""

from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np

__all__ = ["check", "check_le"]


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
    print(f"✓ {claim} (max |error| {max_error:.2g} ≤ {bound})")
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
    print(f"✓ {claim} (max(smaller − larger) = {worst:.2g} ≤ {atol:.2g})")
    return worst


def _describe_bound(atol: float, rtol: float) -> str:
    if rtol == 0:
        return f"{atol:.2g}"
    if atol == 0:
        return f"{rtol:.2g}·|expected|"
    return f"{atol:.2g} + {rtol:.2g}·|expected|"
