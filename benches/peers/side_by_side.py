"""rnnlm and its peers on the same configurations, alternating in one run, and the ratio table.

    python benches/peers/side_by_side.py c3 c5 [--rounds 3] [--threads 2] [--rnnlm target/release/rnnlm]

Each round runs `rnnlm bench --config cN --json`, then `torch_bench.py cN --json`, then
`jax_bench.py cN --json` (not for c7, whose adaptive softmax has no JAX script), one after the
other; the table gives each side's median tokens/s over the rounds and the median of the
per-round ratios. Install the peers with `pip install -r benches/peers/requirements.txt`; PTB
comes from $RNNLM_DATA (or --data), as for rnnlm.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def run(command):
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("configs", nargs="+")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds of steps per round and side")
    parser.add_argument("--rnnlm", default="target/release/rnnlm")
    parser.add_argument("--data", default=os.environ.get("RNNLM_DATA", "data"))
    args = parser.parse_args()
    print("| config | PyTorch tokens/s | JAX tokens/s | rnnlm tokens/s | rnnlm / PyTorch (median; rounds) "
          "| rnnlm / JAX | rnnlm % of FMA peak |")
    print("|---|---|---|---|---|---|---|")
    peer = lambda script, config: [sys.executable, os.path.join(HERE, script), config, "--seconds", str(args.seconds),
                                   "--rounds", "1", "--data", args.data, "--json"]
    for config in args.configs:
        ours, torch, jax, peaks = [], [], [], []
        for _ in range(args.rounds):
            result = run([args.rnnlm, "--data", args.data, "bench", "--config", config, "--threads",
                          str(args.threads), "--seconds", str(args.seconds), "--json"])
            ours.append(result["tokens_per_sec"])
            peaks.append(result["peak_fraction"])
            torch.append(run(peer("torch_bench.py", config) + ["--threads", str(args.threads)])["tokens_per_sec"])
            if config != "c7":
                jax.append(run(peer("jax_bench.py", config))["tokens_per_sec"])
        to_torch = [a / b for a, b in zip(ours, torch)]
        to_jax = [a / b for a, b in zip(ours, jax)]
        jax_cells = (f"{statistics.median(jax):,.0f}", f"{statistics.median(to_jax):.2f}x") if jax else ("—", "—")
        print(f"| {config} | {statistics.median(torch):,.0f} | {jax_cells[0]} | {statistics.median(ours):,.0f} | "
              f"{statistics.median(to_torch):.2f}x ({min(to_torch):.2f} – {max(to_torch):.2f}) | {jax_cells[1]} | "
              f"{100 * statistics.median(peaks):.0f} % |", flush=True)


if __name__ == "__main__":
    main()
