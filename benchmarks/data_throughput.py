"""Data throughput benchmark: training loaders of the registered DataModules and raw decoders.

Writes a markdown report (default ``benchmarks/results/data_throughput.md``) with

1. for every registered DataModule that has a synthetic writer recipe below: clips/s and CPU
   seconds per clip of its *training* loader (``num_workers=0``, so the numbers are per core),
   on a synthetic dataset in the official layout written on the fly;
2. raw decode throughput of PyAV (``mmzoo.data.decode``), decord and torchcodec on the same mp4
   files (textured 320x240 H.264, 30 fps): a 32-frame clip at stride 2 from a random position
   (seek + decode, the training access pattern) and a full sequential decode. A decoder that does
   not import or load is skipped: it gets a table row saying "skipped" and a note with the reason.
   torchcodec needs a system FFmpeg (4 to 7; e.g. ``apt-get install ffmpeg``); the note names the
   FFmpeg it loaded, and it is measured in both seek modes (``exact`` scans the file on open,
   ``approximate`` trusts the container's metadata). Every decoder's first clip is compared
   pixel for pixel with PyAV's.

Usage::

    python benchmarks/data_throughput.py [--out benchmarks/results/data_throughput.md]
        [--batches 4] [--clips 20] [--workdir /tmp/mmzoo-bench]
"""
from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch


# ---------------------------------------------------------------------- DataModule recipes
def _kinetics(root: Path) -> tuple[Any, str]:
    from mmzoo.data.kinetics import KineticsDataModule
    from mmzoo.data.synthetic.kinetics import write_kinetics

    write_kinetics(root, per_class={"train": 4, "val": 1}, num_frames=96, size=(240, 320))
    dm = KineticsDataModule(root=str(root), version="any", num_frames=32, stride=2, alpha=8, with_audio=True,
                            batch_size=4, num_workers=0)  # fmt: skip
    return dm, "AVSlowFast 4x16 input: 32 frames @ stride 2 -> [4, 32] x 224^2, log-mel 128x80; 320x240 mp4"


def _epic(source: str) -> Callable[[Path], tuple[Any, str]]:
    def make(root: Path) -> tuple[Any, str]:
        from mmzoo.data.epic_kitchens import EpicKitchensDataModule
        from mmzoo.data.synthetic.epic_kitchens import write_epic

        if not (root / "annotations").is_dir():
            write_epic(root, version="100", size=(256, 456), num_frames=90)
        dm = EpicKitchensDataModule(root=str(root), version="100", source=source, num_frames=32, stride=2, alpha=8,
                                    with_audio=True, batch_size=4, num_workers=0)  # fmt: skip
        return dm, f"EPIC-100 {source}, 456x256, 32 frames @ stride 2 -> [4, 32] x 224^2 + log-mel"

    return make


def _vid(root: Path) -> tuple[Any, str]:
    from mmzoo.data.synthetic.vid import write_vid

    write_vid(root, num_train=3, num_val=1, num_frames=40, size=(240, 320))
    cls = __import__("mmzoo.data", fromlist=["get_datamodule"]).get_datamodule("vid")
    dm = cls(root=str(root), num_frames=7, stride=10, batch_size=2, num_workers=0)
    return dm, "STMN training: 7 JPEG frames @ stride 10, short side 360"


def _msrvtt(root: Path) -> tuple[Any, str]:
    from mmzoo.data.synthetic.msrvtt import write_msrvtt

    write_msrvtt(root)
    cls = __import__("mmzoo.data", fromlist=["get_datamodule"]).get_datamodule("msrvtt")
    dm = cls(root=str(root), input="features", batch_size=16, num_workers=0)
    return dm, "pre-extracted MMT expert features + captions"


def _ave(root: Path) -> tuple[Any, str]:
    from mmzoo.data.synthetic.ave import write_ave

    write_ave(root, with_videos=False)
    cls = __import__("mmzoo.data", fromlist=["get_datamodule"]).get_datamodule("ave")
    dm = cls(root=str(root), input_mode="features", batch_size=16, num_workers=0, progress=False)
    return dm, "released AVE features (h5)"


