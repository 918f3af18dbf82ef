"""Read PaddlePaddle ``.pdparams`` checkpoints without PaddlePaddle, and convert T2VLAD's.

The format
----------
``paddle.save(layer.state_dict(), "x.pdparams")`` (Paddle 2.x) writes a plain pickle
(protocol 2-4, 4 by default) of a dict ``{structured_name: numpy.ndarray}``; Paddle adds the key
``"StructuredToParameterName@@"`` (a dict of names) and, for tensors over 4 GB saved with an old
protocol, ``"UnpackBigParamInfor@@"`` (not used by any checkpoint converted here). Nothing in it
needs Paddle: it is numpy arrays in a pickle.

A pickle can run arbitrary code, so :func:`load_pdparams` unpickles with
:class:`RestrictedUnpickler`, which resolves only the globals needed to rebuild numpy arrays,
dtypes and scalars (and ``collections.OrderedDict`` / ``_codecs.encode``, which protocol-2
pickles use); anything else raises :class:`UnsafePickleError` naming the offending global.
The same unpickler reads the feature pickles of MSR-VTT (``mmzoo.data.msrvtt``).

T2VLAD (PaddleVideo ``applications/T2VLAD``)
-------------------------------------------
The authors' group released ``T2VLAD_msrvtt.pdparams`` (MSR-VTT 1k-A) for their Paddle port
(class ``CENet``). :func:`convert_t2vlad` maps its names onto :class:`mmzoo.models.t2vlad.T2VLAD`
built with the port's layout (``vlad_sharing="port"``, id ``t2vlad-paddle``):

===============================================  ==============================================
Paddle (``CENet``)                                mmzoo (``T2VLAD``)
===============================================  ==============================================
text_pooling.clusters ``[D, K+G]``                vlad.assign_centers.0 (transposed)
text_pooling.clusters2 ``[1, D, K]``              vlad.residual_centers.0 (both modalities)
text_pooling.clusters1 ``[1, D, K]``              dropped (never used by the port's forward)
text_pooling.batch_norm1 / batch_norm2            vlad.assign_norm.0 (video) / .1 (text)
text_bert.embeddings.*                            text_encoder.embeddings.* (layer_norm->LayerNorm)
text_bert.encoder.layers.i.self_attn.{q,k,v}_proj text_encoder.encoder.layer.i.attention.self.{query,key,value}
text_bert.encoder.layers.i.self_attn.out_proj     ...attention.output.dense
text_bert.encoder.layers.i.norm1 / norm2          ...attention.output.LayerNorm / output.LayerNorm
text_bert.encoder.layers.i.linear1 / linear2      ...intermediate.dense / output.dense
text_bert.pooler.dense                            dropped (T2VLAD never uses the pooler)
ce.moe_fc                                         moe_fc
ce.transformers.layers.0.self_attn.{q,k,v}_proj   transformer.layers.0.self_attn.in_proj_{weight,bias} (q;k;v stacked)
ce.transformers.layers.0.self_attn.out_proj       transformer.layers.0.self_attn.out_proj
ce.transformers.layers.0.{linear1,linear2,norm1,norm2}  same names
ce.transformers.norm                              transformer.norm
ce.video_dim_reduce.i.fc                          local_proj.<expert i>
ce.video_GU.i.{fc,cg.fc,cg.batch_norm}            video_gu.<expert i>.{fc,cg.fc,cg.bn}
ce.text_GU.i.{fc,cg.fc,cg.batch_norm}             text_gu.<expert i>.{fc,cg.fc,cg.bn}
===============================================  ==============================================

The port's ``NetVLAD.forward(x, freeze)``: the video call (``freeze=True``) uses the detached
``clusters`` and ``batch_norm1``, the text call ``clusters`` and ``batch_norm2``; both subtract
``self.clusters2`` as residual centres (the video branch assigns ``clusters1`` to a local variable
that is never read). So the port shares c and c' and keeps one assignment BatchNorm per modality:
``vlad_sharing="port"`` with ``vlad_norm_sharing="per_modality"``.

Paddle's ``Linear.weight`` is ``[in, out]``: every Linear weight is transposed. BatchNorm's
``_mean`` / ``_variance`` become ``running_mean`` / ``running_var`` (``num_batches_tracked``
is set to 0). Embeddings and LayerNorms are copied as they are.

Expert order: the port builds its per-expert layers in ``sorted(modalities)`` order (its
``compute_dims``), i.e. ``audio, face, flow, ocr, rgb, s3d, scene, speech`` for MSR-VTT; this
is the default ``paddle_expert_order``. Shapes are checked against the target model, but flow/s3d
(both 1024-d) and ocr/speech (both 300-d) cannot be told apart by shape, so the order is taken on
trust from the port's code (verify on the real file with ``list_pdparams``).
"""
from __future__ import annotations

import os
from typing import Mapping, Optional, Sequence

