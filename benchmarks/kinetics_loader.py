"""Kinetics AVSlowFast training loader against raw PyAV decoding of exactly the frames it needs.

Issue 14's data target: the training loader should deliver >= 0.9x the clips/s of bare PyAV
decoding of the same work. In one run, on a synthetic Kinetics in the official layout (mp4 with
H.264 video + AAC audio, written on the fly), interleaved clip by clip (CPU-time medians):

* **loader (now)**: what a DataLoader worker does per clip with ``deferred_geometry=True`` (the
  default): 32 frames at stride 2 from a random start decoded at native size, random short side
  in [256, 320] / 224 crop / flip turned into bilinear taps, the uint8 source region of the crop
  cut out, a 128x80 log-mel of the clip's audio from the same container, and ``collate_clips``;
* **loader (before)**: the same with ``deferred_geometry=False`` (swscale resize in the decoder,
  crop, flip, float normalisation, [slow, fast] packing in the worker);
* **raw PyAV**: `av.open`, seek to the keyframe before the first needed frame, decode up to
  the last needed one, convert exactly the 32 needed frames to RGB arrays (no resize), then seek
  to and decode the clip's audio window to float arrays; no transform, no log-mel;
* **finish on CPU**: ``finish_deferred_clips`` of one collated clip (row / column taps,
  normalisation, packing), which the DataModule runs after the batch transfer (on the GPU in
  training; ``--finish-only --device cuda`` times it there on synthetic regions without PyAV);
* profile rows: native-size frame decoding alone, the audio window read alone, the log-mel alone;
* **DataLoader workers 1 and 2** (batch 4), clips/s of the loader after the first batch, and the
  torch / OpenMP thread count seen inside each worker.

    python benchmarks/kinetics_loader.py [--clips 40] [--out benchmarks/results/kinetics_loader.md]
    python benchmarks/kinetics_loader.py --finish-only --device cuda [--batch 8] [--out ...]
"""
from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import tempfile
import time
from pathlib import Path

import torch


def raw_pyav(path: str, first: int, num_frames: int, stride: int, fps: float, audio_sec: float) -> tuple[int, int]:
    """Decode exactly the frames of one clip and its audio window with bare PyAV."""
    import av

    wanted = set(range(first, first + num_frames * stride, stride))
    last = max(wanted)
    got = 0
    with av.open(path) as c:
        vs = c.streams.video[0]
        tb = float(vs.time_base)
        c.seek(int(first / fps / tb), stream=vs, backward=True, any_frame=False)
        for frame in c.decode(vs):
            idx = int(round(frame.pts * tb * fps))
            if idx in wanted:
                frame.to_ndarray(format="rgb24")
                got += 1
            if idx >= last:
                break
        samples = 0
        if c.streams.audio:
            a = c.streams.audio[0]
            t0 = first / fps
            c.seek(int(max(t0 - 0.1, 0) / float(a.time_base)), stream=a, backward=True, any_frame=False)
            for frame in c.decode(a):
                samples += frame.to_ndarray().shape[-1]
                if frame.pts * float(a.time_base) >= t0 + audio_sec:
                    break
    return got, samples


def _worker_threads(_):
    return torch.get_num_threads(), os.environ.get("OMP_NUM_THREADS")


def _synthetic_batch(batch: int, frames: int, device: str, seed: int = 0) -> dict:
    """A collated ``video_deferred`` batch as the loader makes it for 240x320 videos (short side
    in [256, 320], 224 crops, random flips), with random uint8 pixels: no video files needed."""
    from mmzoo.data import transforms as TF
    from mmzoo.data.collate import collate_deferred

    g = torch.Generator().manual_seed(seed)
    views = []
    for _ in range(batch):
        short = int(torch.randint(256, 321, (1,), generator=g))
        nh, nw = TF.short_side_size(240, 320, short)
        y0, x0 = (int(torch.randint(0, n - 224 + 1, (1,), generator=g)) for n in (nh, nw))
        p = TF.crop_plan(240, 320, short, y0, x0, 224, bool(torch.rand((), generator=g) < 0.5))
        ya, yb, xa, xb = p["region"]
        region = torch.randint(0, 256, (frames, yb - ya, xb - xa, 3), dtype=torch.uint8, generator=g)
        views.append({"region": region, **{k: p[k] for k in ("rows", "row_w", "cols", "col_w")},
                      "mean": TF.KINETICS_MEAN, "std": TF.KINETICS_STD, "alpha": 8, "pathway_mode": "linspace"})
    b = collate_deferred(views)
    return {"video_deferred": {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in b.items()}}


