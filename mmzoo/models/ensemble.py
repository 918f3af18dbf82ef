"""Late fusion of any zoo models' scores: two-stream (RGB + flow) rows and multi-model ensembles.

``mmzoo.create("ensemble", members=["ipl-i3d-rgb", "ipl-i3d-flow"], weights=[1, 1])`` builds each
member with ``mmzoo.create`` (its registered defaults, plus ``member_kwargs[i]``), runs every
member on the batch field it reads (``inputs[i]``: ``"video"`` for RGB, ``"flow"`` for the
2-channel flow stream of the EPIC / EGTEA DataModules with ``modality="rgb+flow"``), turns each
member's logits into probabilities (softmax) and returns their weighted mean
``sum_i w_i p_i / sum_i w_i``, per output for verb / noun models. This is the two-stream fusion of
the IPL (Table 4.1, 4.4) and SAOA (Table 3.5-3.6) rows, whose fusion weights the thesis does not
give ([SILENT]; equal weights by default), and the multi-model ensemble of Table 3.7 (six models).

A member whose ``forward`` takes more keyword inputs than its clip (SAOA's ``object_features``,
``object_boxes``, ``object_mask``, ``object_times`` from the EPIC DataModule's ``--data.objects``)
also gets each of them the batch carries, under the same name, so SAOA's two-stream rows fuse
members that both read the objects.

Ids: ``ensemble`` (generic; defaults to the two I3D IPL streams) and ``ipl-i3d-2stream`` (the
thesis's two-stream IPL I3D with its reported numbers).

Member weights: ``member_checkpoints[i]`` (a Lightning ``.ckpt`` read with torch's weights-only
loader, or a ``model.safetensors``) is loaded strictly into member i; ``None`` leaves it as built.
The ensemble itself is not trained (``training_step`` refuses): train the members, then fuse.
"""
from __future__ import annotations

import contextvars
import inspect
from typing import Any

import torch
from torch import nn

from mmzoo.errors import NotSupportedError
from mmzoo.metrics.classification import EpicActionAccuracy, MultiViewAccuracy
from mmzoo.metrics.egtea import EgteaAccuracy
from mmzoo.models.base import ZooModule
from mmzoo.models.ipl import check_labelled, epic_accuracy
from mmzoo.registry import InputConfig, get_spec, register_model

__all__ = ["Ensemble", "fuse_scores"]


def fuse_scores(outputs: list[Any], weights: list[float]) -> Any:
    """Weighted mean of the members' softmax probabilities; dict outputs are fused per key (every
    member must have the same keys and class counts)."""
    total = float(sum(weights))
    if total <= 0:
        raise ValueError(f"ensemble weights must sum to > 0, got {weights}")
    if isinstance(outputs[0], dict):
        keys = list(outputs[0])
        for o in outputs[1:]:
            if not isinstance(o, dict) or list(o) != keys:
                raise ValueError(f"ensemble members give different outputs: {[list(o) if isinstance(o, dict) else 'tensor' for o in outputs]}")
        return {k: fuse_scores([o[k] for o in outputs], weights) for k in keys}
    shapes = {tuple(o.shape) for o in outputs}
    if len(shapes) != 1:
        raise ValueError(f"ensemble members give scores of different shapes {sorted(shapes)}")
    return sum(w * o.float().softmax(-1) for w, o in zip(weights, outputs)) / total


def _keyword_inputs(model: nn.Module) -> tuple[str, ...]:
    """Names of ``model.forward``'s inputs after its first (the clip): e.g. SAOA's objects."""
    params = list(inspect.signature(model.forward).parameters.values())[1:]
    return tuple(p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))


