"""bptt_lib: the library that the book *BPTT, derived* derives.

Where each chapter's code lives:

========================================  =====================================
Chapter                                   Modules
========================================  =====================================
1. Unrolling a recurrent network          :mod:`bptt_lib.unrolling`, :mod:`bptt_lib.rnn`
2. The chain rule for many variables      :mod:`bptt_lib.chain_rule`, :mod:`bptt_lib.derive.activations`
3. Backpropagation, recalled              :mod:`bptt_lib.feedforward`
(all chapters)                            :mod:`bptt_lib.derive` -> :mod:`bptt_lib.codegen`
                                          -> :mod:`bptt_lib.kernels`; :mod:`bptt_lib.gradcheck`;
                                          :mod:`bptt_lib.exercises`; :mod:`bptt_lib.plotting`
========================================  =====================================
"""

__version__ = "0.1.0"

from .clip import clip_by_global_norm, clip_by_value  # noqa: E402  (public since Part III)

__all__ = ["clip_by_global_norm", "clip_by_value", "__version__"]
