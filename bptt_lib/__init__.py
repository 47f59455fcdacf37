"""bptt_lib: the library that the book *BPTT, derived* derives.

Where each chapter's code lives (SymPy derivations under :mod:`bptt_lib.derive`,
NumPy code generated from them at the top level):

==========================================  ==========================================================
Chapter                                     Modules
==========================================  ==========================================================
1. Unrolling a recurrent network            :mod:`~bptt_lib.unrolling`, :mod:`~bptt_lib.derive.unrolling`, :mod:`~bptt_lib.rnn`
2. The chain rule for many variables        :mod:`~bptt_lib.chain_rule`, :mod:`~bptt_lib.derive.chain_rule`, :mod:`~bptt_lib.derive.activations`
3. Backpropagation, recalled                :mod:`~bptt_lib.feedforward`, :mod:`~bptt_lib.derive.feedforward`
4. Three paths back in time                 :mod:`~bptt_lib.scalar_rnn`, :mod:`~bptt_lib.derive.scalar_rnn`
5. The total loss and the implicit part     :mod:`~bptt_lib.implicit_recursion`, :mod:`~bptt_lib.derive.implicit_recursion`
6. BPTT in vector form                      :mod:`~bptt_lib.rnn`, :mod:`~bptt_lib.vector_bptt`, :mod:`~bptt_lib.derive.bptt`,
                                            :mod:`~bptt_lib.cell`, :mod:`~bptt_lib.bptt`
7. Two views, one gradient                  :mod:`~bptt_lib.path_sum`
8. Products of Jacobians                    :mod:`~bptt_lib.jacobian_products`, :mod:`~bptt_lib.derive.jacobian_products`
9. Remedies                                 :mod:`~bptt_lib.clip`, :mod:`~bptt_lib.remedies`, :mod:`~bptt_lib.derive.relu`
10. Long-term dependencies                  :mod:`~bptt_lib.tasks`, :mod:`~bptt_lib.long_term`
11. Truncated BPTT                          :mod:`~bptt_lib.truncation`, :mod:`~bptt_lib.derive.truncation`
12. Unbiased truncation: ARTBP              :mod:`~bptt_lib.artbp`, :mod:`~bptt_lib.influence_balancing`,
                                            :mod:`~bptt_lib.derive.influence_balancing`
13. Memory, and learning online             :mod:`~bptt_lib.checkpointing`, :mod:`~bptt_lib.online`,
                                            :mod:`~bptt_lib.memory_online`, :mod:`~bptt_lib.derive.online`
14. LSTM                                    :mod:`~bptt_lib.lstm`, :mod:`~bptt_lib.derive.lstm`
15. GRU                                     :mod:`~bptt_lib.gru`, :mod:`~bptt_lib.derive.gru`
16. What gates change, measured             :mod:`~bptt_lib.gates`
17. A character-level language model        :mod:`~bptt_lib.char_lm` (its text in ``bptt_lib/data``)
(Parts IV and V: the models by name)        :mod:`~bptt_lib.models`
(every chapter)                             :mod:`~bptt_lib.derive` -> :mod:`~bptt_lib.codegen` -> :mod:`~bptt_lib.kernels`;
                                            :mod:`~bptt_lib.gradcheck`, :mod:`~bptt_lib.training`, :mod:`~bptt_lib.optim`,
                                            :mod:`~bptt_lib.softmax`, :mod:`~bptt_lib.validation`,
                                            :mod:`~bptt_lib.exercises`, :mod:`~bptt_lib.plotting`,
                                            :mod:`~bptt_lib.student_edition`, :mod:`~bptt_lib.launch_cell`
Where the time goes (appendix)              :mod:`~bptt_lib.timing`
==========================================  ==========================================================
"""

__version__ = "0.2.0"  # pyproject.toml and CITATION.cff say the same (tests/test_citation.py)

from .clip import clip_by_global_norm, clip_by_value  # noqa: E402

__all__ = ["clip_by_global_norm", "clip_by_value", "__version__"]
