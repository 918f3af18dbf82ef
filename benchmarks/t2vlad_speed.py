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
from mmzoo.predict.retrieval_index import T2VLADIndex

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


def _layout(model: T2VLAD) -> dict:
    h = model.hparams
    return {"local": h.local_alignment, "global": h.global_alignment, "experts": list(model.experts),
            "renormalise_moe": h.renormalise_moe}


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


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--full", action="store_true", help="paper size (bert-base, C=768) instead of the small config")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--smoke", action="store_true", help="tiny BERT, 100 / 1000 videos, 1 rep: checks the script runs")
    ap.add_argument("--out", default=None, help="default results/t2vlad_speed.md (smoke runs: nothing written unless given)")
    args = ap.parse_args(argv)
    if args.out is None and not args.smoke:
        args.out = str(Path(__file__).parent / "results" / "t2vlad_speed.md")
    if args.smoke:
        args.batch, args.reps = 4, 1
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    dev = torch.device(args.device)
    sync = (lambda: torch.cuda.synchronize()) if dev.type == "cuda" else (lambda: None)

    sizes = (100, 1000) if args.smoke else (1000, 10000)
    if args.full:
        bert_cfg, C = None, 768
    elif args.smoke:
        C = 32
        bert_cfg = dict(vocab_size=30522, hidden_size=C, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)
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
    index_err, index_ms, index_bytes = 0.0, {}, 0
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
        for n in sizes:
            bank = {k: v.expand(n, *v.shape[1:]).clone() + 0.01 * torch.randn(n, *v.shape[1:], device=dev) for k, v in one.items()}
            bank["available"] = torch.ones(n, len(MSRVTT_EXPERTS), device=dev)
            bankp = F.normalize(onep.expand(n, -1) + 0.01 * torch.randn(n, onep.shape[1], device=dev), dim=-1)
            lt = _timeit(lambda bank=bank: torch.topk(model.similarity(q, bank)[0], 10), args.reps * 3, sync)
            lp = _timeit(lambda bankp=bankp: torch.topk((qp @ bankp.t())[0], 10), args.reps * 3, sync)
            rows.append((f"retrieval latency, 1 query vs {n} videos (ms)", lt * 1e3, lp * 1e3))
            # the precomputed index (mmzoo.predict.retrieval_index): one matrix product over stored rows
            layout = {**_layout(model), "local_dim": bank["local"].shape[1], "global_dim": bank["global"][0].numel()}
            index = T2VLADIndex([str(i) for i in range(n)], T2VLADIndex.rows(bank, layout), bank["available"], layout)
            ref = model.similarity(q, bank)[0]
            index_err = max(index_err, (index.scores(q)[0] - ref).abs().max().item())
            li = _timeit(lambda index=index: torch.topk(index.scores(q)[0], 10), args.reps * 5, sync)
            rows.append((f"retrieval latency with the precomputed index, 1 query vs {n} videos (ms)", li * 1e3, lp * 1e3))
            index_ms[n] = li * 1e3
            index_bytes = index.descriptors[0].numel() * 4 + index.available[0].numel() * 4
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
    full_bytes = (9 * 768 + 8 * 768 + 8) * 4  # paper size: K*C local + E*C global + E availability, fp32
    lines += [
        "",
        f"Precomputed index (`mmzoo.predict.retrieval_index.T2VLADIndex`): max |index score - T2VLAD.similarity| = "
        f"{index_err:.1e} over the banks above; {index_bytes / 1024:.1f} KiB per video here. Scoring is one read of the "
        f"index: at paper size ({full_bytes / 1024:.1f} KiB per video) 1M videos are {full_bytes * 1e6 / 2**30:.0f} GiB, "
        f"i.e. ~{full_bytes * 1e6 / 4.8e12 * 1e3:.0f} ms at an H200's 4.8 TB/s or ~{full_bytes * 1e6 / 2.0e12 * 1e3:.0f} ms "
        "at an A100-80GB's 2.0 TB/s (arithmetic, memory-bound; the GEMM's 2 columns add "
        f"{2 * 2 * (9 * 768 + 8 * 768) * 1e6 / 1e12:.2f} TFLOP, negligible).",
        "",
        *([f"Issue 14 target (< 20 ms for one query against 10k videos on the 2-core CPU): {index_ms[10000]:.1f} ms with "
           "the index. Memory-bound: the shared machine's other jobs move this number; the index reads "
           f"{index_bytes * 10000 / 2**20:.0f} MiB per query.", ""] if 10000 in index_ms else []),
        "Generated by `python benchmarks/t2vlad_speed.py" + (" --full" if args.full else "") + "`.",
        "",
    ]
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
