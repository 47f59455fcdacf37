"""The influence-balancing task (chapter 12): the SymPy facts, and the four online learners."""

import itertools

import numpy as np
import pytest
import sympy as sp

from bptt_lib import influence_balancing as ib
from bptt_lib.derive import influence_balancing as d

# --- derivation -----------------------------------------------------------------------------

def test_optimum_and_true_sensitivity():
    theta = sp.Symbol("theta")
    assert sp.simplify(d.fixed_point_first_unit(theta) + 6 * theta) == 0
    assert d.optimum() == sp.Rational(-1, 6)
    assert d.true_sensitivity() == -6
    assert d.neumann_inverse_identity()


def test_general_sizes_follow_two_sum_v():
    # s*_1 = 2 theta sum(v): checked at other sizes too
    theta = sp.Symbol("theta")
    for n, n_pos in [(5, 2), (8, 6), (12, 3)]:
        assert sp.simplify(d.fixed_point_first_unit(theta, n, n_pos) - 2 * theta * (2 * n_pos - n)) == 0


def test_power_terms_binomial_form_and_first_ten_are_one():
    terms = [d.power_term(j) for j in range(40)]
    assert terms == [d.power_term_binomial(j) for j in range(40)]
    assert terms[:10] == [1] * 10
    assert terms[10] == sp.Rational(511, 512)
    assert all(t < 0 for t in terms[25:40])


def test_truncated_sensitivity_is_k_for_short_windows_and_tends_to_minus_six():
    assert [d.truncated_sensitivity(k) for k in range(1, 11)] == list(range(1, 11))
    assert d.first_negative_window() == 41
    assert d.truncated_sensitivity(40) > 0 > d.truncated_sensitivity(41)
    assert abs(d.truncated_sensitivity(300) + 6) < sp.Rational(1, 10 ** 9)
    assert d.block_sensitivity(10) == 55
    assert d.first_negative_block() == 110


def test_numeric_system_is_the_derived_one():
    A, v = d.system()
    assert np.array_equal(ib.A, np.array(A.tolist(), float))
    assert np.array_equal(ib.V, np.r_[np.ones(10), -np.ones(13)])
    assert ib.THETA_STAR == -1 / 6 and ib.THETA0 == 0.5
    x = np.random.default_rng(0).standard_normal((5, 23))
    assert np.array_equal(ib._times_A(x), x @ ib.A.T)      # the learners' structured product is A's


# --- sensitivities ---------------------------------------------------------------------------

def test_forward_sensitivity_matches_finite_differences_and_closed_form():
    steps, h = 60, 1e-3          # the states are affine in theta: central differences are exact up to round-off
    J = ib.forward_sensitivity(steps)
    fd = (ib.states(0.5 + h, steps) - ib.states(0.5 - h, steps)) / (2 * h)
    assert np.allclose(J, fd, rtol=1e-9, atol=1e-9)
    closed = [float(d.truncated_sensitivity(t)) if t else 0.0 for t in range(steps + 1)]
    assert np.allclose(J[:, 0], closed, rtol=1e-12, atol=1e-12)


def test_rtrl_first_steps_by_hand():
    run = ib.rtrl(1e-2, 2, seeds=(0,), record_every=1)
    s1 = ib.A @ np.ones(23) + 0.5 * ib.V
    theta1 = 0.5 - 1e-2 * (s1[0] - 1) * ib.V[0]
    s2 = ib.A @ s1 + theta1 * ib.V
    J2 = ib.A @ ib.V + ib.V
    theta2 = theta1 - 1e-2 * (s2[0] - 1) * J2[0]
    assert run.theta[:, 0] == pytest.approx([0.5, theta1, theta2], rel=1e-14)


@pytest.mark.parametrize("length", [1, 4, 9])
def test_window_gradient_forward_equals_backward(length):
    rng = np.random.default_rng(length)
    s0 = rng.standard_normal(23)
    factors = rng.uniform(0.5, 3.0, size=length)
    back = ib.window_gradient_backward(0.3, s0, length, factors)
    assert ib.window_gradient_forward(0.3, s0, length, factors) == pytest.approx(back, rel=1e-12)
    assert ib.window_gradient_forward(0.3, s0, length) != pytest.approx(back, rel=1e-3) or length == 1


