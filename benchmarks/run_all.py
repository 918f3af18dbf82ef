"""Run every family's benchmark in one process and write a summary (driver of `run_gpu.sh`).

Each benchmark script is imported and its `main()` called with the argument list below (the
script's own `--out` pointed into the output folder), so torch and mmzoo are imported once.

Modes:

* `--device cuda` (what `run_gpu.sh` runs on a lent GPU): each script at its documented GPU
  setting, fp32; then, for scripts whose forward passes do not choose their own precision, the
  same run under `torch.autocast("cuda", torch.bfloat16)` (`<name>.bf16.md`). channels-last and
  `torch.compile` rows come from the scripts that implement them (`slowfast_speed.py`:
  bf16 / channels-last-3d / compile inference rows; the others are fp32 (+ bf16 here) only).
  Each run gets `--budget-per-run` seconds (SIGALRM) and the whole sweep `--budget` seconds;
  what does not fit is listed as skipped, never silently dropped.
* `--smoke`: the same scripts on CPU at toy sizes (tiny depth / frames / crops, one repetition),
  to keep them runnable in CI; numbers from it mean nothing.

The summary (`summary.md` in `--out`) lists every run with its status and seconds.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib.util
import inspect
import signal
import sys
import time
import traceback
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent

# name: (script, GPU arguments, smoke arguments, bf16 autocast run on GPU)
BENCHMARKS: dict[str, tuple[str, list[str], list[str], bool]] = {
    "avslowfast_overhead": ("avslowfast_overhead.py", ["--device", "cuda", "--batch", "8", "--iters", "20", "--train-iters", "10"],
                            ["--smoke"], True),
    "slowfast_speed": ("slowfast_speed.py", ["--device", "cuda", "--size", "224", "--batch", "8", "--iters", "20"],
                       ["--device", "cpu", "--smoke", "--threads", "1"], False),  # it times bf16 / channels-last / compile itself
    "nonlocal_speed": ("nonlocal_speed.py", ["--device", "cuda", "--size", "224", "--batch", "8", "--iters", "20"],
                       ["--device", "cpu", "--size", "32", "--iters", "1", "--warmup", "0", "--threads", "1", "--block-size", "64"], True),
    "egocentric_speed": ("egocentric_speed.py", ["--device", "cuda", "--frames", "64", "--size", "224", "--batch", "8", "--iters", "20"],
                         ["--device", "cpu", "--frames", "8", "--size", "32", "--iters", "1", "--warmup", "0", "--threads", "1"], True),
    "aot_speed": ("aot_speed.py", ["--device", "cuda", "--size", "224", "--batch", "16", "--iters", "20"],
                  ["--device", "cpu", "--size", "32", "--batch", "1", "--iters", "1", "--warmup", "0", "--flow-size", "32"], True),
    "psn_speed": ("psn_speed.py", ["--device", "cuda", "--crop", "224", "--reps", "10"],
                  ["--device", "cpu", "--crop", "32", "--reps", "1", "--threads", "1", "--seconds", "13"], True),
    "stmn_speed": ("stmn_speed.py", ["--device", "cuda", "--height", "337", "--width", "600", "--repeats", "5"],
                   ["--device", "cpu", "--frames", "3", "--height", "64", "--width", "64", "--repeats", "1"], True),
    "timecycle_speed": ("timecycle_speed.py", ["--device", "cuda", "--frames", "10", "--size", "480", "--repeats", "3"],
                        ["--device", "cpu", "--frames", "2", "--size", "64", "--repeats", "1", "--threads", "1", "--train-size", "168"], True),
    "t2vlad_speed": ("t2vlad_speed.py", ["--device", "cuda", "--full", "--reps", "10"], ["--smoke", "--threads", "1"], True),
    "strg_speed": ("strg_speed.py", ["--device", "cuda", "--frames", "32", "--size", "224", "--batch", "8", "--iters", "10", "--train"],
                   ["--device", "cpu", "--frames", "4", "--size", "64", "--iters", "1", "--warmup", "0", "--proposals", "4",
                    "--rpn-size", "64", "--rpn-batch", "1"], True),
    "saoa_speed": ("saoa_speed.py", ["--device", "cuda", "--frames", "64", "--size", "256", "--batch", "8", "--iters", "10"],
                   ["--device", "cpu", "--frames", "8", "--size", "64", "--iters", "1", "--warmup", "0"], True),  # size >= 64: BN
    "av_ssl_speed": ("av_ssl_speed.py", ["--device", "cuda", "--batch", "16", "--frames", "16", "--size", "112", "--ms_frames", "64",
                                         "--ms_size", "224", "--ms_audio", "88200", "--iters", "10"],
                     ["--device", "cpu", "--batch", "2", "--frames", "4", "--size", "32", "--ms_frames", "4", "--ms_size", "32",
                      "--ms_audio", "4000", "--iters", "1", "--warmup", "0"], True),
    "kinetics_loader": ("kinetics_loader.py", ["--clips", "40", "--workers", "1", "2", "4", "8"], ["--smoke"], False),
    "kinetics_finish": ("kinetics_loader.py", ["--finish-only", "--device", "cuda", "--batch", "8", "--iters", "50"],
                        ["--finish-only", "--smoke"], False),  # deferred geometry's finish step on the GPU, no PyAV
    "data_throughput": ("data_throughput.py", ["--batches", "4", "--clips", "10"],
                        ["--batches", "1", "--clips", "1", "--only", "kinetics"], False),  # CPU decoding: once
}


def _load(script: str):
    spec = importlib.util.spec_from_file_location(f"mmzoo_bench_{Path(script).stem}", HERE / script)
    mod = importlib.util.module_from_spec(spec)
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    spec.loader.exec_module(mod)
    return mod


class _Timeout(Exception):
    pass


@contextlib.contextmanager
def _alarm(seconds: int):
    def handler(signum, frame):
        raise _Timeout(f"over its {seconds} s budget")

    if seconds <= 0 or not hasattr(signal, "SIGALRM"):
        yield
        return
    old = signal.signal(signal.SIGALRM, handler)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def run_one(name: str, argv: list[str], out: Path, bf16: bool, budget: int) -> tuple[str, float, str]:
    script = BENCHMARKS[name][0]
    tag = name + (".bf16" if bf16 else "")
    argv = [*argv, "--out", str(out / f"{tag}.md")]
    old_argv = sys.argv
    t0 = time.perf_counter()
    try:
        sys.argv = [script, *argv]  # for the scripts whose main() reads sys.argv
        mod = _load(script)
        amp = torch.autocast("cuda", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
        with _alarm(budget), amp:
            if inspect.signature(mod.main).parameters:
                mod.main(argv)
            else:
                mod.main()
        status = "ok"
    except _Timeout as e:
        status = f"timeout ({e})"
    except SystemExit as e:
        status = "ok" if not e.code else f"exit {e.code}"
    except Exception as e:  # noqa: BLE001 - reported in the summary, the sweep goes on
        traceback.print_exc()
        status = f"error: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    finally:
        sys.argv = old_argv
    return tag, time.perf_counter() - t0, status


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    p.add_argument("--smoke", action="store_true", help="toy CPU sizes: checks that every script still runs")
    p.add_argument("--out", required=True, help="folder for the tables and summary.md")
    p.add_argument("--only", nargs="*", default=None, help="benchmark names (default: all)")
    p.add_argument("--budget", type=int, default=450, help="seconds for the whole sweep (GPU)")
    p.add_argument("--budget-per-run", type=int, default=90, help="seconds per run (GPU)")
    args = p.parse_args(argv)
    if not args.smoke and args.device == "cuda" and not torch.cuda.is_available():
        print("run_all: no CUDA device; use --smoke on CPU", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    names = args.only or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        p.error(f"unknown benchmark(s) {unknown}; known: {list(BENCHMARKS)}")
    plan = []
    for n in names:
        _, gpu, smoke, bf16 = BENCHMARKS[n]
        plan.append((n, smoke if args.smoke else gpu, False))
        if bf16 and not args.smoke:
            plan.append((n, gpu, True))
    start = time.perf_counter()
    results = []
    for n, a, bf16 in plan:
        left = args.budget - (time.perf_counter() - start)
        if not args.smoke and left < 10:
            results.append((n + (".bf16" if bf16 else ""), 0.0, "skipped (sweep budget spent)"))
            continue
        per_run = 0 if args.smoke else int(min(args.budget_per_run, left))
        print(f"== {n}{' (bf16 autocast)' if bf16 else ''}: {' '.join(a)}", file=sys.stderr, flush=True)
        results.append(run_one(n, a, out, bf16, per_run))
        print(f"   -> {results[-1][2]} in {results[-1][1]:.1f} s", file=sys.stderr, flush=True)
    total = time.perf_counter() - start
    dev = "cpu (smoke)" if args.smoke else torch.cuda.get_device_name()
    lines = [f"# Benchmark sweep ({dev}, torch {torch.__version__}): {total:.0f} s", "",
             "| run | status | seconds |", "|---|---|---:|"]
    lines += [f"| {t} | {s} | {sec:.1f} |" for t, sec, s in results]
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0 if all(s == "ok" for _, _, s in results) else 1


if __name__ == "__main__":
    sys.exit(main())
