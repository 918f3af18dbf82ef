"""Shared fixtures: every test runs offline with its own empty local hub and HF cache."""
from __future__ import annotations

import os

# huggingface_hub reads HF_HUB_OFFLINE once, at import: set it before anything imports it, so no
# test can reach the network by accident (tests of the online path patch the client explicitly).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import shutil  # noqa: E402

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def isolated_hub(tmp_path_factory, monkeypatch):
    """Point MMZOO_HUB and the Hugging Face cache at fresh temporary folders; force offline.

    The folder is removed after the test: pushed VGG-16 weights are hundreds of MB, and a full
    run must fit a small CI disk.
    """
    root = tmp_path_factory.mktemp("hub")
    monkeypatch.setenv("MMZOO_HUB", str(root / "mmzoo-hub"))
    monkeypatch.setenv("HF_HOME", str(root / "hf-home"))
    monkeypatch.setenv("HF_HUB_CACHE", str(root / "hf-home" / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(autouse=True)
def _restore_seed_env():
    """In-process `fit`/`test` runs seed_everything, which exports PL_GLOBAL_SEED / PL_SEED_WORKERS;
    keep them from leaking into later tests of this process and into their subprocesses."""
    saved = {k: v for k, v in os.environ.items() if k.startswith("PL_")}
    yield
    for key in [k for k in os.environ if k.startswith("PL_")]:
        del os.environ[key]
    os.environ.update(saved)


@pytest.fixture(scope="module")
def msrvtt_vocab(tmp_path_factory):
    """A synthetic MSR-VTT (24 videos, expert features only) and a WordPiece vocab for its captions."""
    from mmzoo.data.synthetic.msrvtt import SYNTHETIC_VOCAB, write_msrvtt

    root = write_msrvtt(tmp_path_factory.mktemp("msrvtt"), num_videos=24, num_mp4=0)
    vocab = root / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + SYNTHETIC_VOCAB) + "\n")
    return root, vocab


@pytest.fixture(scope="module")
def av_events(tmp_path_factory):
    """Synthetic Kinetics (2 classes, 4 train / 2 val videos of 6 s, 32 x 40) whose sound bursts and
    moving squares co-occur, one event per 2-s slot: the AVTS and Multisensory sync tests' data."""
    from mmzoo.data.synthetic.kinetics import write_kinetics

    return write_kinetics(tmp_path_factory.mktemp("kin_events"), classes=("drumming", "tapping"),
                          per_class={"train": 4, "val": 2}, num_frames=180, size=(32, 40), av_events=True,
                          event_every=2.0)
