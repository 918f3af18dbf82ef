"""EPIC-KITCHENS-100 action-recognition challenge submission files.

:func:`make_submission` builds the JSON of the challenge's ``create_submission.py``
(``C1-Action-Recognition``): ``{"version": "0.2", "challenge": "action_recognition", "sls_pt",
"sls_tl", "sls_td", "results": {narration_id: {"verb": {"0": s, ...}, "noun": {...}}}}``, one
score per class; :func:`write_submission` zips it as ``test.json``. The challenge server turns
the scores into probabilities with a softmax over each segment's top-100 classes, so the scores
written are *log*-probabilities (the softmax of log p is p again, and the action ranking is the
product of the verb and noun probabilities, as in :class:`mmzoo.metrics.classification.
EpicActionAccuracy`).

:class:`EpicSubmissionWriter` is a Lightning prediction writer: with a verb/noun model and the
``epic-kitchens`` DataModule (test split, e.g. ``--data.split test``), ``mmzoo predict`` averages
the view probabilities of each segment (by ``narration_id``) and writes the zip::

    mmzoo predict --model slowfast-r50-8x8 --model.head verb_noun --data epic-kitchens \\
        --data.root /data/EPIC-KITCHENS --ckpt_path my.ckpt \\
        --trainer.callbacks mmzoo.predict.epic.EpicSubmissionWriter --trainer.callbacks.path sub.zip

EPIC-KITCHENS-55 (``version="55"``, the 2019 challenge of the thesis's Tables 3.6-3.7): the zip holds
``seen.json`` (test set S1) and ``unseen.json`` (S2), each ``{"version": "0.1", "challenge":
"action_recognition", "results": {uid: {"verb": {...}, "noun": {...}}}}`` (the
``epic-kitchens-55-starter-kit`` submission format; the server applies a softmax and takes the top
100 products as action scores, so log-probabilities are written here too). One ``predict`` run per
test set (``--data.test_set s1`` then ``s2``) adds its file to the same zip (the other one is
kept); the file is chosen from the segments' seen / unseen flag.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal
from zipfile import ZIP_DEFLATED, ZipFile

import torch
from pytorch_lightning.callbacks import BasePredictionWriter

__all__ = ["EpicSubmissionWriter", "add_to_submission_55", "make_submission", "make_submission_55", "write_submission"]


def make_submission(verb_scores: torch.Tensor, noun_scores: torch.Tensor, narration_ids: Sequence[str], *,
                    sls_pt: int = 2, sls_tl: int = 3, sls_td: int = 3, challenge: str = "action_recognition") -> dict:
    """The submission dict for ``(N, verbs)`` / ``(N, nouns)`` scores of ``N`` segments.

    ``sls_*`` are the EPIC supervision levels (pre-training, training labels, training data; 0-5).
    """
    if len(verb_scores) != len(noun_scores) or len(verb_scores) != len(narration_ids):
        raise ValueError(f"make_submission: {len(verb_scores)} verb rows, {len(noun_scores)} noun rows and "
                         f"{len(narration_ids)} narration ids must be equal")
    if len(set(narration_ids)) != len(narration_ids):
        raise ValueError("make_submission: a narration id appears twice; average the views of a segment first")
    for name, level in (("sls_pt", sls_pt), ("sls_tl", sls_tl), ("sls_td", sls_td)):
        if level not in range(6):
            raise ValueError(f"make_submission: {name} must be 0-5, got {level}")
    results = {
        str(nid): {"verb": {str(i): float(s) for i, s in enumerate(v.tolist())},
                   "noun": {str(i): float(s) for i, s in enumerate(n.tolist())}}
        for nid, v, n in zip(narration_ids, verb_scores, noun_scores)
    }
    return {"version": "0.2", "challenge": challenge, "sls_pt": sls_pt, "sls_tl": sls_tl, "sls_td": sls_td,
            "results": results}


def make_submission_55(verb_scores: torch.Tensor, noun_scores: torch.Tensor, uids: Sequence[str | int],
                       challenge: str = "action_recognition") -> dict:
    """An EPIC-55 ``seen.json`` / ``unseen.json`` dict for ``(N, verbs)`` / ``(N, nouns)`` scores."""
    sub = make_submission(verb_scores, noun_scores, [str(u) for u in uids], challenge=challenge)
    return {"version": "0.1", "challenge": challenge, "results": sub["results"]}


def add_to_submission_55(submission: dict, name: Literal["seen.json", "unseen.json"], path: str | Path) -> Path:
    """Write ``submission`` as ``name`` into the flat zip at ``path``, keeping the zip's other file."""
    if name not in ("seen.json", "unseen.json"):
        raise ValueError(f"EPIC-55 submission files are seen.json and unseen.json, got {name!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    keep: dict[str, bytes] = {}
    if path.is_file():
        with ZipFile(path) as zf:
            keep = {n: zf.read(n) for n in zf.namelist() if n != name and n in ("seen.json", "unseen.json")}
    with ZipFile(path, "w", compression=ZIP_DEFLATED, compresslevel=5) as zf:
        for n, data in keep.items():
            zf.writestr(n, data)
        zf.writestr(name, json.dumps(submission))
    return path


def write_submission(submission: dict, path: str | Path) -> Path:
    """Zip ``submission`` as ``test.json`` at ``path`` (parents created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with ZipFile(path, "w", compression=ZIP_DEFLATED, compresslevel=5) as zf:
        zf.writestr("test.json", json.dumps(submission))
    return path


class EpicSubmissionWriter(BasePredictionWriter):
    """Collect verb/noun probabilities per segment during ``predict`` and write the challenge zip.

    Args:
        path: the zip to write.
        sls_pt / sls_tl / sls_td: the supervision levels declared in the submission (EPIC-100).
        version: ``"100"`` (``test.json``) or ``"55"`` (``seen.json`` / ``unseen.json`` by the
            segments' unseen-kitchen flag, added to the zip at ``path``).
    """

    def __init__(self, path: str, sls_pt: int = 2, sls_tl: int = 3, sls_td: int = 3,
                 version: Literal["100", "55"] = "100") -> None:
        super().__init__(write_interval="batch")
        if version not in ("100", "55"):
            raise ValueError(f"version must be '100' or '55', got {version!r}")
        self.path, self.levels, self.version = path, dict(sls_pt=sls_pt, sls_tl=sls_tl, sls_td=sls_td), version
        self._sums: dict[str, list[Any]] = {}
        self._unseen: set[bool] = set()

    def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx) -> None:
        if not isinstance(prediction, dict) or "verb" not in prediction:
            raise ValueError("EpicSubmissionWriter needs a verb/noun model (--model.head verb_noun)")
        key = "uid" if self.version == "55" else "narration_id"
        ids = [m.get(key) if m.get(key) not in (None, "") else (m.get("uid") if key == "narration_id" else None)
               for m in batch["meta"]]
        if self.version == "55":
            self._unseen.update(bool(m.get("unseen_participant", False)) for m in batch["meta"])
        if any(i is None or i == "" for i in ids):
            raise ValueError(f"EpicSubmissionWriter: a segment has no {key} in its meta")
        for i, nid in enumerate(ids):
            acc = self._sums.setdefault(str(nid), [0.0, 0.0, 0])
            acc[0] = acc[0] + prediction["verb"][i].detach().double().cpu()
            acc[1] = acc[1] + prediction["noun"][i].detach().double().cpu()
            acc[2] += 1

    def on_predict_epoch_end(self, trainer, pl_module) -> None:
        if not self._sums:
            raise ValueError("EpicSubmissionWriter: no segment was predicted")
        ids = list(self._sums)
        verb = torch.stack([self._sums[i][0] / self._sums[i][2] for i in ids]).clamp_min(1e-30).log()
        noun = torch.stack([self._sums[i][1] / self._sums[i][2] for i in ids]).clamp_min(1e-30).log()
        if self.version == "55":
            if len(self._unseen) != 1:
                raise ValueError("EpicSubmissionWriter: predict one EPIC-55 test set (s1 or s2) per run")
            name = "unseen.json" if self._unseen.pop() else "seen.json"
            add_to_submission_55(make_submission_55(verb, noun, ids), name, self.path)
        else:
            write_submission(make_submission(verb, noun, ids, **self.levels), self.path)
        self._sums, self._unseen = {}, set()

