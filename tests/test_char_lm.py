"""Tests of bptt_lib.char_lm: the character-level language model of chapter 17."""

import numpy as np
import pytest

from bptt_lib import char_lm as cl
from bptt_lib import lstm, optim, rnn, truncation
from bptt_lib.exercises import char_lm as ex
from bptt_lib.exercises import verdict
from bptt_lib.gradcheck import compare

MODELS = ("rnn", "lstm")


@pytest.fixture(scope="module")
def corpus():
    text = cl.load_text()
    vocab = cl.Vocabulary.of(text)
    return text, vocab, vocab.encode(text)


def test_shipped_text_is_small_ascii_with_its_readme(corpus):
    text, vocab, ids = corpus
    assert 40_000 <= len(text.encode("ascii")) <= 80_000
    assert vocab.size == 59 and vocab.chars[0] == "\n"
    assert text.startswith("First Citizen:\nBefore we proceed any further, hear me speak.\n")
    assert text.endswith("All:\nWelcome to Rome, renowned Coriolanus!\n")
    readme = (cl.DATA_FILE.parent / "README.md").read_text()
    assert "karpathy/char-rnn" in readme and "public domain" in readme and str(len(text)) in readme.replace(",", "")


def test_encode_decode_round_trip_and_unknown_character(corpus):
    text, vocab, ids = corpus
    assert vocab.decode(ids) == text
    assert ids.dtype == np.int64 and ids.min() == 0 and ids.max() == vocab.size - 1
    with pytest.raises(KeyError):
        vocab.encode("X")                      # no capital X in these two acts


def test_streams_are_contiguous_pieces():
    ids = np.arange(23)
    s = cl.streams(ids, 4)
    assert s.shape == (5, 4)
    np.testing.assert_array_equal(s[:, 1], np.arange(5, 10))
    with pytest.raises(ValueError):
        cl.streams(np.arange(5), 4)


def test_split_keeps_order():
    a, b = cl.split(np.arange(100), held_out=0.1)
    np.testing.assert_array_equal(np.concatenate([a, b]), np.arange(100))
    assert len(b) == 10


@pytest.mark.parametrize("model", MODELS)
def test_chunks_with_carried_state_equal_tbptt_k_k(model):
    rng = np.random.default_rng(3)
    K, T, B, H, k = 7, 20, 3, 5, 4
    params = cl.init_params(model, K, H, rng=rng)
    x = cl.one_hot(rng.integers(0, K, (T, B)), K)
    y = rng.integers(0, K, (T, B))
    total, grads, state = 0.0, None, None
    for t0 in range(0, T, k):
        loss, g, state = cl.chunk_grads(model, params, x[t0:t0 + k], y[t0:t0 + k], state)
        total += loss
        grads = g if grads is None else {key: grads[key] + g[key] for key in g}
    ref_loss, ref = truncation.tbptt_grads(params, x, y, k, k, model=model)
    assert abs(total - ref_loss) <= 1e-12 * ref_loss
    assert max(compare(grads, ref).values()) < 1e-12
    # not full BPTT: the cut must be there (otherwise the test could not tell the two apart)
    _, full = truncation.tbptt_grads(params, x, y, T, T, model=model)
    assert max(compare(grads, full).values()) > 1e-3
    if model == "rnn":
        np.testing.assert_allclose(state, rnn.forward(params, x).h[-1], rtol=0, atol=1e-13)
    else:
        trace = lstm.forward(params, x)
        np.testing.assert_allclose(state[0], trace.h[-1], rtol=0, atol=1e-13)
        np.testing.assert_allclose(state[1], trace.s[-1], rtol=0, atol=1e-13)


@pytest.mark.parametrize("model", MODELS)
def test_log_probs_match_the_models_forward(model):
    rng = np.random.default_rng(4)
    K, H = 6, 5
    params = cl.init_params(model, K, H, rng=rng)
    x = cl.one_hot(rng.integers(0, K, (9, 2)), K)
    lp, _ = cl.log_probs(model, params, x)
    trace = (rnn if model == "rnn" else lstm).forward(params, x)
    np.testing.assert_allclose(lp, trace.log_yhat, rtol=1e-12, atol=1e-13)


def test_bits_per_char_is_loss_over_n_ln2():
    rng = np.random.default_rng(5)
    K, H = 6, 4
    ids = rng.integers(0, K, 41)
    params = cl.init_params("rnn", K, H, rng=rng)
    loss, _ = rnn.loss_and_grads(params, cl.one_hot(ids[:-1, None], K), ids[1:, None])
    assert abs(cl.bits_per_char("rnn", params, ids, K) - loss / (40 * np.log(2))) < 1e-12
    # resetting every step: each prediction from the zero state; with reset_every=len it equals no reset
    carried = cl.bits_per_char("rnn", params, ids, K)
    assert abs(cl.bits_per_char("rnn", params, ids, K, reset_every=40) - carried) < 1e-12
    assert abs(cl.bits_per_char("rnn", params, ids, K, reset_every=1) - carried) > 1e-6