RECIPES: dict[str, list[tuple[str, Callable[[Path], tuple[Any, str]]]]] = {
    "kinetics": [("kinetics", _kinetics)],
    "epic-kitchens": [("epic-kitchens (frames)", _epic("frames")), ("epic-kitchens (video)", _epic("video"))],
    "vid": [("vid", _vid)],
    "msrvtt": [("msrvtt", _msrvtt)],
    "ave": [("ave", _ave)],
}


def _batch_size(batch: Any) -> int:
    if isinstance(batch, dict):
        for k in ("label", "verb", "video", "audio"):
            v = batch.get(k)
            if isinstance(v, torch.Tensor):
                return int(v.shape[0])
            if isinstance(v, list) and v and isinstance(v[0], torch.Tensor):
                return int(v[0].shape[0])
        for v in batch.values():
            if isinstance(v, torch.Tensor):
                return int(v.shape[0])
            if isinstance(v, list):
                return len(v)
    if isinstance(batch, (list, tuple)) and batch:
        return _batch_size(batch[0]) if not isinstance(batch[0], torch.Tensor) else int(batch[0].shape[0])
    raise ValueError("cannot infer the batch size")


def bench_loader(dm: Any, batches: int) -> dict[str, float]:
    dm.setup("fit")
    loader = dm.train_dataloader()
    it = iter(loader)
    next(it)  # warm-up (imports, first open)
    n = 0
    w0, c0 = time.perf_counter(), time.process_time()
    for _ in range(batches):
        try:
            b = next(it)
        except StopIteration:
            it = iter(loader)
            b = next(it)
        n += _batch_size(b)
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    return {"clips": n, "clips_s": n / wall, "cpu_per_clip_ms": 1000 * cpu / n, "wall_per_clip_ms": 1000 * wall / n}


# ---------------------------------------------------------------------- raw decoders
def write_decode_files(folder: Path, count: int = 3, frames: int = 150) -> list[Path]:
    from mmzoo.data.media import write_mp4

    rng = np.random.default_rng(0)
    h, w = 240, 320
    y, x = np.mgrid[0:h, 0:w]
    paths = []
    for i in range(count):
        vid = np.empty((frames, h, w, 3), dtype=np.uint8)
        for t in range(frames):
            base = 128 + 60 * np.sin((x + 3 * t + 17 * i) / 13.0) * np.cos((y - 2 * t) / 9.0)
            noise = rng.integers(-12, 13, size=(h, w))
            for c in range(3):
                vid[t, :, :, c] = np.clip(base + noise + 30 * c, 0, 255)
        audio = (0.3 * np.sin(2 * np.pi * 440 * np.arange(int(frames / 30 * 16000)) / 16000)).astype(np.float32)
        paths.append(write_mp4(folder / f"decode_{i}.mp4", vid, 30, audio, 16000))
    return paths


def _clip_positions(num_frames: int, clips: int, seed: int = 0) -> list[list[int]]:
    rng = random.Random(seed)
    span = 63
    return [[s + 2 * k for k in range(32)] for s in (rng.randrange(0, num_frames - span) for _ in range(clips))]


