"""The book's classes against the numpy twin of the book's layers (book_numpy.py): loss and
every gradient, over consecutive windows with the state carried, on shapes no kernel is tuned
for; plus the behaviours the book's scripts rely on (views, pickles, seeds).

Tolerance: the package computes in float32, the twin in float64. Each value is a sum of at
most a few hundred float32 products here, whose rounding error is well under 1e-5 of the
largest term; we allow 2e-4 relative to the largest magnitude of the compared array (plus
1e-6 absolute), which a wrong index, gate or transpose exceeds by orders of magnitude.
"""

import numpy as np
import pytest

import book_numpy as book
import rnnlm

V, D, H = 37, 7, 7  # D = H so that the tied model has the same sizes


def close(got, want, what):
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    scale = max(np.abs(want).max(), 1e-30)
    err = np.abs(got - want).max()
    assert err <= 2e-4 * scale + 1e-6, f"{what}: max error {err:.3g} against magnitude {scale:.3g}"


def windows(seed, count, rows, steps):
    rng = np.random.RandomState(seed)
    return [(rng.randint(0, V, (rows, steps)).astype(dtype), rng.randint(0, V, (rows, steps)))
            for dtype in [np.int32, np.int64] * count][:count]


MODELS = {
    "SimpleRnnlm": (lambda: rnnlm.SimpleRnnlm(V, D, H), dict(lstm=False, layers=1, tied=False)),
    "Rnnlm": (lambda: rnnlm.Rnnlm(V, D, H), dict(lstm=True, layers=1, tied=False)),
    "BetterRnnlm": (lambda: rnnlm.BetterRnnlm(V, D, H, dropout_ratio=0.0), dict(lstm=True, layers=2, tied=True)),
}


@pytest.mark.parametrize("name", MODELS)
def test_loss_and_every_gradient_match_the_numpy_layers_over_carried_windows(name):
    make, kind = MODELS[name]
    np.random.seed(3)
    ours = make()
    twin = book.Model([p.copy() for p in ours.params if p is not ours.params[-2] or not kind["tied"]], **kind)
    # Three windows with the state carried (3 x 5, 3 x 2: the number of steps may change),
    # then a reset and a window of another batch size.
    for i, window in enumerate(windows(1, 3, 3, 5) + windows(2, 1, 3, 2) + [None] + windows(4, 1, 4, 3)):
        if window is None:
            ours.reset_state()
            twin.reset_state()
            continue
        xs, ts = window
        ts = ts.copy()
        ts[0, 0] = -1  # an ignored target, as the book's loss layer ignores -1
        close(ours.forward(xs, ts), twin.forward(xs, ts), f"{name} window {i}: loss")
        ours.backward()
        twin.backward()
        assert len(ours.grads) == len(twin.grads)
        for k, (g, w) in enumerate(zip(ours.grads, twin.grads)):
            close(g, w, f"{name} window {i}: gradient {k}")


def test_tied_gradients_sum_through_remove_duplicate_as_the_books_do():
    np.random.seed(5)
    ours = rnnlm.BetterRnnlm(V, D, H, dropout_ratio=0.0)
    twin = book.Model([p.copy() for i, p in enumerate(ours.params) if i != 7], lstm=True, layers=2, tied=True)
    (xs, ts), = windows(6, 1, 2, 6)
    ours.forward(xs, ts)
    ours.backward()
    twin.forward(xs, ts)
    twin.backward()
    assert ours.params[7].base is not None and np.shares_memory(ours.params[7], ours.params[0])
    params, grads = book.remove_duplicate(ours.params, ours.grads)
    want_params, want_grads = book.remove_duplicate(twin.params, twin.grads)
    assert len(params) == len(want_params) == 8
    for k, (g, w) in enumerate(zip(grads, want_grads)):
        close(g, w, f"deduplicated gradient {k}")


@pytest.mark.parametrize("name", MODELS)
def test_backward_overwrites_the_gradients(name):
    make, _ = MODELS[name]
    np.random.seed(7)
    model = make()
    (xs, ts), = windows(8, 1, 2, 3)
    model.forward(xs, ts)
    model.backward()
    first = [g.copy() for g in model.grads]
    for g in model.grads:
        g[...] = 123.0  # what remove_duplicate or an optimizer might leave
    model.reset_state()
    model.forward(xs, ts)
    model.backward()
    for k, (g, w) in enumerate(zip(model.grads, first)):
        np.testing.assert_array_equal(g, w, err_msg=f"gradient {k}")


def test_updates_through_params_change_the_next_forward():
    np.random.seed(9)
    model = rnnlm.Rnnlm(V, D, H)
    (xs, ts), = windows(10, 1, 2, 4)
    params = model.params
    assert all(a is b for a, b in zip(params, model.params)), "the same objects at every access"
    before = model.forward(xs, ts)
    model.backward()
    book.SGD(lr=1.0).update(model.params, model.grads)
    model.reset_state()
    after = model.forward(xs, ts)
    assert after < before - 1e-3, (before, after)
    twin = book.Model([p.copy() for p in model.params], lstm=True, layers=1, tied=False)
    model.reset_state()
    close(model.predict(xs), twin.predict(xs), "scores after the update")


