"""PyTorch, training the model of one `rnnlm bench` configuration the same way: the same
sizes, cell, layers, dropout, tying and output layer, the same truncated-BPTT batching over the
same corpus, one SGD step per window with the state carried (detached) between windows.

    python torch_bench.py c3 [--threads 2] [--seconds 5] [--rounds 3] [--data DIR] [--json]

Prints the median tokens per second over the rounds (each at least --seconds of steps after a
warm-up). PTB is read from --data (a folder with ptb/ptb.train.txt), else $RNNLM_DATA, else
./data; c7's corpus is a million ids drawn from a Zipf law over 267,735 words, as rnnlm's.
"""

import argparse
import json
import os
import statistics
import time

import numpy as np
import torch
import torch.nn as nn

# name: (cell, layers, D = H, window (B, T), dropout, tied, vocabulary, adaptive (cutoffs, div))
CONFIGS = {
    "c1": ("rnn", 1, 100, (10, 5), 0.0, False, "ptb:1000", None),
    "c2": ("rnn", 1, 100, (10, 5), 0.0, False, "ptb", None),
    "c3": ("rnn", 1, 100, (20, 35), 0.0, False, "ptb", None),
    "c4": ("rnn", 1, 650, (20, 35), 0.0, False, "ptb", None),
    "c5": ("lstm", 1, 100, (20, 35), 0.0, False, "ptb", None),
    "c6": ("lstm", 2, 650, (20, 35), 0.5, True, "ptb", None),
    "c7": ("lstm", 1, 512, (20, 35), 0.0, False, "zipf:267735", ([20000, 60000], 4.0)),
}


def ptb_words(data):
    """PTB's training split as ids: line ends as <eos>, ids by first appearance."""
    path = os.path.join(data, "ptb", "ptb.train.txt")
    words = open(path).read().replace("\n", " <eos> ").split()
    ids = {}
    return np.array([ids.setdefault(w, len(ids)) for w in words], dtype=np.int64)


def corpus(kind, data):
    if kind.startswith("zipf:"):
        vocab = int(kind.split(":")[1])
        weights = 1.0 / np.arange(1, vocab + 1)
        rng = np.random.default_rng(7)
        return rng.choice(vocab, size=1_000_000, p=weights / weights.sum()), vocab
    ids = ptb_words(data)
    if kind == "ptb:1000":
        ids = ids[:1000]
        return ids, int(ids.max()) + 1
    return ids, int(ids.max()) + 1


class Model(nn.Module):
    """Embedding -> dropout -> recurrent layers (dropout between) -> dropout -> affine (or tied,
    or an adaptive softmax) -> mean cross-entropy; initialised as rnnlm initialises."""

    def __init__(self, cell, layers, size, vocab, dropout, tied, adaptive):
        super().__init__()
        self.embed = nn.Embedding(vocab, size)
        self.drop = nn.Dropout(dropout)
        rnn = nn.LSTM if cell == "lstm" else nn.RNN
        self.rnn = rnn(size, size, num_layers=layers, dropout=dropout if layers > 1 else 0.0, batch_first=True)
        with torch.no_grad():
            self.embed.weight.normal_().div_(100)
            for name, p in self.rnn.named_parameters():
                if name.startswith("weight"):
                    p.normal_().div_(np.sqrt(size))
                else:
                    p.zero_()
        # The chapter's tanh RNN has one bias: the second one stays zero.
        for name, p in self.rnn.named_parameters():
            if name.startswith("bias_hh") and cell == "rnn":
                p.requires_grad_(False)
        if adaptive:
            cutoffs, div = adaptive
            self.out = nn.AdaptiveLogSoftmaxWithLoss(size, vocab, cutoffs=cutoffs, div_value=div, head_bias=True)
        else:
            self.out = nn.Linear(size, vocab)
            with torch.no_grad():
                self.out.weight.normal_().div_(np.sqrt(size))
                self.out.bias.zero_()
            if tied:
                self.out.weight = self.embed.weight
        self.adaptive = bool(adaptive)
        self.state = None

    def forward(self, x, t):
        hs, state = self.rnn(self.drop(self.embed(x)), self.state)
        self.state = tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()
        hs = self.drop(hs).reshape(-1, hs.shape[-1])
        if self.adaptive:
            return self.out(hs, t.reshape(-1)).loss
        return nn.functional.cross_entropy(self.out(hs), t.reshape(-1))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", choices=sorted(CONFIGS))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--data", default=os.environ.get("RNNLM_DATA", "data"))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    cell, layers, size, (B, T), dropout, tied, kind, adaptive = CONFIGS[args.config]
    ids, vocab = corpus(kind, args.data)
    if adaptive:
        # The adaptive softmax's classes are ranks by frequency, as rnnlm ranks the words.
        counts = np.bincount(ids, minlength=vocab)
        rank = np.empty(vocab, dtype=np.int64)
        rank[np.argsort(-counts, kind="stable")] = np.arange(vocab)
        ids = rank[ids]
    model = Model(cell, layers, size, vocab, dropout, tied, adaptive).train()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    xs, ts = torch.from_numpy(ids[:-1]), torch.from_numpy(ids[1:])
    data_size = len(xs)
    offsets = torch.arange(B)[:, None] * ((len(ids) - 1) // B)
    steps = torch.arange(T)[None, :]
    time_idx = 0

    def step():
        nonlocal time_idx
        index = (offsets + time_idx + steps) % data_size
        time_idx += T
        loss = model(xs[index], ts[index])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    for _ in range(5):
        step()
    rates = []
    for _ in range(args.rounds):
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < args.seconds:
            step()
            count += 1
        rates.append(count * B * T / (time.perf_counter() - start))
    result = {"peer": f"torch {torch.__version__}", "config": args.config, "threads": args.threads,
              "tokens_per_sec": statistics.median(rates), "tokens_per_sec_min": min(rates),
              "tokens_per_sec_max": max(rates)}
    print(json.dumps(result) if args.json else f"{args.config}: {result['tokens_per_sec']:.0f} tokens/s ({result['peer']})")


if __name__ == "__main__":
    main()