def bench_decoders(paths: list[Path], clips: int) -> tuple[list[dict], list[str]]:
    from mmzoo.data.decode import VideoReader

    rows, notes = [], []
    n_frames = VideoReader(paths[0]).info.num_frames
    positions = _clip_positions(n_frames, clips)

    def run(name: str, open_fn, clip_fn, full_fn):
        c0, w0 = time.process_time(), time.perf_counter()
        ref = None
        for i, idx in enumerate(positions):
            h = open_fn(paths[i % len(paths)])
            out = clip_fn(h, idx)
            if i == 0:
                ref = out
        clip_wall, clip_cpu = time.perf_counter() - w0, time.process_time() - c0
        c0, w0 = time.process_time(), time.perf_counter()
        total = 0
        for p in paths:
            total += int(full_fn(open_fn(p)).shape[0])
        full_wall, full_cpu = time.perf_counter() - w0, time.process_time() - c0
        rows.append({
            "decoder": name, "clip_ms": 1000 * clip_wall / len(positions), "clip_cpu_ms": 1000 * clip_cpu / len(positions),
            "full_fps": total / full_wall, "full_cpu_ms_per_frame": 1000 * full_cpu / total,
        })  # fmt: skip
        return ref

    def pyav_open(p):
        return VideoReader(p)

    def pyav_clip(r, idx):
        with r:
            return r.frames_by_index(idx).frames

    def pyav_full(r):
        with r:
            return r.frames_in_range(0.0, None).frames

    ref = run("PyAV (mmzoo.data.decode)", pyav_open, pyav_clip, pyav_full)

    try:
        import decord

        decord.bridge.set_bridge("native")

        def d_open(p):
            return decord.VideoReader(str(p), num_threads=1)

        got = run("decord " + getattr(decord, "__version__", "?"), d_open,
                  lambda r, idx: torch.from_numpy(r.get_batch(idx).asnumpy()),
                  lambda r: torch.from_numpy(r.get_batch(list(range(len(r)))).asnumpy()))  # fmt: skip
        notes.append("decord vs PyAV on the first clip: " + _diff(got, ref))
    except Exception as e:  # noqa: BLE001 - any failure is reported in the table and the notes
        rows.append({"decoder": "decord", "skipped": True})
        notes.append(f"decord skipped (did not load): {type(e).__name__}: {str(e).splitlines()[0][:200]}")

    try:
        import torchcodec
        from torchcodec.decoders import VideoDecoder

        try:
            from torchcodec._core import get_ffmpeg_library_versions

            ff = get_ffmpeg_library_versions().get("ffmpeg_version", "?")
        except Exception:  # noqa: BLE001 - private helper, only used for the note
            ff = "?"
        for mode in ("exact", "approximate"):

            def t_open(p, mode=mode):
                return VideoDecoder(str(p), dimension_order="NHWC", num_ffmpeg_threads=1, seek_mode=mode)

            got = run(f"torchcodec {torchcodec.__version__} (seek_mode={mode})", t_open,
                      lambda d, idx: d.get_frames_at(idx).data,
                      lambda d: d.get_frames_in_range(0, d.metadata.num_frames).data)  # fmt: skip
            notes.append(f"torchcodec ({mode}) vs PyAV on the first clip: " + _diff(got, ref))
        notes.append(f"torchcodec loaded the system FFmpeg {ff} (PyAV and decord bundle their own)")
    except Exception as e:  # noqa: BLE001
        rows.append({"decoder": "torchcodec", "skipped": True})
        notes.append("torchcodec skipped (did not load): " + torchcodec_reason(e))
    return rows, notes


def _diff(got: torch.Tensor, ref: torch.Tensor) -> str:
    if tuple(got.shape) != tuple(ref.shape):
        return f"shapes differ: {tuple(got.shape)} vs {tuple(ref.shape)}"
    d = (got.float() - ref.float()).abs()
    return f"mean |diff| {d.mean():.2f}, max {d.max():.0f} (uint8 levels)"


def torchcodec_reason(e: BaseException) -> str:
    """One line saying why torchcodec did not load (its message is a long multi-version dump)."""
    import re

    text = str(e)
    libs = sorted(set(re.findall(r"(lib[a-z]+\.so\.\d+): cannot open shared object file", text)))
    if libs:
        try:
            import torchcodec

            ver = torchcodec.__version__
        except Exception:  # noqa: BLE001
            ver = "?"
        return (
            f"torchcodec {ver} installs but cannot load: it links against a system FFmpeg and none is installed "
            f"here ({', '.join(libs)} not found); PyAV and decord wheels bundle their own FFmpeg"
        )
    lines = [x.strip() for x in text.splitlines() if x.strip()]
    return f"{type(e).__name__}: {lines[0][:200] if lines else ''}"


