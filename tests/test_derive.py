"""The derivation layer proves what the book states, and its proofs can fail."""

import pytest
import sympy as sp

from bptt_lib.derive import activations, rnn_step, softmax_nll


@pytest.mark.parametrize("n_in,n_hidden", [(1, 1), (2, 2), (2, 3), (3, 2)])
def test_tanh_jacobian_is_diag_times_W(n_in, n_hidden):
    assert rnn_step.prove_jacobian(n_in, n_hidden)


def _at_a_point(expr, seed=0):
    """Evaluate a SymPy matrix at a seeded random point (a cheap witness of non-equality)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    point = {s: sp.Rational(int(rng.integers(-9, 10)), 7) for s in sorted(expr.free_symbols, key=str)}
    return expr.subs(point).evalf()


def test_jacobian_proof_rejects_wrong_operand_order():
    componentwise, compact = rnn_step.jacobian_h_prev(2, 2)
    sym = rnn_step.explicit_symbols(2, 2)
    h = rnn_step.step(sym).h
    wrong = sym.W * sp.diag(*[1 - hi**2 for hi in h])  # W diag(1 - h^2): the operands swapped
    assert _at_a_point(componentwise - wrong).norm() > 1e-3
    assert sp.simplify(componentwise - compact) == sp.zeros(2, 2)


@pytest.mark.parametrize("sizes", [(1, 1, 1), (2, 2, 2), (2, 3, 2)])
def test_affine_vjps_match_componentwise_derivatives(sizes):
    assert rnn_step.prove_affine_vjps(*sizes)


def test_affine_vjp_proof_fails_for_a_wrong_rule(monkeypatch):
    real = rnn_step.affine_vjps

    def transposed(affine, upstream, wrt):
        out = real(affine, upstream, wrt)
        return {p: (e.T if p.shape[0] == p.shape[1] else e) for p, e in out.items()}

    monkeypatch.setattr(rnn_step, "affine_vjps", transposed)
    assert not rnn_step.prove_affine_vjps(2, 2, 2)


def test_matrix_calculus_gives_the_textbook_rules():
    sym = rnn_step.batch_symbols()
    hidden = rnn_step.affine_vjps(rnn_step.hidden_preactivation(sym), sym.G_a, [sym.W, sym.U, sym.b, sym.H_prev])
    assert hidden[sym.W] == sym.G_a.T * sym.H_prev
    assert hidden[sym.U] == sym.G_a.T * sym.X
    assert hidden[sym.H_prev] == sym.G_a * sym.W
    assert hidden[sym.b] == sym.one_B.T * sym.G_a


@pytest.mark.parametrize("name,peak", [("tanh", 1), ("sigmoid", sp.Rational(1, 4))])
def test_activation_derivatives(name, peak):
    assert activations.prove_derivative_in_output(name)
    argmax, maximum = activations.derivative_peak(name)
    assert argmax == 0 and maximum == peak


def test_activation_vjp_is_elementwise_rule():
    assert activations.vjp("tanh") == activations.g * (1 - activations.h**2)
    assert sp.expand(activations.vjp("sigmoid") - activations.g * activations.s * (1 - activations.s)) == 0


def test_unknown_activation_is_a_clear_error():
    with pytest.raises(ValueError, match="activation must be one of"):
        activations.derivative("relu6")


@pytest.mark.parametrize("n_classes", [2, 3, 4])
def test_softmax_nll_gradient(n_classes):
    assert softmax_nll.prove_gradient(n_classes)


def test_softmax_gradient_check_can_fail():
    o = softmax_nll.logits(3)
    got = softmax_nll.gradient_componentwise(o, 0)
    onehot_of_wrong_class = sp.Matrix([0, 1, 0])
    assert _at_a_point(got - (softmax_nll.softmax(o) - onehot_of_wrong_class)).norm() > 1e-3


@pytest.mark.parametrize("bad", [0, 5, 2.0, "2"])
def test_explicit_sizes_are_validated(bad):
    with pytest.raises(ValueError, match="n_hidden"):
        rnn_step.explicit_symbols(2, bad)
