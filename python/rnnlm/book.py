"""The book's RNN language models on the crate's kernels.

``SimpleRnnlm`` (the RNN chapter), ``Rnnlm`` and ``BetterRnnlm`` (the LSTM chapter) have the
constructors, methods and attributes of the book's classes. ``params`` and ``grads`` are lists
of float32 numpy arrays onto the model's own buffers, in the book's order and shapes, the same
objects at every access: the book's optimizers, ``clip_grads`` and ``remove_duplicate`` work on
them in place and change the model.
"""

import os
import pickle

import numpy as np

from . import _native


class _BookModel:
    """What the three classes share: the book's ``BaseModel`` and its calls."""

    @staticmethod
    def _check(vocab_size, wordvec_size, hidden_size, dropout_ratio=0.0, tied=False):
        for name, value in (("vocab_size", vocab_size), ("wordvec_size", wordvec_size), ("hidden_size", hidden_size)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise TypeError(f"{name} must be an int, got {type(value).__name__}")
            if value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")
        if isinstance(dropout_ratio, bool) or not isinstance(dropout_ratio, (int, float, np.floating, np.integer)):
            raise TypeError(f"dropout_ratio must be a number, got {type(dropout_ratio).__name__}")
        if not 0.0 <= dropout_ratio < 1.0:
            raise ValueError(f"dropout_ratio must be in [0, 1), got {dropout_ratio}")
        if tied and wordvec_size != hidden_size:
            raise ValueError(
                f"wordvec_size ({wordvec_size}) must equal hidden_size ({hidden_size}): the affine layer uses embed_W.T"
            )

    def _build(self, vocab_size, wordvec_size, hidden_size, cell, layers, tied, dropout_ratio, initial):
        # The dropout masks' seed comes from numpy's generator too, after the weights, so that
        # np.random.seed(s) before construction fixes everything.
        seed = int(np.random.randint(0, 2**62)) if dropout_ratio > 0 else 0
        self._core = _native.BookModel(
            int(vocab_size), int(wordvec_size), int(hidden_size), cell, layers, tied, float(dropout_ratio), seed
        )
        self.params = self._core.params()
        self.grads = self._core.grads()
        for param, value in zip(self.params, initial):
            param[...] = value

    def forward(self, xs, ts):
        return self._core.forward(xs, ts, False)

    def backward(self, dout=1):
        self._core.backward()
        if dout != 1:
            for grad in self.grads:
                grad *= dout
        return None

    def predict(self, xs):
        return self._core.predict(xs)

    def reset_state(self):
        self._core.reset_state()

    def save_params(self, file_name=None):
        """The book's format: a pickled list of float16 arrays, one per entry of ``params``."""
        if file_name is None:
            file_name = self.__class__.__name__ + ".pkl"
        params = [p.astype(np.float16) for p in self.params]
        with open(file_name, "wb") as f:
            pickle.dump(params, f)

    def load_params(self, file_name=None):
        """Loads the book's format (``save_params``, or the book's own published files)."""
        if file_name is None:
            file_name = self.__class__.__name__ + ".pkl"
        if "/" in file_name:
            file_name = file_name.replace("/", os.sep)
        if not os.path.exists(file_name):
            raise IOError("No file: " + file_name)
        with open(file_name, "rb") as f:
            params = pickle.load(f)
        if not isinstance(params, (list, tuple)) or len(params) != len(self.params):
            count = len(params) if isinstance(params, (list, tuple)) else type(params).__name__
            raise ValueError(f"{file_name} holds {count} parameters, {self.__class__.__name__} has {len(self.params)}")
        for i, (param, value) in enumerate(zip(self.params, params)):
            value = np.asarray(value)
            if value.shape != param.shape:
                raise ValueError(f"{file_name}: parameter {i} has shape {value.shape}, the model's is {param.shape}")
        for param, value in zip(self.params, params):
            param[...] = np.asarray(value).astype("f")


def _normal(rows, cols, scale):
    return (np.random.randn(rows, cols) / scale).astype("f")


class SimpleRnnlm(_BookModel):
    """Embedding -> tanh RNN (stateful) -> Affine -> softmax cross-entropy (the RNN chapter)."""

    def __init__(self, vocab_size, wordvec_size, hidden_size):
        self._check(vocab_size, wordvec_size, hidden_size)
        V, D, H = vocab_size, wordvec_size, hidden_size
        initial = [
            _normal(V, D, 100),
            _normal(D, H, np.sqrt(D)),
            _normal(H, H, np.sqrt(H)),
            np.zeros(H).astype("f"),
            _normal(H, V, np.sqrt(H)),
            np.zeros(V).astype("f"),
        ]
        self._build(V, D, H, "rnn", 1, False, 0.0, initial)


class Rnnlm(_BookModel):
    """Embedding -> LSTM (stateful) -> Affine -> softmax cross-entropy (the LSTM chapter)."""

    def __init__(self, vocab_size=10000, wordvec_size=100, hidden_size=100):
        self._check(vocab_size, wordvec_size, hidden_size)
        V, D, H = vocab_size, wordvec_size, hidden_size
        initial = [
            _normal(V, D, 100),
            _normal(D, 4 * H, np.sqrt(D)),
            _normal(H, 4 * H, np.sqrt(H)),
            np.zeros(4 * H).astype("f"),
            _normal(H, V, np.sqrt(H)),
            np.zeros(V).astype("f"),
        ]
        self._build(V, D, H, "lstm", 1, False, 0.0, initial)


class BetterRnnlm(_BookModel):
    """Two stacked LSTMs, dropout on the word vectors, between the layers and before the affine
    layer, and the affine layer tied to the embedding (``embed_W.T``)."""

    def __init__(self, vocab_size=10000, wordvec_size=650, hidden_size=650, dropout_ratio=0.5):
        self._check(vocab_size, wordvec_size, hidden_size, dropout_ratio, tied=True)
        V, D, H = vocab_size, wordvec_size, hidden_size
        embed_W = _normal(V, D, 100)
        initial = [
            embed_W,
            _normal(D, 4 * H, np.sqrt(D)),
            _normal(H, 4 * H, np.sqrt(H)),
            np.zeros(4 * H).astype("f"),
            _normal(H, 4 * H, np.sqrt(H)),
            _normal(H, 4 * H, np.sqrt(H)),
            np.zeros(4 * H).astype("f"),
            embed_W.T,
            np.zeros(V).astype("f"),
        ]
        self._build(V, D, H, "lstm", 2, True, dropout_ratio, initial)

    def predict(self, xs, train_flg=False):
        if train_flg:
            raise ValueError(
                "predict(xs, train_flg=True): scores with dropout are not available; "
                "forward(xs, ts, train_flg=True) trains with it"
            )
        return self._core.predict(xs)

    def forward(self, xs, ts, train_flg=True):
        return self._core.forward(xs, ts, bool(train_flg))