def test_dout_scales_the_gradients():
    np.random.seed(11)
    model = rnnlm.SimpleRnnlm(V, D, H)
    (xs, ts), = windows(12, 1, 2, 3)
    model.forward(xs, ts)
    model.backward()
    once = [g.copy() for g in model.grads]
    model.reset_state()
    model.forward(xs, ts)
    model.backward(dout=2.5)
    for g, w in zip(model.grads, once):
        close(g, 2.5 * w, "gradient with dout=2.5")


def test_initial_weights_are_the_books_draws_from_numpy_random():
    np.random.seed(13)
    model = rnnlm.Rnnlm(V, D, H)
    np.random.seed(13)
    rn = np.random.randn
    want = [
        (rn(V, D) / 100).astype("f"),
        (rn(D, 4 * H) / np.sqrt(D)).astype("f"),
        (rn(H, 4 * H) / np.sqrt(H)).astype("f"),
        np.zeros(4 * H, dtype="f"),
        (rn(H, V) / np.sqrt(H)).astype("f"),
        np.zeros(V, dtype="f"),
    ]
    for k, (p, w) in enumerate(zip(model.params, want)):
        np.testing.assert_array_equal(p, w, err_msg=f"parameter {k}")


def test_dropout_trains_and_evaluates_as_the_book_does():
    np.random.seed(15)
    model = rnnlm.BetterRnnlm(V, D, H, dropout_ratio=0.5)
    (xs, ts), = windows(16, 1, 2, 5)
    clean = model.forward(xs, ts, train_flg=False)
    model.reset_state()
    dropped = [model.forward(xs, ts, train_flg=True) for _ in range(2)]
    assert clean != dropped[0] and dropped[0] != dropped[1], "fresh masks every training window"
    model.reset_state()
    assert model.forward(xs, ts, train_flg=False) == clean
    model.reset_state()
    np.testing.assert_array_equal(model.predict(xs).shape, (2, 5, V))


@pytest.mark.parametrize("name", MODELS)
def test_save_and_load_params_round_trip_in_the_books_format(name, tmp_path, monkeypatch):
    import pickle

    make, _ = MODELS[name]
    np.random.seed(17)
    model = make()
    monkeypatch.chdir(tmp_path)
    model.save_params()
    with open(f"{name}.pkl", "rb") as f:
        saved = pickle.load(f)
    assert [p.dtype for p in saved] == [np.float16] * len(model.params)
    other = make()
    other.load_params()
    for p, w in zip(other.params, model.params):
        np.testing.assert_array_equal(p, w.astype(np.float16).astype("f"))
    with pytest.raises(IOError, match="No file"):
        other.load_params("missing.pkl")
    with open("short.pkl", "wb") as f:
        pickle.dump(saved[:-1], f)
    with pytest.raises(ValueError, match="parameters"):
        other.load_params("short.pkl")


def test_bad_input_raises_naming_the_argument():
    np.random.seed(19)
    model = rnnlm.Rnnlm(V, D, H)
    good = np.zeros((2, 3), dtype=np.int32)
    cases = [
        ((good.astype(np.float32), good), TypeError, "xs must hold integer ids"),
        ((good.tolist(), good), TypeError, "xs must be a numpy array"),
        ((good, good.astype(float)), TypeError, "ts must hold integer ids"),
        ((good[0], good[0]), ValueError, "xs must be a 2-D array"),
        ((good + V, good), ValueError, r"xs\[0, 0\] = 37 is not a word id"),
        ((good - 1, good), ValueError, r"xs\[0, 0\] = -1"),
        ((good, good - 2), ValueError, r"ts\[0, 0\] = -2"),
        ((good, np.zeros((2, 4), dtype=np.int32)), ValueError, "ts has shape"),
        ((np.zeros((0, 3), dtype=np.int32), good), ValueError, "xs is empty"),
    ]
    for args, error, message in cases:
        with pytest.raises(error, match=message):
            model.forward(*args)
    with pytest.raises(RuntimeError, match="backward"):
        rnnlm.Rnnlm(V, D, H).backward()
    model.forward(good, good)
    with pytest.raises(ValueError, match="reset_state"):
        model.forward(np.zeros((3, 3), dtype=np.int32), np.zeros((3, 3), dtype=np.int32))
    with pytest.raises(ValueError, match="hidden_size"):
        rnnlm.BetterRnnlm(V, 6, 8)
    with pytest.raises(ValueError, match="dropout_ratio"):
        rnnlm.BetterRnnlm(V, 8, 8, dropout_ratio=1.0)
    with pytest.raises(TypeError, match="vocab_size"):
        rnnlm.SimpleRnnlm(37.5, D, H)
    with pytest.raises(ValueError, match="set_num_threads"):
        rnnlm.set_num_threads(0)


def test_thread_count_does_not_change_the_results():
    (xs, ts), = windows(21, 1, 4, 6)
    results = []
    for threads in (1, 2):
        rnnlm.set_num_threads(threads)
        np.random.seed(23)
        model = rnnlm.Rnnlm(V, D, H)
        results.append((model.forward(xs, ts), model.backward(), [g.copy() for g in model.grads]))
    assert results[0][0] == results[1][0]
    for g, w in zip(results[0][2], results[1][2]):
        np.testing.assert_array_equal(g, w)
