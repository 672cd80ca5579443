"""The value formulas against ALGORITHMS.md section 5 and hand-computed numbers; concavity in N."""
import numpy as np
import pytest

from grpo_zoo_knapsack import info_gain, marginal_gain, p_nonzero, value


def test_spec_vector_value_8_half():
    # (1 - 2 / 2^8) * 0.5 * 0.25 = 0.1240234375
    assert round(float(value(8, 0.5)), 5) == 0.12402
    assert float(value(8, 0.5)) == pytest.approx(254 / 256 * 0.125, abs=1e-15)


@pytest.mark.parametrize("n", [1, 2, 3, 8, 64, 128, 1000])
def test_spec_vector_zero_value_at_p_0_and_1(n):
    assert float(value(n, 0.0)) == 0.0
    assert float(value(n, 1.0)) == 0.0


def test_info_gain_peaks_at_one_third():
    p = np.linspace(0, 1, 300_001)
    g = info_gain(p)
    assert p[np.argmax(g)] == pytest.approx(1 / 3, abs=1e-5)
    assert float(info_gain(1 / 3)) == pytest.approx(4 / 27, abs=1e-15)
    assert g.max() <= 4 / 27 + 1e-15


def test_hand_numbers():
    # one rollout is never mixed; two rollouts at p: 2 p q
    assert float(p_nonzero(1, 0.3)) == pytest.approx(0.0, abs=1e-15)
    assert float(p_nonzero(2, 0.3)) == pytest.approx(2 * 0.3 * 0.7)
    # Value(3, 1/3) = (1 - 1/27 - 8/27) * 4/27 = 18/27 * 4/27
    assert float(value(3, 1 / 3)) == pytest.approx(18 / 27 * 4 / 27)
    assert float(value(4, 0.9)) == pytest.approx((1 - 0.9**4 - 0.1**4) * 0.9 * 0.01)


def test_marginal_gain_closed_form_and_concavity():
    p = np.concatenate([np.linspace(0, 1, 401), [1e-9, 1 - 1e-9]])[:, None]
    n = np.arange(0, 300)[None, :]
    g = marginal_gain(n, p)
    np.testing.assert_allclose(g, value(n + 1, p) - value(n, p), atol=1e-15)
    assert (g >= 0).all()
    # non-increasing in N for every p (concave Value): what makes the fast solver exact
    assert (np.diff(g, axis=1) <= 1e-18).all()
    inner = ((p > 0) & (p < 1)).ravel()
    assert (g[inner, :40] > 0).all()
    assert (np.diff(g[inner, :40], axis=1) < 0).all()  # strictly while the gains are representable
    assert (g[~inner] == 0).all()