class Ensemble(ZooModule):
    """Late fusion of zoo models.

    Args:
        members: zoo ids (``mmzoo list``), at least one.
        weights: fusion weight of each member (None: equal weights).
        inputs: the batch field / forward argument each member reads (None: ``"video"`` for all).
        member_kwargs: constructor overrides of each member (e.g. ``{"num_verbs": 19}``); None: none.
        member_checkpoints: a ``.ckpt`` or ``.safetensors`` file per member (None entries: as built).
    """

    def __init__(self, members: list[str] = ["ipl-i3d-rgb", "ipl-i3d-flow"],  # noqa: B006 - JSON-serialisable
                 weights: list[float] | None = None, inputs: list[str] | None = None,
                 member_kwargs: list[dict] | None = None, member_checkpoints: list[str | None] | None = None) -> None:
        super().__init__()
        self.save_hyperparameters()
        n = len(members)
        if n == 0:
            raise ValueError("an ensemble needs at least one member")
        for name, value in (("weights", weights), ("inputs", inputs), ("member_kwargs", member_kwargs),
                            ("member_checkpoints", member_checkpoints)):
            if value is not None and len(value) != n:
                raise ValueError(f"{name} has {len(value)} entries for {n} members")
        self.weights = [float(w) for w in weights] if weights is not None else [1.0] * n
        self.inputs = list(inputs) if inputs is not None else ["video"] * n
        kwargs = member_kwargs or [{}] * n
        # built in an empty context: LightningCLI hands the hyperparameters it instantiates the ensemble
        # with to every save_hyperparameters() call made meanwhile (a context variable), which would
        # give each member the ensemble's arguments instead of its own
        self.members = nn.ModuleList(contextvars.Context().run(
            lambda: [get_spec(m).build(**dict(kw or {})) for m, kw in zip(members, kwargs)]))
        for i, path in enumerate(member_checkpoints or []):
            if path:
                self.members[i].load_state_dict(_read_state(path), strict=True)
        self.extras = [_keyword_inputs(m) for m in self.members]
        self.val_metric: nn.Module | None = None
        self.test_metric: nn.Module | None = None

    def _fields(self, batch: dict) -> dict[str, Any]:
        """The batch fields the members read: each member's clip field and the keyword inputs
        (objects) present in the batch."""
        names = set(self.inputs) | {k for ex in self.extras for k in ex if k in batch}
        return {f: batch[f] for f in names}

    def _member_kwargs(self, i: int, inputs: dict) -> dict[str, torch.Tensor]:
        return {k: inputs[k] for k in self.extras[i] if k in inputs}

    def forward_features(self, **inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        """Named features (`mmzoo extract`): each member's features, prefixed ``m<i>_`` (member
        ``i``'s ``forward_features`` on its input), and "pooled": the members' "pooled" vectors
        concatenated."""
        out: dict[str, torch.Tensor] = {}
        for i, (m, f) in enumerate(zip(self.members, self.inputs)):
            feats = m.forward_features(inputs[f], **self._member_kwargs(i, inputs))
            out.update({f"m{i}_{k}": v for k, v in feats.items()})
        out["pooled"] = torch.cat([out[f"m{i}_pooled"] for i in range(len(self.members))], 1)
        return out

    def forward(self, **inputs: torch.Tensor) -> Any:
        """Fused probabilities (a tensor, or {"verb", "noun"}) from the members' inputs, given by
        name (``video=..., flow=...``)."""
        missing = sorted(set(self.inputs) - set(inputs))
        if missing:
            raise ValueError(f"ensemble members read {missing}, which were not given (got {sorted(inputs)})")
        outs = [m(inputs[f], **self._member_kwargs(i, inputs)) for i, (m, f) in enumerate(zip(self.members, self.inputs))]
        return fuse_scores(outs, self.weights)

    def example_input(self, batch_size: int = 1) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for i, (m, f) in enumerate(zip(self.members, self.inputs)):
            ex = m.example_input(batch_size)
            other = sorted(set(ex) - {"video"} - set(self.extras[i]))
            if "video" not in ex or other:
                raise NotSupportedError(f"ensemble member {m.zoo_id} takes {sorted(ex)}; a member fuses with a clip "
                                        "input and keyword inputs of its forward")
            out.setdefault(f, ex["video"])
            for k in self.extras[i]:
                if k in ex:
                    out.setdefault(k, ex[k])
        return out

    # ------------------------------------------------------------------ Lightning
    def training_step(self, batch: dict, batch_idx: int):
        raise NotSupportedError("an ensemble is not trained: train its members, then fuse them (mmzoo test / predict)")

    def configure_optimizers(self):
        return None

    def _metric(self, batch: dict, scores: Any) -> nn.Module:
        dm = getattr(getattr(self, "_trainer", None), "datamodule", None)
        if isinstance(scores, dict):
            pairs = getattr(dm, "action_pairs", None)
            if pairs is not None:
                return EgteaAccuracy(pairs).to(self.device)
            return epic_accuracy(dm).to(self.device)
        return MultiViewAccuracy(top_k=(1, 5)).to(self.device)

    def _eval_step(self, batch: dict, attr: str) -> None:
        if "verb" in batch:
            check_labelled(batch)
        scores = self(**self._fields(batch))
        if getattr(self, attr) is None:
            setattr(self, attr, self._metric(batch, scores))
        metric = getattr(self, attr)
        vid = batch.get("video_index")
        if isinstance(metric, EgteaAccuracy):
            metric.update(scores["verb"], scores["noun"], batch["verb"], batch["noun"], batch["action"], vid)
        elif isinstance(metric, EpicActionAccuracy):
            metric.update(scores["verb"], scores["noun"], batch["verb"], batch["noun"], vid, unseen=batch.get("unseen"))
        else:
            metric.update(scores, batch["label"], vid)

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._eval_step(batch, "val_metric")

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._eval_step(batch, "test_metric")

    def _log(self, attr: str, prefix: str) -> None:
        metric = getattr(self, attr)
        if metric is not None:
            self.log_dict({f"{prefix}/{k}": v for k, v in metric.compute().items()})
            metric.reset()

    def on_validation_epoch_end(self) -> None:
        self._log("val_metric", "val")

    def on_test_epoch_end(self) -> None:
        self._log("test_metric", "test")

    def predict_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> Any:
        return self(**self._fields(batch))


def _read_state(path: str) -> dict[str, torch.Tensor]:
    """A member's state dict from a Lightning checkpoint (weights-only) or a safetensors file."""
    if str(path).endswith(".safetensors"):
        from safetensors.torch import load_file

        return load_file(str(path))
    ckpt = torch.load(str(path), map_location="cpu", weights_only=True)
    if isinstance(ckpt, dict) and isinstance(ckpt.get("state_dict"), dict):
        return ckpt["state_dict"]
    if isinstance(ckpt, dict) and all(isinstance(v, torch.Tensor) for v in ckpt.values()):
        return ckpt
    raise ValueError(f"{path}: neither a Lightning checkpoint nor a state dict")


_TWO_STREAM = InputConfig(
    shapes={"video": "B,3,64,256,256", "flow": "B,2,64,256,256"}, frames=64, sampling_rate=2, train_crop=224,
    test_crop=256, short_side=256, train_scale=(256, 320), mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5),
    test_views=(10, 1), datamodules=("epic-kitchens",),
    notes="RGB in `video`, flow (x, y) in `flow`: the DataModules' modality='rgb+flow'",
)  # fmt: skip

_IDS: dict[str, dict] = {
    "ensemble": dict(defaults={"inputs": ["video", "flow"]}, input=_TWO_STREAM, reported={}),
    "ipl-i3d-2stream": dict(
        defaults={"inputs": ["video", "flow"]}, input=_TWO_STREAM,
        reported={"epic100_val_verb_top1": 67.82, "epic100_val_noun_top1": 50.87, "epic100_val_action_top1": 39.87,
                  "epic100_val_verb_top5": 90.85, "epic100_val_noun_top5": 76.07, "epic100_val_action_top5": 61.95,
                  "epic100_test_verb_top1": 65.66, "epic100_test_noun_top1": 49.74, "epic100_test_action_top1": 38.43,
                  "egtea_action_mca_split1": 60.15, "egtea_action_mca_split2": 59.03,
                  "egtea_action_mca_split3": 57.98, "egtea_action_mca_avg": 59.05},
    ),
}

for _id, _cfg in _IDS.items():
    register_model(_id, task="late fusion", paper="Wang 2021 (PhD thesis UTS), chs. 3-4: two-stream / ensemble rows",
                   **_cfg)(Ensemble)
