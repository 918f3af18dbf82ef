"""A tiny MSR-VTT in the layout that :mod:`mmzoo.data.msrvtt` reads (see its docstring).

:func:`write_msrvtt` writes ``MSRVTT_data.json`` (official ``{"info", "videos", "sentences"}``
schema), the collaborative-experts split lists of 1k-A / 1k-B / full, the 1k-A caption index
pickle, ``raw-captions.pkl``, one MMT-style feature pickle per expert (real dimensions, a few
tokens per video, NaN for videos lacking an expert) and, for the first ``num_mp4`` videos, real
H.264 + AAC mp4 files under ``videos/all``.

Each video gets a "concept" (colour x object x action); its captions describe that concept and
its expert features are a fixed random direction of the concept plus noise, so that a model can
actually learn to retrieve on it -- for videos whose concept also occurs in training: the directions
are drawn per concept, not composed from its words, so an unseen concept cannot be predicted. With
``num_videos=100`` every 1k-A test video's concept is also a training video's; with 60 or fewer, none
is (``tests/test_t2vlad_learns.py``). Every caption uses only the words of :data:`SYNTHETIC_VOCAB`,
which a test can turn into a BERT vocabulary file without downloading anything.
"""
from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from mmzoo.data.msrvtt import MSRVTT_EXPERT_DIMS, MSRVTT_EXPERT_FILES, MSRVTT_MAX_TOKENS

__all__ = ["write_msrvtt", "SYNTHETIC_VOCAB"]

_COLOURS = ["red", "blue", "green", "yellow"]
_OBJECTS = ["man", "woman", "dog", "car", "cat"]
_ACTIONS = ["running", "cooking", "singing", "driving"]
_FILLER = ["a", "the", "is", "in", "video", "shows", "someone", "while", "outside", "."]
SYNTHETIC_VOCAB = sorted(set(_COLOURS + _OBJECTS + _ACTIONS + _FILLER))
_OPTIONAL_EXPERTS = ("face", "ocr", "speech")  # experts that some real videos lack


def _caption(rng: np.random.Generator, colour: str, obj: str, action: str) -> str:
    templates = [
        f"a {colour} {obj} is {action}",
        f"the video shows a {colour} {obj} {action}",
        f"someone {action} while a {colour} {obj} is outside",
        f"a {obj} in {colour} is {action} .",
    ]
    return templates[int(rng.integers(len(templates)))]


