"""Tests of chapter 2: the multivariable chain rule, total versus immediate derivatives, VJPs."""

import inspect

import numpy as np
import pytest
import sympy as sp

from bptt_lib import chain_rule as cr
from bptt_lib import gradcheck
from bptt_lib.codegen import source_of
from bptt_lib.derive import activations, rnn_step
from bptt_lib.derive import chain_rule as dcr
from bptt_lib.exercises import get, verdict
from bptt_lib.kernels import rnn_kernels

x, y = sp.symbols("x y", real=True)


# --- the chain rule ------------------------------------------------------------------


def test_one_variable_chain_rule():
    assert dcr.prove_chain_rule(sp.sin(x), {x: dcr.t**2})
    direct, by_rule = dcr.chain_rule(sp.sin(x), {x: dcr.t**2})
    assert sp.simplify(direct - 2 * dcr.t * sp.cos(dcr.t**2)) == 0


def test_two_variable_chain_rule_concrete_and_general():
    assert dcr.prove_chain_rule(x**2 * y + sp.sin(y), {x: sp.cos(dcr.t), y: sp.exp(dcr.t)})
    f = sp.Function("f")
    X, Y = sp.Function("x")(dcr.t), sp.Function("y")(dcr.t)
    assert dcr.prove_chain_rule(f(x, y), {x: X, y: Y})


def test_chain_rule_detects_a_wrong_rule():
    # Dropping one path must not pass as the chain rule.
    direct, by_rule = dcr.chain_rule(x * y, {x: sp.cos(dcr.t), y: sp.exp(dcr.t)})
    one_path = sp.diff(x * y, x).subs({x: sp.cos(dcr.t), y: sp.exp(dcr.t)}) * sp.diff(sp.cos(dcr.t), dcr.t)
    assert sp.simplify(direct - one_path) != 0


def test_chain_rule_validation():
    with pytest.raises(TypeError):
        dcr.chain_rule("x*y", {x: dcr.t})
    with pytest.raises(TypeError):
        dcr.chain_rule(x, {})
    with pytest.raises(ValueError):
        dcr.chain_rule(x, {dcr.t: dcr.t**2})


# --- total versus immediate ------------------------------------------------------------


@pytest.mark.parametrize("n_steps", [1, 2, 3])
@pytest.mark.parametrize("activation", ["tanh", "sigmoid", sp.Function("phi")])
def test_total_equals_sum_over_paths(n_steps, activation):
    assert dcr.prove_sum_over_paths(n_steps, activation)
    assert dcr.prove_sum_over_paths(n_steps, activation, wrt=dcr.u)


def test_two_step_total_is_partial_plus_implicit():
    rnn = dcr.scalar_rnn(2)
    total = dcr.total_derivative(rnn, 2)
    partial = dcr.immediate_partial(rnn, 2)
    implicit = dcr.step_jacobian(rnn, 2) * dcr.total_derivative(rnn, 1)
    assert sp.expand(total - (partial + implicit)) == 0
    assert sp.expand(dcr.implicit_part(rnn, 2) - implicit) == 0
    # The implicit part is not zero: the immediate partial alone is wrong.
    assert sp.expand(total - partial) != 0


def test_expressions_in_states():
    rnn = dcr.scalar_rnn(2)
    h0, (h1, h2) = rnn.h0, rnn.states
    assert sp.expand(dcr.immediate_partial(rnn, 2, in_states=True) - (1 - h2**2) * h1) == 0
    assert sp.expand(dcr.step_jacobian(rnn, 2, in_states=True) - (1 - h2**2) * dcr.w) == 0
    assert sp.expand(dcr.implicit_part(rnn, 2, in_states=True) - (1 - h2**2) * dcr.w * (1 - h1**2) * h0) == 0


def test_using_total_derivatives_in_the_sum_double_counts():
    # Reading the first path term as the *total* derivative counts the path through h_1 twice.
    rnn = dcr.scalar_rnn(2)
    total = dcr.total_derivative(rnn, 2)
    wrong = total + dcr.step_jacobian(rnn, 2) * dcr.total_derivative(rnn, 1)
    assert sp.expand(wrong - total - dcr.implicit_part(rnn, 2)) == 0


def test_time_indices_are_superscripts_and_names_are_identifiers():
    rnn = dcr.scalar_rnn(2)
    assert sp.latex(rnn.states[1]) == "h^{(2)}" and sp.latex(rnn.x[0]) == "x^{(1)}"
    assert sp.latex(rnn.h0) == "h^{(0)}"
    assert [s.name for s in (rnn.h0, *rnn.x, *rnn.states)] == ["h_0", "x_1", "x_2", "h_1", "h_2"]
    # A chapter may still rename the states for display.
    assert sp.latex(rnn.states[0], symbol_names={rnn.states[0]: "S_1"}) == "S_1"
    assert "h_0" in source_of(cr.two_step_kernels().total_dw)


