"""AVSlowFast's cost over SlowFast, measured against its FLOPs, with a before/after of the audio fix.

Issue 14: the thesis' FLOPs say the Audio pathway adds ~10 % (39.8 vs 36.1 GFLOPs per 256^2
view), but the committed benchmark measured AVSlowFast at 0.62x SlowFast's speed. This script
runs, in one process, round-robin (one call of every model per round, the order alternating,
medians), with `torch.set_num_threads(--threads)`:

* `slowfast-r50-4x16`;
* `avslowfast-r50-4x16` as it was before the fixes ("before": the Audio pathway's and the
  A->FS convs' `(k_t, k_f, 1)` kernels run as Conv3d, i.e. PyTorch's `slow_conv3d` im2col kernel
  for most of them on CPU, and the easy AVS negatives go through the audio branch beside the
  positives, a batch of 2B);
* `avslowfast-r50-4x16` as built now (those convs run as 2-D convs on the CPU,
  `mmzoo.nn.timefreq_conv`; one audio pass shared by the positives and their easy negatives,
  `mmzoo.nn.av_sync.shared_negative_pass`).

Per model: GFLOPs of one inference view (`torch.utils.flop_counter`, multiply-adds) and of one
training step's forward (the AVS negatives double the Audio pathway), inference ms per batch,
training-step ms (forward + CE + AVS losses + backward + SGD), and peak memory per clip (growth of
peak RSS during a warmed-up second call in a fresh subprocess on CPU; `max_memory_allocated` on
CUDA). Ratios are against SlowFast, next to the FLOPs ratio. The table goes into the
`overhead` section of `benchmarks/results/slowfast_speed.md` (the rest of the file is kept).

    python benchmarks/avslowfast_overhead.py                     # 224^2, batch 2, 1 thread, CPU
    python benchmarks/avslowfast_overhead.py --device cuda --batch 8 --iters 20
    python benchmarks/avslowfast_overhead.py --smoke             # tiny depth-14 models, seconds
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
from torch import nn

VARIANTS = ("slowfast", "avslowfast (before: conv3d audio, 2B audio pass)", "avslowfast (now)")
OUT = Path(__file__).parent / "results" / "slowfast_speed.md"


def unflatten_conv3d_(module: nn.Module) -> int:
    """Undo `mmzoo.nn.timefreq_conv.flatten_conv3d_`: back to plain Conv3d (the pre-fix model)."""
    from mmzoo.nn.timefreq_conv import FlatConv3d

    n = 0
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is FlatConv3d:
                plain = nn.Conv3d.__new__(nn.Conv3d)
                plain.__dict__.update(child.__dict__)
                setattr(parent, name, plain)
                n += 1
    return n


def build(variant: str, size: int, smoke: bool) -> nn.Module:
    import mmzoo

    tiny = {"depth": 14, "width": 8, "num_classes": 10} if smoke else {}
    torch.manual_seed(0)
    if variant == "slowfast":
        model = mmzoo.create("slowfast-r50-4x16", crop_size=size, **tiny)
    else:
        model = mmzoo.create("avslowfast-r50-4x16", crop_size=size, **tiny)
        if "before" in variant:
            unflatten_conv3d_(model)
            model.backbone.share_easy_negatives = False
    model.log = model.log_dict = lambda *a, **k: None
    return model


def make_batch(variant: str, batch: int, size: int, device: str) -> dict:
    g = torch.Generator().manual_seed(1)
    out = {
        "video": [torch.randn(batch, 3, 4, size, size, generator=g).to(device), torch.randn(batch, 3, 32, size, size, generator=g).to(device)],
        "label": torch.zeros(batch, dtype=torch.long, device=device),
    }
    if variant != "slowfast":
        out["audio"] = torch.randn(batch, 1, 128, 80, generator=g).to(device)
    return out


def infer(model, batch):
    with torch.no_grad():
        return model(batch["video"], batch["audio"]) if "audio" in batch else model(batch["video"])


def train_step(model, opt, batch):
    opt.zero_grad(set_to_none=True)
    loss = model.training_step(batch, 0)
    loss.backward()
    opt.step()


def gflops(model, batch, train: bool) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    model.train(train)
    with FlopCounterMode(display=False) as fc:
        if train:
            with torch.no_grad():
                model.training_step(batch, 0)
        else:
            infer(model, batch)
    model.eval()
    return fc.get_total_flops() / 2 / 1e9 / batch["video"][0].shape[0]  # multiply-adds per clip


def _sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def _clock(device: str):
    """CUDA: wall time. CPU: the calling thread's CPU time, which with one intra-op thread is all
    the model's work and does not count the time other processes of a shared machine take."""
    return time.perf_counter if device == "cuda" or torch.get_num_threads() > 1 else time.thread_time


