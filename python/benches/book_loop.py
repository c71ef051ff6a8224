"""The book's training loop with the book's numpy classes and with this package's, measured in
one run, alternating.

The loop is the body of the book's ``RnnlmTrainer.fit`` (``common/trainer.py``): get a
B x T batch, ``forward``, ``backward``, ``remove_duplicate``, ``clip_grads``, ``SGD.update``,
with the book's own functions for everything but the model, on the full Penn Treebank
training split (B = 20, T = 35).

Each side runs in a process of its own (the two sides' worker threads never meet: OpenBLAS's
spin for a while after every call, and would take the cores from whatever runs next in the same
process), the sides alternating, numpy then rnnlm, for ``--rounds`` pairs. A process builds its
model from seed 1, runs two iterations unmeasured, then times ``--iters``; its figure is the
median time per iteration. The report gives each side's median over the rounds and the median
and range of the per-pair ratios.

    python benches/book_loop.py --book PATH/TO/deep-learning-from-scratch-2 [--models simple,rnnlm,better]

``--book`` is a checkout of the book's code (https://github.com/oreilly-japan/deep-learning-from-scratch-2);
its ``dataset/ptb.py`` loads PTB (it downloads the files into ``dataset/`` the first time, or
finds them there).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

MODELS = {
    # key: (the book's module, class, constructor arguments, its script's learning rate, chapter)
    "simple": ("simple_rnnlm", "SimpleRnnlm", dict(wordvec_size=100, hidden_size=100), 0.1, "ch05"),
    "rnnlm": ("rnnlm", "Rnnlm", dict(wordvec_size=100, hidden_size=100), 20.0, "ch06"),
    "better": ("better_rnnlm", "BetterRnnlm", dict(wordvec_size=650, hidden_size=650, dropout_ratio=0.5), 20.0, "ch06"),
}
B, T, MAX_GRAD = 20, 35, 0.25


def book_class(book, chapter, module, name):
    """The book's class from its chapter folder, imported under a name that cannot clash with
    this package (the book's ch06/rnnlm.py would shadow it)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"book_{chapter}_{module}", os.path.join(book, chapter, module + ".py"))
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    return getattr(loaded, name)


def worker(book, key, side, iters):
    """One side's process: the median milliseconds per iteration of the book's loop."""
    sys.path.append(book)
    from common.optimizer import SGD
    from common.trainer import remove_duplicate
    from common.util import clip_grads
    from dataset import ptb

    module, name, kwargs, lr, chapter = MODELS[key]
    if side == "numpy":
        make = book_class(book, chapter, module, name)
    else:
        import rnnlm

        make = getattr(rnnlm, name)
    corpus, _, _ = ptb.load_data("train")
    xs, ts = corpus[:-1], corpus[1:]
    data_size = len(xs)
    offsets = [i * (data_size // B) for i in range(B)]
    np.random.seed(1)
    model = make(int(corpus.max()) + 1, **kwargs)
    optimizer = SGD(lr)
    time_idx = 0
    times = []
    for step in range(iters + 2):
        start = time.perf_counter()
        batch_x = np.empty((B, T), dtype="i")
        batch_t = np.empty((B, T), dtype="i")
        for t in range(T):
            for i, offset in enumerate(offsets):
                batch_x[i, t] = xs[(offset + time_idx) % data_size]
                batch_t[i, t] = ts[(offset + time_idx) % data_size]
            time_idx += 1
        model.forward(batch_x, batch_t)
        model.backward()
        params, grads = remove_duplicate(model.params, model.grads)
        clip_grads(grads, MAX_GRAD)
        optimizer.update(params, grads)
        if step >= 2:
            times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--book", required=True, help="a checkout of the book's code")
    parser.add_argument("--models", default="simple,rnnlm,better")
    parser.add_argument("--rounds", type=int, default=5, help="pairs of processes, numpy then rnnlm")
    parser.add_argument("--iters", type=int, default=20, help="timed iterations per process")
    parser.add_argument("--better-iters", type=int, default=5, help="timed iterations per process for BetterRnnlm")
    parser.add_argument("--json", action="store_true", help="one JSON object per model")
    parser.add_argument("--worker", nargs=2, metavar=("MODEL", "SIDE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    book = os.path.abspath(args.book)

    if args.worker:
        key, side = args.worker
        iters = args.better_iters if key == "better" else args.iters
        print(json.dumps({"ms": worker(book, key, side, iters)}))
        return

    def run(key, side):
        command = [sys.executable, os.path.abspath(__file__), "--book", book, "--worker", key, side,
                   "--iters", str(args.iters), "--better-iters", str(args.better_iters)]
        out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        return json.loads(out.strip().splitlines()[-1])["ms"]

    import rnnlm

    for key in args.models.split(","):
        numpy_ms, rnnlm_ms = [], []
        for _ in range(args.rounds):
            numpy_ms.append(run(key, "numpy"))
            rnnlm_ms.append(run(key, "rnnlm"))
        ratios = [a / b for a, b in zip(numpy_ms, rnnlm_ms)]
        result = {
            "model": MODELS[key][1],
            "B": B,
            "T": T,
            "numpy_ms_per_iter": statistics.median(numpy_ms),
            "rnnlm_ms_per_iter": statistics.median(rnnlm_ms),
            "ratio_median": statistics.median(ratios),
            "ratio_range": [min(ratios), max(ratios)],
            "threads": rnnlm.get_num_threads(),
            "simd": rnnlm.simd_level(),
        }
        if args.json:
            print(json.dumps(result), flush=True)
        else:
            print(
                f"{result['model']:12s} numpy {result['numpy_ms_per_iter']:8.1f} ms/iter   "
                f"rnnlm {result['rnnlm_ms_per_iter']:7.1f} ms/iter   {result['ratio_median']:.2f}x "
                f"(pairs {min(ratios):.2f}x - {max(ratios):.2f}x)",
                flush=True,
            )


if __name__ == "__main__":
    main()
