"""Tests for chapter 3: the tiny feed-forward network, its derivation and its exercise."""

import numpy as np
import pytest
import sympy as sp

from bptt_lib import feedforward as ff
from bptt_lib import gradcheck
from bptt_lib.derive import feedforward as dff
from bptt_lib.exercises import verdict
from bptt_lib.kernels import rnn_kernels

SHAPES = [(1, 1, 1, 2), (5, 2, 4, 3), (4, 3, 3, 3), (8, 4, 6, 5)]  # (B, D, H, K)
CENTRAL_EPS, CENTRAL_TOL = 1e-6, 1e-6
COMPLEX_TOL = 1e-9


def problem(B, D, H, K, seed=0):
    rng = np.random.default_rng(seed)
    params = ff.init_params(D, H, K, rng=rng)
    params["b"] = 0.5 * rng.standard_normal(H)   # nonzero biases exercise db and dc fully
    params["c"] = 0.5 * rng.standard_normal(K)
    x = rng.standard_normal((B, D))
    y = rng.integers(0, K, size=B)
    return params, x, y


# --- derivation ------------------------------------------------------------------

def test_symbolic_gradients_proven():
    assert dff.prove_gradients(2, 2, 3)
    assert dff.prove_gradients(2, 3, 2)


def test_symbolic_proof_rejects_a_wrong_backward_rule(monkeypatch):
    real = dff.compact_gradients

    def forgets_tanh_derivative(sym, target):
        grads = real(sym, target)
        g_o = forward_yhat_minus_onehot(sym, target)
        g_a = sym.V.T * g_o                    # the factor (1 - h^2) is missing
        grads["U"], grads["b"] = g_a * sym.x.T, g_a
        return grads

    def forward_yhat_minus_onehot(sym, target):
        yhat = dff.forward(sym).yhat
        return yhat - sp.Matrix([int(k == target) for k in range(sym.c.rows)])

    monkeypatch.setattr(dff, "compact_gradients", forgets_tanh_derivative)
    assert not dff.prove_gradients(2, 2, 2)


def test_kernel_reuse_proven():
    assert dff.prove_kernel_reuse()


def test_symbolic_target_checked():
    with pytest.raises(ValueError, match="target"):
        dff.loss(dff.explicit_symbols(), 3)


# --- gradients -------------------------------------------------------------------

@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("seed", [0, 1])
def test_gradients_match_central_differences(shape, seed):
    params, x, y = problem(*shape, seed=seed)
    _, grads = ff.loss_and_grads(params, x, y)
    numeric = gradcheck.central_difference(lambda p: ff.loss(p, x, y), params, eps=CENTRAL_EPS)
    errors = gradcheck.compare(grads, numeric)
    assert max(errors.values()) < CENTRAL_TOL, errors


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("seed", [0, 1])
def test_gradients_match_complex_step(shape, seed):
    params, x, y = problem(*shape, seed=seed)
    _, grads = ff.loss_and_grads(params, x, y)
    numeric = gradcheck.complex_step(lambda p: ff.loss(p, x, y), params)
    errors = gradcheck.compare(grads, numeric)
    assert max(errors.values()) < COMPLEX_TOL, errors


def test_loss_agrees_with_loss_and_grads_and_forward():
    params, x, y = problem(6, 2, 4, 3)
    value, _ = ff.loss_and_grads(params, x, y)
    assert np.isclose(ff.loss(params, x, y), value, rtol=1e-13)
    trace = ff.forward(params, x)
    assert np.allclose(trace.yhat.sum(axis=1), 1.0)
    assert np.isclose(-np.log(trace.yhat[np.arange(6), y]).mean(), value, rtol=1e-12)


def test_one_step_rnn_from_zero_state_is_the_feedforward_network():
    from bptt_lib import rnn
    params, x, y = problem(5, 2, 4, 3)
    rnn_params = dict(params, W=np.random.default_rng(3).standard_normal((4, 4)))
    value, grads = ff.loss_and_grads(params, x, y)
    rnn_value, rnn_grads = rnn.loss_and_grads(rnn_params, x[None], y[None])
    assert np.isclose(value, rnn_value, rtol=1e-13)
    for key in params:
        assert np.allclose(grads[key], rnn_grads[key], rtol=1e-12, atol=1e-15)
    assert np.all(rnn_grads["W"] == 0)


# --- the backward pass is built from the generated kernels ---------------------------