import numpy as np
import torch

from mmzoo.safe_pickle import restricted_load

__all__ = [
    "load_pdparams",
    "list_pdparams",
    "convert_t2vlad",
    "PADDLE_T2VLAD_EXPERT_ORDER",
]

# The port names its experts "features_<name>"; sorted() of those names gives this order.
PADDLE_T2VLAD_EXPERT_ORDER = ("audio", "face", "flow", "ocr", "rgb", "s3d", "scene", "speech")

_PADDLE_META_KEYS = ("StructuredToParameterName@@", "UnpackBigParamInfor@@")


def load_pdparams(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The ``{name: numpy array}`` state dict of a ``.pdparams`` file, read without Paddle.

    Accepts a bare state dict (what ``paddle.save(layer.state_dict())`` writes) or a training
    checkpoint dict holding one under ``"state_dict"``. Paddle's bookkeeping keys are dropped.
    """
    obj = restricted_load(path)
    if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping):
        raise ValueError(f"{os.fspath(path)}: expected a dict of arrays, found {type(obj).__name__}")
    if "UnpackBigParamInfor@@" in obj:
        raise ValueError(f"{os.fspath(path)}: split big-tensor pdparams (UnpackBigParamInfor@@) are not supported")
    out: dict[str, np.ndarray] = {}
    for k, v in obj.items():
        if k in _PADDLE_META_KEYS:
            continue
        if not isinstance(v, np.ndarray):
            raise ValueError(f"{os.fspath(path)}: entry '{k}' is a {type(v).__name__}, not a numpy array")
        out[str(k)] = v
    return out


def list_pdparams(path: str | os.PathLike) -> list[tuple[str, tuple[int, ...], str]]:
    """(name, shape, dtype) of every array in a ``.pdparams`` file, to inspect a checkpoint."""
    return [(k, tuple(v.shape), str(v.dtype)) for k, v in load_pdparams(path).items()]


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a)).float()


def _linear(src: Mapping[str, np.ndarray], p: str, dst: dict, q: str, used: set) -> None:
    w, b = src[f"{p}.weight"], src[f"{p}.bias"]
    if w.ndim != 2:
        raise ValueError(f"{p}.weight: expected a 2-D Linear weight, got shape {w.shape}")
    dst[f"{q}.weight"] = _t(w.T)  # Paddle stores [in, out]
    dst[f"{q}.bias"] = _t(b)
    used.update({f"{p}.weight", f"{p}.bias"})


def _copy(src, p, dst, q, used, names=("weight", "bias")) -> None:
    for n in names:
        dst[f"{q}.{n}"] = _t(src[f"{p}.{n}"])
        used.add(f"{p}.{n}")


def _batchnorm(src, p, dst, q, used) -> None:
    _copy(src, p, dst, q, used)
    dst[f"{q}.running_mean"] = _t(src[f"{p}._mean"])
    dst[f"{q}.running_var"] = _t(src[f"{p}._variance"])
    dst[f"{q}.num_batches_tracked"] = torch.tensor(0, dtype=torch.long)
    used.update({f"{p}._mean", f"{p}._variance"})


def convert_t2vlad_state(src: Mapping[str, np.ndarray], experts: Sequence[str] = ("audio", "rgb", "ocr", "speech", "scene", "flow", "s3d", "face"),
                         paddle_expert_order: Sequence[str] = PADDLE_T2VLAD_EXPERT_ORDER, strict: bool = True) -> dict[str, torch.Tensor]:
    """Map a PaddleVideo T2VLAD state dict (numpy arrays) to mmzoo's ``T2VLAD`` names.

    ``experts`` is the expert list of the target model (its ModuleDict keys); ``paddle_expert_order``
    the order of the port's per-expert layer lists. With ``strict``, a Paddle parameter that is
    not mapped is an error (a checkpoint of another architecture is never half-loaded).
    """
    if sorted(experts) != sorted(paddle_expert_order):
        raise ValueError(f"experts {list(experts)} and paddle_expert_order {list(paddle_expert_order)} differ")
    dst: dict[str, torch.Tensor] = {}
    used: set[str] = set()
    try:
        # NetVLAD: c and c' (clusters2) shared; BN per modality: video batch_norm1, text batch_norm2.
        # clusters1 is a parameter of the port that its forward never reads.
        dst["vlad.assign_centers.0"] = _t(src["text_pooling.clusters"].T)
        dst["vlad.residual_centers.0"] = _t(src["text_pooling.clusters2"][0].T)
        used.update({"text_pooling.clusters", "text_pooling.clusters1", "text_pooling.clusters2"})
        _batchnorm(src, "text_pooling.batch_norm1", dst, "vlad.assign_norm.0", used)
        _batchnorm(src, "text_pooling.batch_norm2", dst, "vlad.assign_norm.1", used)

        # BERT (PaddleNLP names -> Hugging Face names).
        e = "text_bert.embeddings"
        for n in ("word_embeddings", "position_embeddings", "token_type_embeddings"):
            _copy(src, f"{e}.{n}", dst, f"text_encoder.embeddings.{n}", used, names=("weight",))
        _copy(src, f"{e}.layer_norm", dst, "text_encoder.embeddings.LayerNorm", used)
        n_layers = len({k.split(".")[3] for k in src if k.startswith("text_bert.encoder.layers.")})
        for i in range(n_layers):
            p, q = f"text_bert.encoder.layers.{i}", f"text_encoder.encoder.layer.{i}"
            for a, b in (("q_proj", "query"), ("k_proj", "key"), ("v_proj", "value")):
                _linear(src, f"{p}.self_attn.{a}", dst, f"{q}.attention.self.{b}", used)
            _linear(src, f"{p}.self_attn.out_proj", dst, f"{q}.attention.output.dense", used)
            _copy(src, f"{p}.norm1", dst, f"{q}.attention.output.LayerNorm", used)
            _linear(src, f"{p}.linear1", dst, f"{q}.intermediate.dense", used)
            _linear(src, f"{p}.linear2", dst, f"{q}.output.dense", used)
            _copy(src, f"{p}.norm2", dst, f"{q}.output.LayerNorm", used)
        used.update(k for k in src if k.startswith("text_bert.pooler."))

        _linear(src, "ce.moe_fc", dst, "moe_fc", used)
        # Visual transformer (one pre-norm layer + final LayerNorm).
        n_vis = len({k.split(".")[3] for k in src if k.startswith("ce.transformers.layers.")})
        for i in range(n_vis):
            p, q = f"ce.transformers.layers.{i}", f"transformer.layers.{i}"
            ws = [src[f"{p}.self_attn.{a}.weight"].T for a in ("q_proj", "k_proj", "v_proj")]
            bs = [src[f"{p}.self_attn.{a}.bias"] for a in ("q_proj", "k_proj", "v_proj")]
            dst[f"{q}.self_attn.in_proj_weight"] = _t(np.concatenate(ws, 0))
            dst[f"{q}.self_attn.in_proj_bias"] = _t(np.concatenate(bs, 0))
            used.update(f"{p}.self_attn.{a}.{n}" for a in ("q_proj", "k_proj", "v_proj") for n in ("weight", "bias"))
            _linear(src, f"{p}.self_attn.out_proj", dst, f"{q}.self_attn.out_proj", used)
            _linear(src, f"{p}.linear1", dst, f"{q}.linear1", used)
            _linear(src, f"{p}.linear2", dst, f"{q}.linear2", used)
            _copy(src, f"{p}.norm1", dst, f"{q}.norm1", used)
            _copy(src, f"{p}.norm2", dst, f"{q}.norm2", used)
        _copy(src, "ce.transformers.norm", dst, "transformer.norm", used)

        for i, name in enumerate(paddle_expert_order):
            _linear(src, f"ce.video_dim_reduce.{i}.fc", dst, f"local_proj.{name}", used)
            for side, tgt in (("video_GU", "video_gu"), ("text_GU", "text_gu")):
                _linear(src, f"ce.{side}.{i}.fc", dst, f"{tgt}.{name}.fc", used)
                _linear(src, f"ce.{side}.{i}.cg.fc", dst, f"{tgt}.{name}.cg.fc", used)
                _batchnorm(src, f"ce.{side}.{i}.cg.batch_norm", dst, f"{tgt}.{name}.cg.bn", used)
    except KeyError as e:
        raise KeyError(f"PaddleVideo T2VLAD checkpoint lacks parameter {e.args[0]!r}; is it a T2VLAD (CENet) checkpoint?") from None
    left = sorted(set(src) - used)
    if strict and left:
        raise ValueError(f"unmapped parameters in the Paddle checkpoint: {left[:10]}{' ...' if len(left) > 10 else ''}")
    # moe_fc rows follow the Paddle expert order; reorder them to the model's expert order.
    perm = [list(paddle_expert_order).index(n) for n in experts]
    dst["moe_fc.weight"] = dst["moe_fc.weight"][perm].contiguous()
    dst["moe_fc.bias"] = dst["moe_fc.bias"][perm].contiguous()
    return dst


def convert_t2vlad(path: str | os.PathLike, experts: Optional[Sequence[str]] = None,
                   paddle_expert_order: Sequence[str] = PADDLE_T2VLAD_EXPERT_ORDER) -> dict[str, torch.Tensor]:
    """``T2VLAD_msrvtt.pdparams`` -> state dict of ``mmzoo.create("t2vlad-paddle")``."""
    if experts is None:
        from mmzoo.models.t2vlad import MSRVTT_EXPERTS

        experts = MSRVTT_EXPERTS
    return convert_t2vlad_state(load_pdparams(path), experts=experts, paddle_expert_order=paddle_expert_order)
