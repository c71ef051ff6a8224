"""JAX (jit), training the model of one `rnnlm bench` configuration the same way: the same
sizes, cell, layers, dropout, tying, the same truncated-BPTT batching, one SGD step per window
with the state carried between windows (no gradient through it). The full softmax only: c7's
adaptive softmax has no JAX counterpart here.

    python jax_bench.py c3 [--seconds 5] [--rounds 3] [--data DIR] [--json]

Threads: XLA's CPU backend uses every core it is given; run it under `taskset` to restrict it.
"""

import argparse
import json
import os
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from torch_bench import CONFIGS, corpus


def init(key, cell, layers, size, vocab, tied):
    gates = 4 if cell == "lstm" else 1
    keys = jax.random.split(key, 2 * layers + 2)
    params = {"embed": jax.random.normal(keys[0], (vocab, size)) / 100, "b_out": jnp.zeros(vocab)}
    for l in range(layers):
        params[f"wx{l}"] = jax.random.normal(keys[1 + 2 * l], (size, gates * size)) / np.sqrt(size)
        params[f"wh{l}"] = jax.random.normal(keys[2 + 2 * l], (size, gates * size)) / np.sqrt(size)
        params[f"b{l}"] = jnp.zeros(gates * size)
    if not tied:
        params["w_out"] = jax.random.normal(keys[-1], (size, vocab)) / np.sqrt(size)
    return params


def make_step(cell, layers, size, dropout, tied, lr=0.1):
    def layer(params, l, xs, state):
        projected = xs @ params[f"wx{l}"] + params[f"b{l}"]  # (T, B, G*H): one GEMM per window

        def tanh_step(h, a):
            h = jnp.tanh(a + h @ params[f"wh{l}"])
            return h, h

        def lstm_step(hc, a):
            h, c = hc
            a = a + h @ params[f"wh{l}"]
            f, g, i, o = jnp.split(a, 4, axis=-1)
            c = jax.nn.sigmoid(f) * c + jnp.tanh(g) * jax.nn.sigmoid(i)
            h = jax.nn.sigmoid(o) * jnp.tanh(c)
            return (h, c), h

        return jax.lax.scan(lstm_step if cell == "lstm" else tanh_step, state, projected)

    def drop(key, x):
        if dropout == 0:
            return x
        keep = jax.random.bernoulli(key, 1 - dropout, x.shape)
        return jnp.where(keep, x / (1 - dropout), 0)

    def loss_fn(params, xs, ts, states, key):
        keys = jax.random.split(key, layers + 1)
        x = drop(keys[0], params["embed"][xs.T])  # (T, B, D)
        new_states = []
        for l in range(layers):
            state, x = layer(params, l, x, states[l])
            new_states.append(state)
            x = drop(keys[l + 1], x)
        w = params["embed"].T if tied else params["w_out"]
        logits = x @ w + params["b_out"]
        logp = jax.nn.log_softmax(logits, axis=-1)
        picked = jnp.take_along_axis(logp, ts.T[..., None], axis=-1)
        return -picked.mean(), new_states

    @jax.jit
    def step(params, xs, ts, states, key):
        (loss, new_states), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, xs, ts, states, key)
        params = jax.tree_util.tree_map(lambda p, g: p - lr * g, params, grads)
        return params, jax.lax.stop_gradient(new_states), loss

    return step


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", choices=sorted(c for c in CONFIGS if CONFIGS[c][7] is None))
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--data", default=os.environ.get("RNNLM_DATA", "data"))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    cell, layers, size, (B, T), dropout, tied, kind, _ = CONFIGS[args.config]
    ids, vocab = corpus(kind, args.data)
    ids = ids.astype(np.int32)
    params = init(jax.random.PRNGKey(1), cell, layers, size, vocab, tied)
    zeros = jnp.zeros((B, size))
    states = [(zeros, zeros) if cell == "lstm" else zeros for _ in range(layers)]
    step = make_step(cell, layers, size, dropout, tied)
    xs, ts = ids[:-1], ids[1:]
    offsets = np.arange(B)[:, None] * ((len(ids) - 1) // B)
    window = np.arange(T)[None, :]
    time_idx, key = 0, jax.random.PRNGKey(2)

    def run_step():
        nonlocal time_idx, params, states, key
        index = (offsets + time_idx + window) % len(xs)
        time_idx += T
        key, sub = jax.random.split(key)
        params, states, loss = step(params, jnp.asarray(xs[index]), jnp.asarray(ts[index]), states, sub)
        return loss

    for _ in range(5):
        run_step().block_until_ready()
    rates = []
    for _ in range(args.rounds):
        count, start = 0, time.perf_counter()
        while time.perf_counter() - start < args.seconds:
            loss = run_step()
            count += 1
        loss.block_until_ready()
        rates.append(count * B * T / (time.perf_counter() - start))
    result = {"peer": f"jax {jax.__version__}", "config": args.config, "tokens_per_sec": statistics.median(rates),
              "tokens_per_sec_min": min(rates), "tokens_per_sec_max": max(rates)}
    print(json.dumps(result) if args.json else f"{args.config}: {result['tokens_per_sec']:.0f} tokens/s ({result['peer']})")


if __name__ == "__main__":
    main()
