"""The derivation layer: SymPy expressions for every gradient the book uses.

Each module derives one concept and returns SymPy objects; nothing here touches
NumPy. :mod:`bptt_lib.kernels` turns these expressions into NumPy functions.

- :mod:`~bptt_lib.derive.activations`: tanh and the logistic sigmoid, their
  derivatives written in terms of their outputs, and where those derivatives peak.
- :mod:`~bptt_lib.derive.rnn_step`: one step of the vanilla RNN, its Jacobian
  ``diag(1 - h^2) W`` and the vector-Jacobian products of its affine maps.
- :mod:`~bptt_lib.derive.softmax_nll`: softmax followed by the negative
  log-likelihood, whose gradient is ``yhat - onehot(y)``.
"""