def round_robin(fns: dict, warmup: int, iters: int, device: str) -> dict[str, float]:
    """Median ms of each callable, one call of each per round, the order alternating."""
    names = list(fns)
    times: dict[str, list[float]] = {n: [] for n in names}
    clock = _clock(device)
    for rnd in range(warmup + iters):
        for n in names if rnd % 2 == 0 else names[::-1]:
            _sync(device)
            t = clock()
            fns[n]()
            _sync(device)
            if rnd >= warmup:
                times[n].append((clock() - t) * 1e3)
    return {n: statistics.median(v) for n, v in times.items()}


def _rss_kib() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * (resource.getpagesize() // 1024)


def _peak_worker(variant, size, batch, mode, threads, smoke, q):
    torch.set_num_threads(threads)
    model = build(variant, size, smoke)
    data = make_batch(variant, batch, size, "cpu")
    opt = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
    call = (lambda: infer(model.eval(), data)) if mode == "infer" else (lambda: train_step(model.train(), opt, data))
    call()
    before = _rss_kib()
    peak0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    call()
    q.put(max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, peak0) - before)


def peak_mib_per_clip(variant, args, mode) -> float:
    if args.device == "cuda":
        model = build(variant, args.size, args.smoke).cuda()
        data = make_batch(variant, args.batch, args.size, "cuda")
        opt = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
        call = (lambda: infer(model.eval(), data)) if mode == "infer" else (lambda: train_step(model.train(), opt, data))
        call()
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        call()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - base) / 2**20 / args.batch
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_peak_worker, args=(variant, args.size, args.batch, mode, args.threads, args.smoke, q))
    p.start()
    kib = q.get()
    p.join()
    return kib / 1024 / args.batch


def audio_pathway(model, batch):
    """The Audio pathway alone (stem + res2..res5), as AVSlowFast runs it at inference."""
    bb = model.backbone
    with torch.no_grad():
        x = bb.audio.stem(batch["audio"].unsqueeze(-1))
        for stage in bb.audio.stages:
            x = stage(x)
    return x


def profile_tables(models, batches, device: str, rows: int = 8, train: bool = False) -> str:
    """torch.profiler top operators (self time) of one inference (or, with ``train``, one training
    step) per model. On CUDA the heading also gives the step's wall time beside the summed kernel
    time: a wall time well above the kernel time means the step waits on kernel launches (CPU)."""
    from torch.profiler import ProfilerActivity, profile

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
    key = "self_device_time_total" if device == "cuda" else "self_cpu_time_total"
    out = []
    for v, m in models.items():
        if train:
            m.train()
            opt = torch.optim.SGD(m.parameters(), lr=1e-4, momentum=0.9)
            run = lambda m=m, v=v, opt=opt: train_step(m, opt, batches[v])  # noqa: E731
        else:
            m.eval()
            run = lambda m=m, v=v: infer(m, batches[v])  # noqa: E731
        run()
        _sync(device)
        with profile(activities=acts) as prof:
            t0 = time.perf_counter()
            run()
            _sync(device)
            wall = (time.perf_counter() - t0) * 1e3
        ev = sorted(prof.key_averages(), key=lambda e: getattr(e, key, 0), reverse=True)
        total = sum(getattr(e, key) for e in ev) / 1e3
        what = "one training step" if train else "one inference"
        busy = ""
        if device == "cuda":  # summed kernel time vs wall: how much of the step the GPU computes
            from torch.autograd import DeviceType

            kern = sum(e.self_device_time_total for e in ev if e.device_type == DeviceType.CUDA) / 1e3
            launches = sum(e.count for e in ev if e.device_type == DeviceType.CUDA)
            busy = f"; GPU kernels {kern:.0f} ms in {launches} launches"
        out += [f"**{v}** ({what}, {total:.0f} ms self time in total, {wall:.0f} ms wall under the profiler{busy})", "",
                "| operator | calls | self ms | share |", "|---|---:|---:|---:|"]
        for e in ev[:rows]:
            ms = getattr(e, key) / 1e3
            out.append(f"| `{e.key}` | {e.count} | {ms:.1f} | {100 * ms / max(total, 1e-9):.0f} % |")
        out.append("")
    return "\n".join(out)


