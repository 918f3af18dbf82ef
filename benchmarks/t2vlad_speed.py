"""T2VLAD speed: text / video encoding throughput and retrieval latency over 1k and 10k videos,
beside a plain cosine-similarity dual encoder of about the same size, in the same run.

Peer: the same BERT text tower with [CLS] -> Linear -> L2, and a video tower of per-expert
max-pool -> Linear -> concat -> MLP -> L2, sized so that both models have about the same number
of parameters; retrieval is one dot product per (query, video).

T2VLAD retrieval has to score each query against cached video embeddings with the full
similarity: a K*C dot product (local) plus E cosine terms mixed by text- and
availability-dependent weights (global), so it cannot be a single matrix product over one
vector per video. Latency is measured for one query against N cached videos (score + top-10).

Usage::

    python benchmarks/t2vlad_speed.py                 # small config, CPU (what the results file holds)
    python benchmarks/t2vlad_speed.py --full --device cuda

Writes a markdown table to benchmarks/results/t2vlad_speed.md (``--out``).
"""
from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from mmzoo.models.t2vlad import MSRVTT_EXPERTS, T2VLAD

DIMS = {"audio": 128, "rgb": 2048, "ocr": 300, "speech": 300, "scene": 2208, "flow": 1024, "s3d": 1024, "face": 512}
TOKENS = {"audio": 31, "rgb": 51, "ocr": 30, "speech": 112, "scene": 31, "flow": 49, "s3d": 30, "face": 30}


class DualEncoder(nn.Module):
    """Plain dual encoder: BERT [CLS] and pooled experts, one cosine per (text, video)."""

    def __init__(self, bert: nn.Module, hidden: int, dim: int, mlp: int):
        super().__init__()
        self.bert = bert
        self.text_proj = nn.Linear(hidden, dim)
        self.expert_proj = nn.ModuleDict({e: nn.Linear(d, dim) for e, d in DIMS.items()})
        self.video_mlp = nn.Sequential(nn.Linear(len(DIMS) * dim, mlp), nn.ReLU(), nn.Linear(mlp, dim))

    def encode_text(self, ids, att):
        return F.normalize(self.text_proj(self.bert(input_ids=ids, attention_mask=att).last_hidden_state[:, 0]), dim=-1)

    def encode_video(self, experts):
        x = torch.cat([self.expert_proj[e](experts[e].max(1).values) for e in DIMS], dim=-1)
        return F.normalize(self.video_mlp(x), dim=-1)


def _timeit(fn, reps: int, sync) -> float:
    fn()
    sync()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--full", action="store_true", help="paper size (bert-base, C=768) instead of the small config")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "t2vlad_speed.md"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    dev = torch.device(args.device)
    sync = (lambda: torch.cuda.synchronize()) if dev.type == "cuda" else (lambda: None)

    if args.full:
        bert_cfg, C = None, 768
    else:
        C = 256
        bert_cfg = dict(vocab_size=30522, hidden_size=C, num_hidden_layers=4, num_attention_heads=4, intermediate_size=1024)
    model = T2VLAD(text_encoder_config=bert_cfg, text_encoder_init="random", embed_dim=C, transformer_ffn_dim=C).to(dev).eval()
    n_t2vlad = sum(p.numel() for p in model.parameters())
    n_bert = sum(p.numel() for p in model.text_encoder.parameters())
    # size the peer's video MLP so that the two models have about the same parameter count
    proj = sum(d * C + C for d in DIMS.values()) + C * C + C
    mlp = max(C, int((n_t2vlad - n_bert - proj - C) / (len(DIMS) * C + 1 + C)))
    peer = DualEncoder(model.text_encoder, C, C, mlp).to(dev).eval()
    n_peer = sum(p.numel() for p in peer.parameters())

    B, L = args.batch, 37
    ids = torch.randint(1000, 30000, (B, L), device=dev)
    att = torch.ones_like(ids)
    experts = {e: torch.randn(B, TOKENS[e], DIMS[e], device=dev) for e in MSRVTT_EXPERTS}

    rows = []
    with torch.inference_mode():
        t_text = _timeit(lambda: model.encode_text(ids, att), args.reps, sync)
        p_text = _timeit(lambda: peer.encode_text(ids, att), args.reps, sync)
        t_vid = _timeit(lambda: model.encode_video(experts), args.reps, sync)
        p_vid = _timeit(lambda: peer.encode_video(experts), args.reps, sync)
        rows.append(("text encoding (texts/s)", B / t_text, B / p_text))
        rows.append(("video encoding (videos/s)", B / t_vid, B / p_vid))
        q = model.encode_text(ids[:1], att[:1])
        qp = peer.encode_text(ids[:1], att[:1])
        one = model.encode_video({e: v[:1] for e, v in experts.items()})
        onep = peer.encode_video({e: v[:1] for e, v in experts.items()})
        for n in (1000, 10000):
            bank = {k: v.expand(n, *v.shape[1:]).clone() + 0.01 * torch.randn(n, *v.shape[1:], device=dev) for k, v in one.items()}
            bank["available"] = torch.ones(n, len(MSRVTT_EXPERTS), device=dev)
            bankp = F.normalize(onep.expand(n, -1) + 0.01 * torch.randn(n, onep.shape[1], device=dev), dim=-1)
            lt = _timeit(lambda: torch.topk(model.similarity(q, bank)[0], 10), args.reps * 3, sync)
            lp = _timeit(lambda: torch.topk((qp @ bankp.t())[0], 10), args.reps * 3, sync)
            rows.append((f"retrieval latency, 1 query vs {n} videos (ms)", lt * 1e3, lp * 1e3))
            mem_t = sum(v.numel() * v.element_size() for v in bank.values()) / n
            mem_p = bankp.shape[1] * bankp.element_size()
            rows.append((f"index memory per video (KiB), {n} videos", mem_t / 1024, mem_p / 1024))

    cfg = "paper size (bert-base, C=768, K=9)" if args.full else f"small (BERT 4x{C}, C={C}, K=9, real expert dims/tokens)"
    lines = [
        "# T2VLAD speed vs a plain cosine dual encoder",
        "",
        f"Config: {cfg}; batch {B}, text length {L}, 8 MSR-VTT experts at their token budgets; device {args.device}"
        f" ({platform.processor() or platform.machine()}, {args.threads} threads); median of {args.reps} runs; "
        f"torch {torch.__version__}.",
        f"Parameters: T2VLAD {n_t2vlad / 1e6:.1f} M, dual encoder {n_peer / 1e6:.1f} M (shared BERT {n_bert / 1e6:.1f} M).",
        "",
        "| measure | T2VLAD | dual encoder | T2VLAD / dual |",
        "|---|---:|---:|---:|",
    ]
    for name, a, b in rows:
        lines.append(f"| {name} | {a:.2f} | {b:.2f} | {a / b:.2f} |")
    lines += ["", "Generated by `python benchmarks/t2vlad_speed.py" + (" --full" if args.full else "") + "`.", ""]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
