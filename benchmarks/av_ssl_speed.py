"""Speed of the audio-visual self-supervised models (AVTS, Multisensory) beside a peer, in one run.

* AVTS video network: mmzoo's MC3-18 (``avts-mc3-vggmel``'s ``video_net``) beside torchvision's
  ``mc3_18`` (same architecture, same weights layout), clips/s in eval mode without grad;
* AVTS pretext step (video + audio embeddings, easy and hard negatives, loss, backward): clips/s;
* Multisensory: forward and CAM (``sound_localization_map``) clips/s.

    python benchmarks/av_ssl_speed.py                                  # small CPU run
    python benchmarks/av_ssl_speed.py --device cuda --frames 16 --size 112 --ms_frames 64 --ms_size 224 \
        --ms_audio 88200 --batch 16 --iters 20

Writes a Markdown table (default ``benchmarks/results/av_ssl_speed.md``).
"""
from __future__ import annotations

import argparse
import platform
from pathlib import Path

import torch

from _timing import median_seconds


def timed(fn, iters: int, warmup: int, device: str, grad: bool = False) -> float:
    """Median seconds of one call."""
    return median_seconds(fn, iters, warmup, device, grad=grad)


def main(argv: list[str] | None = None) -> Path:
    import torchvision

    from mmzoo.models.avts import AVTS
    from mmzoo.models.multisensory import Multisensory

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--size", type=int, default=56)
    p.add_argument("--ms_frames", type=int, default=8, help="Multisensory clip frames (paper: 64)")
    p.add_argument("--ms_size", type=int, default=56, help="Multisensory crop (paper: 224)")
    p.add_argument("--ms_audio", type=int, default=21000, help="Multisensory waveform samples (paper: 88200)")
    p.add_argument("--iters", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "av_ssl_speed.md"))
    a = p.parse_args(argv)
    dev, b = a.device, a.batch
    video = torch.randn(b, 3, a.frames, a.size, a.size, device=dev)
    rows = []

    avts = AVTS(frames=a.frames, crop_size=a.size).to(dev).eval()
    peer = torchvision.models.video.mc3_18().to(dev).eval()
    peer.fc = torch.nn.Identity()
    t_ours = timed(lambda: avts.video_features(video), a.iters, a.warmup, dev)
    t_peer = timed(lambda: peer(video), a.iters, a.warmup, dev)
    rows.append(("MC3-18 forward (mmzoo avts video_net)", b / t_ours, f"torchvision mc3_18: {b / t_peer:.2f}"))

    avts.train()
    logmel = torch.randn(b, 1, 98, 64, device=dev)
    batch = {"video": video, "audio": logmel, "audio_shifted": logmel.roll(7, dims=2),
             "video_index": torch.arange(b)}

    def step() -> None:
        d, y = avts.pair_distances(batch, *avts.negative_plan(batch, epoch=60))
        avts._loss(d, y).backward()

    t_step = timed(step, a.iters, a.warmup, dev, grad=True)
    rows.append(("AVTS pretext step (mixed negatives, fwd + bwd)", b / t_step, "-"))

    ms = Multisensory(frames=a.ms_frames, crop_size=a.ms_size, audio_samples=a.ms_audio).to(dev).eval()
    video = torch.randn(b, 3, a.ms_frames, a.ms_size, a.ms_size, device=dev)
    wave = torch.randn(b, a.ms_audio, device=dev) * 0.1
    t_fwd = timed(lambda: ms(video, wave), a.iters, a.warmup, dev)
    t_cam = timed(lambda: ms.sound_localization_map(video, wave), a.iters, a.warmup, dev)
    rows.append((f"Multisensory forward ({a.ms_frames} x {a.ms_size}^2, {a.ms_audio} samples)", b / t_fwd,
                 f"with CAM: {b / t_cam:.2f}"))

    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    head = (f"# AV self-supervision speed\n\n{platform.processor() or platform.machine()}, device {dev}, batch {b}, "
            f"{a.frames} x {a.size} x {a.size}, torch {torch.__version__}\n\n| what | clips/s | peer / variant |\n|---|---|---|\n")
    out.write_text(head + "".join(f"| {w} | {c:.2f} | {peer_} |\n" for w, c, peer_ in rows))
    print(out.read_text())
    return out


if __name__ == "__main__":
    main()