def measure(args) -> list[dict]:
    models = {v: build(v, args.size, args.smoke).to(args.device) for v in VARIANTS}
    batches = {v: make_batch(v, args.batch, args.size, args.device) for v in VARIANTS}
    # the fix changes no output: same logits for the same weights and inputs
    ref = infer(models[VARIANTS[1]].eval(), batches[VARIANTS[1]])
    new = infer(models[VARIANTS[2]].eval(), batches[VARIANTS[2]])
    max_diff = (ref - new).abs().max().item()
    rows = [{"model": v, "params_M": sum(p.numel() for p in m.parameters()) / 1e6} for v, m in models.items()]
    for row in rows:
        m, b = models[row["model"]], batches[row["model"]]
        row["gflops_infer"] = gflops(m, b, train=False)
        row["gflops_train_fwd"] = gflops(m, b, train=True)
    for m in models.values():
        m.eval()
    inf = round_robin({v: (lambda v=v: infer(models[v], batches[v])) for v in VARIANTS}, args.warmup, args.iters, args.device)
    opts = {v: torch.optim.SGD(models[v].parameters(), lr=1e-4, momentum=0.9) for v in VARIANTS}
    for m in models.values():
        m.train()
    trn = round_robin({v: (lambda v=v: train_step(models[v], opts[v], batches[v])) for v in VARIANTS},
                      args.warmup, max(2, args.train_iters), args.device)  # fmt: skip
    av = {v: (lambda v=v: audio_pathway(models[v], batches[v])) for v in VARIANTS[1:]}
    audio_ms = round_robin(av, args.warmup, args.iters, args.device)
    if args.profile:
        args.profile_text = profile_tables(models, batches, args.device)
    if args.profile_train:
        args.profile_text = (getattr(args, "profile_text", "") + "\n"
                             + profile_tables(models, batches, args.device, rows=12, train=True)).strip()
    for row in rows:
        row["audio_pathway_ms"] = audio_ms.get(row["model"])
        row["infer_ms_per_batch"] = inf[row["model"]]
        row["train_ms_per_step"] = trn[row["model"]]
        if not args.no_memory:
            row["infer_peak_MiB_per_clip"] = peak_mib_per_clip(row["model"], args, "infer")
            row["train_peak_MiB_per_clip"] = peak_mib_per_clip(row["model"], args, "train")
        row["max_abs_logit_diff_before_after"] = max_diff
    return rows


