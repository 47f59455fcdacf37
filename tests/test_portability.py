"""The one-ulp perturbation of tests/portability/one_ulp.py does what `make portability` relies on.

It runs in a subprocess, so the functions of this test process stay unperturbed.
"""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ONE_ULP = Path(__file__).resolve().parent / "portability" / "one_ulp.py"

RNN_PROBLEM = """
def rnn_problem():
    rng = np.random.default_rng(0)
    return rnn.init_params(3, 4, 2, rng=rng), rng.standard_normal((5, 2, 3)), np.zeros((2, 4))
"""

PROBE = r"""
import json, math, runpy, sys
import numpy as np
exact = {name: getattr(np, name) for name in ("tanh", "exp", "log", "sin")}
exact_math_tanh = math.tanh
runpy.run_path(sys.argv[1])
runpy.run_path(sys.argv[1])  # installing twice changes nothing
import sympy as sp
from bptt_lib import codegen, rnn
{RNN_PROBLEM}

x = np.linspace(0.05, 2.95, 59) + 0.001  # no exact point (log 1 = 0)
ulps = {name: ((getattr(np, name)(x) - f(x)) / np.spacing(np.abs(f(x)))).tolist() for name, f in exact.items()}
out = np.empty_like(x)
returned = np.exp(x, out=out)
where = np.zeros_like(x)
np.exp(x, where=x > 1, out=where)
z = np.tanh(x[:3] + 1e-30j)
s = sp.Symbol("s")
kernel = codegen.generate("kernel", [s], sp.tanh(s))
print(json.dumps({
    "ulps": ulps,
    "exact_values": [float(np.tanh(0.0)), float(np.exp(0.0)), float(np.log(1.0)), float(np.tanh(40.0)),
                     float(np.log2(8.0))],
    "scalar_type": type(np.tanh(0.5)).__name__,
    "odd": bool(np.tanh(-0.7) == -np.tanh(0.7)),
    "out_is_returned": returned is out,
    "out_moved": bool(np.all(out != exact["exp"](x))),
    "where_respected": bool(np.all(where[x <= 1] == 0) and np.all(where[x > 1] != exact["exp"](x[x > 1]))),
    "complex_moved": bool(np.all(z.real != exact["tanh"](x[:3] + 1e-30j).real)
                          and np.all(z.imag != exact["tanh"](x[:3] + 1e-30j).imag)),
    "math_moved": math.tanh(0.3) != exact_math_tanh(0.3)
                  and abs(math.tanh(0.3) - exact_math_tanh(0.3)) <= math.ulp(exact_math_tanh(0.3)),
    "kernel": float(kernel(0.37)),
    "forward_h": rnn.forward(*rnn_problem()).h.tolist(),
}))
"""


@pytest.fixture(scope="module")
def probe():
    code = PROBE.replace("{RNN_PROBLEM}", RNN_PROBLEM)
    result = subprocess.run([sys.executable, "-c", code, str(ONE_ULP)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_every_result_moves_by_exactly_one_ulp_in_both_directions(probe):
    for name, ulps in probe["ulps"].items():
        assert set(ulps) <= {-1.0, 1.0}, name
        assert ulps.count(1.0) >= 10 and ulps.count(-1.0) >= 10, name  # "mixed": both directions occur


def test_results_every_libm_returns_exactly_are_kept(probe):
    assert probe["exact_values"] == [0.0, 1.0, 0.0, 1.0, 3.0]
    assert probe["scalar_type"] == "float64"
    assert probe["odd"]


def test_ufunc_arguments_work(probe):
    assert probe["out_is_returned"] and probe["out_moved"]
    assert probe["where_respected"]
    assert probe["complex_moved"]
    assert probe["math_moved"]


def test_generated_kernels_and_the_rnn_see_the_perturbation(probe):
    """The same computation in this (unperturbed) process gives other last bits, and only those."""
    import sympy as sp

    from bptt_lib import codegen, rnn

    s = sp.Symbol("s")
    exact = codegen.generate("kernel", [s], sp.tanh(s))(0.37)
    assert probe["kernel"] != exact, "a sympy-generated kernel did not call the perturbed functions"
    assert abs(probe["kernel"] - exact) == np.spacing(exact)
    namespace = {"np": np, "rnn": rnn}
    exec(RNN_PROBLEM, namespace)
    h_exact = rnn.forward(*namespace["rnn_problem"]()).h
    h = np.array(probe["forward_h"])
    assert np.any(h != h_exact), "rnn.forward does not use the perturbed tanh"
    assert np.max(np.abs(h - h_exact)) < 1e-14