# ---------------------------------------------------------------------- report
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="benchmarks/results/data_throughput.md")
    ap.add_argument("--batches", type=int, default=4, help="timed training batches per DataModule")
    ap.add_argument("--clips", type=int, default=20, help="timed clips per decoder")
    ap.add_argument("--workdir", default=None, help="where synthetic datasets are written (default: a temp dir)")
    ap.add_argument("--only", nargs="*", default=None, help="DataModule names to benchmark")
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    random.seed(0)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="mmzoo-bench-"))
    work.mkdir(parents=True, exist_ok=True)

    from mmzoo.data import all_datamodules

    registered = all_datamodules()
    loader_rows, loader_notes = [], []
    for name in registered:
        if args.only and name not in args.only:
            continue
        recipes = RECIPES.get(name)
        if not recipes:
            loader_notes.append(f"`{name}`: registered but no synthetic recipe in this script")
            continue
        for label, make in recipes:
            root = work / name.replace(" ", "_")
            t0 = time.perf_counter()
            try:
                dm, what = make(root)
                setup_s = time.perf_counter() - t0
                r = bench_loader(dm, args.batches)
                loader_rows.append({"name": label, "what": what, "write_s": setup_s, **r})
                print(f"{label}: {r['clips_s']:.2f} clips/s, {r['cpu_per_clip_ms']:.1f} ms CPU/clip", flush=True)
            except Exception as e:  # noqa: BLE001 - reported, not hidden
                traceback.print_exc()
                loader_notes.append(f"`{label}` failed: {type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}")

    paths = write_decode_files(work / "decode")
    dec_rows, dec_notes = bench_decoders(paths, args.clips)
    for r in dec_rows:
        if r.get("skipped"):
            print(f"{r['decoder']}: skipped (did not load)", flush=True)
            continue
        print(f"{r['decoder']}: clip {r['clip_ms']:.1f} ms, full {r['full_fps']:.0f} fps", flush=True)

    import av

    lines = [
        "# Data throughput",
        "",
        f"Generated by `benchmarks/data_throughput.py` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPU core(s) (shared with other jobs), "
        f"Python {platform.python_version()}, torch {torch.__version__} ({torch.get_num_threads()} intra-op threads), "
        f"PyAV {av.__version__}.",
        "All loaders run with `num_workers=0`: one process, so clips/s is per core and scales with workers.",
        "",
        "## Training loaders (synthetic datasets in the official layouts)",
        "",
        "| DataModule | input | clips | clips/s | CPU ms / clip | wall ms / clip |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for r in loader_rows:
        lines.append(
            f"| {r['name']} | {r['what']} | {r['clips']} | {r['clips_s']:.2f} | {r['cpu_per_clip_ms']:.1f} | {r['wall_per_clip_ms']:.1f} |"
        )
    lines += [""] + [f"- {n}" for n in loader_notes] + [""]
    lines += [
        "## Raw decoding (same files: 3 x 150 frames, 320x240 H.264 + AAC, 30 fps, textured)",
        "",
        "`clip`: 32 frames at stride 2 from a random start (open + seek + decode + RGB), the training access pattern; "
        "`full`: every frame, sequentially. One decoder thread each.",
        "",
        "| decoder | clip ms | clip CPU ms | full decode frames/s | full CPU ms / frame |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in dec_rows:
        if r.get("skipped"):
            lines.append(f"| {r['decoder']} | skipped: did not load (see notes) | | | |")
            continue
        lines.append(
            f"| {r['decoder']} | {r['clip_ms']:.1f} | {r['clip_cpu_ms']:.1f} | {r['full_fps']:.0f} | {r['full_cpu_ms_per_frame']:.2f} |"
        )
    lines += [""] + [f"- {n}" for n in dec_notes] + [""]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines))
    print(f"wrote {out}")
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