def write_msrvtt(
    root: str | Path,
    num_videos: int = 24,
    captions_per_video: int = 20,
    experts: Optional[Sequence[str]] = None,
    max_feature_tokens: int = 4,
    num_mp4: int = 2,
    mmt_h5: bool = False,
    seed: int = 0,
) -> Path:
    """Write the dataset under ``root`` and return ``root``.

    Splits (fractions of ``num_videos``, mirroring the real proportions): full = ~65% train /
    ~5% val / ~30% test; 1k-A test = the first half of the full test videos, 1k-A train = every
    other video; 1k-B test = the second half of the full test videos, 1k-B train = 70% of the
    rest. The last video of the full test split gets only ``captions_per_video - 1`` captions,
    as a few real MSR-VTT test videos do. With ``mmt_h5`` the same features are also written
    as MMT's per-video HDF5 cache (``vid_feat_files/mult_h5/v/i/d/<id>.h5``, audio as ``vggish``,
    a lacking expert left out, plus ``raw_captions.<i>`` word arrays).
    """
    if num_videos < 8:
        raise ValueError("write_msrvtt needs at least 8 videos to fill every split")
    root = Path(root)
    rng = np.random.default_rng(seed)
    experts = list(experts) if experts is not None else list(MSRVTT_EXPERT_FILES)
    data_dir = root / "structured-symlinks"
    feat_dir = data_dir / "mmt_feats"
    feat_dir.mkdir(parents=True, exist_ok=True)

    ids = [f"video{i}" for i in range(num_videos)]
    n_test = max(2, int(round(0.3 * num_videos)))
    n_val = max(1, int(round(0.05 * num_videos)))
    train_full, val_full, test_full = ids[: num_videos - n_test - n_val], ids[num_videos - n_test - n_val: num_videos - n_test], ids[num_videos - n_test:]
    half = len(test_full) // 2
    test_1ka = test_full[:half]
    train_1ka = [v for v in ids if v not in test_1ka]
    test_1kb = test_full[half:]
    rest = [v for v in ids if v not in test_1kb]
    train_1kb = rest[: max(1, int(0.7 * len(rest)))]
    split_of = {v: "train" for v in train_full} | {v: "validate" for v in val_full} | {v: "test" for v in test_full}

    concepts = {}
    videos_json, sentences_json, raw_captions = [], [], {}
    sen_id = 0
    for i, v in enumerate(ids):
        c = (_COLOURS[i % len(_COLOURS)], _OBJECTS[(i // len(_COLOURS)) % len(_OBJECTS)], _ACTIONS[(i * 7 + i // 3) % len(_ACTIONS)])
        concepts[v] = c
        videos_json.append({"category": int(i % 20), "url": f"https://www.youtube.com/watch?v=synthetic{i:04d}",
                            "video_id": v, "start time": 10.0 + i, "end time": 20.0 + i, "split": split_of[v], "id": i})
        n_caps = captions_per_video - 1 if v == test_full[-1] else captions_per_video
        raw_captions[v] = []
        for _ in range(n_caps):
            cap = _caption(rng, *c)
            sentences_json.append({"caption": cap, "video_id": v, "sen_id": sen_id})
            raw_captions[v].append(cap.split())
            sen_id += 1
    rng.shuffle(sentences_json)  # the real file is not grouped by video; the loader sorts by sen_id
    info = {"year": "2016", "version": "1.0", "description": "synthetic MSR-VTT (mmzoo tests)",
            "contributor": "mmzoo", "data_created": "2016-04-01 00:00:00"}
    (root / "MSRVTT_data.json").write_text(json.dumps({"info": info, "videos": videos_json, "sentences": sentences_json}))

    lists = {"train_list_jsfusion.txt": train_1ka, "val_list_jsfusion.txt": test_1ka,
             "train_list_miech.txt": train_1kb, "test_list_miech.txt": test_1kb,
             "train_list_full.txt": train_full, "val_list_full.txt": val_full, "test_list_full.txt": test_full}
    for name, vids in lists.items():
        (data_dir / name).write_text("".join(f"{v}\n" for v in vids))
    with open(data_dir / "jsfusion_val_caption_idx.pkl", "wb") as f:
        pickle.dump({v: int(rng.integers(len(raw_captions[v]))) for v in test_1ka}, f, protocol=2)
    with open(data_dir / "raw-captions.pkl", "wb") as f:
        pickle.dump(raw_captions, f, protocol=4)

    concept_keys = sorted(set(concepts.values()))
    tables = {}
    for e in experts:
        dim = MSRVTT_EXPERT_DIMS[e]
        directions = {k: rng.standard_normal(dim).astype(np.float32) for k in concept_keys}
        table = {}
        for i, v in enumerate(ids):
            if e in _OPTIONAL_EXPERTS and i % 4 == 3:
                table[v] = float("nan")  # the video lacks this expert
                continue
            n = int(rng.integers(1, min(max_feature_tokens, MSRVTT_MAX_TOKENS[e]) + 1))
            base = directions[concepts[v]]
            table[v] = (base[None] + 0.3 * rng.standard_normal((n, dim))).astype(np.float32)
        with open(feat_dir / MSRVTT_EXPERT_FILES[e], "wb") as f:
            pickle.dump(table, f, protocol=4)
        tables[e] = table

    if mmt_h5:
        import h5py

        from mmzoo.data.msrvtt import MMT_H5_NAMES, mmt_h5_path

        for v in ids:
            path = mmt_h5_path(root / "vid_feat_files" / "mult_h5", v)
            path.parent.mkdir(parents=True, exist_ok=True)
            with h5py.File(path, "w") as f:
                for j, words in enumerate(raw_captions[v]):
                    f.create_dataset(f"raw_captions.{j}", data=np.array(words, dtype="S"))
                for e, table in tables.items():
                    if not isinstance(table[v], float):
                        f.create_dataset(f"features.{MMT_H5_NAMES.get(e, e)}", data=table[v])

    if num_mp4:
        from mmzoo.data.media import write_mp4

        for i, v in enumerate(ids[:num_mp4]):
            t = np.arange(16)[:, None, None, None]
            frames = np.broadcast_to(((t * 13 + i * 60) % 256).astype(np.uint8), (16, 64, 80, 3)).copy()
            audio = 0.2 * np.sin(2 * np.pi * (220 + 40 * i) * np.arange(16000) / 16000.0)
            write_mp4(root / "videos" / "all" / f"{v}.mp4", frames, fps=16, audio=audio, sample_rate=16000)
    return root
