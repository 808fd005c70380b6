#!/usr/bin/env python3
"""A small ONNX evaluator for the models `adascale export --format onnx` writes.

It runs exactly the operators the exporter emits (export/onnx_export.cpp), opset 13 semantics, in
float32, with torch for the convolutions and pooling and onnx only to parse the file:

  Conv, Relu, Add, Sub, Mul, MaxPool, AveragePool, GlobalAveragePool, Flatten, Transpose, Gemm,
  Softmax, Concat, Identity, QuantizeLinear, DequantizeLinear

Any other operator, or an attribute value it does not implement, is an error naming the node.
Quantization follows the ONNX definitions, not the runtime's kernels:
  QuantizeLinear   y = saturate(round_half_even(x / scale) + zero_point)  (int8, or uint8 without
                   a zero point), per tensor or per axis;
  DequantizeLinear y = (x - zero_point) * scale, per axis when scale is 1-D (int8 or int32 x).

Input: Fashion-MNIST IDX images (plain or gzip), pixels scaled to [0, 1] and normalized with the
model's `adascale.input_mean` / `adascale.input_std` metadata as (pixel - mean[c]) / std[c] (the
exported graph starts after the runtime's normalization, docs/onnx-export.md). Images go through
the model N at a time, N its fixed batch dimension.

Needs /usr/bin/python3 (Debian's python3-onnx and python3-torch).
Usage:
  /usr/bin/python3 scripts/bench/onnx_eval.py MODEL.onnx --idx IMAGES.gz [--labels LABELS.gz]
      [--limit N] [--predictions FILE] [--logits-out FILE] [--reference-logits FILE]
"""
import argparse
import gzip
import json
import sys
import time

import numpy as np
import onnx
from onnx import numpy_helper
import torch
import torch.nn.functional as F

OPSET = 13


class EvalError(Exception):
    pass


