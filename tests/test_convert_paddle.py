"""PaddleVideo T2VLAD .pdparams -> mmzoo, read without PaddlePaddle.

The test writes a checkpoint in Paddle's real on-disk format -- a pickle (protocol 2 or 4) of
``{structured_name: numpy array}`` plus ``StructuredToParameterName@@`` -- with the port's
parameter names and layouts ([in, out] Linear weights, separate q/k/v projections, [D, K+G]
clusters, BatchNorm ``_mean``/``_variance``), from a known model, and checks that converting it
back reproduces that model's outputs exactly."""
import os
import pickle

import numpy as np
import pytest
import torch

from mmzoo.convert.paddle import (
    PADDLE_T2VLAD_EXPERT_ORDER,
    convert_t2vlad,
    list_pdparams,
    load_pdparams,
)
from mmzoo.models.t2vlad import MSRVTT_EXPERTS, T2VLAD
from mmzoo.safe_pickle import UnsafePickleError

TINY_BERT = dict(vocab_size=30, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=24,
                 max_position_embeddings=20)
DIMS = [6, 7, 8, 9, 10, 11, 12, 13]


def _model():
    return T2VLAD(experts=MSRVTT_EXPERTS, expert_dims=DIMS, expert_max_tokens=[3] * 8, text_encoder_config=TINY_BERT,
                  text_encoder_init="random", embed_dim=16, transformer_ffn_dim=16, num_clusters=3, text_max_tokens=6,
                  vlad_sharing="port", transformer_dropout=0.0)


def _to_paddle(m: T2VLAD) -> dict:
    """Write mmzoo's weights under the PaddleVideo port's names and layouts."""
    sd = {k: v.detach().numpy().copy() for k, v in m.state_dict().items()}
    out = {}

    def lin(src, dst):
        out[f"{dst}.weight"] = sd[f"{src}.weight"].T.copy()
        out[f"{dst}.bias"] = sd[f"{src}.bias"]

    def same(src, dst):
        out[f"{dst}.weight"], out[f"{dst}.bias"] = sd[f"{src}.weight"], sd[f"{src}.bias"]

    def bn(src, dst):
        same(src, dst)
        out[f"{dst}._mean"], out[f"{dst}._variance"] = sd[f"{src}.running_mean"], sd[f"{src}.running_var"]

    out["text_pooling.clusters"] = sd["vlad.assign_centers.0"].T.copy()
    # the port's forward subtracts clusters2 in both calls; clusters1 is never read (here: noise)
    out["text_pooling.clusters1"] = np.random.default_rng(0).normal(size=(1,) + sd["vlad.residual_centers.0"].T.shape).astype(np.float32)
    out["text_pooling.clusters2"] = sd["vlad.residual_centers.0"].T[None].copy()
    bn("vlad.assign_norm.0", "text_pooling.batch_norm1")
    bn("vlad.assign_norm.1", "text_pooling.batch_norm2")
    for n in ("word_embeddings", "position_embeddings", "token_type_embeddings"):
        out[f"text_bert.embeddings.{n}.weight"] = sd[f"text_encoder.embeddings.{n}.weight"]
    same("text_encoder.embeddings.LayerNorm", "text_bert.embeddings.layer_norm")
    for i in range(2):
        q, p = f"text_encoder.encoder.layer.{i}", f"text_bert.encoder.layers.{i}"
        for a, b in (("query", "q_proj"), ("key", "k_proj"), ("value", "v_proj")):
            lin(f"{q}.attention.self.{a}", f"{p}.self_attn.{b}")
        lin(f"{q}.attention.output.dense", f"{p}.self_attn.out_proj")
        same(f"{q}.attention.output.LayerNorm", f"{p}.norm1")
        lin(f"{q}.intermediate.dense", f"{p}.linear1")
        lin(f"{q}.output.dense", f"{p}.linear2")
        same(f"{q}.output.LayerNorm", f"{p}.norm2")
    out["text_bert.pooler.dense.weight"] = np.zeros((16, 16), np.float32)
    out["text_bert.pooler.dense.bias"] = np.zeros(16, np.float32)
    order = [MSRVTT_EXPERTS.index(n) for n in PADDLE_T2VLAD_EXPERT_ORDER]
    out["ce.moe_fc.weight"] = sd["moe_fc.weight"][order].T.copy()
    out["ce.moe_fc.bias"] = sd["moe_fc.bias"][order]
    w, b = sd["transformer.layers.0.self_attn.in_proj_weight"], sd["transformer.layers.0.self_attn.in_proj_bias"]
    for j, a in enumerate(("q_proj", "k_proj", "v_proj")):
        out[f"ce.transformers.layers.0.self_attn.{a}.weight"] = w[16 * j: 16 * (j + 1)].T.copy()
        out[f"ce.transformers.layers.0.self_attn.{a}.bias"] = b[16 * j: 16 * (j + 1)]
    lin("transformer.layers.0.self_attn.out_proj", "ce.transformers.layers.0.self_attn.out_proj")
    for n in ("linear1", "linear2"):
        lin(f"transformer.layers.0.{n}", f"ce.transformers.layers.0.{n}")
    for n in ("norm1", "norm2"):
        same(f"transformer.layers.0.{n}", f"ce.transformers.layers.0.{n}")
    same("transformer.norm", "ce.transformers.norm")
    for i, name in enumerate(PADDLE_T2VLAD_EXPERT_ORDER):
        lin(f"local_proj.{name}", f"ce.video_dim_reduce.{i}.fc")
        for mine, theirs in (("video_gu", "video_GU"), ("text_gu", "text_GU")):
            lin(f"{mine}.{name}.fc", f"ce.{theirs}.{i}.fc")
            lin(f"{mine}.{name}.cg.fc", f"ce.{theirs}.{i}.cg.fc")
            bn(f"{mine}.{name}.cg.bn", f"ce.{theirs}.{i}.cg.batch_norm")
    out["StructuredToParameterName@@"] = {k: f"param_{i}" for i, k in enumerate(out)}
    return out


