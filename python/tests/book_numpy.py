"""A small numpy implementation of the book's layers and models, in float64: the reference the
package's models are tested against (and the numpy side of the benchmark when the book's own
code is not at hand).

The layers follow the book's formulas: TimeEmbedding, TimeRNN (tanh), TimeLSTM (gate blocks
f, g, i, o), TimeDropout (inverted), TimeAffine and TimeSoftmaxWithLoss (mean over the targets
that are not -1), stateful between calls until reset_state.
"""

import numpy as np


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


class Embedding:
    def __init__(self, W):
        self.params, self.grads = [W], [np.zeros_like(W)]

    def forward(self, xs):
        self.xs = xs
        return self.params[0][xs]

    def backward(self, dout):
        dW = self.grads[0]
        dW[...] = 0
        np.add.at(dW, self.xs, dout)


class Recurrent:
    """A stateful tanh RNN or LSTM over a window, batch-major (N, T, features)."""

    def __init__(self, Wx, Wh, b, lstm):
        self.params = [Wx, Wh, b]
        self.grads = [np.zeros_like(Wx), np.zeros_like(Wh), np.zeros_like(b)]
        self.lstm = lstm
        self.h = self.c = None

    def reset_state(self):
        self.h = self.c = None

    def forward(self, xs):
        Wx, Wh, b = self.params
        N, T, _ = xs.shape
        H = Wh.shape[0]
        if self.h is None:
            self.h = np.zeros((N, H), dtype=Wx.dtype)
            self.c = np.zeros((N, H), dtype=Wx.dtype)
        self.cache = []
        hs = np.empty((N, T, H), dtype=Wx.dtype)
        for t in range(T):
            x, h_prev, c_prev = xs[:, t], self.h, self.c
            a = x @ Wx + h_prev @ Wh + b
            if self.lstm:
                f, g, i, o = sigmoid(a[:, :H]), np.tanh(a[:, H:2 * H]), sigmoid(a[:, 2 * H:3 * H]), sigmoid(a[:, 3 * H:])
                self.c = f * c_prev + g * i
                self.h = o * np.tanh(self.c)
                self.cache.append((x, h_prev, c_prev, f, g, i, o, self.c))
            else:
                self.h = np.tanh(a)
                self.cache.append((x, h_prev, self.h))
            hs[:, t] = self.h
        return hs

    def backward(self, dhs):
        Wx, Wh, b = self.params
        N, T, H = dhs.shape
        dxs = np.empty((N, T, Wx.shape[0]), dtype=Wx.dtype)
        dWx, dWh, db = np.zeros_like(Wx), np.zeros_like(Wh), np.zeros_like(b)
        dh_next = np.zeros((N, H), dtype=Wx.dtype)
        dc_next = np.zeros((N, H), dtype=Wx.dtype)
        for t in reversed(range(T)):
            dh = dhs[:, t] + dh_next
            if self.lstm:
                x, h_prev, c_prev, f, g, i, o, c = self.cache[t]
                tanh_c = np.tanh(c)
                ds = dc_next + dh * o * (1 - tanh_c**2)
                da = np.hstack((ds * c_prev * f * (1 - f), ds * i * (1 - g**2), ds * g * i * (1 - i), dh * tanh_c * o * (1 - o)))
                dc_next = ds * f
            else:
                x, h_prev, h = self.cache[t]
                da = dh * (1 - h**2)
            dWx += x.T @ da
            dWh += h_prev.T @ da
            db += da.sum(axis=0)
            dxs[:, t] = da @ Wx.T
            dh_next = da @ Wh.T
        for grad, value in zip(self.grads, (dWx, dWh, db)):
            grad[...] = value
        return dxs


class Dropout:
    """Inverted dropout with masks from numpy's generator (ratio 0: the identity)."""

    def __init__(self, ratio):
        self.params, self.grads, self.ratio, self.train_flg = [], [], ratio, True

    def forward(self, xs):
        if self.train_flg and self.ratio > 0:
            self.mask = (np.random.rand(*xs.shape) > self.ratio) / (1 - self.ratio)
            return xs * self.mask
        self.mask = None
        return xs

    def backward(self, dout):
        return dout if self.mask is None else dout * self.mask


