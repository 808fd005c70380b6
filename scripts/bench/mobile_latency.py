#!/usr/bin/python3
"""Batch-1 inference latency of a ResNet (trainer/models layout) in PyTorch Mobile form.

Builds the network described by a training config (or a compressed variant's plain widths),
freezes it with TorchScript and runs torch.utils.mobile_optimizer.optimize_for_mobile, the
XNNPACK path PyTorch ships for phones (conv-BN folding, prepacked XNNPACK ops). Weights are
random: latency does not depend on their values. Comparison benchmark only: the product is C++.
"""
import argparse
import configparser
import statistics
import sys
import time

import torch
from torch.utils.mobile_optimizer import optimize_for_mobile

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from train_throughput import ResNet  # noqa: E402


def median_ms(fn, x, runs):
    for _ in range(20):
        fn(x)
    times = []
    for _ in range(runs):
        s = time.perf_counter()
        fn(x)
        times.append((time.perf_counter() - s) * 1e3)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True)
    ap.add_argument("--stem", type=int, default=0, help="override widths (pruned variants)")
    ap.add_argument("--widths", default="")
    ap.add_argument("--runs", type=int, default=1000)
    a = ap.parse_args()
    cp = configparser.ConfigParser()
    with open(a.config) as f:
        cp.read_string("[top]\n" + f.read())
    m = cp["model"]
    ints = lambda s: [int(v) for v in s.split(",")]
    stem = a.stem or int(m["stem_width"])
    widths = ints(a.widths) if a.widths else ints(m["widths"])
    torch.set_num_threads(1)
    torch.manual_seed(1)
    model = ResNet(stem, widths, ints(m["depths"])).eval()
    x = torch.randn(1, 1, 28, 28)
    with torch.no_grad():
        eager = median_ms(model, x, a.runs)
        traced = torch.jit.freeze(torch.jit.trace(model, x))
        mobile = optimize_for_mobile(traced)
        mobile_ms = median_ms(mobile, x, a.runs)
    print(f"python_eager_ms {eager:.4f} pytorch_mobile_ms {mobile_ms:.4f}")


if __name__ == "__main__":
    main()