def read_idx(path):
    """An IDX ubyte file (plain or gzip) as a uint8 numpy array."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise EvalError(f"{path}: not an IDX ubyte file")
    rank = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(rank)]
    count = int(np.prod(dims)) if dims else 1
    start = 4 + 4 * rank
    if len(data) - start < count:
        raise EvalError(f"{path}: truncated ({len(data) - start} of {count} bytes)")
    return np.frombuffer(data, dtype=np.uint8, count=count, offset=start).reshape(dims)


class Model:
    """A parsed ONNX model: initializers as torch tensors, nodes in graph order."""

    def __init__(self, path):
        self.path = path
        self.proto = onnx.load(path)
        versions = {o.domain: o.version for o in self.proto.opset_import}
        opset = versions.get("", versions.get("ai.onnx"))
        if opset != OPSET:
            raise EvalError(f"{path}: opset {opset}, this evaluator implements opset {OPSET}")
        graph = self.proto.graph
        self.initializers = {}
        for t in graph.initializer:
            self.initializers[t.name] = torch.from_numpy(numpy_helper.to_array(t).copy())
        inputs = [i for i in graph.input if i.name not in self.initializers]
        if len(inputs) != 1 or len(graph.output) != 1:
            raise EvalError(f"{path}: {len(inputs)} inputs and {len(graph.output)} outputs, "
                            "expected one each")
        self.input_name = inputs[0].name
        self.output_name = graph.output[0].name
        dims = inputs[0].type.tensor_type.shape.dim
        self.input_shape = [d.dim_value if d.HasField("dim_value") else None for d in dims]
        self.nodes = list(graph.node)
        for n in self.nodes:
            if n.domain not in ("", "ai.onnx"):
                raise EvalError(f"node '{n.name}': domain '{n.domain}' is not supported")
            if n.op_type not in OPS:
                raise EvalError(f"node '{n.name}': unsupported op {n.op_type}")
        self.metadata = {p.key: p.value for p in self.proto.metadata_props}

    def run(self, x):
        values = dict(self.initializers)
        values[self.input_name] = x
        for node in self.nodes:
            args = []
            for name in node.input:
                if name == "":
                    args.append(None)
                elif name not in values:
                    raise EvalError(f"node '{node.name}' ({node.op_type}): input '{name}' is not "
                                    "defined before it (graph not topologically sorted?)")
                else:
                    args.append(values[name])
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            try:
                outs = OPS[node.op_type](node, attrs, *args)
            except EvalError:
                raise
            except Exception as e:  # a shape or dtype error: say where
                raise EvalError(f"node '{node.name}' ({node.op_type}): {e}") from e
            if not isinstance(outs, tuple):
                outs = (outs,)
            for name, v in zip(node.output, outs):
                if name:
                    values[name] = v
        return values[self.output_name]


# ---- operators -----------------------------------------------------------------------------------

def check_attrs(node, attrs, allowed):
    for k in attrs:
        if k not in allowed:
            raise EvalError(f"node '{node.name}' ({node.op_type}): attribute '{k}' is not "
                            "supported")


def require(node, cond, why):
    if not cond:
        raise EvalError(f"node '{node.name}' ({node.op_type}): {why}")


def float_input(node, x, what="input"):
    require(node, x.dtype == torch.float32, f"{what} is {x.dtype}, expected float32")
    return x


def same_float(node, a, b):
    float_input(node, a, "first input")
    float_input(node, b, "second input")
    return a, b


def op_identity(node, attrs, x):
    check_attrs(node, attrs, ())
    return x


def op_relu(node, attrs, x):
    check_attrs(node, attrs, ())
    return torch.relu(float_input(node, x))


def op_add(node, attrs, a, b):
    check_attrs(node, attrs, ())
    a, b = same_float(node, a, b)
    return a + b


def op_sub(node, attrs, a, b):
    check_attrs(node, attrs, ())
    a, b = same_float(node, a, b)
    return a - b


def op_mul(node, attrs, a, b):
    check_attrs(node, attrs, ())
    a, b = same_float(node, a, b)
    return a * b


def spatial_pads(node, attrs, rank):
    """ONNX pads [x1_begin, x2_begin, x1_end, x2_end] as F.pad's (x2_begin, x2_end, x1_begin,
    x1_end)."""
    require(node, attrs.get("auto_pad", b"NOTSET") in (b"NOTSET", "NOTSET"),
            f"auto_pad {attrs.get('auto_pad')} is not supported")
    pads = list(attrs.get("pads", [0] * (2 * rank)))
    require(node, len(pads) == 2 * rank, f"pads {pads} for {rank} spatial axes")
    require(node, all(p >= 0 for p in pads), f"negative pads {pads}")
    return (pads[1], pads[3], pads[0], pads[2])


def op_conv(node, attrs, x, w, b=None):
    check_attrs(node, attrs, ("auto_pad", "dilations", "group", "kernel_shape", "pads", "strides"))
    float_input(node, x)
    float_input(node, w, "weight")
    require(node, x.dim() == 4 and w.dim() == 4, f"input rank {x.dim()}, weight rank {w.dim()}: "
            "only 2-D convolution is supported")
    kernel = list(attrs.get("kernel_shape", w.shape[2:]))
    require(node, kernel == list(w.shape[2:]), f"kernel_shape {kernel}, weight {list(w.shape)}")
    strides = list(attrs.get("strides", [1, 1]))
    dilations = list(attrs.get("dilations", [1, 1]))
    group = int(attrs.get("group", 1))
    require(node, x.shape[1] == w.shape[1] * group,
            f"input channels {x.shape[1]} != {w.shape[1]} x group {group}")
    if b is not None:
        float_input(node, b, "bias")
        require(node, b.dim() == 1 and b.shape[0] == w.shape[0], f"bias {list(b.shape)}")
    pad = spatial_pads(node, attrs, 2)
    if any(pad):
        x = F.pad(x, pad, mode="constant", value=0.0)
    return F.conv2d(x, w, b, stride=strides, padding=0, dilation=dilations, groups=group)


def pool_window(node, attrs, x):
    require(node, x.dim() == 4, f"input rank {x.dim()}: only 2-D pooling is supported")
    require(node, int(attrs.get("ceil_mode", 0)) == 0, "ceil_mode 1 is not supported")
    require(node, list(attrs.get("dilations", [1, 1])) == [1, 1], "dilations are not supported")
    kernel = list(attrs["kernel_shape"])
    require(node, len(kernel) == 2, f"kernel_shape {kernel}")
    strides = list(attrs.get("strides", [1, 1]))
    return kernel, strides, spatial_pads(node, attrs, 2)


def op_maxpool(node, attrs, x):
    check_attrs(node, attrs, ("auto_pad", "ceil_mode", "dilations", "kernel_shape", "pads",
                              "storage_order", "strides"))
    require(node, int(attrs.get("storage_order", 0)) == 0, "storage_order 1 is not supported")
    float_input(node, x)
    kernel, strides, pad = pool_window(node, attrs, x)
    if any(pad):  # padding never wins
        x = F.pad(x, pad, mode="constant", value=float("-inf"))
    return F.max_pool2d(x, kernel, stride=strides, padding=0)


def op_averagepool(node, attrs, x):
    check_attrs(node, attrs, ("auto_pad", "ceil_mode", "count_include_pad", "kernel_shape",
                              "pads", "strides"))
    float_input(node, x)
    kernel, strides, pad = pool_window(node, attrs, x)
    include_pad = int(attrs.get("count_include_pad", 0))
    padded = F.pad(x, pad, mode="constant", value=0.0) if any(pad) else x
    # window sums (divisor 1), then divided by the count ONNX asks for
    sums = F.avg_pool2d(padded, kernel, stride=strides, padding=0, divisor_override=1)
    if include_pad or not any(pad):
        return sums / float(kernel[0] * kernel[1])
    ones = F.pad(torch.ones((1, 1) + tuple(x.shape[2:]), dtype=torch.float32), pad,
                 mode="constant", value=0.0)
    counts = F.avg_pool2d(ones, kernel, stride=strides, padding=0, divisor_override=1)
    return sums / counts


def op_globalaveragepool(node, attrs, x):
    check_attrs(node, attrs, ())
    float_input(node, x)
    require(node, x.dim() >= 3, f"input rank {x.dim()}")
    return torch.mean(x, dim=tuple(range(2, x.dim())), keepdim=True)


def op_flatten(node, attrs, x):
    check_attrs(node, attrs, ("axis",))
    axis = int(attrs.get("axis", 1))
    if axis < 0:
        axis += x.dim()
    require(node, 0 <= axis <= x.dim(), f"axis {attrs.get('axis')} for rank {x.dim()}")
    outer = int(np.prod(x.shape[:axis])) if axis > 0 else 1
    return x.reshape(outer, -1)


def op_transpose(node, attrs, x):
    check_attrs(node, attrs, ("perm",))
    perm = list(attrs.get("perm", range(x.dim() - 1, -1, -1)))
    require(node, sorted(perm) == list(range(x.dim())), f"perm {perm} for rank {x.dim()}")
    return x.permute(*perm).contiguous()


def op_gemm(node, attrs, a, b, c=None):
    check_attrs(node, attrs, ("alpha", "beta", "transA", "transB"))
    float_input(node, a, "A")
    float_input(node, b, "B")
    require(node, a.dim() == 2 and b.dim() == 2, f"A rank {a.dim()}, B rank {b.dim()}")
    alpha = float(attrs.get("alpha", 1.0))
    beta = float(attrs.get("beta", 1.0))
    if int(attrs.get("transA", 0)):
        a = a.t()
    if int(attrs.get("transB", 0)):
        b = b.t()
    require(node, a.shape[1] == b.shape[0], f"A' {list(a.shape)} x B' {list(b.shape)}")
    y = a @ b
    if alpha != 1.0:
        y = y * torch.tensor(alpha, dtype=torch.float32)
    if c is not None:
        float_input(node, c, "C")
        if beta != 1.0:
            c = c * torch.tensor(beta, dtype=torch.float32)
        y = y + c
    return y


def op_softmax(node, attrs, x):
    check_attrs(node, attrs, ("axis",))
    float_input(node, x)
    axis = int(attrs.get("axis", -1))  # opset 13: one axis, default the last
    require(node, -x.dim() <= axis < x.dim(), f"axis {axis} for rank {x.dim()}")
    return torch.softmax(x, dim=axis)


def op_concat(node, attrs, *xs):
    check_attrs(node, attrs, ("axis",))
    require(node, "axis" in attrs, "no axis")
    require(node, len({t.dtype for t in xs}) == 1, "inputs of different types")
    return torch.cat(xs, dim=int(attrs["axis"]))


def per_axis(node, attrs, x, scale, zero_point):
    """scale and zero point shaped to broadcast over x: per tensor, or along `axis` when 1-D."""
    axis = int(attrs.get("axis", 1))
    require(node, scale.dtype == torch.float32, f"scale is {scale.dtype}")
    require(node, scale.dim() <= 1, f"scale of rank {scale.dim()}")
    if zero_point is not None:
        require(node, list(zero_point.shape) == list(scale.shape),
                f"zero point shape {list(zero_point.shape)} != scale shape {list(scale.shape)}")
    if scale.dim() == 0:
        return scale, zero_point
    if axis < 0:
        axis += x.dim()
    require(node, 0 <= axis < x.dim(), f"axis {attrs.get('axis', 1)} for rank {x.dim()}")
    require(node, scale.shape[0] == x.shape[axis],
            f"{scale.shape[0]} scales for axis {axis} of size {x.shape[axis]}")
    shape = [1] * x.dim()
    shape[axis] = scale.shape[0]
    return scale.reshape(shape), None if zero_point is None else zero_point.reshape(shape)


INT_RANGE = {torch.int8: (-128, 127), torch.uint8: (0, 255)}


def op_quantizelinear(node, attrs, x, scale, zero_point=None):
    check_attrs(node, attrs, ("axis",))
    float_input(node, x)
    scale, zero_point = per_axis(node, attrs, x, scale, zero_point)
    out_type = torch.uint8 if zero_point is None else zero_point.dtype
    require(node, out_type in INT_RANGE, f"zero point type {out_type}")
    lo, hi = INT_RANGE[out_type]
    # x / scale in float32; torch.round rounds half to even
    q = torch.round(x / scale)
    if zero_point is not None:
        q = q + zero_point.to(torch.float32)  # exact: |q| < 2^24 once clamped below
    return torch.clamp(q, lo, hi).to(out_type)


def op_dequantizelinear(node, attrs, x, scale, zero_point=None):
    check_attrs(node, attrs, ("axis",))
    require(node, x.dtype in (torch.int8, torch.uint8, torch.int32), f"input is {x.dtype}")
    if zero_point is not None:
        require(node, zero_point.dtype == x.dtype,
                f"zero point {zero_point.dtype} for input {x.dtype}")
    scale, zero_point = per_axis(node, attrs, x, scale, zero_point)
    # (x - zero_point) * scale, as float32 (the reference implementation's order)
    v = x.to(torch.float32)
    if zero_point is not None:
        v = v - zero_point.to(torch.float32)
    return v * scale


OPS = {
    "Conv": op_conv,
    "Relu": op_relu,
    "Add": op_add,
    "Sub": op_sub,
    "Mul": op_mul,
    "MaxPool": op_maxpool,
    "AveragePool": op_averagepool,
    "GlobalAveragePool": op_globalaveragepool,
    "Flatten": op_flatten,
    "Transpose": op_transpose,
    "Gemm": op_gemm,
    "Softmax": op_softmax,
    "Concat": op_concat,
    "Identity": op_identity,
    "QuantizeLinear": op_quantizelinear,
    "DequantizeLinear": op_dequantizelinear,
}


# ---- driver --------------------------------------------------------------------------------------

def normalization(model, channels):
    def vector(key):
        if key not in model.metadata:
            raise EvalError(f"{model.path}: no metadata_props '{key}' (an adascale export?)")
        v = json.loads(model.metadata[key])
        v = [float(t) for t in (v if isinstance(v, list) else [v])]
        if len(v) == 1:
            v = v * channels
        if len(v) != channels:
            raise EvalError(f"{model.path}: {key} has {len(v)} values for {channels} channels")
        return np.array(v, dtype=np.float32).reshape(1, channels, 1, 1)
    return vector("adascale.input_mean"), vector("adascale.input_std")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model", help="an .onnx file written by adascale export --format onnx")
    ap.add_argument("--idx", required=True, help="IDX ubyte images [N,H,W] or [N,H,W,C]")
    ap.add_argument("--labels", help="IDX ubyte labels: print the accuracy")
    ap.add_argument("--limit", type=int, default=0, help="at most N images (default all)")
    ap.add_argument("--predictions", help="write the top-1 class of every image, one per line")
    ap.add_argument("--logits-out", help="write the outputs, one image per line")
    ap.add_argument("--reference-logits",
                    help="a text file of logits (one image per line): print the largest "
                         "absolute difference")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    args = ap.parse_args(argv)
    torch.set_num_threads(max(1, args.threads))

    try:
        model = Model(args.model)
        shape = model.input_shape
        if len(shape) != 4 or any(d is None or d <= 0 for d in shape[1:]):
            raise EvalError(f"{args.model}: input shape {shape}, expected fixed [N, C, H, W]")
        batch = shape[0] if shape[0] else 1
        _, C, H, W = shape
        images = read_idx(args.idx)
        if args.limit > 0:
            images = images[:args.limit]
        if images.ndim == 3:
            images = images[..., None]
        if images.ndim != 4 or images.shape[1:3] != (H, W):
            raise EvalError(f"{args.idx}: images {list(images.shape)}, the model takes "
                            f"{H}x{W}")
        if images.shape[3] not in (1, C):
            raise EvalError(f"{args.idx}: {images.shape[3]} channels, the model takes {C}")
        pixels = images.transpose(0, 3, 1, 2).astype(np.float32) / np.float32(255.0)
        if pixels.shape[1] != C:
            pixels = np.repeat(pixels, C, axis=1)
        mean, std = normalization(model, C)
        x_all = (pixels - mean) / std
        count = x_all.shape[0]

        start = time.perf_counter()
        outputs = []
        with torch.no_grad():
            for i in range(0, count, batch):
                chunk = x_all[i:i + batch]
                n = chunk.shape[0]
                if n < batch:  # the model's N is fixed: pad the last chunk, drop the padding
                    chunk = np.concatenate(
                        [chunk, np.zeros((batch - n,) + chunk.shape[1:], np.float32)])
                y = model.run(torch.from_numpy(np.ascontiguousarray(chunk)))
                if y.dtype != torch.float32:
                    raise EvalError(f"output is {y.dtype}, expected float32")
                outputs.append(y.reshape(batch, -1)[:n].numpy())
        seconds = time.perf_counter() - start
        logits = np.concatenate(outputs) if outputs else np.zeros((0, 0), np.float32)
        top1 = logits.argmax(axis=1)

        line = (f"{model.metadata.get('adascale.branch', args.model)}: {count} images, "
                f"{seconds:.2f} s")
        if args.labels:
            labels = read_idx(args.labels)[:count].astype(np.int64)
            if labels.shape[0] != count:
                raise EvalError(f"{args.labels}: {labels.shape[0]} labels for {count} images")
            line += f", accuracy {np.mean(top1 == labels):.4f}"
        if args.reference_logits:
            ref = np.loadtxt(args.reference_logits, dtype=np.float64, ndmin=2)
            if ref.shape != logits.shape:
                raise EvalError(f"{args.reference_logits}: shape {list(ref.shape)}, the "
                                f"outputs are {list(logits.shape)}")
            line += (f", max abs logit difference {np.max(np.abs(ref - logits)):.3g}, top-1 "
                     f"agreement {np.mean(ref.argmax(axis=1) == top1):.4f}")
        print(line)
        if args.predictions:
            with open(args.predictions, "w") as f:
                f.writelines(f"{int(c)}\n" for c in top1)
        if args.logits_out:
            np.savetxt(args.logits_out, logits, fmt="%.9g")
    except EvalError as e:
        print(f"onnx_eval: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
