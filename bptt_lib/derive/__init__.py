"""The derivation layer: SymPy expressions for every gradient the book uses.

Each module derives one concept and returns SymPy objects; nothing here touches
NumPy. :mod:`bptt_lib.kernels` and the chapter modules turn these expressions
into NumPy functions with :func:`bptt_lib.codegen.generate`.

- :mod:`~bptt_lib.derive.activations`: tanh and the logistic sigmoid, their
  derivatives written in terms of their outputs, and where those derivatives peak.
- :mod:`~bptt_lib.derive.rnn_step`: one step of the vanilla RNN, its Jacobian
  ``diag(1 - h^2) W`` and the vector-Jacobian products of its affine maps.
- :mod:`~bptt_lib.derive.softmax_nll`: softmax followed by the negative
  log-likelihood, whose gradient is ``yhat - onehot(y)``.
- :mod:`~bptt_lib.derive.unrolling` (ch. 1): the unrolled network as one nested expression.
- :mod:`~bptt_lib.derive.chain_rule` (ch. 2): total versus immediate derivatives,
  the sum over paths, for scalar recurrences.
- :mod:`~bptt_lib.derive.feedforward` (ch. 3): the tiny feed-forward network,
  proven entry by entry, and the proof that it reuses the RNN's kernels.
- :mod:`~bptt_lib.derive.scalar_rnn` (ch. 4): the scalar RNN with an output and a
  squared error, its path terms, the general formula and the source's formula for contrast.
- :mod:`~bptt_lib.derive.implicit_recursion` (ch. 5): the explicit plus implicit
  recursion (scalar, vec(W), tangent form) and the linear RNN's closed form.
- :mod:`~bptt_lib.derive.bptt` (ch. 6): the softmax Jacobian and every BPTT
  gradient, componentwise for explicit sizes, proven equal to the compact forms.
- :mod:`~bptt_lib.derive.jacobian_products` (ch. 8): ``dh_t/dh_k`` as a product of
  step Jacobians.
- :mod:`~bptt_lib.derive.relu` (ch. 9): the ReLU derivative and its convention at 0.
- :mod:`~bptt_lib.derive.truncation` (ch. 11): which path terms truncated BPTT keeps,
  checked on a scalar network with an undefined activation.
- :mod:`~bptt_lib.derive.influence_balancing` (ch. 12): the optimum of the
  influence-balancing task and the sign of its truncated sensitivities.
- :mod:`~bptt_lib.derive.online` (ch. 13): the forward (RTRL) sensitivity update and
  UORO's unbiasedness over the random signs.
- :mod:`~bptt_lib.derive.lstm`, :mod:`~bptt_lib.derive.gru` (Part V): the gated cells'
  steps, their backward rules and their state Jacobians.
"""
