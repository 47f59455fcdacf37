"""Tests of chapter 1: the unrolled closed form, the step, the counts, the drawings, the exercises."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
import sympy as sp

from bptt_lib import rnn, unrolling
from bptt_lib.derive import unrolling as derive_unrolling
from bptt_lib.exercises import get, verdict
from bptt_lib.kernels import rnn_kernels


def _random_case(seed, T, D, H):
    rng = np.random.default_rng(seed)
    params = rnn.init_params(D, H, 2, rng=rng)
    params["b"] = rng.standard_normal(H)
    return params, rng.standard_normal((T, D)), rng.standard_normal(H)


@pytest.mark.parametrize("T, D, H", [(3, 1, 1), (3, 2, 2), (3, 2, 3), (1, 3, 2), (5, 1, 2)])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_closed_form_equals_forward_loop(seed, T, D, H):
    params, x, h0 = _random_case(seed, T, D, H)
    loop = rnn.forward(params, x[:, None, :], h0[None, :]).h[T, 0]
    closed = unrolling.unrolled_hidden_state(params, x, h0)
    assert closed.shape == (H,)
    assert np.max(np.abs(closed - loop)) < 1e-12


def test_closed_form_is_generated_from_the_sympy_expression():
    kernel = unrolling.closed_form_kernel(3)
    sym = derive_unrolling.unrolled_symbols(3)
    expected = derive_unrolling.unroll(sym)[3]
    plain = {s: sp.Symbol(unrolling._identifier(s.name), real=True) for s in expected.free_symbols}
    assert kernel.expr == expected.xreplace(plain)
    assert [a.name for a in kernel.args] == ["W", "U", "b", "h0", "x1", "x2", "x3"]


def test_scalar_h3_is_the_nested_tanh():
    s = derive_unrolling.unrolled_symbols(3)
    W, U, b, h0 = s.W[0], s.U[0], s.b[0], s.h0[0]
    x1, x2, x3 = (x[0] for x in s.x)
    by_hand = sp.tanh(b + W * sp.tanh(b + W * sp.tanh(b + W * h0 + U * x1) + U * x2) + U * x3)
    assert derive_unrolling.unroll(s)[3][0] == by_hand


def test_misprint_loses_x2_and_keeps_a_hidden_state():
    expr, h2 = derive_unrolling.misprinted_h3()
    names = {s.name for s in expr.free_symbols}
    assert "x^{(2)}" not in names and h2 in expr.free_symbols
    correct = derive_unrolling.unroll(derive_unrolling.unrolled_symbols(3))[3][0]
    x2 = next(s for s in correct.free_symbols if s.name == "x^{(2)}")
    assert sp.diff(correct, x2) != 0


def test_every_step_uses_the_same_parameters():
    sym = derive_unrolling.unrolled_symbols(4, 2, 2)
    per_step = derive_unrolling.parameter_symbols_per_step(sym)
    assert len(per_step) == 4 and all(p == per_step[0] for p in per_step)
    assert len(per_step[0]) == 2 * 2 + 2 * 2 + 2


def test_rnn_step_matches_forward_and_uses_the_generated_kernel(monkeypatch):
    rng = np.random.default_rng(3)
    params = rnn.init_params(3, 4, 2, rng=rng)
    params["b"] = rng.standard_normal(4)
    x = rng.standard_normal((1, 5, 3))
    h0 = rng.standard_normal((5, 4))
    expected = rnn.forward(params, x, h0).h[1]
    got = unrolling.rnn_step(h0, x[0], params["U"], params["W"], params["b"])
    assert np.max(np.abs(got - expected)) < 1e-12

    calls = []
    k = rnn_kernels()
    original = k.hidden_preactivation
    monkeypatch.setattr(k, "hidden_preactivation", lambda *a: calls.append(1) or original(*a))
    unrolling.rnn_step(h0, x[0], params["U"], params["W"], params["b"])
    assert calls == [1]


def test_count_parameters_does_not_depend_on_T():
    counts = unrolling.count_parameters(3, 4, 5)
    assert counts == {"U": 12, "W": 16, "V": 20, "b": 4, "c": 5, "total": 57}
    rng = np.random.default_rng(0)
    params = rnn.init_params(3, 4, 5, rng=rng)
    assert sum(v.size for v in params.values()) == counts["total"]


@pytest.mark.parametrize("bad, error", [(0, ValueError), (-1, ValueError), (2.0, TypeError),
                                        (True, TypeError), ("3", TypeError)])
def test_count_parameters_rejects_bad_sizes(bad, error):
    with pytest.raises(error, match="n_hidden"):
        unrolling.count_parameters(2, bad, 2)


def test_numpy_ints_are_accepted_everywhere():
    # Sizes often come from array shapes, which are numpy ints: the numeric and the symbolic side agree.
    assert unrolling.count_parameters(np.int64(2), 3, 2)["total"] == 2 * 3 + 9 + 6 + 3 + 2
    assert derive_unrolling.unrolled_symbols(np.int64(3)).T == 3


def test_bad_inputs_raise_with_names_and_shapes():
    params, x, h0 = _random_case(0, 3, 2, 2)
    with pytest.raises(ValueError, match=r"x must have shape \(T=3, D=2\); got shape \(3, 1\)"):
        unrolling.unrolled_hidden_state(params, x[:, :1], h0)
    with pytest.raises(ValueError, match="h0"):
        unrolling.unrolled_hidden_state(params, x, np.zeros(3))
    with pytest.raises(ValueError, match="T <= 5"):
        unrolling.unrolled_hidden_state(params, np.zeros((6, 2)), h0)
    with pytest.raises(KeyError, match="W"):
        unrolling.unrolled_hidden_state({"U": params["U"], "b": params["b"]}, x)
    with pytest.raises(ValueError, match=r"x must have shape \(B=1, D=2\)"):
        unrolling.rnn_step(np.zeros((1, 2)), np.zeros((2, 2)), params["U"], params["W"], params["b"])
    with pytest.raises(ValueError, match="W must have shape"):
        unrolling.rnn_step(np.zeros((1, 2)), np.zeros((1, 2)), params["U"], np.zeros((2, 3)), params["b"])
    with pytest.raises(ValueError, match="non-finite"):
        unrolling.rnn_step(np.full((1, 2), np.nan), np.zeros((1, 2)), params["U"], params["W"], params["b"])
    with pytest.raises(ValueError, match="x holds a non-finite"):
        unrolling.unrolled_hidden_state(params, np.where(np.eye(3, 2) > 0, np.nan, x), h0)
    with pytest.raises(ValueError, match="h0 holds a non-finite"):
        unrolling.unrolled_hidden_state(params, x, np.array([np.inf, 0.0]))
    with pytest.raises(ValueError, match="T must be an int"):
        derive_unrolling.unrolled_symbols(9)
    with pytest.raises(TypeError, match="sym must be"):
        derive_unrolling.unroll({"W": 1})
    with pytest.raises(ValueError, match="threshold"):
        unrolling.saturated_fraction(np.zeros(3), threshold=1.5)


def test_saturated_fraction():
    assert unrolling.saturated_fraction(np.array([0.0, 0.5, 0.96, -0.99])) == 0.5


def test_drawings_add_patches_and_validate():
    fig, (a1, a2) = plt.subplots(1, 2)
    unrolling.draw_folded_graph(a1)
    unrolling.draw_unrolled_graph(a2, 3)
    # 5 nodes per step plus h0; the folded graph has 5 nodes.
    assert sum(isinstance(p, matplotlib.patches.Circle) for p in a2.patches) == 5 * 3 + 1
    assert sum(isinstance(p, matplotlib.patches.Circle) for p in a1.patches) == 5
    with pytest.raises(ValueError, match="T must be"):
        unrolling.draw_unrolled_graph(a2, 0)
    with pytest.raises(TypeError, match="ax must be"):
        unrolling.draw_folded_graph(fig)
    plt.close(fig)


def test_checkers_accept_the_reference_and_reject_wrong_answers():
    assert verdict("rnn_step", get("rnn_step").reference)
    assert verdict("n_parameters_untied", get("n_parameters_untied").reference)

    def transposed_W(h_prev, x, U, W, b):
        return np.tanh(h_prev @ W + x @ U.T + b)

    def no_bias(h_prev, x, U, W, b):
        return np.tanh(h_prev @ W.T + x @ U.T)

    def squeezed(h_prev, x, U, W, b):
        return np.squeeze(np.tanh(h_prev @ W.T + x @ U.T + b))

    for wrong in (transposed_W, no_bias, squeezed):
        assert not verdict("rnn_step", wrong)
    assert verdict("n_parameters_untied", lambda D, H, K, T: T * (H * D + H * H + K * H + H + K))
    assert not verdict("n_parameters_untied", lambda D, H, K, T: T * (H * D + H * H + K * H))   # no biases
    assert not verdict("n_parameters_untied", lambda D, H, K, T: H * D + H * H + K * H + H + K)  # tied count
    assert not verdict("n_parameters_untied", lambda D, H, K, T: T * (H * D + H + K * H + H + K))


def test_checker_reports_not_implemented():
    def stub(h_prev, x, U, W, b):
        raise NotImplementedError
    result = verdict("rnn_step", stub)
    assert not result and "not implemented" in result.message


def test_plot_hidden_trajectories_draws_every_unit_and_validates():
    rng = np.random.default_rng(0)
    h_runs = {0.5: np.tanh(rng.standard_normal((11, 6))), 2.0: np.tanh(rng.standard_normal((11, 6)))}
    fig = unrolling.plot_hidden_trajectories(h_runs, n_lines=3)
    line_axes = [ax for ax in fig.axes if ax.get_title().startswith("gain")]
    assert [ax.get_title() for ax in line_axes] == ["gain $g = 0.5$", "gain $g = 2.0$"]
    assert all(len(ax.lines) == 3 for ax in line_axes)
    images = [im for ax in fig.axes for im in ax.images]
    assert len(images) == 2 and images[0].get_array().shape == (6, 11)  # units x steps
    plt.close(fig)
    with pytest.raises(TypeError):
        unrolling.plot_hidden_trajectories({})
    with pytest.raises(ValueError):
        unrolling.plot_hidden_trajectories({1.0: np.zeros(5)})
