"""Speed of mmzoo's SlowFast R50 4x16 and AVSlowFast R50 4x16 beside PyTorchVideo's SlowFast builder.

For each model, in the same run and on the same inputs:

* inference throughput (clips/s, one view, eval mode, no grad) and latency per batch;
* training-step time (forward + cross-entropy (+ AVS losses for AVSlowFast) + backward + SGD step);
* peak memory per clip: `torch.cuda.max_memory_allocated` on GPU; on CPU the growth of the
  process' peak RSS during the measured step, in a fresh subprocess per model and mode.

On CUDA it also times bf16 autocast, channels-last-3d and `torch.compile` variants of inference.
PyTorchVideo has no AVSlowFast; its SlowFast 4x16 (same configuration, identical architecture to
mmzoo's `slowfast-r50-4x16`) is the peer, and AVSlowFast's cost over it is the audio pathway.

    python benchmarks/slowfast_speed.py                      # small CPU run (112^2 crop, batch 2)
    python benchmarks/slowfast_speed.py --device cuda --size 224 --batch 8 --iters 20

Results are written as a Markdown table (default `benchmarks/results/slowfast_speed.md`).
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

MODELS = ("mmzoo slowfast-r50-4x16", "mmzoo avslowfast-r50-4x16", "pytorchvideo create_slowfast 4x16")
TINY: dict = {}  # --smoke: depth-14, width-8 mmzoo models (the PyTorchVideo peer is skipped)


def build(name: str, size: int):
    if name.startswith("mmzoo"):
        import mmzoo

        return mmzoo.create(name.split()[1], crop_size=size, **TINY)
    from pytorchvideo.models.slowfast import create_slowfast

    k = size // 32
    return create_slowfast(
        model_depth=50,
        slowfast_fusion_conv_kernel_size=(5, 1, 1),
        slowfast_fusion_conv_stride=(8, 1, 1),
        head_pool_kernel_sizes=((4, k, k), (32, k, k)),
    )


def inputs(name: str, batch: int, size: int, device: str):
    video = [torch.randn(batch, 3, 4, size, size, device=device), torch.randn(batch, 3, 32, size, size, device=device)]
    audio = torch.randn(batch, 1, 128, 80, device=device) if "avslowfast" in name else None
    return video, audio


def forward(model, name, video, audio):
    if name.startswith("pytorchvideo"):
        return model(list(video))  # it overwrites the list it is given
    return model(video, audio) if audio is not None else model(video)


def train_step(model, name, opt, video, audio, label):
    opt.zero_grad(set_to_none=True)
    if "avslowfast" in name:
        loss = model.training_step({"video": video, "audio": audio, "label": label}, 0)
    else:
        loss = F.cross_entropy(forward(model, name, video, audio), label)
    loss.backward()
    opt.step()


def _sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def time_it(fn, warmup: int, iters: int, device: str) -> list[float]:
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(iters):
        t = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t)
    return times


def interleaved_inference_ms(args) -> dict[str, float]:
    """fp32 inference time per batch of every model, timed round-robin (one call of each model per
    round, the order alternating), so drifts of a shared machine hit all models alike; medians."""
    models = {name: build(name, args.size).to(args.device).eval() for name in MODELS}
    batch = {name: inputs(name, args.batch, args.size, args.device) for name in MODELS}
    times: dict[str, list[float]] = {name: [] for name in MODELS}
    with torch.no_grad():
        for rnd in range(args.warmup + args.iters):
            for name in (MODELS if rnd % 2 == 0 else MODELS[::-1]):
                _sync(args.device)
                t = time.perf_counter()
                forward(models[name], name, *batch[name])
                _sync(args.device)
                if rnd >= args.warmup:
                    times[name].append(time.perf_counter() - t)
    return {name: statistics.median(ts) * 1e3 for name, ts in times.items()}


def _rss_kib() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * (resource.getpagesize() // 1024)


def _cpu_peak_worker(name, size, batch, mode, threads, q):
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = build(name, size)
    video, audio = inputs(name, batch, size, "cpu")
    label = torch.zeros(batch, dtype=torch.long)
    if name.startswith("mmzoo"):
        model.log = model.log_dict = lambda *a, **k: None
    opt = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
    if mode == "infer":
        model.eval()
        with torch.no_grad():
            forward(model, name, video, audio)  # first call: allocator / kernels warmed up
            before = _rss_kib()
            peak0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            forward(model, name, video, audio)
    else:
        model.train()
        train_step(model, name, opt, video, audio, label)
        before = _rss_kib()
        peak0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        train_step(model, name, opt, video, audio, label)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    q.put(max(peak, peak0) - before)


def cpu_peak_mib_per_clip(name, size, batch, mode, threads) -> float:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_cpu_peak_worker, args=(name, size, batch, mode, threads, q))
    p.start()
    kib = q.get()
    p.join()
    return kib / 1024 / batch


def measure(name, args, variant="fp32"):
    device = args.device
    torch.manual_seed(0)
    model = build(name, args.size).to(device)
    if name.startswith("mmzoo"):
        model.log = model.log_dict = lambda *a, **k: None
    video, audio = inputs(name, args.batch, args.size, device)
    label = torch.zeros(args.batch, dtype=torch.long, device=device)
    row = {"model": name, "variant": variant, "params_M": sum(p.numel() for p in model.parameters()) / 1e6}
    infer_model = model
    if variant == "channels_last":
        infer_model = model.to(memory_format=torch.channels_last_3d)
        video = [v.contiguous(memory_format=torch.channels_last_3d) for v in video]
    if variant == "compile":
        infer_model = torch.compile(model)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if variant == "bf16" else torch.autocast(device, enabled=False)

    model.eval()
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    with torch.no_grad(), autocast:
        t = time_it(lambda: forward(infer_model, name, video, audio), args.warmup, args.iters, device)
    row["infer_ms_per_batch"] = statistics.median(t) * 1e3
    row["infer_clips_per_s"] = args.batch / statistics.median(t)
    if device == "cuda":
        row["infer_peak_MiB_per_clip"] = torch.cuda.max_memory_allocated() / 2**20 / args.batch
    if variant in ("fp32", "bf16"):
        model.train()
        opt = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        with autocast:
            t = time_it(lambda: train_step(model, name, opt, video, audio, label), 1, max(2, args.iters // 2), device)
        row["train_ms_per_step"] = statistics.median(t) * 1e3
        if device == "cuda":
            row["train_peak_MiB_per_clip"] = torch.cuda.max_memory_allocated() / 2**20 / args.batch
    if device == "cpu" and variant == "fp32" and not args.no_memory:
        row["infer_peak_MiB_per_clip"] = cpu_peak_mib_per_clip(name, args.size, args.batch, "infer", args.threads)
        row["train_peak_MiB_per_clip"] = cpu_peak_mib_per_clip(name, args.size, args.batch, "train", args.threads)
    return row


def to_markdown(rows, args) -> str:
    cols = ["model", "variant", "params_M", "infer_clips_per_s", "infer_ms_per_batch", "train_ms_per_step", "infer_peak_MiB_per_clip", "train_peak_MiB_per_clip"]
    peer = next((r for r in rows if r["model"].startswith("pytorchvideo") and r["variant"] == "fp32"), None)
    out = [
        "# SlowFast / AVSlowFast speed (`benchmarks/slowfast_speed.py`)",
        "",
        f"device: {args.device} ({torch.cuda.get_device_name() if args.device == 'cuda' else platform.processor() or platform.machine()}), "
        f"torch {torch.__version__}, threads {args.threads}, batch {args.batch}, clip 4x16 (slow 4 + fast 32 frames) at {args.size}^2, "
        f"audio 128x80 log-mel, median of {args.iters} iterations after {args.warmup} warm-up "
        "(fp32 inference: all models timed round-robin in one loop).",
        "",
        "| " + " | ".join(cols + ["infer speed vs PyTorchVideo"]) + " |",
        "|" + "---|" * (len(cols) + 1),
    ]
    for r in rows:
        cells = []
        for c in cols:
            v = r.get(c, "")
            cells.append(f"{v:.2f}" if isinstance(v, float) else str(v))
        ratio = f"{r['infer_clips_per_s'] / peer['infer_clips_per_s']:.2f}x" if peer else ""
        out.append("| " + " | ".join(cells + [ratio]) + " |")
    out += ["", "Raw rows:", "", "```json", json.dumps(rows, indent=1), "```", ""]
    return "\n".join(out)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=["cpu", "cuda"])
    p.add_argument("--size", type=int, default=112, help="crop size (paper: 224 training, 256 testing)")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--iters", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--no-memory", action="store_true", help="skip the CPU peak-memory subprocesses")
    p.add_argument("--smoke", action="store_true", help="tiny mmzoo models at 32^2, no peer, no memory: checks the script runs")
    p.add_argument("--out", default=None, help="default results/slowfast_speed.md (smoke runs: nothing written unless given)")
    args = p.parse_args(argv)
    global MODELS
    if args.smoke:
        TINY.update(depth=14, width=8, num_classes=10)
        MODELS = tuple(m for m in MODELS if m.startswith("mmzoo"))
        args.size, args.batch, args.iters, args.warmup, args.no_memory = 32, 2, 1, 0, True
    if args.out is None and not args.smoke:
        args.out = str(Path(__file__).parent / "results" / "slowfast_speed.md")
    torch.set_num_threads(args.threads)
    variants = ["fp32"] + (["bf16", "channels_last", "compile"] if args.device == "cuda" else [])
    rows, failed = [], []
    for name in MODELS:
        for v in variants:
            try:
                row = measure(name, args, v)
            except Exception as e:  # noqa: BLE001 - an optional variant (e.g. a peer under torch.compile) may fail
                if v == "fp32":
                    raise
                failed.append(f"{name} {v}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
                print(f"failed: {failed[-1]}", file=sys.stderr)
                continue
            print(json.dumps(row), file=sys.stderr)
            rows.append(row)
    # The fp32 inference columns come from one interleaved run of all models (fair on a busy machine).
    fp32_ms = interleaved_inference_ms(args)
    for row in rows:
        if row["variant"] == "fp32":
            row["infer_ms_per_batch"] = fp32_ms[row["model"]]
            row["infer_clips_per_s"] = args.batch / (fp32_ms[row["model"]] / 1e3)
    text = to_markdown(rows, args)
    if failed:
        text += "\nVariants that failed (not in the table):\n\n" + "\n".join(f"- {f}" for f in failed) + "\n"
    if args.out:
        out = Path(args.out)
        # keep the sections other scripts own in the same file (avslowfast_overhead.py's "overhead")
        old = out.read_text() if out.exists() else ""
        kept = old[old.index("<!-- overhead"):] if "<!-- overhead" in old else ""
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + ("\n" + kept if kept else ""))
    print(text)


if __name__ == "__main__":
    main()
