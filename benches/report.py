#!/usr/bin/env python3
"""Regenerate BENCHMARKS.md: convc against its peers on this machine.

    python3 benches/report.py [--rounds N] [--no-criterion] [-o BENCHMARKS.md]

Runs, for lenet5 and fashion_tf, `convc bench` (the JIT: inference at
batch 1 on one thread and at batch 64 on two, training steps at batch 64 on
two threads and on one; the interpreter's training step on one thread)
alternated with `benches/peers/peers.py --native` (PyTorch eager, ONNX
Runtime from Python and through its C API), `--rounds` times (default 2).
Each table cell is the mean of the rounds; ratios are taken between those
means. On an AVX-512 machine it measures convc again at `CONVC_CPU=avx2`
against PyTorch limited to AVX2 (`peers.py --avx2`). Then the per-image
kernel benchmarks of `cargo bench --bench layers` (criterion medians of
the Winograd and filters-in-the-lanes groups, each against the im2col +
GEMM path it replaces), unless --no-criterion.

Needs a release build of convc (built here) and the peers' Python packages
(pip install torch onnx onnxruntime). Everything in the file is what this
script measured; nothing is copied by hand.
"""
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONVC = os.path.join(ROOT, "target", "release", "convc")
SPECS = ["lenet5", "fashion_tf"]
# (mode, batch, threads) of each row, as `convc bench` and peers.py name them.
ROWS = [("infer", 1, 1), ("infer", 64, 2), ("train", 64, 2), ("train", 64, 1)]
TARGETS = {("infer", 1, 1): "lenet5 ≥ 3× ONNX Runtime; fashion_tf faster than ONNX Runtime",
           ("infer", 64, 2): "≥ ONNX Runtime",
           ("train", 64, 2): "≥ 2× PyTorch eager"}


def run(cmd, env=None):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT, env={**os.environ, **(env or {})})
    return out.stdout


def json_lines(text):
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def convc_rows(spec, env):
    rows = []
    for mode, batch, threads in ROWS:
        rows += json_lines(run([CONVC, "bench", f"specs/{spec}.toml", "--backend", "jit", "--mode", mode,
                                "--batch", str(batch), "--threads", str(threads), "--seconds", "3", "--json"], env))
    rows += json_lines(run([CONVC, "bench", f"specs/{spec}.toml", "--backend", "interp", "--mode", "train",
                            "--batch", "64", "--threads", "1", "--seconds", "5", "--json"], env))
    return rows


def peer_rows(spec, avx2):
    args = [sys.executable, "benches/peers/peers.py", f"specs/{spec}.toml", "--native"] + (["--avx2"] if avx2 else [])
    return json_lines(run(args))


def machine():
    model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
    flags = next((l.split(":", 1)[1].split() for l in open("/proc/cpuinfo") if l.startswith("flags")), [])
    isa = "AVX-512" if "avx512f" in flags else "AVX2 + FMA" if "avx2" in flags and "fma" in flags else "baseline"
    return model, isa, os.cpu_count()


def mean(values):
    return statistics.fmean(values) if values else None


def measure(rounds, level_env, avx2_peers):
    """{(spec, engine, mode, batch, threads): [images/s per round]} and the peak."""
    table, peaks = {}, []
    for _ in range(rounds):
        for spec in SPECS:
            for r in convc_rows(spec, level_env):
                key = (spec, r["backend"], r["mode"], r["batch"], r["threads"])
                table.setdefault(key, []).append(r["images_per_s"])
                if r["backend"] == "jit" and r["peak_fraction"] > 0:
                    peaks.append(r["gflops"] / r["peak_fraction"] / r["threads"])
            for r in peer_rows(spec, avx2_peers):
                key = (spec, r["engine"], r["mode"], r["batch"], r["threads"])
                table.setdefault(key, []).append(r["images_per_s"])
    return table, mean(peaks)


def cell(rate, batch):
    if rate is None:
        return "—"
    return f"{1e6 / rate:,.1f} µs" if batch == 1 else f"{rate:,.0f} img/s"