def test_activations_come_from_derive_activations():
    from bptt_lib.derive import activations
    rnn = dcr.scalar_rnn(1, "sigmoid")
    assert rnn.step[1] == activations.ACTIVATIONS["sigmoid"].of_a.subs(activations.a, dcr.w * rnn.h0 + dcr.u * rnn.x[0])


def test_scalar_rnn_validation():
    with pytest.raises(ValueError):
        dcr.scalar_rnn(0)
    with pytest.raises(TypeError):
        dcr.scalar_rnn(2.0)
    with pytest.raises(ValueError):
        dcr.scalar_rnn(2, "relu")
    with pytest.raises(TypeError):
        dcr.scalar_rnn(2, np.tanh)
    with pytest.raises(ValueError):
        dcr.immediate_partial(dcr.scalar_rnn(2), 3)
    with pytest.raises(ValueError):
        dcr.immediate_partial(dcr.scalar_rnn(2), 1, wrt=x)


# --- activations and Jacobians ------------------------------------------------------------


def test_derivative_peaks():
    assert activations.derivative_peak("tanh") == (0, 1)
    assert activations.derivative_peak("sigmoid") == (0, sp.Rational(1, 4))
    assert activations.prove_derivative_in_output("tanh")
    assert activations.prove_derivative_in_output("sigmoid")


def test_sigmoid_bound_keeps_at_most_a_quarter():
    # Ten sigmoid layers at their best keep (1/4)**10 of the gradient, not 0.75**10.
    _, peak = activations.derivative_peak("sigmoid")
    assert peak**10 == sp.Rational(1, 4**10)
    assert 1 - peak == sp.Rational(3, 4)


@pytest.mark.parametrize("name", ["tanh", "sigmoid"])
def test_elementwise_jacobian_is_diagonal(name):
    componentwise, compact = dcr.elementwise_jacobian(name, 3)
    assert sp.simplify(componentwise - compact) == sp.zeros(3, 3)
    assert all(componentwise[i, j] == 0 for i in range(3) for j in range(3) if i != j)


def test_rnn_step_jacobian():
    assert rnn_step.prove_jacobian(2, 3)


def test_tanh_vjp_kernel_equals_diagonal_jacobian_product():
    rng = np.random.default_rng(0)
    kernel = rnn_kernels().tanh_vjp
    assert "1 - h**2" in source_of(kernel)
    for n in (1, 4, 17):
        h = np.tanh(rng.standard_normal(n))
        g = rng.standard_normal(n)
        explicit = np.diag(1 - h**2) @ g
        assert np.allclose(kernel(g, h), explicit, rtol=0, atol=1e-12)


# --- numerics --------------------------------------------------------------------------


def test_generated_two_step_kernels_match_finite_differences():
    k = cr.two_step_kernels()
    u, h0, x1, x2, w = 0.8, 0.3, 1.0, -0.5, 0.9

    def f(p):
        return cr.scalar_rnn_states(p["w"].item(), u, h0, [x1, x2])[-1]

    central = gradcheck.central_difference(f, {"w": w})["w"]
    complex_ = gradcheck.complex_step(f, {"w": w})["w"]
    total = k.total_dw(w, u, h0, x1, x2)
    assert gradcheck.relative_error(total, central) < 1e-8
    assert gradcheck.relative_error(total, complex_) < 1e-13
    assert np.isclose(total, k.immediate_dw(w, u, h0, x1, x2) + k.implicit_dw(w, u, h0, x1, x2), atol=1e-14)
    assert gradcheck.relative_error(k.immediate_dw(w, u, h0, x1, x2), central) > 0.1


def test_two_step_kernels_are_generated():
    k = cr.two_step_kernels()
    assert k.total_dw.expr == dcr.total_derivative(dcr.scalar_rnn(2), 2)
    assert "tanh" in source_of(k.total_dw)