def test_compensated_sensitivity_is_unbiased():
    # the sensitivity of s_L to theta along a window with random cuts: its expectation over every
    # pattern of the L - 1 inner boundaries is the full L-step sensitivity
    L, c = 8, 0.3
    terms = [float(d.power_term(j)) for j in range(L)]          # (A^j v)_1: theta applied j steps earlier
    expected = 0.0
    for bits in itertools.product((0, 1), repeat=L - 1):          # bits[i]: cut i + 1 boundaries back
        p = np.prod([c if b else 1 - c for b in bits])
        sens, factor = terms[0], 1.0
        for j in range(1, L):
            if bits[j - 1]:
                break
            factor /= 1 - c
            sens += factor * terms[j]
        expected += p * sens
    assert expected == pytest.approx(float(d.truncated_sensitivity(L)), rel=1e-12)


def test_uoro_step_is_unbiased():
    # exact expectation over all sign vectors for a 4-unit system
    A4, v4 = (np.array(m.tolist(), float) for m in d.system(4, 2))
    v4 = v4[:, 0]
    rng = np.random.default_rng(0)
    s_tilde, theta_tilde = rng.standard_normal((1, 4)), rng.standard_normal(1)
    mean = np.zeros(4)
    for signs in itertools.product((-1.0, 1.0), repeat=4):
        nu = np.array([signs])
        s_new, t_new = ib.uoro_step(s_tilde, theta_tilde, nu, A=A4, v=v4)
        mean += s_new[0] * t_new[0] / 16
    assert np.allclose(mean, A4 @ s_tilde[0] * theta_tilde[0] + v4, rtol=1e-12, atol=1e-12)


# --- learners --------------------------------------------------------------------------------

@pytest.mark.parametrize("k", [1, 5, 10])
def test_tbptt_short_windows_move_theta_up(k):
    run = ib.tbptt(1e-4, 3000, k, seeds=(0,))
    assert run.theta[-1, 0] > 0.5 or (run.diverged_at[0] >= 0 and run.theta[-1, 0] > 0)
    assert ib.outcome(run) in (["diverged"], ["never approached"])


def test_rtrl_converges_at_1e_minus_4():
    run = ib.rtrl(1e-4, 20000, seeds=(0,))
    assert ib.outcome(run) == ["converged"]
    assert abs(run.theta[-1, 0] - ib.THETA_STAR) < 1e-6


def test_long_block_tbptt_converges():
    run = ib.tbptt(1e-4, 20000, 200, seeds=(0,))
    assert ib.outcome(run) == ["converged"]


def test_artbp_small_rate_converges_on_most_seeds():
    run = ib.artbp(1e-5, 60000, 0.05, seeds=range(3))
    assert ib.outcome(run) == ["converged"] * 3


def test_a_seed_does_not_depend_on_the_batch():
    alone = ib.artbp(1e-4, 3000, 0.1, seeds=(3,))
    batch = ib.artbp(1e-4, 3000, 0.1, seeds=(1, 2, 3))
    assert np.array_equal(alone.theta[:, 0], batch.theta[:, 2])
    u_alone = ib.uoro(1e-4, 500, seeds=(2,))
    u_batch = ib.uoro(1e-4, 500, seeds=(2, 5))
    assert np.array_equal(u_alone.theta[:, 0], u_batch.theta[:, 0])
    assert not np.array_equal(u_batch.theta[:, 0], u_batch.theta[:, 1])


def test_outcome_verdicts():
    run = ib.rtrl(1e-4, 200, seeds=(0,))
    assert ib.outcome(run) == ["never approached"]      # 200 steps are too few
    run = ib.rtrl(1e-3, 2000, seeds=(0,))
    assert ib.outcome(run) == ["approached, then thrown off (diverged)"]
    assert "RTRL, lr = 0.001" in ib.outcome_table([run])


@pytest.mark.parametrize("call, error, match", [
    (lambda: ib.artbp(1e-4, 10, 1.0), ValueError, r"c must be a probability in \[0, 1\); got 1\.0"),
    (lambda: ib.artbp(1e-4, 10, 0.0), ValueError, "c must be in"),
    (lambda: ib.artbp(1e-4, 10, -0.2), ValueError, "c must be a probability"),
    (lambda: ib.rtrl(-1e-4, 10), ValueError, "lr must be a positive"),
    (lambda: ib.tbptt(1e-4, 10, 0), ValueError, "k must be an int"),
    (lambda: ib.uoro(1e-4, 0), ValueError, "steps must be an int"),
    (lambda: ib.rtrl(1e-4, 10, seeds=()), ValueError, "seeds must hold"),
])
def test_bad_arguments_are_named(call, error, match):
    with pytest.raises(error, match=match):
        call()
