"""A precomputed T2VLAD retrieval index: per-video descriptors stored once, a query scored by one
matrix product.

T2VLAD's similarity (thesis ch. 6, eq. 6.9-6.11) of a text t and a video v is

    s(t, v) = 1/2 (s_local + s_global),   s_local = <T_local(t), V_local(v)>,
    s_global = sum_e w_e(t, v) <T_e(t), V_e(v)>,   w_e = moe_e(t) a_e(v) / sum_e' moe_e'(t) a_e'(v)

(`a_e(v)` = 1 when video v has expert e; the renormalisation is `renormalise_moe`). Everything on
the video side is fixed once the videos are encoded, and the mixture weights factor into the
query: storing `a_e(v) V_e(v)` (availability folded into the descriptor) gives

    sum_e moe_e a_e <T_e, V_e> = < concat_e(moe_e T_e), concat_e(a_e V_e) >,

so with the index matrix `X = [V_local | a_1 V_1 | ... | a_E V_E]` (one row per video) and the
query matrix `Q = [[T_local, 0], [0, concat_e(moe_e T_e)]]`, `X @ Q` (`F.linear(X, Q^T)`) gives both branches of every
video in one pass over X; the renormaliser is `a @ moe` (V x E times E). This is the same number
as `T2VLAD.similarity` up to float rounding (tests/test_retrieval_index.py) and costs one read of
X: 17 KiB per video at C=256, K=9, E=8 (52 KiB at the paper's C=768).

Saved as `index.safetensors` (`descriptors` [V, D], `available` [V, E]) plus `index.json`
(format, model id, the SHA-256 of the model's weights, video ids, layout); loading it for a
different model or weights raises `IndexMismatchError`.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

import torch
import torch.nn.functional as F

from mmzoo.errors import MmzooError

__all__ = ["T2VLADIndex", "IndexMismatchError", "weights_sha256", "INDEX_JSON", "INDEX_TENSORS"]

INDEX_JSON = "index.json"
INDEX_TENSORS = "index.safetensors"
FORMAT = "mmzoo-t2vlad-index/1"


class IndexMismatchError(MmzooError, ValueError):
    """A saved index does not belong to the model asked to search it (or is malformed)."""


def weights_sha256(model: torch.nn.Module) -> str:
    """SHA-256 of a model's state dict: every entry's name, dtype, shape and bytes, in key order."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}\n".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def _model_layout(model: Any) -> dict[str, Any]:
    h = model.hparams
    return {"local": bool(h.local_alignment), "global": bool(h.global_alignment), "experts": list(model.experts),
            "renormalise_moe": bool(h.renormalise_moe)}