def speed_tables(table, title):
    out = [f"### {title}", ""]
    out.append("| spec | row | convc JIT | ONNX Runtime (Python / C API) | PyTorch eager | convc ÷ best peer | target |")
    out.append("|---|---|---:|---:|---:|---:|---|")
    for spec in SPECS:
        for mode, batch, threads in ROWS:
            get = lambda engine: mean(table.get((spec, engine, mode, batch, threads), []))
            ours, ort, ort_c, torch = get("jit"), get("onnxruntime"), get("onnxruntime-c"), get("pytorch")
            peers = [p for p in ([ort, ort_c] if mode == "infer" else [torch]) if p]
            ratio = f"{ours / max(peers):.2f}×" if ours and peers else "—"
            what = f"{'inference' if mode == 'infer' else 'training step'}, batch {batch}, {threads} thread{'s' * (threads > 1)}"
            ort_cell = f"{cell(ort, batch)} / {cell(ort_c, batch)}" if mode == "infer" else "—"
            torch_cell = cell(torch, batch) if (mode, batch, threads) != ("train", 64, 1) else "—"
            out.append(f"| {spec} | {what} | {cell(ours, batch)} | {ort_cell} | {torch_cell} | {ratio} | {TARGETS.get((mode, batch, threads), '')} |")
    out.append("")
    out.append("| spec | compiled ÷ interpreted, training step, batch 64, 1 thread | JIT | interpreter |")
    out.append("|---|---:|---:|---:|")
    for spec in SPECS:
        jit, interp = mean(table.get((spec, "jit", "train", 64, 1), [])), mean(table.get((spec, "interp", "train", 64, 1), []))
        if jit and interp:
            out.append(f"| {spec} | {jit / interp:.1f}× | {jit:,.0f} img/s | {interp:,.1f} img/s |")
    out.append("")
    return out


def criterion(env):
    """Medians (ns) of the kernel groups of `cargo bench --bench layers`."""
    subprocess.run(["cargo", "bench", "--bench", "layers", "--", "winograd|filter_lanes", "--noplot"], check=True, cwd=ROOT,
                   env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    results = {}
    base = os.path.join(ROOT, "target", "criterion")
    for group in sorted(os.listdir(base)):
        if not (group.startswith("winograd_") or group.startswith("filter_lanes_")):
            continue
        for dirpath, _, files in os.walk(os.path.join(base, group)):
            if "estimates.json" in files and dirpath.endswith(os.path.join("new")):
                bench = os.path.relpath(os.path.dirname(dirpath), base)
                with open(os.path.join(dirpath, "estimates.json")) as f:
                    results[bench] = json.load(f)["median"]["point_estimate"]
    return results


def kernel_table(results, level):
    out = [f"| kernel (per image, {level}) | median |", "|---|---:|"]
    for name, ns in sorted(results.items()):
        out.append(f"| `{name}` | {ns / 1000:,.1f} µs |")
    out.append("")
    return out


def main():
    rounds = int(sys.argv[sys.argv.index("--rounds") + 1]) if "--rounds" in sys.argv else 2
    path = sys.argv[sys.argv.index("-o") + 1] if "-o" in sys.argv else os.path.join(ROOT, "BENCHMARKS.md")
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "convc-compiler"], check=True, cwd=ROOT)
    model, isa, cores = machine()
    levels = [("", {}, False)] + ([("avx2", {"CONVC_CPU": "avx2"}, True)] if isa == "AVX-512" else [])
    sections, peak_line = [], ""
    for name, env, avx2_peers in levels:
        table, peak = measure(rounds, env, avx2_peers)
        level = name or ("avx512" if isa == "AVX-512" else "avx2")
        peak_line += f"{level}: {peak:.1f} GFLOP/s per core (FMA loop, `convc bench`). " if peak else ""
        title = f"At {level}" + (" (`CONVC_CPU=avx2`; PyTorch limited to AVX2 with `peers.py --avx2`)" if name else "")
        sections += speed_tables(table, title)
        if "--no-criterion" not in sys.argv:
            sections += kernel_table(criterion(env), level)
    torch_version = run([sys.executable, "-c", "import torch, onnxruntime; print(torch.__version__, onnxruntime.__version__)"]).split()
    today = datetime.date.today().isoformat()
    head = [
        "# Benchmarks",
        "",
        f"Generated by `python3 benches/report.py` on {today}: {model}, {isa}, {cores} cores. Peak: {peak_line}",
        f"Peers: PyTorch {torch_version[0]} (eager), ONNX Runtime {torch_version[1]}, on the same specs (`benches/peers/peers.py`).",
        "",
        f"Each figure is the mean of {rounds} rounds, convc and the peers alternated; latency for batch 1, images per",
        "second otherwise. A training step is forward, cross-entropy, backward and an SGD update. convc's rows are",
        "`convc bench specs/SPEC.toml --backend jit --mode MODE --batch B --threads T`; the kernel rows are criterion",
        "medians of `cargo bench --bench layers -- 'winograd|filter_lanes'` (each algorithm beside the im2col + GEMM",
        "path it replaces). On a shared VM rates drift by 10–20% within minutes: compare within one file.",
        "",
    ]
    with open(path + ".tmp", "w") as f:
        f.write("\n".join(head + sections))
    os.replace(path + ".tmp", path)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