def _inputs(m):
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(5, 30, (3, 6), generator=g)
    experts = {e: torch.randn(4, 3, d, generator=g) for e, d in zip(MSRVTT_EXPERTS, DIMS)}
    return ids, torch.ones_like(ids), experts


@pytest.mark.parametrize("protocol", [2, 4])
def test_roundtrip_from_pdparams_file(tmp_path, protocol):
    torch.manual_seed(0)
    ref = _model()
    with torch.no_grad():  # non-trivial BatchNorm statistics so that their mapping matters
        for mod in ref.modules():
            if isinstance(mod, torch.nn.BatchNorm1d):
                mod.running_mean.uniform_(-0.5, 0.5)
                mod.running_var.uniform_(0.5, 2.0)
    path = tmp_path / "T2VLAD_msrvtt.pdparams"
    with open(path, "wb") as f:
        pickle.dump(_to_paddle(ref), f, protocol=protocol)
    names = dict((n, s) for n, s, _ in list_pdparams(path))
    assert names["text_pooling.clusters"] == (16, 4) and "StructuredToParameterName@@" not in names
    sd = convert_t2vlad(path)
    fresh = _model()
    fresh.load_state_dict(sd, strict=True)
    ref.eval(); fresh.eval()
    ids, att, experts = _inputs(ref)
    with torch.no_grad():
        assert torch.allclose(fresh(ids, att, experts), ref(ids, att, experts), atol=1e-6)