class T2VLADIndex:
    """Video descriptors of one T2VLAD model, ready to score text queries.

    Args:
        video_ids: one id per row.
        descriptors: `X` [V, D]: the local descriptor (K*C) then, per expert, `a_e V_e` (C each);
            either part absent when the model has no such branch.
        available: expert availability `a` [V, E].
        layout: {"local", "global", "experts", "renormalise_moe", "local_dim", "global_dim"}.
        model_id / weights_sha256: what built it (checked by `check_model`).
    """

    def __init__(self, video_ids: Sequence[str], descriptors: torch.Tensor, available: torch.Tensor, layout: dict[str, Any],
                 model_id: Optional[str] = None, weights_sha256: Optional[str] = None) -> None:
        if descriptors.dim() != 2 or descriptors.shape[0] != len(video_ids) or available.shape[0] != len(video_ids):
            raise IndexMismatchError(
                f"index of {len(video_ids)} video ids has descriptors {tuple(descriptors.shape)} and availability {tuple(available.shape)}")
        if descriptors.shape[1] != layout["local_dim"] + layout["global_dim"]:
            raise IndexMismatchError(f"descriptor width {descriptors.shape[1]} != local {layout['local_dim']} + global {layout['global_dim']}")
        self.video_ids = list(video_ids)
        self.descriptors = descriptors.contiguous()
        self.available = available
        self.layout = dict(layout)
        self.model_id = model_id
        self.weights_sha256 = weights_sha256

    def __len__(self) -> int:
        return len(self.video_ids)

    # ------------------------------------------------------------------ building
    @staticmethod
    def rows(video: dict[str, torch.Tensor], layout: dict[str, Any]) -> torch.Tensor:
        """Index rows `[local | a_e * global_e ...]` of `T2VLAD.encode_video` output."""
        parts = []
        if layout["local"]:
            parts.append(video["local"])
        if layout["global"]:
            g = video["global"] * video["available"].to(video["global"].dtype).unsqueeze(-1)  # V, E, C
            parts.append(g.flatten(1))
        return torch.cat(parts, dim=1)

    @classmethod
    @torch.no_grad()
    def build(cls, model: Any, batches: Iterable[dict], model_id: Optional[str] = None,
              hash_weights: bool = True) -> "T2VLADIndex":
        """Encode every video of `batches` (dicts with `video_id`, `experts` and optional
        `expert_masks` / `expert_available`, e.g. the msrvtt DataModule's predict loader);
        `hash_weights=False` skips the weights' SHA-256 (an index that is not saved)."""
        was_training = model.training
        model.eval()
        layout = _model_layout(model)
        ids, rows, avail = [], [], []
        try:
            for b in batches:
                exp = {k: v.to(model.device) for k, v in b["experts"].items()}
                masks = {k: v.to(model.device) for k, v in b["expert_masks"].items()} if b.get("expert_masks") else None
                av = {k: v.to(model.device) for k, v in b["expert_available"].items()} if b.get("expert_available") else None
                video = model.encode_video(exp, masks, av)
                rows.append(cls.rows(video, layout).float().cpu())
                avail.append(video["available"].float().cpu())
                ids += [str(v) for v in b["video_id"]]
        finally:
            model.train(was_training)
        if not ids:
            raise ValueError("no videos to index")
        x = torch.cat(rows)
        layout["local_dim"] = int(video["local"].shape[1]) if layout["local"] else 0
        layout["global_dim"] = x.shape[1] - layout["local_dim"]
        return cls(ids, x, torch.cat(avail), layout, model_id or getattr(model, "zoo_id", None),
                   weights_sha256(model) if hash_weights else None)

    # ------------------------------------------------------------------ scoring
    def query_matrix(self, text: dict[str, torch.Tensor]) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """`Q^T` [2T, D] for T encoded texts (`T2VLAD.encode_text` output: T local rows, then T
        global rows) and the mixture weights `moe` [T, E] (None without a global branch)."""
        lay = self.layout
        ref = text["local"] if lay["local"] else text["global"]
        t = ref.shape[0]
        q = torch.zeros(2 * t, lay["local_dim"] + lay["global_dim"], dtype=self.descriptors.dtype, device=self.descriptors.device)
        if lay["local"]:
            q[:t, : lay["local_dim"]] = text["local"].to(q)
        moe = None
        if lay["global"]:
            moe = text["moe"].to(q)
            q[t:, lay["local_dim"]:] = (moe.unsqueeze(-1) * text["global"].to(q)).flatten(1)
        return q, moe

    def scores(self, text: dict[str, torch.Tensor], mode: str = "both") -> torch.Tensor:
        """`[T, V]` similarities of encoded texts to every indexed video, as
        `T2VLAD.similarity(text, video, mode)` computes them."""
        lay = self.layout
        if mode not in ("both", "global", "local"):
            raise ValueError(f"mode must be 'both', 'global' or 'local', got {mode!r}")
        if (mode == "local" and not lay["local"]) or (mode == "global" and not lay["global"]):
            raise ValueError(f"similarity mode {mode!r}: this index has no {mode} branch")
        q, moe = self.query_matrix(text)
        t = q.shape[0] // 2
        s = F.linear(self.descriptors, q).t()  # 2T, V: one pass over the index
        s_local = s[:t] if lay["local"] and mode != "global" else None
        if not lay["global"] or mode == "local":
            return s_local
        s_global = s[t:]
        if lay["renormalise_moe"]:
            s_global = s_global / (moe @ self.available.to(moe).t()).clamp_min(1e-8)
        return s_global if s_local is None else 0.5 * (s_global + s_local)

    @torch.no_grad()
    def search(self, model: Any, query: str, top_k: Optional[int] = None, mode: Optional[str] = None) -> list[tuple[str, float]]:
        """`[(video_id, score), ...]` best first for a text query (ties keep index order)."""
        if not isinstance(query, str) or not query.strip():
            raise ValueError("query must be a non-empty string")
        self.check_model(model)
        was_training = model.training
        model.eval()
        try:
            text = model.encode_texts([query])
        finally:
            model.train(was_training)
        text = {k: v.to(self.descriptors.device) for k, v in text.items()}
        s = self.scores(text, mode or model.hparams.eval_similarity)[0].cpu()
        order = torch.argsort(s, descending=True, stable=True)
        if top_k is not None:
            order = order[:top_k]
        return [(self.video_ids[i], float(s[i])) for i in order.tolist()]

    def check_model(self, model: Any, check_weights: bool = False) -> None:
        """Raise `IndexMismatchError` unless `model` has this index's layout (and, with
        `check_weights`, its id and weights)."""
        lay = _model_layout(model)
        mine = {k: self.layout[k] for k in lay}
        if mine != lay:
            raise IndexMismatchError(f"index built for a T2VLAD with {mine}, model has {lay}")
        if check_weights:
            mid = getattr(model, "zoo_id", None)
            if self.model_id and mid and mid != self.model_id:
                raise IndexMismatchError(f"index built by {self.model_id!r}, not {mid!r}: rebuild it from the feature set")
            sha = weights_sha256(model)
            if self.weights_sha256 and sha != self.weights_sha256:
                raise IndexMismatchError(
                    f"index built with weights sha256 {self.weights_sha256[:12]}..., the model's are {sha[:12]}...: "
                    "rebuild it from the feature set")

    # ------------------------------------------------------------------ storage
    def save(self, folder: str | Path) -> Path:
        from safetensors.torch import save_file

        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        save_file({"descriptors": self.descriptors.cpu().contiguous(), "available": self.available.cpu().contiguous()},
                  str(out / INDEX_TENSORS))
        (out / INDEX_JSON).write_text(json.dumps({
            "format": FORMAT, "model_id": self.model_id, "weights_sha256": self.weights_sha256,
            "layout": self.layout, "num_videos": len(self), "video_ids": self.video_ids}, indent=1))
        return out

    @classmethod
    def load(cls, folder: str | Path, device: str | torch.device = "cpu") -> "T2VLADIndex":
        from safetensors.torch import load_file

        folder = Path(folder)
        meta_path = folder / INDEX_JSON
        if not meta_path.is_file() or not (folder / INDEX_TENSORS).is_file():
            raise FileNotFoundError(f"{folder}: no {INDEX_JSON} + {INDEX_TENSORS} (a T2VLAD index folder)")
        try:
            meta = json.loads(meta_path.read_text())
        except json.JSONDecodeError as e:
            raise IndexMismatchError(f"{meta_path}: not JSON ({e})") from e
        if meta.get("format") != FORMAT:
            raise IndexMismatchError(f"{meta_path}: format {meta.get('format')!r}, expected {FORMAT!r}")
        t = load_file(str(folder / INDEX_TENSORS), device=str(device))
        return cls(meta["video_ids"], t["descriptors"], t["available"], meta["layout"], meta.get("model_id"), meta.get("weights_sha256"))