@pytest.mark.parametrize("name", ["softmax_nll_grad", "output_vjp", "tanh_vjp"])
def test_backward_calls_generated_kernel(monkeypatch, name):
    params, x, y = problem(5, 2, 4, 3)
    _, honest = ff.loss_and_grads(params, x, y)
    k = rnn_kernels()
    real = getattr(k, name)
    calls = []

    def spy(*args):
        calls.append(args)
        return real(*args)

    monkeypatch.setattr(k, name, spy)
    _, spied = ff.loss_and_grads(params, x, y)
    assert calls, f"{name} was not called"
    for key in honest:
        assert np.array_equal(spied[key], honest[key])

    def corrupted(*args):
        out = real(*args)
        return tuple(2 * o for o in out) if isinstance(out, tuple) else 2 * out

    monkeypatch.setattr(k, name, corrupted)
    _, wrong = ff.loss_and_grads(params, x, y)
    assert not np.allclose(wrong["U"], honest["U"])


def test_forward_calls_generated_affine_kernel(monkeypatch):
    params, x, _ = problem(5, 2, 4, 3)
    k = rnn_kernels()
    real = k.output_affine
    calls = []
    monkeypatch.setattr(k, "output_affine", lambda *args: calls.append(args) or real(*args))
    ff.forward(params, x)
    assert len(calls) == 2   # the hidden layer and the output layer


# --- training ----------------------------------------------------------------------

def test_training_reduces_the_loss():
    x, y = ff.spirals(40, 3, rng=np.random.default_rng(1))
    params = ff.init_params(2, 16, 3, rng=np.random.default_rng(2))
    before = {k: v.copy() for k, v in params.items()}
    trained, history = ff.train(params, x, y, lr=1.0, steps=300)
    assert history.shape == (301,)
    assert history[-1] < 0.5 * history[0]
    assert np.isclose(history[-1], ff.loss(trained, x, y), rtol=1e-12)
    assert np.isclose(history[0], ff.loss(params, x, y), rtol=1e-12)
    for key in params:  # the input is not modified
        assert np.array_equal(params[key], before[key])
    assert (ff.predict(trained, x) == y).mean() > 0.9


def test_training_with_a_huge_learning_rate_raises_or_stays_finite():
    x, y = ff.spirals(20, 3, rng=np.random.default_rng(1))
    params = ff.init_params(2, 8, 3, rng=np.random.default_rng(2))
    try:
        _, history = ff.train(params, x, y, lr=1e6, steps=20)
    except FloatingPointError:
        return
    assert np.all(np.isfinite(history))


def test_spirals_shapes_and_determinism():
    x, y = ff.spirals(10, 4, rng=np.random.default_rng(0))
    x2, y2 = ff.spirals(10, 4, rng=np.random.default_rng(0))
    assert x.shape == (40, 2) and y.shape == (40,)
    assert np.array_equal(x, x2) and np.array_equal(y, y2)
    assert set(y.tolist()) == {0, 1, 2, 3}
    assert np.all(np.linalg.norm(x, axis=1) <= 1.0 + 1e-12)


# --- bad inputs ----------------------------------------------------------------------

def test_bad_inputs_raise_naming_the_argument():
    params, x, y = problem(5, 2, 4, 3)
    with pytest.raises(KeyError, match="params"):
        ff.loss_and_grads({k: v for k, v in params.items() if k != "V"}, x, y)
    with pytest.raises(TypeError, match="params"):
        ff.loss_and_grads([1, 2], x, y)
    with pytest.raises(ValueError, match=r'params\["b"\]'):
        ff.loss_and_grads(dict(params, b=np.zeros(5)), x, y)
    with pytest.raises(ValueError, match="x"):
        ff.loss_and_grads(params, x[:, :1], y)
    with pytest.raises(ValueError, match="x"):
        ff.loss_and_grads(params, x[None], y)
    with pytest.raises(ValueError, match="y"):
        ff.loss_and_grads(params, x, y[:3])
    with pytest.raises(ValueError, match="y"):
        ff.loss_and_grads(params, x, np.full(5, 3))
    with pytest.raises(TypeError, match="y"):
        ff.loss_and_grads(params, x, y.astype(float))
    with pytest.raises(ValueError, match="x"):
        ff.loss_and_grads(params, np.where(np.eye(5, 2) > 0, np.nan, x), y)
    with pytest.raises(TypeError, match=r'params\["U"\]'):
        ff.loss_and_grads(dict(params, U=params["U"] + 0j), x, y)
    with pytest.raises(TypeError, match="trace"):
        ff.backward(params, {"x": x}, y)
    with pytest.raises(ValueError, match="lr"):
        ff.train(params, x, y, lr=-1.0, steps=3)
    with pytest.raises(ValueError, match="steps"):
        ff.train(params, x, y, lr=0.1, steps=0)
    with pytest.raises(ValueError, match="n_hidden"):
        ff.init_params(2, 0, 3, rng=np.random.default_rng(0))
    with pytest.raises(TypeError, match="rng"):
        ff.init_params(2, 3, 3, rng=0)
    with pytest.raises(TypeError, match="rng"):
        ff.spirals(10, rng=0)
    with pytest.raises(TypeError, match="scale"):
        ff.init_params(2, 3, 3, rng=np.random.default_rng(0), scale="a")
    with pytest.raises(TypeError, match="noise"):
        ff.spirals(10, rng=np.random.default_rng(0), noise="x")
    with pytest.raises(ValueError, match="noise"):
        ff.spirals(10, rng=np.random.default_rng(0), noise=-0.1)
    with pytest.raises(TypeError, match="steps"):
        ff.train(params, x, y, lr=0.1, steps=2.5)


