"""The book's training loop with the book's numpy classes and with this package's, measured in
one run, alternating.

The loop is the body of the book's ``RnnlmTrainer.fit`` (``common/trainer.py``): get a
B x T batch, ``forward``, ``backward``, ``remove_duplicate``, ``clip_grads``, ``SGD.update``,
with the book's own functions for everything but the model, on the full Penn Treebank
training split (B = 20, T = 35). Each round times ``--iters`` iterations of one side, then the
other; the figure is the median time per iteration and the ratio of the medians.

    python benches/book_loop.py --book PATH/TO/deep-learning-from-scratch-2 [--models simple,rnnlm,better]

``--book`` is a checkout of the book's code (https://github.com/oreilly-japan/deep-learning-from-scratch-2);
its ``dataset/ptb.py`` loads PTB (it downloads the files into ``dataset/`` the first time, or
finds them there).
"""

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np

MODELS = {
    # name: (book module, book class, constructor arguments, learning rate of the book's script)
    "simple": ("simple_rnnlm", "SimpleRnnlm", dict(wordvec_size=100, hidden_size=100), 0.1, "ch05"),
    "rnnlm": ("rnnlm", "Rnnlm", dict(wordvec_size=100, hidden_size=100), 20.0, "ch06"),
    "better": ("better_rnnlm", "BetterRnnlm", dict(wordvec_size=650, hidden_size=650, dropout_ratio=0.5), 20.0, "ch06"),
}


def book_class(book, chapter, module, name):
    """The book's class from its chapter folder, imported under a name that cannot clash with
    this package (the book's ch06/rnnlm.py shadows it otherwise)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"book_{chapter}_{module}", os.path.join(book, chapter, module + ".py"))
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    return getattr(loaded, name)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--book", required=True, help="a checkout of the book's code")
    parser.add_argument("--models", default="simple,rnnlm,better")
    parser.add_argument("--iters", type=int, default=10, help="iterations per side per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--better-iters", type=int, default=3, help="iterations per round for BetterRnnlm")
    parser.add_argument("--json", action="store_true", help="one JSON object per model")
    args = parser.parse_args()

    book = os.path.abspath(args.book)
    sys.path.append(book)
    from common.optimizer import SGD
    from common.trainer import remove_duplicate
    from common.util import clip_grads
    from dataset import ptb

    import rnnlm

    corpus, _, _ = ptb.load_data("train")
    vocab_size = int(corpus.max()) + 1
    xs, ts = corpus[:-1], corpus[1:]
    B, T, max_grad = 20, 35, 0.25
    data_size = len(xs)
    offsets = [i * (data_size // B) for i in range(B)]

    for key in args.models.split(","):
        module, name, kwargs, lr, chapter = MODELS[key]
        iters = args.better_iters if key == "better" else args.iters
        sides = {}
        for side, make in (("numpy", book_class(book, chapter, module, name)), ("rnnlm", getattr(rnnlm, name))):
            np.random.seed(1)
            sides[side] = {"model": make(vocab_size, **kwargs), "optimizer": SGD(lr), "time_idx": 0, "ms": []}

        def run(side, count):
            s = sides[side]
            model, optimizer = s["model"], s["optimizer"]
            start = time.perf_counter()
            for _ in range(count):
                batch_x = np.empty((B, T), dtype="i")
                batch_t = np.empty((B, T), dtype="i")
                for t in range(T):
                    for i, offset in enumerate(offsets):
                        batch_x[i, t] = xs[(offset + s["time_idx"]) % data_size]
                        batch_t[i, t] = ts[(offset + s["time_idx"]) % data_size]
                    s["time_idx"] += 1
                model.forward(batch_x, batch_t)
                model.backward()
                params, grads = remove_duplicate(model.params, model.grads)
                clip_grads(grads, max_grad)
                optimizer.update(params, grads)
            return (time.perf_counter() - start) / count * 1000

        run("numpy", 1)  # warm-up: first-call allocations on both sides
        run("rnnlm", 1)
        ratios = []
        for _ in range(args.rounds):
            a = run("numpy", iters)
            b = run("rnnlm", iters)
            sides["numpy"]["ms"].append(a)
            sides["rnnlm"]["ms"].append(b)
            ratios.append(a / b)
        result = {
            "model": name,
            "B": B,
            "T": T,
            "numpy_ms_per_iter": statistics.median(sides["numpy"]["ms"]),
            "rnnlm_ms_per_iter": statistics.median(sides["rnnlm"]["ms"]),
            "ratio_median": statistics.median(ratios),
            "ratio_range": [min(ratios), max(ratios)],
            "threads": rnnlm.get_num_threads(),
            "simd": rnnlm.simd_level(),
        }
        if args.json:
            print(json.dumps(result))
        else:
            print(
                f"{name:12s} numpy {result['numpy_ms_per_iter']:8.1f} ms/iter   rnnlm {result['rnnlm_ms_per_iter']:7.1f} ms/iter"
                f"   {result['ratio_median']:.2f}x (rounds {min(ratios):.2f}x - {max(ratios):.2f}x)",
                flush=True,
            )


if __name__ == "__main__":
    main()
