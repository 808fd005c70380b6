#!/usr/bin/python3
"""Batch-1 inference latency of a ResNet or MobileNetV2 (models/resnet.h, models/mobilenetv2.h
layouts) in PyTorch's deployment forms.

Builds the network described by a training config (or a compressed variant: a ResNet's plain
widths, a MobileNetV2's expansion channels pruned to a fraction, a multi-branch network's branch by
width multiplier and blocks per stage) and times, on one thread:
  pytorch_mobile  frozen TorchScript through torch.utils.mobile_optimizer.optimize_for_mobile, the
                  XNNPACK path PyTorch ships for phones (conv-BN folding, prepacked XNNPACK ops);
  qnnpack_int8    PyTorch's own int8 model, made the way PyTorch documents for mobile: eager-mode
                  post-training static quantization, conv+BN(+ReLU) fused, residual adds through
                  FloatFunctional, the default qnnpack qconfig, calibrated on random images,
                  converted, scripted and frozen, run by the qnnpack engine (a MobileNetV2's
                  ReLU6 becomes ReLU so that it fuses, as torchvision's quantizable one does).
Weights are random: latency does not depend on their values. Comparison benchmark only: the
product is C++.
"""
import argparse
import configparser
import statistics
import sys
import time
import warnings

import torch
import torch.ao.quantization as tq
import torch.nn as nn
from torch.utils.mobile_optimizer import optimize_for_mobile

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from train_throughput import ResNet  # noqa: E402


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                          nn.BatchNorm2d(cout))
        self.add = nn.quantized.FloatFunctional()

    def forward(self, x):
        y = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        return self.add.add_relu(y, self.shortcut(x) if self.shortcut is not None else x)


class QuantResNet(nn.Module):
    def __init__(self, stem, widths, depths, cin=1, classes=10):
        super().__init__()
        self.quant = tq.QuantStub()
        self.stem = nn.Sequential(nn.Conv2d(cin, stem, 3, 1, 1, bias=False), nn.BatchNorm2d(stem),
                                  nn.ReLU())
        blocks, c = [], stem
        for i, (w, d) in enumerate(zip(widths, depths)):
            for j in range(d):
                blocks.append(Block(c, w, 2 if (i > 0 and j == 0) else 1))
                c = w
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c, classes)
        self.dequant = tq.DeQuantStub()

    def forward(self, x):
        x = self.blocks(self.stem(self.quant(x)))
        return self.dequant(self.fc(torch.flatten(self.pool(x), 1)))

    def fuse(self):
        tq.fuse_modules(self.stem, [["0", "1", "2"]], inplace=True)
        for b in self.blocks:
            tq.fuse_modules(b, [["conv1", "bn1", "relu1"], ["conv2", "bn2"]], inplace=True)
            if b.shortcut is not None:
                tq.fuse_modules(b.shortcut, [["0", "1"]], inplace=True)


def inverted_residuals(stem, widths, depths, expansion, keep, scale):
    """(in, hidden, out, stride, expand) per block, as MobileNetV2Spec::from_config builds them,
    the hidden channels pruned to `keep` (prune_mobilenetv2 rounds the same way), every count
    then scaled as a multi-branch network's width scales it."""
    blocks, c = [], stem
    for s, (w, d) in enumerate(zip(widths, depths)):
        for b in range(d):
            expand = s > 0 and expansion != 1
            hidden = scale(max(1, int(c * expansion * keep + 0.5))) if expand else scale(c)
            blocks.append((scale(c), hidden, scale(w), 2 if (b == 0 and s > 0) else 1, expand))
            c = w
    return blocks


def conv_bn(cin, cout, k, stride=1, groups=1, act=None):
    layers = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False),
              nn.BatchNorm2d(cout)]
    return nn.Sequential(*(layers + ([act()] if act else [])))


class InvertedResidual(nn.Module):
    def __init__(self, cin, hidden, cout, stride, expand, act):
        super().__init__()
        self.expand = conv_bn(cin, hidden, 1, act=act) if expand else None
        self.depthwise = conv_bn(hidden, hidden, 3, stride, hidden, act=act)
        self.project = conv_bn(hidden, cout, 1)
        self.residual = stride == 1 and cin == cout
        self.add = nn.quantized.FloatFunctional()  # (unused, so uncalibrated, without a residual)

    def forward(self, x):
        y = self.expand(x) if self.expand is not None else x
        y = self.project(self.depthwise(y))
        return self.add.add(y, x) if self.residual else y