def test_unigram_bits_by_hand():
    train = np.array([0, 0, 0, 1])
    test = np.array([0, 1, 2])
    # add-one counts 4, 2, 1 of 7
    expected = -(np.log2(4 / 7) + np.log2(2 / 7) + np.log2(1 / 7)) / 3
    assert abs(cl.unigram_bits(train, test, 3) - expected) < 1e-12
    # without smoothing, on the text itself: the entropy of (3/4, 1/4)
    entropy = -(0.75 * np.log2(0.75) + 0.25 * np.log2(0.25))
    assert abs(cl.unigram_bits(train, train, 3, smoothing=0.0) - entropy) < 1e-12


def test_temperature_probs():
    o = np.array([[1.0, 2.0, 3.0], [1000.0, 0.0, 999.0]])
    p1 = cl.temperature_probs(o, 1.0)
    e = np.exp(o[0] - 3)
    np.testing.assert_allclose(p1[0], e / e.sum(), rtol=1e-14)
    assert np.all(np.isfinite(p1)) and np.allclose(p1.sum(axis=-1), 1, rtol=1e-14)
    # tau -> 0 is the argmax; a huge tau is uniform
    np.testing.assert_allclose(cl.temperature_probs(o, 1e-3)[0], [0, 0, 1], atol=1e-300)
    np.testing.assert_allclose(cl.temperature_probs(o[:1], 1e9)[0], np.full(3, 1 / 3), rtol=1e-8)
    with pytest.raises(ValueError):
        cl.temperature_probs(o, 0.0)


def test_sample_is_seeded_and_follows_the_distribution():
    K = 4
    vocab = cl.Vocabulary("abcd")
    params = cl.init_params("rnn", K, 3, rng=np.random.default_rng(0))
    a = cl.sample("rnn", params, vocab, 50, rng=np.random.default_rng(1), prime="a")
    b = cl.sample("rnn", params, vocab, 50, rng=np.random.default_rng(1), prime="a")
    assert a == b and len(a[0]) == 50 and set(a[0]) <= set("abcd") and a[1] > 0
    # a network whose output ignores the state and puts nearly all mass on "c": every draw is "c",
    # and the margin is the distance of u to the boundaries around "c"'s wide interval
    params = {key: np.zeros_like(v) for key, v in params.items()}
    params["c"] = np.array([0.0, 0.0, 20.0, 0.0])
    text, margin = cl.sample("rnn", params, vocab, 30, rng=np.random.default_rng(2), prime="a")
    assert text == "c" * 30 and 0 < margin < 0.5
    # low temperature on a two-way split: always the larger one
    params["c"] = np.array([0.0, 0.1, 0.0, 0.0])
    text, _ = cl.sample("rnn", params, vocab, 30, temperature=1e-3, rng=np.random.default_rng(3), prime="a")
    assert text == "b" * 30


def test_adam_first_step_is_lr_times_sign():
    opt = optim.Adam(lr=0.1)
    params = {"w": np.array([1.0, -2.0, 3.0])}
    new = opt.step(params, {"w": np.array([0.5, -3.0, 1e-3])})
    # after one step m_hat = g and v_hat = g^2: the step is lr * g / (|g| + eps)
    g = np.array([0.5, -3.0, 1e-3])
    np.testing.assert_allclose(new["w"], params["w"] - 0.1 * g / (np.abs(g) + 1e-8), rtol=1e-12)
    np.testing.assert_allclose(new["w"], [0.9, -1.9, 2.9], atol=1e-6)
    np.testing.assert_array_equal(params["w"], [1.0, -2.0, 3.0])       # inputs untouched
    second = opt.step(new, {"w": np.array([0.5, -3.0, 1e-3])})          # same gradient again: same step
    np.testing.assert_allclose(second["w"] - new["w"], new["w"] - params["w"], rtol=1e-9)


def test_train_clips_and_learns_on_a_short_run(corpus):
    text, vocab, ids = corpus
    K = vocab.size
    train_ids, held_ids = cl.split(ids)
    r = cl.train("rnn", train_ids, K, H=16, k=10, B=8, steps=60, seed=0, lr=0.02, max_norm=0.5)
    assert r.bits.shape == (60,) and r.norms.shape == (60,)
    assert r.clipped == int(np.sum(r.norms > 0.5))
    # from about log2 K to well below the unigram level within 60 updates on this text
    assert r.bits[0] > 5.5
    assert cl.bits_per_char("rnn", r.params, held_ids, K, B=4) < cl.unigram_bits(train_ids, held_ids, K) - 0.3


def test_train_reuses_the_first_chunk_after_the_end_of_the_streams():
    ids = np.arange(4 * 11) % 5
    a = cl.train("rnn", ids, 5, H=3, k=5, B=4, steps=2, seed=1, lr=1e-12)
    b = cl.train("rnn", ids, 5, H=3, k=5, B=4, steps=4, seed=1, lr=1e-12)
    # streams of 11 characters hold 2 chunks of 5 (+1 target): steps 3 and 4 repeat 1 and 2 from a zero state
    np.testing.assert_allclose(b.bits[2:], a.bits, rtol=1e-9)


def test_temperature_checker_accepts_reference_and_names_mistakes():
    assert verdict("char_lm_temperature", ex.reference_temperature_probs)
    for description, wrong in ex.TEMPERATURE_MISTAKES.items():
        result = verdict("char_lm_temperature", wrong)
        assert not result and description in result.message