def test_overflowing_parameters_raise_floating_point_error():
    params, x, y = problem(5, 2, 4, 3)
    huge = dict(params, V=np.full_like(params["V"], 1e308), c=np.array([1e308, -1e308, 0.0]))
    with pytest.raises(FloatingPointError):
        with np.errstate(over="ignore", invalid="ignore"):
            ff.loss_and_grads(huge, x, y)


# --- the exercise ------------------------------------------------------------------

def _honest(x, h, yhat, y, V):
    B = len(y)
    G_o = yhat.copy()
    G_o[np.arange(B), y] -= 1
    G_o /= B
    G_a = (G_o @ V) * (1 - h**2)
    return {"U": G_a.T @ x, "b": G_a.sum(axis=0), "V": G_o.T @ h, "c": G_o.sum(axis=0)}


def _with(change):
    def student(x, h, yhat, y, V):
        grads = _honest(x, h, yhat, y, V)
        change(grads, x, h, yhat, y, V)
        return grads
    return student


def test_checker_accepts_reference_and_honest_solution():
    from bptt_lib.exercises.backprop import reference_tiny_backward
    assert verdict("tiny_backward", reference_tiny_backward)
    assert verdict("tiny_backward", _honest)


def test_reference_tiny_backward_equals_the_library_backward():
    from bptt_lib.exercises.backprop import reference_tiny_backward
    params, x, y = problem(6, 3, 4, 3)
    trace = ff.forward(params, x)
    expected = ff.backward(params, trace, y)
    got = reference_tiny_backward(x, trace.h, trace.yhat, y, params["V"])
    for key in expected:
        assert gradcheck.relative_error(got[key], expected[key]) < 1e-14


@pytest.mark.parametrize("wrong", [
    _with(lambda g, *a: g.update(U=g["U"].T.copy()) if g["U"].shape[0] == g["U"].shape[1] else None),
    _with(lambda g, x, h, yhat, y, V: g.update(U=((yhat - np.eye(yhat.shape[1])[y]) / len(y) @ V).T @ x)),
    _with(lambda g, x, h, yhat, y, V: g.update(V=g["V"] * len(y), c=g["c"] * len(y))),
    _with(lambda g, *a: g.update(b=g["b"][None, :])),
    _with(lambda g, *a: g.pop("c")),
    _with(lambda g, x, h, *a: g.update(U=g["U"] / (1 - h**2).mean())),
])
def test_checker_rejects_wrong_answers(wrong):
    assert not verdict("tiny_backward", wrong)


def test_checker_reports_not_implemented():
    def stub(x, h, yhat, y, V):
        raise NotImplementedError
    result = verdict("tiny_backward", stub)
    assert not result and "not implemented" in result.message


def test_plots_draw_one_line_per_run_and_the_regions():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = ff.plot_loss_curves({"single": np.linspace(1.0, 0.1, 20),
                               "five seeds": [np.ones(20) * s for s in (1, 2, 3, 4, 5)]})
    (ax,) = fig.axes
    assert len(ax.lines) == 6 and ax.get_yscale() == "log"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["single", "five seeds"]
    plt.close(fig)
    with pytest.raises(TypeError):
        ff.plot_loss_curves({})

    x, y = ff.spirals(10, 3, rng=np.random.default_rng(0))
    params = ff.init_params(2, 4, 3, rng=np.random.default_rng(1))
    fig = ff.plot_regions(params, x, y, n_grid=21)
    (ax,) = fig.axes
    assert len(ax.collections) >= 3  # filled regions, boundaries and one scatter per class
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["class 0", "class 1", "class 2"]
    plt.close(fig)