class MobileNetV2(nn.Module):
    def __init__(self, stem, blocks, quantized=False, cin=1, classes=10):
        super().__init__()
        act = nn.ReLU if quantized else nn.ReLU6
        self.quant, self.dequant = tq.QuantStub(), tq.DeQuantStub()
        self.quantized = quantized
        self.stem = conv_bn(cin, stem, 3, act=act)
        self.blocks = nn.Sequential(*[InvertedResidual(*b, act) for b in blocks])
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(blocks[-1][2], classes)

    def forward(self, x):
        if self.quantized:
            x = self.quant(x)
        x = torch.flatten(self.pool(self.blocks(self.stem(x))), 1)
        x = self.fc(x)
        return self.dequant(x) if self.quantized else x

    def fuse(self):
        tq.fuse_modules(self.stem, [["0", "1", "2"]], inplace=True)
        for b in self.blocks:
            if b.expand is not None:
                tq.fuse_modules(b.expand, [["0", "1", "2"]], inplace=True)
            tq.fuse_modules(b.depthwise, [["0", "1", "2"]], inplace=True)
            tq.fuse_modules(b.project, [["0", "1"]], inplace=True)


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
    # the add of a block without a residual is never observed; PyTorch warns when it converts it
    warnings.filterwarnings("ignore", message="must run observer")
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True)
    ap.add_argument("--stem", type=int, default=0, help="override widths (pruned variants)")
    ap.add_argument("--widths", default="")
    ap.add_argument("--keep", type=float, default=1.0,
                    help="mobilenetv2: expansion channels kept (a prune:F variant)")
    ap.add_argument("--width", type=float, default=1.0,
                    help="multiplier of every channel count (a multi-branch network's width)")
    ap.add_argument("--depths", default="", help="override blocks per stage (elastic depth)")
    ap.add_argument("--runs", type=int, default=1000)
    a = ap.parse_args()
    cp = configparser.ConfigParser()
    with open(a.config) as f:
        cp.read_string("[top]\n" + f.read())
    m = cp["model"]
    ints = lambda s: [int(v) for v in s.split(",")]
    # the C++ side's rounding of a scaled channel count (half away from zero, at least 1)
    scale = lambda c: max(1, int(c * a.width + 0.5))
    stem = a.stem or int(m["stem_width"])
    widths = ints(a.widths) if a.widths else ints(m["widths"])
    depths = ints(a.depths) if a.depths else ints(m["depths"])
    torch.set_num_threads(1)
    torch.manual_seed(1)
    if m.get("arch", "resnet") == "mobilenetv2":
        blocks = inverted_residuals(stem, widths, depths, int(m.get("expansion", "6")), a.keep,
                                    scale)
        make = lambda quantized: MobileNetV2(scale(stem), blocks, quantized)
    else:
        stem, widths = scale(stem), [scale(w) for w in widths]
        make = lambda quantized: (QuantResNet if quantized else ResNet)(stem, widths, depths)
    model = make(False).eval()
    x = torch.randn(1, 1, 28, 28)
    with torch.no_grad():
        eager = median_ms(model, x, a.runs)
        traced = torch.jit.freeze(torch.jit.trace(model, x))
        mobile = optimize_for_mobile(traced)
        mobile_ms = median_ms(mobile, x, a.runs)
    torch.backends.quantized.engine = "qnnpack"
    qmodel = make(True).eval()
    qmodel.fuse()
    qmodel.qconfig = tq.get_default_qconfig("qnnpack")
    tq.prepare(qmodel, inplace=True)
    with torch.no_grad():
        for _ in range(8):
            qmodel(torch.randn(32, 1, 28, 28))
        tq.convert(qmodel, inplace=True)
        qnnpack_ms = median_ms(torch.jit.freeze(torch.jit.script(qmodel)), x, a.runs)
    print(f"python_eager_ms {eager:.4f} pytorch_mobile_ms {mobile_ms:.4f} "
          f"qnnpack_int8_ms {qnnpack_ms:.4f}")


if __name__ == "__main__":
    main()