class Affine:
    def __init__(self, W, b):
        self.params, self.grads = [W, b], [np.zeros_like(W), np.zeros_like(b)]

    def forward(self, hs):
        self.hs = hs
        return hs @ self.params[0] + self.params[1]

    def backward(self, dout):
        W, _ = self.params
        H = W.shape[0]
        self.grads[0][...] = self.hs.reshape(-1, H).T @ dout.reshape(-1, W.shape[1])
        self.grads[1][...] = dout.sum(axis=(0, 1))
        return dout @ W.T


class SoftmaxWithLoss:
    def forward(self, scores, ts):
        N, T, V = scores.shape
        scores, ts = scores.reshape(N * T, V), ts.reshape(N * T)
        mask = ts != -1
        shifted = scores - scores.max(axis=1, keepdims=True)
        ys = np.exp(shifted)
        ys /= ys.sum(axis=1, keepdims=True)
        picked = ys[np.arange(N * T), np.where(mask, ts, 0)]
        loss = -np.sum(np.log(picked) * mask) / mask.sum()
        self.cache = (ys, ts, mask, (N, T, V))
        return loss

    def backward(self, dout=1):
        ys, ts, mask, (N, T, V) = self.cache
        dx = ys.copy()
        dx[np.arange(N * T), np.where(mask, ts, 0)] -= 1
        dx *= dout / mask.sum()
        dx *= mask[:, np.newaxis]
        return dx.reshape(N, T, V)


class Model:
    """Embedding, dropout, `layers` recurrent layers each followed by dropout, Affine (on
    embed_W.T when tied), softmax with loss; params and grads listed as the book lists them."""

    def __init__(self, params, lstm, layers, tied, dropout_ratio=0.0):
        params = [np.array(p, dtype=np.float64) for p in params]
        self.embed = Embedding(params[0])
        self.recurrent = [Recurrent(*params[1 + 3 * l:4 + 3 * l], lstm) for l in range(layers)]
        affine_W = self.embed.params[0].T if tied else params[1 + 3 * layers]
        self.affine = Affine(affine_W, params[-1])
        self.drops = [Dropout(dropout_ratio) for _ in range(layers + 1)]
        self.layers = [self.embed]
        for drop, rec in zip(self.drops, self.recurrent):
            self.layers += [drop, rec]
        self.layers += [self.drops[-1], self.affine]
        self.loss_layer = SoftmaxWithLoss()
        self.params, self.grads = [], []
        for layer in self.layers:
            self.params += layer.params
            self.grads += layer.grads

    def predict(self, xs, train_flg=False):
        for drop in self.drops:
            drop.train_flg = train_flg
        for layer in self.layers:
            xs = layer.forward(xs)
        return xs

    def forward(self, xs, ts, train_flg=False):
        return self.loss_layer.forward(self.predict(xs, train_flg), ts)

    def backward(self, dout=1):
        dout = self.loss_layer.backward(dout)
        for layer in reversed(self.layers):
            dout = layer.backward(dout)

    def reset_state(self):
        for rec in self.recurrent:
            rec.reset_state()


def remove_duplicate(params, grads):
    """The book's: shared weights listed once, their gradients summed (tied weights appear as
    a matrix and its transpose)."""
    params, grads = params[:], grads[:]
    while True:
        found = False
        for i in range(len(params) - 1):
            for j in range(i + 1, len(params)):
                if params[i] is params[j]:
                    grads[i] += grads[j]
                    found = True
                elif (params[i].ndim == 2 and params[j].ndim == 2 and params[i].T.shape == params[j].shape
                      and np.all(params[i].T == params[j])):
                    grads[i] += grads[j].T
                    found = True
                if found:
                    params.pop(j)
                    grads.pop(j)
                    break
            if found:
                break
        if not found:
            return params, grads


def clip_grads(grads, max_norm):
    """The book's global-norm clipping, in place."""
    total_norm = np.sqrt(sum(np.sum(g**2) for g in grads))
    rate = max_norm / (total_norm + 1e-6)
    if rate < 1:
        for g in grads:
            g *= rate


class SGD:
    def __init__(self, lr=0.01):
        self.lr = lr

    def update(self, params, grads):
        for p, g in zip(params, grads):
            p -= self.lr * g