def to_markdown(rows: list[dict], args) -> str:
    base = rows[0]
    dev = torch.cuda.get_device_name() if args.device == "cuda" else (platform.processor() or platform.machine())

    def r(row, key):
        return f"{row[key] / base[key]:.2f}x" if key in row and base.get(key) else ""

    lines = [
        f"device: {args.device} ({dev}), torch {torch.__version__}, threads {args.threads}, batch {args.batch}, "
        f"4x16 clip at {args.size}^2, audio 128x80 log-mel{', SMOKE (depth 14, width 8)' if args.smoke else ''}"
        f"{', cudnn.benchmark on' if getattr(args, 'cudnn_benchmark', False) else ''}. "
        f"Round-robin, medians of {args.iters} inference / {max(2, args.train_iters)} training rounds after "
        f"{args.warmup} warm-up; times are {'wall' if _clock(args.device) is time.perf_counter else 'CPU (thread) time'}. Ratios are model / SlowFast (time: >1 = slower; `speed` = SlowFast time / model time).",
        "",
        "| model | params M | GFLOPs/view | FLOPs ratio | infer ms/batch | infer speed vs SlowFast | train GFLOPs fwd/clip "
        "| train FLOPs ratio | train ms/step | train time ratio | infer peak MiB/clip | ratio | train peak MiB/clip | ratio |",
        "|" + "---|" * 14,
    ]
    for row in rows:
        speed = f"{base['infer_ms_per_batch'] / row['infer_ms_per_batch']:.2f}x"
        cells = [row["model"], f"{row['params_M']:.2f}", f"{row['gflops_infer']:.2f}", r(row, "gflops_infer"),
                 f"{row['infer_ms_per_batch']:.1f}", speed, f"{row['gflops_train_fwd']:.2f}", r(row, "gflops_train_fwd"),
                 f"{row['train_ms_per_step']:.1f}", r(row, "train_ms_per_step"),
                 f"{row.get('infer_peak_MiB_per_clip', float('nan')):.1f}", r(row, "infer_peak_MiB_per_clip"),
                 f"{row.get('train_peak_MiB_per_clip', float('nan')):.1f}", r(row, "train_peak_MiB_per_clip")]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Audio pathway alone (stem + res2..res5, inference, same round-robin): "
              + ", ".join(f"{r['model']} {r['audio_pathway_ms']:.1f} ms" for r in rows if r.get("audio_pathway_ms")) + "."]
    if getattr(args, "profile_text", None):
        lines += ["", "Top operators (torch.profiler, self time):", "", args.profile_text]
    lines += ["", f"Max |logit difference| before vs after the fix (same weights, same input): "
              f"{rows[0]['max_abs_logit_diff_before_after']:.2e}.", "",
              "<details><summary>raw rows</summary>", "", "```json", json.dumps(rows, indent=1), "```", "", "</details>"]  # fmt: skip
    return "\n".join(lines)


def write_section(path: Path, name: str, body: str) -> None:
    """Replace (or append) the `<!-- name:start -->` ... `<!-- name:end -->` section of `path`."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    text = path.read_text() if path.exists() else ""
    block = f"{start}\n{body}\n{end}"
    if start in text and end in text:
        text = text[: text.index(start)] + block + text[text.index(end) + len(end):]
    else:
        text = text.rstrip() + ("\n\n" if text else "") + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def main(argv=None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--size", type=int, default=224, help="crop (224: the thesis' training crop)")
    p.add_argument("--batch", type=int, default=2, help=">= 2: the AVS easy negatives are other clips of the batch")
    p.add_argument("--iters", type=int, default=5)
    p.add_argument("--train-iters", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--no-memory", action="store_true")
    p.add_argument("--profile", action="store_true", help="add torch.profiler top-operator tables")
    p.add_argument("--profile-train", action="store_true", help="add the same tables for one training step")
    p.add_argument("--cudnn-benchmark", action="store_true",
                   help="torch.backends.cudnn.benchmark = True (Lightning's Trainer(benchmark=True))")
    p.add_argument("--smoke", action="store_true", help="depth-14 width-8 models at 64^2, 1 round: checks the script runs")
    p.add_argument("--out", default=None, help=f"default {OUT} (smoke runs: nothing written unless given)")
    args = p.parse_args(argv)
    if args.smoke:
        args.size, args.iters, args.train_iters, args.warmup, args.no_memory = 64, 1, 2, 0, True
    if args.out is None and not args.smoke:
        args.out = str(OUT)
    torch.set_num_threads(args.threads)
    torch.backends.cudnn.benchmark = args.cudnn_benchmark
    rows = measure(args)
    text = to_markdown(rows, args)
    if args.out:
        write_section(Path(args.out), "overhead" + ("-" + args.device if args.device != "cpu" else ""), text)
    print(text, file=sys.stderr)
    return rows


if __name__ == "__main__":
    main()
