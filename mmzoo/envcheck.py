"""Check that the native extensions mmzoo uses load together, and say which package is wrong.

``python -m mmzoo.envcheck`` (run by ``make test`` and ``make demo`` before anything else) checks:

- the torch triple: the installed ``torch`` / ``torchvision`` / ``torchaudio`` versions equal the
  exact pins mmzoo declares (their native libraries are built against one torch release, so a
  "compatible" patch release of one of them may not load: torchaudio 2.11.1 against torch 2.11.0
  fails with ``undefined symbol``);
- torchaudio's native libraries (``libtorchaudio``, ``_torchaudio``) load, and the log-mel front
  end runs;
- torchvision's C++ operators (``nms``, ``roi_align``, ``ps_roi_pool``) are registered and run;
- PyAV imports, and its FFmpeg can encode and decode H.264 video with AAC audio in memory.

Each failure is one line naming the package, its version and the fix; the exit status is 1.
Nothing here imports the rest of mmzoo, so it runs even when mmzoo itself would not import.
"""
from __future__ import annotations

import importlib.metadata as md
import io
import re
import sys
from typing import Callable

__all__ = ["CheckFailure", "run_checks", "main"]

TRIPLE = ("torch", "torchvision", "torchaudio")


class CheckFailure(Exception):
    """One failed check: the message is the single line printed for it."""


def _version(dist: str) -> str:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return "not installed"


def _triple_versions() -> str:
    return ", ".join(f"{d} {_version(d)}" for d in TRIPLE)


def _declared_pins() -> dict[str, str]:
    """``{'torch': '2.11.0', ...}`` from mmzoo's own metadata (empty when mmzoo is not installed)."""
    try:
        requires = md.requires("mmzoo") or []
    except md.PackageNotFoundError:
        return {}
    pins = {}
    for req in requires:
        m = re.fullmatch(r"\s*(torch|torchvision|torchaudio)\s*==\s*([^\s;,]+)\s*", req)
        if m:
            pins[m.group(1)] = m.group(2)
    return pins


def check_triple() -> str:
    pins = _declared_pins()
    wrong = [f"{d} {_version(d)} (mmzoo needs {v})" for d, v in pins.items() if _version(d).split("+")[0] != v]
    if wrong:
        raise CheckFailure(
            "torch triple mismatch: " + ", ".join(wrong) + ". torch, torchvision and torchaudio "
            "must move together; reinstall from the lock: pip install --require-hashes -r requirements.lock"
        )
    return _triple_versions()


def check_torchaudio() -> str:
    import torch

    try:
        import torchaudio
        import torchaudio._extension  # noqa: F401  loads libtorchaudio and _torchaudio

        mel = torchaudio.transforms.MelSpectrogram(sample_rate=16000, n_fft=64, n_mels=8)
        out = mel(torch.zeros(1, 256))
        torchaudio.functional.resample(torch.zeros(1, 160), 16000, 8000)
    except Exception as exc:  # any load or run failure is the same verdict
        raise CheckFailure(
            f"torchaudio {_version('torchaudio')} native library does not work with torch "
            f"{_version('torch')}: {type(exc).__name__}: {_first_line(exc)}. Install the exact triple "
            "from requirements.lock"
        ) from exc
    if out.shape[-2] != 8:
        raise CheckFailure(f"torchaudio {_version('torchaudio')}: MelSpectrogram returned shape {tuple(out.shape)}")
    return f"torchaudio {_version('torchaudio')} (libtorchaudio loaded)"


def check_torchvision_ops() -> str:
    import torch

    try:
        from torchvision.ops import nms, ps_roi_pool, roi_align

        boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [1.0, 1.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0]])
        keep = nms(boxes, torch.tensor([0.9, 0.8, 0.7]), 0.5)
        feat = torch.ones(1, 4, 8, 8)
        rois = torch.tensor([[0.0, 0.0, 0.0, 4.0, 4.0]])
        roi_align(feat, rois, output_size=2)
        ps_roi_pool(feat, rois, output_size=2)
    except Exception as exc:
        raise CheckFailure(
            f"torchvision {_version('torchvision')} C++ operators do not work with torch "
            f"{_version('torch')}: {type(exc).__name__}: {_first_line(exc)}. Install the exact triple "
            "from requirements.lock"
        ) from exc
    if keep.tolist() != [0, 2]:
        raise CheckFailure(f"torchvision {_version('torchvision')}: nms kept {keep.tolist()}, expected [0, 2]")
    return f"torchvision {_version('torchvision')} (nms, roi_align, ps_roi_pool)"


def check_pyav() -> str:
    try:
        import av
        import numpy as np

        buf = io.BytesIO()
        with av.open(buf, "w", format="mp4") as out:
            v = out.add_stream("libx264", rate=10)
            v.width, v.height, v.pix_fmt = 32, 32, "yuv420p"
            a = out.add_stream("aac", rate=16000)
            a.layout = "mono"
            for i in range(3):
                frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), 40 * i, np.uint8), format="rgb24")
                out.mux(v.encode(frame))
            samples = np.zeros((1, 1024), np.float32)
            af = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
            af.sample_rate = 16000
            out.mux(a.encode(af))
            out.mux(v.encode())
            out.mux(a.encode())
        buf.seek(0)
        with av.open(buf) as inp:
            n = sum(1 for _ in inp.decode(video=0))
    except Exception as exc:
        raise CheckFailure(
            f"PyAV (av {_version('av')}) cannot encode/decode H.264 + AAC: {type(exc).__name__}: "
            f"{_first_line(exc)}. Reinstall av from requirements.lock (its wheel ships FFmpeg)"
        ) from exc
    if n != 3:
        raise CheckFailure(f"PyAV (av {_version('av')}): wrote 3 H.264 frames, decoded {n}")
    return f"av {_version('av')} (H.264 + AAC round trip)"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else ""


CHECKS: dict[str, Callable[[], str]] = {
    "torch triple": check_triple,
    "torchaudio": check_torchaudio,
    "torchvision ops": check_torchvision_ops,
    "pyav": check_pyav,
}


def run_checks() -> tuple[list[str], list[str]]:
    """Run every check; return ``(passed, failed)`` one-line messages."""
    passed, failed = [], []
    for name, fn in CHECKS.items():
        try:
            passed.append(fn())
        except CheckFailure as exc:
            failed.append(f"{name}: {exc}")
    return passed, failed


def main() -> int:
    passed, failed = run_checks()
    if failed:
        for line in failed:
            print(f"mmzoo environment check failed: {line}", file=sys.stderr)
        return 1
    print("mmzoo environment ok: " + "; ".join(passed))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
