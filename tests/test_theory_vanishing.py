"""theory/vanishing.py: the product bound's closed forms (SPEC B1)."""

from __future__ import annotations

import pytest

from gradprobe.theory.vanishing import (
    bias_gradient_bound,
    sup_derivative,
    uniform_bias_bound,
    weight_gradient_bound,
)


def test_bound_closed_forms():
    assert sup_derivative("sigmoid") == 0.25 and sup_derivative("relu") == 1.0
    assert sup_derivative("leaky_relu", 2.0) == 2.0
    b = bias_gradient_bound([0.25] * 4, [2.0, 3.0, 4.0, 5.0], 1.5)
    # layer 4: γ‖a−y‖; layer l: γ^{L−l+1} ∏_{r>l} ‖W^r‖ ‖a−y‖
    assert b[3] == pytest.approx(0.25 * 1.5)
    assert b[0] == pytest.approx(uniform_bias_bound(0.25, [3.0, 4.0, 5.0], 1.5))
    assert b[0] == pytest.approx(0.25**4 * 60 * 1.5)
    assert weight_gradient_bound(2.0, 3.0) == 6.0
    with pytest.raises(ValueError):
        bias_gradient_bound([1.0], [1.0, 2.0], 1.0)