def test_training_checkpoint_wrapper_and_errors(tmp_path):
    torch.manual_seed(0)
    ref = _model()
    params = _to_paddle(ref)
    p = tmp_path / "ckpt.pdparams"
    pickle.dump({"state_dict": params, "epoch": 7}, open(p, "wb"), protocol=4)
    assert set(load_pdparams(p)) == set(params) - {"StructuredToParameterName@@"}
    params2 = dict(params)
    params2["ce.something_new.weight"] = np.zeros(3, np.float32)
    pickle.dump(params2, open(p, "wb"), protocol=4)
    with pytest.raises(ValueError, match="unmapped parameters.*something_new"):
        convert_t2vlad(p)
    del params2["ce.something_new.weight"], params2["ce.moe_fc.bias"]
    pickle.dump(params2, open(p, "wb"), protocol=4)
    with pytest.raises(KeyError, match="ce.moe_fc.bias"):
        convert_t2vlad(p)


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_pickles_that_would_run_code_are_refused(tmp_path):
    p = tmp_path / "evil.pdparams"
    pickle.dump({"a": np.zeros(2), "b": _Evil()}, open(p, "wb"), protocol=2)
    with pytest.raises(UnsafePickleError, match="posix.system|os.system|nt.system"):
        load_pdparams(p)
    (tmp_path / "junk.pdparams").write_bytes(b"not a pickle")
    with pytest.raises(pickle.UnpicklingError, match="junk.pdparams"):
        load_pdparams(tmp_path / "junk.pdparams")


def _port_vlad(p: dict, x: np.ndarray, freeze: bool) -> np.ndarray:
    """The port's NetVLAD.forward in eval mode, in numpy: ``freeze`` (the video call) picks
    batch_norm1, otherwise batch_norm2; both subtract clusters2."""
    bn = "text_pooling.batch_norm1" if freeze else "text_pooling.batch_norm2"
    b, n, d = x.shape
    logits = x.reshape(-1, d) @ p["text_pooling.clusters"]
    logits = (logits - p[f"{bn}._mean"]) / np.sqrt(p[f"{bn}._variance"] + 1e-5) * p[f"{bn}.weight"] + p[f"{bn}.bias"]
    a = np.exp(logits - logits.max(1, keepdims=True))
    a = (a / a.sum(1, keepdims=True))[:, :-1].reshape(b, n, -1)  # one ghost dropped
    vlad = np.einsum("bnk,bnd->bdk", a, x) - a.sum(1)[:, None, :] * p["text_pooling.clusters2"]
    vlad = vlad / np.linalg.norm(vlad, axis=1, keepdims=True)
    vlad = vlad.transpose(0, 2, 1).reshape(b, -1)
    return vlad / np.linalg.norm(vlad, axis=1, keepdims=True)


def test_the_ports_two_batchnorms_and_clusters2_land_where_its_forward_uses_them():
    torch.manual_seed(0)
    params = _to_paddle(_model())
    del params["StructuredToParameterName@@"]  # load_pdparams drops it
    rng = np.random.default_rng(3)
    for bn, shift in (("text_pooling.batch_norm1", -1.0), ("text_pooling.batch_norm2", 1.0)):  # very different stats
        params[f"{bn}._mean"] = rng.normal(shift, 1.0, 4).astype(np.float32)
        params[f"{bn}._variance"] = rng.uniform(0.2, 3.0, 4).astype(np.float32)
        params[f"{bn}.weight"] = rng.uniform(0.5, 2.0, 4).astype(np.float32)
    from mmzoo.convert.paddle import convert_t2vlad_state

    m = _model()
    m.load_state_dict(convert_t2vlad_state(params), strict=True)
    m.eval()
    x = rng.normal(size=(3, 5, 16)).astype(np.float32)
    with torch.no_grad():
        video = m.aggregate_video_local(torch.from_numpy(x)).numpy()  # branch 0, detached c
        text = m.vlad(torch.from_numpy(x), branch=m._text_vlad_branch).numpy()
    assert np.allclose(video, _port_vlad(params, x, freeze=True), atol=1e-5)
    assert np.allclose(text, _port_vlad(params, x, freeze=False), atol=1e-5)
    assert not np.allclose(video, text, atol=1e-3)
