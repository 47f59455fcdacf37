"""The generated kernels equal the derived expressions, evaluated entry by entry.

Each kernel is compared with an independent evaluation of the *componentwise*
SymPy derivation at explicit sizes (plain ``sympy.lambdify`` of every entry), on
seeded random inputs. Both sides are float64 evaluations of the same exact
formula, so they agree to a few ulps: rtol 1e-12.
"""

import numpy as np
import pytest
import sympy as sp

from bptt_lib.codegen import source_of
from bptt_lib.derive import activations, rnn_step, softmax_nll
from bptt_lib.kernels import KERNEL_NAMES, rnn_kernels

RTOL = 1e-12
B, D, H, K = 3, 2, 3, 2


def test_every_kernel_is_generated_from_an_expression():
    k = rnn_kernels()
    for name in KERNEL_NAMES:
        fn = getattr(k, name)
        assert fn.__name__ == name
        assert isinstance(fn.expr, (sp.Basic, tuple))
        assert source_of(fn).startswith(f"def {name}(")


def test_elementwise_kernels_build_no_diagonal_matrix():
    k = rnn_kernels()
    assert source_of(k.tanh_vjp).strip().endswith("return g*(1 - h**2)")
    for name in KERNEL_NAMES:
        src = source_of(getattr(k, name))
        assert "diag" not in src and "einsum" not in src, name


def _componentwise_vjps(affine, upstream, wrt, sizes):
    """Per entry: d/dP_ij of sum(G * A), lambdified entry by entry."""
    A = affine.subs(sizes).as_explicit()
    G = upstream.subs(sizes).as_explicit()
    L = sum(G[i, j] * A[i, j] for i in range(A.rows) for j in range(A.cols))
    return {p: p.subs(sizes).as_explicit().applyfunc(lambda e: sp.diff(L, e)) for p in wrt}


def _evaluate(matrix_expr, values):
    """Evaluate an explicit SymPy matrix whose entries are MatrixElements, given arrays."""
    symbols = sorted(matrix_expr.atoms(sp.matrices.expressions.matexpr.MatrixElement), key=str)
    subs = {}
    for s in symbols:
        parent, i, j = s.args
        subs[s] = values[str(parent.name)][int(i), int(j)]
    return np.array(matrix_expr.subs(subs).evalf(), dtype=float)


def test_hidden_vjp_kernels_equal_componentwise_derivation(rng):
    k = rnn_kernels()
    sym = rnn_step.batch_symbols()
    sizes = {rnn_step.B: B, rnn_step.D: D, rnn_step.H: H}
    wrt = [sym.W, sym.U, sym.b, sym.H_prev]
    derived = _componentwise_vjps(rnn_step.hidden_preactivation(sym), sym.G_a, wrt, sizes)
    values = {
        "H_prev": rng.standard_normal((B, H)), "X": rng.standard_normal((B, D)),
        "W": rng.standard_normal((H, H)), "U": rng.standard_normal((H, D)),
        "b": rng.standard_normal((1, H)), "one_B": np.ones((B, 1)), "G_a": rng.standard_normal((B, H)),
    }
    dW, dU, db = k.hidden_vjp_params(values["G_a"], values["H_prev"], values["X"], values["one_B"])
    dH_prev = k.hidden_vjp_h_prev(values["G_a"], values["W"])
    for got, p in [(dW, sym.W), (dU, sym.U), (db, sym.b), (dH_prev, sym.H_prev)]:
        np.testing.assert_allclose(got, _evaluate(derived[p], values), rtol=RTOL, atol=1e-14)
    A = k.hidden_preactivation(values["H_prev"], values["X"], values["W"], values["U"], values["b"], values["one_B"])
    expected = _evaluate(rnn_step.hidden_preactivation(sym).subs(sizes).as_explicit(), values)
    np.testing.assert_allclose(A, expected, rtol=RTOL)


def test_output_vjp_kernel_equals_componentwise_derivation(rng):
    k = rnn_kernels()
    sym = rnn_step.batch_symbols()
    sizes = {rnn_step.B: B, rnn_step.H: H, rnn_step.K: K}
    derived = _componentwise_vjps(rnn_step.output_affine(sym), sym.G_o, [sym.V, sym.c, sym.Hid], sizes)
    values = {
        "H": rng.standard_normal((B, H)), "V": rng.standard_normal((K, H)),
        "c": rng.standard_normal((1, K)), "one_B": np.ones((B, 1)), "G_o": rng.standard_normal((B, K)),
    }
    dV, dc, dH = k.output_vjp(values["G_o"], values["H"], values["V"], values["one_B"])
    for got, p in [(dV, sym.V), (dc, sym.c), (dH, sym.Hid)]:
        np.testing.assert_allclose(got, _evaluate(derived[p], values), rtol=RTOL, atol=1e-14)


@pytest.mark.parametrize("name", ["tanh", "sigmoid"])
def test_activation_vjp_kernels_equal_the_derivative_in_a(name, rng):
    k = rnn_kernels()
    a_values = rng.standard_normal((4, 5)) * 2
    g_values = rng.standard_normal((4, 5))
    act = activations.ACTIVATIONS[name]
    phi = sp.lambdify(activations.a, act.of_a, "numpy")
    dphi = sp.lambdify(activations.a, activations.derivative(name), "numpy")  # from the definition, in a
    kernel = k.tanh_vjp if name == "tanh" else k.sigmoid_vjp
    np.testing.assert_allclose(kernel(g_values, phi(a_values)), g_values * dphi(a_values), rtol=1e-10)


def test_softmax_nll_grad_kernel_equals_componentwise_derivative(rng):
    k = rnn_kernels()
    o = softmax_nll.logits(K + 1)
    n_classes = K + 1
    logits = rng.standard_normal((B, n_classes))
    targets = rng.integers(0, n_classes, size=B)
    expected = np.empty((B, n_classes))
    for i in range(B):
        grad = sp.lambdify(list(o), softmax_nll.gradient_componentwise(o, int(targets[i])), "numpy")
        expected[i] = np.asarray(grad(*logits[i]), dtype=float).ravel() / B
    yhat = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    Y = np.eye(n_classes)[targets]
    np.testing.assert_allclose(k.softmax_nll_grad(yhat, Y, B), expected, rtol=1e-10, atol=1e-15)


def test_kernels_are_generated_once():
    assert rnn_kernels() is rnn_kernels()