def finish_only(args) -> dict:
    """Time ``finish_deferred_clips`` on ``args.device`` against the full-frame path on the same
    device (uint8 240x320 clip -> float -> F.interpolate to the short side -> crop -> normalise)."""
    import torch.nn.functional as F

    from mmzoo.data import transforms as TF
    from mmzoo.data.transforms import finish_deferred_clips

    dev = args.device
    if dev == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device")
    sync = torch.cuda.synchronize if dev == "cuda" else (lambda: None)
    batch = _synthetic_batch(args.batch, args.frames, dev)
    full = torch.randint(0, 256, (args.batch, args.frames, 240, 320, 3), dtype=torch.uint8, device=dev)
    mean = torch.tensor(TF.KINETICS_MEAN, device=dev).view(1, 3, 1, 1, 1)
    std = torch.tensor(TF.KINETICS_STD, device=dev).view(1, 3, 1, 1, 1)

    def full_frame():
        x = full.permute(0, 1, 4, 2, 3).float().div_(255.0).flatten(0, 1)  # B*T, C, H, W
        x = F.interpolate(x, size=(288, 384), mode="bilinear", align_corners=False)[..., 32:256, 80:304]
        x = x.reshape(args.batch, args.frames, 3, 224, 224).permute(0, 2, 1, 3, 4)
        return (x - mean) / std

    def timed(fn, iters):
        for _ in range(2):
            fn()
        sync()
        ts = []
        for _ in range(iters):
            t0 = time.perf_counter()
            fn()
            sync()
            ts.append(time.perf_counter() - t0)
        return statistics.median(ts) * 1e3

    ms = {"finish": timed(lambda: finish_deferred_clips(batch), args.iters), "full": timed(full_frame, args.iters)}
    region_bytes = batch["video_deferred"]["region"].numel()
    float_bytes = args.batch * 3 * args.frames * (224 * 224) * 4 * (1 + 1 / 8)  # fast + slow float pathways
    name = torch.cuda.get_device_name() if dev == "cuda" else (platform.processor() or platform.machine())
    lines = [
        "# Deferred geometry: the finish step on one device (`benchmarks/kinetics_loader.py --finish-only`)",
        "",
        f"{name}, torch {torch.__version__}, torch threads {torch.get_num_threads()}; batch {args.batch} x "
        f"{args.frames} frames, 224 crops of 240x320 clips at short side 256-320 (synthetic uint8 regions, no PyAV); "
        f"median of {args.iters} synchronised iterations.",
        "",
        "| step on the device | ms / batch | ms / clip |",
        "|---|---:|---:|",
        f"| `finish_deferred_clips` (row taps, column taps, normalise, [slow, fast]) | {ms['finish']:.3f} | {ms['finish'] / args.batch:.3f} |",
        f"| peer: full-frame uint8 -> float -> `F.interpolate` -> crop -> normalise | {ms['full']:.3f} | {ms['full'] / args.batch:.3f} |",
        "",
        f"Host-to-device bytes per batch: uint8 regions (padded) {region_bytes / 2**20:.1f} MiB vs float "
        f"[slow, fast] crops {float_bytes / 2**20:.1f} MiB ({float_bytes / region_bytes:.1f}x).",
    ]
    text = "\n".join(lines) + "\n"
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
    print(text)
    return {"finish_ms": ms["finish"], "full_frame_ms": ms["full"]}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--clips", type=int, default=40, help="timed clips per method")
    p.add_argument("--videos", type=int, default=8)
    p.add_argument("--seconds", type=float, default=10.0, help="length of each synthetic video")
    p.add_argument("--workers", type=int, nargs="*", default=[1, 2])
    p.add_argument("--worker-batches", type=int, default=6)
    p.add_argument("--finish-only", action="store_true", help="time only the finish step on --device (no PyAV)")
    p.add_argument("--device", default="cpu", help="device of --finish-only")
    p.add_argument("--batch", type=int, default=8, help="batch of --finish-only")
    p.add_argument("--frames", type=int, default=32, help="frames per clip of --finish-only")
    p.add_argument("--iters", type=int, default=20, help="timed iterations of --finish-only")
    p.add_argument("--smoke", action="store_true")
    p.add_argument("--out", default=None, help="default results/kinetics_loader.md (smoke runs: nothing written unless given)")
    args = p.parse_args(argv)
    if args.smoke:
        args.clips, args.videos, args.seconds, args.workers, args.worker_batches = 3, 8, 3.0, [1], 1
        args.batch, args.frames, args.iters = 2, 8, 1
    if args.finish_only:
        return finish_only(args)
    if args.out is None and not args.smoke:
        args.out = str(Path(__file__).parent / "results" / "kinetics_loader.md")
    torch.set_num_threads(1)
    from mmzoo.data.decode import VideoReader
    from mmzoo.data.kinetics import KineticsDataModule
    from mmzoo.data.synthetic.kinetics import write_kinetics
    from mmzoo.data.transforms import finish_deferred_clips
    from mmzoo.data.video_dataset import collate_clips

    fps, nf, stride = 30.0, 32, 2
    rows: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        classes = ("abseiling", "zumba")
        write_kinetics(tmp, classes=classes, per_class={"train": max(1, args.videos // 2), "val": 1},
                       num_frames=int(args.seconds * fps), fps=fps, size=(240, 320))  # fmt: skip

        def datamodule(workers: int, deferred: bool):
            dm = KineticsDataModule(root=tmp, version="any", num_frames=nf, stride=stride, alpha=8, with_audio=True,
                                    batch_size=4, num_workers=workers, deferred_geometry=deferred)  # fmt: skip
            dm.setup("fit")
            return dm

        ds, ds_before = datamodule(0, True).datasets["train"], datamodule(0, False).datasets["train"]
        paths = [str(r.video) for r in ds.records]
        n_total = int(args.seconds * fps)
        logmel = ds.logmel
        audio_sec = logmel.num_samples() / ds.cfg.audio_sample_rate  # the log-mel window (2.06 s)
        rng = random.Random(0)
        wav = torch.randn(logmel.num_samples())

        def reader(path, start):
            with VideoReader(path) as r:
                r.frames_by_index(list(range(start, start + nf * stride, stride)))

        def audio_only(path, start):
            with VideoReader(path) as r:
                t0 = start / fps
                r.audio(t0, t0 + audio_sec, sample_rate=16000, mono=True)

        for warm in (ds, ds_before):
            warm[0]  # imports, mel filterbank
        finished = []
        times: dict[str, list[float]] = {k: [] for k in ("loader", "before", "raw", "finish", "reader", "audio", "logmel")}
        for i in range(args.clips):
            k = i % len(ds)
            start = rng.randint(0, n_total - nf * stride)
            path = paths[k]
            item = collate_clips([ds[k]])
            calls = {"loader": lambda k=k: collate_clips([ds[k]]), "before": lambda k=k: collate_clips([ds_before[k]]),
                     "raw": lambda p=path, s=start: raw_pyav(p, s, nf, stride, fps, audio_sec),
                     "finish": lambda b=item: finished.append(finish_deferred_clips(b)["video"][1].shape),
                     "reader": lambda p=path, s=start: reader(p, s), "audio": lambda p=path, s=start: audio_only(p, s),
                     "logmel": lambda: logmel(wav)}  # fmt: skip
            names = list(calls) if i % 2 == 0 else list(calls)[::-1]
            for name in names:
                c0 = time.process_time()
                res = calls[name]()
                times[name].append(time.process_time() - c0)
                if name == "raw":
                    assert res[0] == nf, f"raw decode got {res[0]} frames"
        assert all(s == (1, 3, nf, 224, 224) for s in finished), finished[:2]
        med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
        rows["per_clip"] = {**{f"{k}_cpu_ms": v for k, v in med.items()}, "ratio": med["raw"] / med["loader"],
                            "ratio_before": med["raw"] / med["before"]}  # fmt: skip
        for w in args.workers:
            loader = datamodule(w, True).train_dataloader()
            it = iter(loader)
            next(it)  # workers started
            t0 = time.perf_counter()
            n = 0
            for _ in range(args.worker_batches):
                try:
                    b = next(it)
                except StopIteration:
                    it = iter(loader)
                    b = next(it)
                n += b["label"].shape[0]
            dt = time.perf_counter() - t0
            pool = torch.utils.data.DataLoader(range(w), num_workers=w, batch_size=1,
                                               worker_init_fn=getattr(loader, "worker_init_fn", None), collate_fn=_worker_threads)
            threads = sorted({tuple(map(str, x)) for x in pool})
            rows[f"workers_{w}"] = {"clips_per_s": n / dt, "threads_in_workers": threads}
            del it, loader
    m = med
    lines = [
        "# Kinetics AVSlowFast training loader vs raw PyAV (`benchmarks/kinetics_loader.py`)",
        "",
        f"{platform.processor() or platform.machine()}, torch {torch.__version__}, torch threads 1 in the main process; "
        f"synthetic Kinetics (320x240 H.264 at 30 fps + AAC 16 kHz, {args.seconds:g} s videos); 32 frames at stride 2, "
        f"AVSlowFast 4x16 settings (short side 256-320, 224 crop, flip, alpha 8, 128x80 log-mel); "
        f"{args.clips} clips per method, interleaved, CPU time (`time.process_time`) medians.",
        "",
        "| method | CPU ms / clip | clips/s per core |",
        "|---|---:|---:|",
        f"| training loader, now: decode (native) + crop taps + uint8 region + log-mel + collate | {m['loader']:.1f} | {1e3 / m['loader']:.1f} |",
        f"| training loader, before (`deferred_geometry=False`): decode + swscale resize + crop + flip + normalise + pack + log-mel + collate "
        f"| {m['before']:.1f} | {1e3 / m['before']:.1f} |",
        f"| raw PyAV, exactly the 32 frames (rgb24, native size) + the audio window | {m['raw']:.1f} | {1e3 / m['raw']:.1f} |",
        f"| finish step on the CPU (`finish_deferred_clips`, batch of 1; on the GPU in training) | {m['finish']:.1f} | {1e3 / m['finish']:.1f} |",
        f"| profile: `VideoReader.frames_by_index`, the 32 frames at native size (no audio) | {m['reader']:.1f} | |",
        f"| profile: `VideoReader.audio`, the {audio_sec:.2f} s window (open + seek + AAC decode) | {m['audio']:.1f} | |",
        f"| profile: log-mel of the window | {m['logmel']:.1f} | |",
        "",
        f"Loader speed / raw PyAV speed: **{m['raw'] / m['loader']:.2f}x** now (worker side; target >= 0.9x), "
        f"{m['raw'] / m['before']:.2f}x before.",
        "",
        f"What the worker still spends per clip: decoding the frames ({m['reader']:.1f} ms alone, the bulk; the loader "
        f"decodes exactly what raw PyAV decodes, from the keyframe before the first frame to the last one), the audio "
        f"window ({m['audio']:.1f} ms alone, from the same container: a second seek that demuxes the ~2 s window "
        f"again and decodes only its AAC packets, no video) and the log-mel ({m['logmel']:.1f} ms). The geometry left the "
        f"worker: it runs after the batch transfer (GPU: `results/kinetics_finish.md`; CPU: the finish row above, paid "
        f"in the main process when training on the CPU).",
        "",
        "| DataLoader workers (now) | clips/s (wall) | (torch threads, OMP_NUM_THREADS) in the workers |",
        "|---:|---:|---|",
    ]
    for w in args.workers:
        r = rows[f"workers_{w}"]
        lines.append(f"| {w} | {r['clips_per_s']:.1f} | {r['threads_in_workers']} |")
    text = "\n".join(lines) + "\n"
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
    print(text)
    return rows


if __name__ == "__main__":
    main()
