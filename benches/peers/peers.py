#!/usr/bin/env python3
"""Measure the peers on convc's specs, side by side with `convc bench`.

    python3 benches/peers/peers.py [specs/lenet5.toml specs/fashion_tf.toml] [--compile] [--native] [--infer] [--avx2]

For each spec: PyTorch eager (and torch.compile with --compile) — inference
at batch 1 on 1 thread, at batch 64 on 2 threads, a training step (forward,
cross-entropy, backward, SGD step) at batch 64 on 2 threads — and ONNX
Runtime inference at batch 1 (1 thread) and 64 (2 threads). Prints one JSON
object per measurement (same fields as `convc bench --json` where they
apply) and a table. Needs: pip install torch onnx onnxruntime.

ONNX Runtime is timed as Python calls it (`session.run`: about 5.6 µs a
call here go to the binding, measured on a one-ReLU model). With --native
it is also timed through its C API from Rust (engine `onnxruntime-c`:
`ort-native/`, built with cargo on first use, loading the same library
the Python package installed). --infer skips PyTorch's rows.

--avx2 limits PyTorch to AVX2 (ATEN_CPU_CAPABILITY=avx2 for its own
kernels, ONEDNN_MAX_CPU_ISA=AVX2 for oneDNN's convolutions): the peer for
`CONVC_CPU=avx2 convc bench` on an AVX-512 machine. ONNX Runtime has no
such switch and runs as it is.

The network is built from the spec (conv2d, pools, flatten, dense, dropout,
activations), so peers and convc run the same shapes.
"""
import json
import os
import subprocess
import sys
import tempfile
import time
import tomllib

if "--avx2" in sys.argv:
    # Read when torch loads: set before the import.
    os.environ["ATEN_CPU_CAPABILITY"] = "avx2"
    os.environ["ONEDNN_MAX_CPU_ISA"] = "AVX2"

import torch
import torch.nn as nn

ACT = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "elu": nn.ELU, "leaky_relu": nn.LeakyReLU}


def pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def build(spec):
    c, h, w = spec["network"]["input"]
    layers, shape = [], (c, h, w)
    for layer in spec["layer"]:
        t = layer["type"]
        if t == "conv2d":
            k = pair(layer["kernel"])
            s = pair(layer.get("stride", 1))
            p = layer.get("padding", 0)
            p = ((k[0] - 1) // 2, (k[1] - 1) // 2) if p == "same" else (0, 0) if p == "valid" else pair(p)
            layers.append(nn.Conv2d(shape[0], layer["filters"], k, s, p, bias=layer.get("bias", True)))
            oh, ow = (shape[1] + 2 * p[0] - k[0]) // s[0] + 1, (shape[2] + 2 * p[1] - k[1]) // s[1] + 1
            shape = (layer["filters"], oh, ow)
            a = layer.get("activation", "none")
            if a != "none":
                layers.append(ACT[a]())
        elif t in ("max_pool", "avg_pool"):
            k = pair(layer["size"])
            s = pair(layer.get("stride", layer["size"]))
            p = pair(layer.get("padding", 0))
            layers.append((nn.MaxPool2d if t == "max_pool" else nn.AvgPool2d)(k, s, p))
            shape = (shape[0], (shape[1] + 2 * p[0] - k[0]) // s[0] + 1, (shape[2] + 2 * p[1] - k[1]) // s[1] + 1)
        elif t == "flatten":
            layers.append(nn.Flatten())
            shape = (shape[0] * shape[1] * shape[2],)
        elif t == "dense":
            layers.append(nn.Linear(shape[0], layer["units"], bias=layer.get("bias", True)))
            shape = (layer["units"],)
            a = layer.get("activation", "none")
            if a != "none":
                layers.append(ACT[a]())
        elif t == "dropout":
            layers.append(nn.Dropout(layer["rate"]))
        elif t in ACT:
            layers.append(ACT[t]())
        elif t == "softmax":
            pass
        else:
            raise SystemExit(f"peers.py: layer type {t} is not supported here")
    return nn.Sequential(*layers), (c, h, w)


def timed(fn, min_time=2.0):
    fn()
    fn()
    n, start = 0, time.perf_counter()
    while n < 3 or time.perf_counter() - start < min_time:
        fn()
        n += 1
    return (time.perf_counter() - start) / n


def report(rows, spec, engine, mode, batch, threads, seconds):
    row = {"spec": spec, "engine": engine, "mode": mode, "batch": batch, "threads": threads,
           "images_per_s": batch / seconds, "latency_us": seconds * 1e6}
    print(json.dumps(row), flush=True)
    rows.append(row)


NATIVE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ort-native")


def native_tool():
    """Build `ort-native` (once; cargo skips it when up to date) and return its path."""
    subprocess.run(["cargo", "build", "--release", "--quiet", "--manifest-path", os.path.join(NATIVE, "Cargo.toml")], check=True)
    return os.path.join(NATIVE, "target", "release", "ort-native")


def measure(path, compile_too, rows, native=False, infer_only=False):
    spec = tomllib.load(open(path, "rb"))
    name = spec["network"].get("name", path)
    model, (c, h, w) = build(spec)
    classes = model(torch.zeros(1, c, h, w)).shape[1]
    engines = [] if infer_only else [("pytorch", model)]
    if compile_too and not infer_only:
        engines.append(("torch.compile", torch.compile(model)))
    for engine, m in engines:
        for mode, batch, threads in [("infer", 1, 1), ("infer", 64, 2), ("train", 64, 2)]:
            torch.set_num_threads(threads)
            x = torch.rand(batch, c, h, w)
            if mode == "infer":
                m.eval()

                def step():
                    with torch.inference_mode():
                        m(x)
            else:
                m.train()
                labels = torch.randint(0, classes, (batch,))
                opt = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
                loss_fn = nn.CrossEntropyLoss()

                def step():
                    opt.zero_grad(set_to_none=True)
                    loss_fn(m(x), labels).backward()
                    opt.step()
            report(rows, name, engine, mode, batch, threads, timed(step))
    try:
        import onnxruntime as ort
    except ImportError:
        print("onnxruntime is not installed: pip install onnx onnxruntime", file=sys.stderr)
        return
    import io
    model.eval()
    buf = io.BytesIO()
    torch.onnx.export(model, torch.zeros(1, c, h, w), buf, input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "n"}, "y": {0: "n"}}, dynamo=False)
    for batch, threads in [(1, 1), (64, 2)]:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        sess = ort.InferenceSession(buf.getvalue(), opts, providers=["CPUExecutionProvider"])
        x = torch.rand(batch, c, h, w).numpy()
        report(rows, name, "onnxruntime", "infer", batch, threads, timed(lambda: sess.run(None, {"x": x})))
    if native:
        tool = native_tool()
        lib = os.path.join(os.path.dirname(ort.__file__), "capi")
        lib = os.path.join(lib, next(f for f in sorted(os.listdir(lib)) if f.startswith("libonnxruntime.so")))
        with tempfile.NamedTemporaryFile(suffix=".onnx") as f:
            f.write(buf.getvalue())
            f.flush()
            for batch, threads in [(1, 1), (64, 2)]:
                out = subprocess.run([tool, f.name, lib, f"{c},{h},{w}", str(batch), str(threads), "2"],
                                     check=True, capture_output=True, text=True).stdout
                report(rows, name, "onnxruntime-c", "infer", batch, threads, json.loads(out)["latency_us"] / 1e6)


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    specs = args or ["specs/lenet5.toml", "specs/fashion_tf.toml"]
    rows = []
    print(f"PyTorch {torch.__version__}, CPU capability {torch.backends.cpu.get_cpu_capability()}", file=sys.stderr)
    for path in specs:
        measure(path, "--compile" in sys.argv, rows, "--native" in sys.argv, "--infer" in sys.argv)
    print(f"\n{'spec':<12} {'engine':<14} {'mode':<6} {'batch':>5} {'threads':>7} {'images/s':>10} {'latency':>12}")
    for r in rows:
        print(f"{r['spec']:<12} {r['engine']:<14} {r['mode']:<6} {r['batch']:>5} {r['threads']:>7} "
              f"{r['images_per_s']:>10.0f} {r['latency_us']:>10.1f} µs")


if __name__ == "__main__":
    main()