def test_scalar_rnn_states_is_scalar_rnn_forward():
    from bptt_lib import scalar_rnn

    # One generated kernel and one loop serve chapters 2 and 4.
    assert cr.scalar_step_kernel() is scalar_rnn.step_kernels("tanh").step
    sym = dcr.scalar_rnn(1)
    w, u, h_prev, x = sp.symbols("w u h_prev x")
    assert sp.simplify(cr.scalar_step_kernel().expr.subs(dict(zip(cr.scalar_step_kernel().args, (w, u, h_prev, x))))
                       - sym.step[1].subs({sym.w: w, sym.u: u, sym.h0: h_prev, sym.x[0]: x})) == 0
    states = cr.scalar_rnn_states(0.7, 0.3, 0.1, [1.0, -2.0, 0.5])
    assert np.array_equal(states, scalar_rnn.forward({"w": 0.7, "u": 0.3}, 0.1, [1.0, -2.0, 0.5]))
    h = 0.1
    for x_t in (1.0, -2.0, 0.5):
        h = np.tanh(0.7 * h + 0.3 * x_t)
    assert abs(states[-1] - h) < 1e-15


def test_scalar_rnn_states_validation_and_complex():
    states = cr.scalar_rnn_states(0.5 + 1e-30j, 1.0, 0.0, [1.0, 2.0])
    assert states.dtype == np.complex128 and states.shape == (3,)
    with pytest.raises(ValueError):
        cr.scalar_rnn_states(0.5, 1.0, 0.0, [])
    with pytest.raises(ValueError):
        cr.scalar_rnn_states([0.5, 0.1], 1.0, 0.0, [1.0])
    with pytest.raises(TypeError):
        cr.scalar_rnn_states(0.5, 1.0, 0.0j, [1.0])


def test_finite_difference_errors_shapes_and_validation():
    errs = cr.finite_difference_errors(np.sin, np.cos(0.3), 0.3, [1e-2, 1e-4])
    assert errs["central"].shape == (2,) and errs["complex"].shape == (2,)
    assert errs["central"][1] < errs["central"][0]
    # The errors are gradcheck's relative errors, not a private definition.
    approx = (np.sin(0.3 + 1e-2) - np.sin(0.3 - 1e-2)) / 2e-2
    assert np.isclose(errs["central"][0], gradcheck.relative_error(np.cos(0.3), approx), rtol=1e-6)
    with pytest.raises(ValueError):
        cr.finite_difference_errors(np.sin, 1.0, 0.0, [0.0])
    with pytest.raises(TypeError):
        cr.finite_difference_errors(1.0, 1.0, 0.0, [1e-3])


# --- exercises --------------------------------------------------------------------------


def test_sigmoid_vjp_checker():
    ref = get("sigmoid_vjp").reference
    assert verdict("sigmoid_vjp", ref)
    assert verdict("sigmoid_vjp", rnn_kernels().sigmoid_vjp)
    assert not verdict("sigmoid_vjp", lambda g, s: g * s)               # forgot (1 - s)
    assert not verdict("sigmoid_vjp", lambda g, s: g * (1 - s**2))      # the tanh rule
    assert not verdict("sigmoid_vjp", lambda g, s: s * (1 - s))         # forgot the upstream gradient


def test_step_vjp_h_prev_checker():
    assert verdict("step_vjp_h_prev", lambda g, h, W: (g * (1 - h**2)) @ W)
    assert not verdict("step_vjp_h_prev", lambda g, h, W: (g * (1 - h)) @ W)        # forgot the square
    assert not verdict("step_vjp_h_prev", lambda g, h, W: (g * (1 - h**2)) @ W.T)   # wrong transpose
    assert not verdict("step_vjp_h_prev", lambda g, h, W: g @ W)                    # forgot tanh'


def test_step_vjp_reference_calls_generated_kernels():
    src = inspect.getsource(get("step_vjp_h_prev").reference)
    assert "tanh_vjp" in src and "hidden_vjp_h_prev" in src


def test_not_implemented_is_reported(capsys):
    from bptt_lib.exercises import check

    def stub(g, s):
        raise NotImplementedError

    assert not verdict("sigmoid_vjp", stub)
    check("sigmoid_vjp", stub)
    assert "not implemented yet" in capsys.readouterr().out


def test_preface_checker_example_runs_and_passes(monkeypatch):
    """The preface's example call uses a registered exercise, its argument names, and passes."""
    import re
    from pathlib import Path

    import bptt_lib.exercises as exercises

    preface = (Path(__file__).resolve().parents[1] / "book" / "preface.md").read_text()
    blocks = [b for b in re.findall(r"```python\n(.*?)```", preface, flags=re.S) if "check(" in b]
    assert len(blocks) == 1, "the preface should hold exactly one example checker call"
    calls = []
    monkeypatch.setattr(exercises, "check", lambda name, fn: calls.append((name, fn)))
    exec(compile(blocks[0], "preface.md", "exec"), {})
    assert len(calls) == 1
    name, fn = calls[0]
    reference = get(name).reference  # raises if the name is not registered
    assert list(inspect.signature(fn).parameters) == list(inspect.signature(reference).parameters)
    assert verdict(name, fn)
