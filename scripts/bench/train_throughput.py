#!/usr/bin/python3
"""Training-step throughput of the same ResNet in Python (Debian's python3-torch), images/s.

Mirrors models/resnet.cpp (ResNet: 3x3 stem, basic blocks, stride 2 between stages) and
bench/train_step_bench.cpp (random batch, 3 warm-up steps, SGD step timed for --seconds).
Comparison benchmark only: the product is C++.
"""
import argparse
import configparser
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + (self.shortcut(x) if self.shortcut is not None else x))


class ResNet(nn.Module):
    def __init__(self, stem, widths, depths, cin=1, classes=10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(cin, stem, 3, 1, 1, bias=False), nn.BatchNorm2d(stem))
        blocks, c = [], stem
        for s, (w, d) in enumerate(zip(widths, depths)):
            for b in range(d):
                blocks.append(BasicBlock(c, w, 2 if (b == 0 and s > 0) else 1))
                c = w
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(c, classes)

    def forward(self, x):
        x = F.relu(self.stem(x))
        x = self.blocks(x)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--seconds", type=float, default=5.0)
    a = ap.parse_args()
    cp = configparser.ConfigParser()
    with open(a.config) as f:
        cp.read_string("[top]\n" + f.read())
    m, t = cp["model"], cp["train"]
    threads = a.threads or int(t.get("threads", "1"))
    torch.set_num_threads(threads)
    torch.manual_seed(int(t.get("seed", "1")))
    ints = lambda s: [int(v) for v in s.split(",")]
    model = ResNet(int(m["stem_width"]), ints(m["widths"]), ints(m["depths"]))
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=float(t["lr"]), momentum=float(t["momentum"]),
                          nesterov=t.get("nesterov", "true") == "true",
                          weight_decay=float(t["weight_decay"]))
    b = int(t["batch_size"])
    x, y = torch.randn(b, 1, 28, 28), torch.randint(0, 10, (b,))

    def step():
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss.item()

    for _ in range(3):
        step()
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < a.seconds:
        step()
        n += 1
    elapsed = time.perf_counter() - start
    print(f"python images_per_second {n * b / elapsed:.1f} steps {n} threads {threads} batch {b}")


if __name__ == "__main__":
    main()
