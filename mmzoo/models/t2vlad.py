"""T2VLAD: global-local sequence alignment for text-video retrieval (Wang, Zhu, Yang, CVPR 2021;
thesis of Xiaohan Wang, ch. 6).

Text: BERT (bert-base-uncased, fine-tuned end to end, via ``transformers``) gives token features
``Z_text``. Video: the pre-extracted MMT multi-expert features. Two branches:

- local: every expert token -> FC to C (=768) [-> L2, as the authors' port does] -> one
  transformer encoder layer over the concatenated tokens of all experts (4 heads, no position
  encoding) -> ``Z_video``; text and video tokens are aggregated by a NetVLAD with **shared**
  centres (K + 1 ghost, Eqs. 6.1-6.3); ``s_local`` = cosine of the stacked K cluster features;
- global: per expert, temporal max-pool -> projection -> context gating -> ``F_i_video``; the
  text side maps the text VLAD ``G_text`` through expert-specific projections to ``F_i_text``;
  ``s_global = sum_i w_i cos(F_i_text, F_i_video)``, ``w = softmax(Linear(G_text))`` renormalised
  over the experts a video has.

``s = (s_global + s_local) / 2``, trained with a bidirectional max-margin ranking loss (margin
0.02) using Ranger (RAdam + Lookahead), lr 1e-4 x0.9 every 5 epochs, batch 64.

The thesis's ablations (Tables 6.4-6.6) are constructor arguments: ``eval_similarity="local"``
(global branch removed at test), ``local_alignment=False, text_global_input="cls"`` ([CLS] as the
text global feature, no local branch), ``video_local_aggregation="maxpool"`` (only text VLAD),
``vlad_sharing="separate"``, ``transformer_layers=0``; ``global_alignment=False`` trains the local
branch alone (reported not to converge). Table: ``docs/t2vlad.md``.

Blocks in :mod:`mmzoo.nn`: :class:`~mmzoo.nn.netvlad.NetVLAD`, :mod:`~mmzoo.nn.gating`,
:class:`~mmzoo.nn.lookahead.Lookahead`, :mod:`~mmzoo.nn.ranking_loss`, :mod:`~mmzoo.nn.bert_text`.
Ranking a feature set for a text query: :func:`mmzoo.predict.t2vlad.rank_videos`.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Any, Literal, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from mmzoo.metrics.retrieval import RetrievalMetrics
from mmzoo.models.base import ZooModule
from mmzoo.nn.bert_text import build_bert, load_bert_tokenizer, load_pretrained_bert_state
from mmzoo.nn.gating import ContextGating, GatedEmbeddingUnit
from mmzoo.nn.lookahead import Lookahead
from mmzoo.nn.netvlad import NetVLAD, t2vlad_netvlad
from mmzoo.nn.ranking_loss import hardest_negative_loss, max_margin_ranking_loss
from mmzoo.registry import InputConfig, Weights, register_model

__all__ = [
    "T2VLAD",
    "Lookahead",
    "ContextGating",
    "GatedEmbeddingUnit",
    "max_margin_ranking_loss",
    "hardest_negative_loss",
    "MSRVTT_EXPERTS",
]

# MSR-VTT experts of MMT as T2VLAD uses them (input dims and token budgets: PaddleVideo config).
MSRVTT_EXPERTS = ["audio", "rgb", "ocr", "speech", "scene", "flow", "s3d", "face"]
_DIMS = {"audio": 128, "rgb": 2048, "ocr": 300, "speech": 300, "scene": 2208, "flow": 1024, "s3d": 1024, "face": 512}
_TOKENS = {"audio": 31, "rgb": 51, "ocr": 30, "speech": 112, "scene": 31, "flow": 49, "s3d": 30, "face": 30}
LSMDC_EXPERTS = ["rgb", "audio", "ocr", "scene", "flow", "s3d"]  # thesis: rgb, audio, ocr, scene, flow, action
ANETCAPS_EXPERTS = ["s3d", "audio"]  # thesis: motion and audio


# ------------------------------------------------------------------------------ the model
_REPORTED_MSRVTT = {
    "msrvtt-1k-A": {"t2v": {"R@1": 29.5, "R@5": 59.0, "R@10": 70.1, "MdR": 4}, "v2t": {"R@1": 31.8, "R@5": 60.0, "R@10": 71.1, "MdR": 3}},
    "msrvtt-1k-B": {"t2v": {"R@1": 26.1, "R@5": 54.7, "R@10": 68.1, "MdR": 4}, "v2t": {"R@1": 26.7, "R@5": 56.1, "R@10": 70.4, "MdR": 4}},
    "msrvtt-full": {"t2v": {"R@1": 12.7, "R@5": 34.8, "R@10": 47.1, "MdR": 12}, "v2t": {"R@1": 20.7, "R@5": 48.9, "R@10": 62.1, "MdR": 6}},
}
_PAPER = "Wang, Zhu, Yang. T2VLAD: Global-Local Sequence Alignment for Text-Video Retrieval. CVPR 2021 (thesis ch. 6)"
_TASK = "text-video retrieval"
_MSRVTT_DEFAULTS = {"experts": MSRVTT_EXPERTS, "expert_dims": [_DIMS[e] for e in MSRVTT_EXPERTS],
                    "expert_max_tokens": [_TOKENS[e] for e in MSRVTT_EXPERTS]}


def _input(experts: Sequence[str], datamodules: tuple[str, ...], notes: str) -> InputConfig:
    """Captions BERT-tokenised to 37 tokens (the authors' port) and the pre-extracted MMT experts."""
    experts_shape = "; ".join(f"{e} [V,{_TOKENS[e]},{_DIMS[e]}]" for e in experts)
    return InputConfig(
        shapes={"input_ids": "long [T,37] BERT token ids of the captions", "attention_mask": "optional long [T,37]",
                "experts": f"dict of float [V, tokens, dim] expert features: {experts_shape}"},
        text_max_length=37, features=tuple(experts), datamodules=datamodules, notes=notes)


@register_model("t2vlad", task=_TASK, paper=_PAPER, defaults=_MSRVTT_DEFAULTS, reported=_REPORTED_MSRVTT,
                input=_input(MSRVTT_EXPERTS, ("msrvtt",), "MSR-VTT 1k-A split, MMT expert features"))
@register_model(
    "t2vlad-paddle", task=_TASK, paper=_PAPER + "; PaddleVideo applications/T2VLAD port",
    defaults={**_MSRVTT_DEFAULTS, "vlad_sharing": "port", "transformer_dropout": 0.0, "loss": "hardest_negative",
              "margin": 0.2, "optimizer": "adamw"},
    reported={"msrvtt-1k-A": _REPORTED_MSRVTT["msrvtt-1k-A"]},
    input=_input(MSRVTT_EXPERTS, ("msrvtt",), "MSR-VTT 1k-A split, MMT expert features"),
    weights=[Weights(
        tag="msrvtt-1ka", hub_repo=None,
        original_url="https://videotag.bj.bcebos.com/PaddleVideo-release2.2/T2VLAD_msrvtt.pdparams",
        original_sha256=None, converter="mmzoo.convert.paddle:convert_t2vlad", dataset="MSR-VTT 1k-A",
        metrics={"t2v/R@1": 29.5, "t2v/R@5": 59.0, "t2v/R@10": 70.1, "t2v/MdR": 4.0},
        notes="PaddleVideo release of the authors' group; sha256 not recorded (the file could not be "
              "downloaded from this build environment); converted without PaddlePaddle.",
    )],
)
@register_model(
    "t2vlad-lsmdc", task=_TASK, paper=_PAPER,
    defaults={"experts": LSMDC_EXPERTS, "expert_dims": [_DIMS[e] for e in LSMDC_EXPERTS], "expert_max_tokens": [_TOKENS[e] for e in LSMDC_EXPERTS]},
    reported={"lsmdc": {"t2v": {"R@1": 14.3, "R@5": 32.4, "R@10": 42.2, "MdR": 16}, "v2t": {"R@1": 14.2, "R@5": 33.5, "R@10": 41.7, "MdR": 17}}},
    input=_input(LSMDC_EXPERTS, (), "no LSMDC DataModule in mmzoo yet"),
)
@register_model(
    "t2vlad-anetcaps", task=_TASK, paper=_PAPER,
    defaults={"experts": ANETCAPS_EXPERTS, "expert_dims": [_DIMS[e] for e in ANETCAPS_EXPERTS],
              "expert_max_tokens": [_TOKENS[e] for e in ANETCAPS_EXPERTS], "num_clusters": 16},
    reported={"activitynet-captions": {"t2v": {"R@1": 23.7, "R@5": 55.5, "R@50": 93.5, "MdR": 4}, "v2t": {"R@1": 24.1, "R@5": 56.6, "R@50": 94.1, "MdR": 4}}},
    input=_input(ANETCAPS_EXPERTS, (), "no ActivityNet Captions DataModule in mmzoo yet"),
)
class T2VLAD(ZooModule):
    """T2VLAD text-video retrieval model.

    Args:
        experts: expert names, in the order of the MoE weights (MSR-VTT: 8 MMT experts).
        expert_dims: input dimension of each expert's features.
        expert_max_tokens: token budget of each expert (used by ``example_input``; the data
            decides the actual lengths).
        text_encoder: Hugging Face name of the text encoder whose weights initialise training
            (``bert-base-uncased``); the architecture is built locally (never downloaded).
        text_encoder_config: ``transformers.BertConfig`` kwargs; None = bert-base-uncased's
            architecture (``BertConfig()``). Tests use a tiny config.
        text_encoder_init: ``"pretrained"`` loads ``text_encoder``'s weights when training starts
            (``setup("fit")``; only if no weights were loaded into the model), ``"random"`` never.
        tokenizer: a vocab.txt file, a tokenizer folder or a Hub name (default: ``text_encoder``).
        text_max_tokens: captions are padded/truncated to this many tokens incl. [CLS]/[SEP]
            ([SILENT] in the thesis; 37 in the authors' port).
        embed_dim: C, the common dimension of both branches (768; must equal BERT's hidden size).
        num_clusters: K (9 for MSR-VTT / LSMDC, 16 for ActivityNet Captions).
        ghost_clusters: ghost centres (1).
        vlad_assignment_norm: ``"batchnorm"`` on the assignment logits (port; the thesis allows
            it in place of the bias b_j) or ``"bias"`` (Eq. 6.1 literally).
        vlad_sharing: ``"thesis"`` -- text and video use the same centres c and residual centres
            c' with gradients from both (Eqs. 6.1-6.3); ``"port"`` -- the PaddleVideo port: the
            same, but c is detached in the video call; ``"separate"`` -- two independent VLADs
            (ablation of Table 6.5). No effect when the video side has no VLAD
            (``video_local_aggregation="maxpool"``, no local branch).
        vlad_norm_sharing: the assignment BatchNorm (or bias): ``"per_modality"`` (the port's
            ``batch_norm1``/``batch_norm2``; a shared BN mixes text and video running statistics,
            a train/eval shift) or ``"shared"`` (one for both, Eq. 6.1's shared b_j).
        save_ranks: keep the per-query 0-based ranks of the last val/test epoch in
            ``last_eval_ranks`` (``{"t2v": [...], "v2t": [...]}``); ``mmzoo test`` writes them
            to the results JSON as ``"ranks"``.
        transformer_layers / transformer_heads: 1 layer, 4 heads (thesis); 0 layers is Table 6.6's
            "w/o visual self-attention" ablation.
        transformer_dropout: 0.1 (thesis); the port uses 0.
        transformer_ffn_dim: FFN width ([SILENT]; 768 in the port).
        transformer_norm_first: pre-norm layer ([SILENT]; port: pre-norm).
        transformer_final_norm: LayerNorm after the encoder ([SILENT]; port: yes).
        local_token_l2norm: L2-normalise each projected expert token ([SILENT]; port: yes).
        use_token_masks: exclude padded tokens from attention, VLAD assignment and max-pooling
            ([SILENT]; the port pads with zeros and masks nothing, so the default is False).
        renormalise_moe: renormalise the mixture weights over the experts a video has ([SILENT];
            port: yes).
        eval_similarity: ``"both"`` (s = (s_global + s_local)/2), ``"global"`` or ``"local"``
            (test-time ablations; ``"local"`` on the full model is Table 6.4's "w/o global
            alignment", removed at test only). With one branch built, ``"both"`` is that branch.
        local_alignment: build the local branch (expert FCs, transformer, video/text VLAD, s_local).
            False + ``text_global_input="cls"`` is Table 6.4's "w/o local alignment": the local
            branch is removed and the model is trained and tested with s = s_global.
        global_alignment: build the global branch (per-expert max-pool + gated units, text
            projections, MoE weights, s_global). False trains the local alignment alone, which
            the thesis reports does not converge (no table row); default True.
        text_global_input: what the text global features F_i^text and the MoE weights are computed
            from: ``"vlad"`` -- the text VLAD G_text (thesis) -- or ``"cls"`` -- BERT's [CLS]
            output token, as MMT does (Table 6.4's "w/o local alignment" row).
        video_local_aggregation: ``"vlad"`` (thesis: the shared T2VLAD) or ``"maxpool"`` -- Table
            6.5's "only text VLAD": the video VLAD is replaced by a max-pool over the local video
            tokens Z_video followed by an FC to the text VLAD's size K*C (then L2, so s_local is a
            cosine); the VLAD then serves the text alone. [SILENT] in the thesis: pooling after
            the self-attention layer, over all experts' tokens together, one Linear with bias.
        loss: ``"max_margin"`` (thesis: bidirectional max-margin ranking loss, mean over all
            negatives) or ``"hardest_negative"`` (the port's ContrastiveLoss, top-1 violation).
        margin: 0.02 (thesis, all datasets); the port uses 0.2 with the hardest-negative loss.
        optimizer: ``"ranger"`` (RAdam + Lookahead; thesis) or ``"adamw"`` (port).
        lr / weight_decay: 1e-4 / 1e-4. lr_decay / lr_decay_every: x0.9 every 5 epochs.
        lookahead_k / lookahead_alpha: Lookahead's 6 / 0.5 (Ranger defaults).
        radam_betas: (0.95, 0.999) (Ranger defaults). radam_eps: 1e-5 (Ranger default).
    """

    def __init__(
        self,
        experts: list[str] = MSRVTT_EXPERTS,
        expert_dims: list[int] = [_DIMS[e] for e in MSRVTT_EXPERTS],  # noqa: B006 - JSON config
        expert_max_tokens: list[int] = [_TOKENS[e] for e in MSRVTT_EXPERTS],  # noqa: B006
        text_encoder: str = "bert-base-uncased",
        text_encoder_config: Optional[dict] = None,
        text_encoder_init: Literal["pretrained", "random"] = "pretrained",
        tokenizer: Optional[str] = None,
        text_max_tokens: int = 37,
        embed_dim: int = 768,
        num_clusters: int = 9,
        ghost_clusters: int = 1,
        vlad_assignment_norm: Literal["batchnorm", "bias"] = "batchnorm",
        vlad_sharing: Literal["thesis", "port", "separate"] = "thesis",
        vlad_norm_sharing: Literal["per_modality", "shared"] = "per_modality",
        transformer_layers: int = 1,
        transformer_heads: int = 4,
        transformer_dropout: float = 0.1,
        transformer_ffn_dim: int = 768,
        transformer_norm_first: bool = True,
        transformer_final_norm: bool = True,
        local_token_l2norm: bool = True,
        use_token_masks: bool = False,
        renormalise_moe: bool = True,
        eval_similarity: Literal["both", "global", "local"] = "both",
        local_alignment: bool = True,
        global_alignment: bool = True,
        text_global_input: Literal["vlad", "cls"] = "vlad",
        video_local_aggregation: Literal["vlad", "maxpool"] = "vlad",
        loss: Literal["max_margin", "hardest_negative"] = "max_margin",
        margin: float = 0.02,
        optimizer: Literal["ranger", "adamw"] = "ranger",
        lr: float = 1e-4,
        weight_decay: float = 1e-4,
        lr_decay: float = 0.9,
        lr_decay_every: int = 5,
        lookahead_k: int = 6,
        lookahead_alpha: float = 0.5,
        radam_betas: tuple[float, float] = (0.95, 0.999),
        radam_eps: float = 1e-5,
        save_ranks: bool = False,
    ):
        super().__init__()
        self.save_hyperparameters()
        if not (len(experts) == len(expert_dims) == len(expert_max_tokens)) or not experts:
            raise ValueError("experts, expert_dims and expert_max_tokens must be non-empty and of equal length")
        if len(set(experts)) != len(experts):
            raise ValueError(f"duplicate expert names in {experts}")
        if text_encoder_config is not None and text_encoder_init == "pretrained":
            raise ValueError("text_encoder_config builds a custom BERT; use text_encoder_init='random' with it")
        self.experts = list(experts)
        self.text_encoder = build_bert(text_encoder_config)
        if self.text_encoder.config.hidden_size != embed_dim:
            raise ValueError(f"embed_dim ({embed_dim}) must equal the BERT hidden size "
                             f"({self.text_encoder.config.hidden_size}): text and video tokens share the VLAD centres")

        # ablation switches (thesis Tables 6.4-6.6; see docs/t2vlad.md for the row -> argument map)
        if transformer_layers < 0:
            raise ValueError("transformer_layers must be >= 0")
        if not (local_alignment or global_alignment):
            raise ValueError("T2VLAD needs at least one of local_alignment / global_alignment")
        if eval_similarity == "local" and not local_alignment:
            raise ValueError("eval_similarity='local' needs local_alignment=True")
        if eval_similarity == "global" and not global_alignment:
            raise ValueError("eval_similarity='global' needs global_alignment=True")
        if text_global_input not in ("vlad", "cls"):
            raise ValueError(f"text_global_input must be 'vlad' or 'cls', got {text_global_input!r}")
        if video_local_aggregation not in ("vlad", "maxpool"):
            raise ValueError(f"video_local_aggregation must be 'vlad' or 'maxpool', got {video_local_aggregation!r}")
        if text_global_input == "cls" and not global_alignment:
            raise ValueError("text_global_input='cls' feeds the global branch: it needs global_alignment=True")
        if video_local_aggregation == "maxpool" and not local_alignment:
            raise ValueError("video_local_aggregation='maxpool' replaces the video VLAD of the local branch: "
                             "it needs local_alignment=True")
        video_uses_vlad = local_alignment and video_local_aggregation == "vlad"
        text_uses_vlad = local_alignment or text_global_input == "vlad"
        vlad_dim = num_clusters * embed_dim

        # local video branch (absent without local alignment: Table 6.4 "w/o local alignment")
        self.local_proj: Optional[nn.ModuleDict] = None
        self.transformer: Optional[nn.TransformerEncoder] = None  # 0 layers: Table 6.6 "w/o visual self-attention"
        self.video_local_fc: Optional[nn.Linear] = None  # Table 6.5 "only text VLAD": max-pool -> FC to K*C
        if local_alignment:
            self.local_proj = nn.ModuleDict({e: nn.Linear(d, embed_dim) for e, d in zip(experts, expert_dims)})
            if transformer_layers > 0:
                layer = nn.TransformerEncoderLayer(embed_dim, transformer_heads, transformer_ffn_dim, transformer_dropout,
                                                   activation="relu", batch_first=True, norm_first=transformer_norm_first)
                self.transformer = nn.TransformerEncoder(layer, transformer_layers, enable_nested_tensor=False,
                                                         norm=nn.LayerNorm(embed_dim) if transformer_final_norm else None)
            if video_local_aggregation == "maxpool":
                self.video_local_fc = nn.Linear(embed_dim, vlad_dim)
        # T2VLAD: branch 0 = video, branch 1 = text; a text-only VLAD has one branch (index 0)
        self.vlad: Optional[NetVLAD] = None
        self._text_vlad_branch = 1 if video_uses_vlad else 0
        if text_uses_vlad:
            self.vlad = t2vlad_netvlad(embed_dim, num_clusters, ghost_clusters, video_uses_vlad, vlad_sharing,
                                       vlad_norm_sharing, vlad_assignment_norm)
        # global branch (absent with global_alignment=False: local-only training, which the thesis
        # reports does not converge)
        self.video_gu: Optional[nn.ModuleDict] = None
        self.text_gu: Optional[nn.ModuleDict] = None
        self.moe_fc: Optional[nn.Linear] = None
        if global_alignment:
            text_dim = vlad_dim if text_global_input == "vlad" else embed_dim  # G_text or BERT's [CLS] output
            self.video_gu = nn.ModuleDict({e: GatedEmbeddingUnit(d, embed_dim) for e, d in zip(experts, expert_dims)})
            self.text_gu = nn.ModuleDict({e: GatedEmbeddingUnit(text_dim, embed_dim) for e in experts})
            self.moe_fc = nn.Linear(text_dim, len(experts))

        self.val_metrics = RetrievalMetrics()
        self.test_metrics = RetrievalMetrics()
        self._tokenizer = None
        self._weights_loaded = False
        self._eval_cache: dict[str, list] = defaultdict(list)

    # ------------------------------------------------------------------ text side
    def load_pretrained_text_encoder(self) -> None:
        """Load ``text_encoder``'s pretrained weights (Hugging Face Hub or its cache)."""
        name = self.hparams.text_encoder
        missing, unexpected = self.text_encoder.load_state_dict(load_pretrained_bert_state(name), strict=False)
        if missing:
            raise RuntimeError(f"pretrained '{name}' lacks parameters of the T2VLAD text encoder: {missing[:5]}")

    def setup(self, stage: str) -> None:
        if stage == "fit" and self.hparams.text_encoder_init == "pretrained" and not self._weights_loaded:
            self.load_pretrained_text_encoder()
            self._weights_loaded = True

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        self._weights_loaded = True
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self._weights_loaded = True

    @property
    def tokenizer(self):
        """The BERT tokenizer (loaded on first use; never needed when token ids are given)."""
        if self._tokenizer is None:
            self._tokenizer = load_bert_tokenizer(self.hparams.tokenizer or self.hparams.text_encoder)
        return self._tokenizer

    def tokenize(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """(input_ids, attention_mask), each ``[len(texts), text_max_tokens]``."""
        if isinstance(texts, str):
            texts = [texts]
        enc = self.tokenizer(list(texts), padding="max_length", truncation=True, max_length=self.hparams.text_max_tokens,
                             return_tensors="pt")
        return enc["input_ids"].to(self.device), enc["attention_mask"].to(self.device)

    def encode_text(self, input_ids: torch.Tensor, attention_mask: Optional[torch.Tensor] = None) -> dict[str, torch.Tensor]:
        """Text embeddings: ``local`` [T, K*C] (L2), ``global`` [T, E, C] (L2), ``moe`` [T, E]
        (``local`` only with local alignment, ``global``/``moe`` only with global alignment).

        ``attention_mask`` None means every token is real."""
        z = self.text_encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return self.encode_text_tokens(z, attention_mask)

    def encode_text_tokens(self, z: torch.Tensor, attention_mask: Optional[torch.Tensor] = None) -> dict[str, torch.Tensor]:
        """The text heads on BERT's output tokens ``z`` [T, L, C] (``z[:, 0]`` is [CLS])."""
        h = self.hparams
        out: dict[str, torch.Tensor] = {}
        g = None
        if self.vlad is not None:
            mask = attention_mask.bool() if (h.use_token_masks and attention_mask is not None) else None
            g = self.vlad(z, mask=mask, branch=self._text_vlad_branch)
        if h.local_alignment:
            out["local"] = g
        if h.global_alignment:
            src = g if h.text_global_input == "vlad" else z[:, 0]
            out["global"] = torch.stack([self.text_gu[e](src) for e in self.experts], dim=1)
            out["moe"] = self.moe_fc(src).softmax(dim=-1)
        return out

    def encode_texts(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        return self.encode_text(*self.tokenize(texts))

    # ----------------------------------------------------------------- video side
    def _expert_inputs(self, experts: dict[str, torch.Tensor], expert_masks: Optional[dict[str, torch.Tensor]]):
        missing = [e for e in self.experts if e not in experts]
        if missing:
            raise KeyError(f"T2VLAD needs features of experts {missing} (got {sorted(experts)})")
        for e in self.experts:
            x = experts[e].float()
            m = expert_masks[e].bool() if expert_masks is not None and e in expert_masks else torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
            yield e, x, m

    def video_local_tokens(self, experts: dict[str, torch.Tensor],
                           expert_masks: Optional[dict[str, torch.Tensor]] = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``Z_video`` [V, M, C] (per-expert FC [-> L2] -> transformer) and its token mask [V, M]."""
        if self.local_proj is None:
            raise RuntimeError("this T2VLAD has no local branch (local_alignment=False)")
        tokens, masks = [], []
        for e, x, m in self._expert_inputs(experts, expert_masks):
            t = self.local_proj[e](x)
            if self.hparams.local_token_l2norm:
                t = F.normalize(t, dim=-1)
            tokens.append(t)
            masks.append(m)
        z, mask = torch.cat(tokens, dim=1), torch.cat(masks, dim=1)
        if self.transformer is not None and self.hparams.use_token_masks:
            empty = ~mask.any(1)  # a video with no token at all: let it attend to its pads
            kpm = (~mask) & ~empty.unsqueeze(1)
            z = self.transformer(z, src_key_padding_mask=kpm)
        elif self.transformer is not None:
            z = self.transformer(z)
        return z, mask

    def aggregate_video_local(self, z: torch.Tensor, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Local video descriptor [V, K*C] from ``Z_video``: the (shared) VLAD, or -- Table 6.5's
        "only text VLAD" -- max-pool over the tokens, FC to K*C, L2."""
        use_masks = self.hparams.use_token_masks and mask is not None
        if self.video_local_fc is not None:
            if use_masks:
                p = z.masked_fill(~mask.unsqueeze(-1), float("-inf")).max(dim=1).values
                p = torch.where(mask.any(1, keepdim=True), p, torch.zeros_like(p))
            else:
                p = z.max(dim=1).values
            return F.normalize(self.video_local_fc(p), dim=-1)
        return self.vlad(z, mask=mask if use_masks else None, branch=0,
                         detach_assignment=self.hparams.vlad_sharing == "port")

    def encode_video(self, experts: dict[str, torch.Tensor], expert_masks: Optional[dict[str, torch.Tensor]] = None,
                     expert_available: Optional[dict[str, torch.Tensor]] = None) -> dict[str, torch.Tensor]:
        """Video embeddings: ``local`` [V, K*C] (with local alignment), ``global`` [V, E, C] (with
        global alignment), ``available`` [V, E]."""
        h = self.hparams
        out: dict[str, torch.Tensor] = {}
        inputs = list(self._expert_inputs(experts, expert_masks))
        if h.local_alignment:
            z, mask = self.video_local_tokens(experts, expert_masks)
            out["local"] = self.aggregate_video_local(z, mask)
        if h.global_alignment:
            pooled = []
            for e, x, m in inputs:
                if h.use_token_masks:
                    p = x.masked_fill(~m.unsqueeze(-1), float("-inf")).max(dim=1).values
                    p = torch.where(m.any(1, keepdim=True), p, torch.zeros_like(p))
                else:
                    p = x.max(dim=1).values
                pooled.append(self.video_gu[e](p))
            out["global"] = torch.stack(pooled, dim=1)
        x0 = inputs[0][1]
        if expert_available is not None:
            avail = torch.stack([expert_available[e].to(x0.device).float() if e in expert_available else torch.ones(x0.shape[0], device=x0.device)
                                 for e in self.experts], dim=1)
        else:
            avail = torch.ones(x0.shape[0], len(self.experts), device=x0.device)
        out["available"] = avail
        return out

    # ----------------------------------------------------------------- similarity
    def similarity(self, text: dict[str, torch.Tensor], video: dict[str, torch.Tensor], mode: Optional[str] = None) -> torch.Tensor:
        """``[T, V]`` similarities: (s_global + s_local) / 2, or one branch (``mode`` "global" /
        "local"). A model built without one branch uses the other alone for ``mode`` "both"."""
        mode = mode or "both"
        if mode not in ("both", "global", "local"):
            raise ValueError(f"mode must be 'both', 'global' or 'local', got {mode!r}")
        h = self.hparams
        if (mode == "local" and not h.local_alignment) or (mode == "global" and not h.global_alignment):
            raise ValueError(f"similarity mode {mode!r}: this T2VLAD has no {mode} branch")
        s_local = text["local"] @ video["local"].t() if h.local_alignment and mode != "global" else None
        if not h.global_alignment or mode == "local":
            return s_local
        w = text["moe"].unsqueeze(1) * video["available"].unsqueeze(0)  # T, V, E
        if h.renormalise_moe:
            w = w / w.sum(-1, keepdim=True).clamp_min(1e-8)
        s_global = sum(w[..., i] * (text["global"][:, i] @ video["global"][:, i].t()) for i in range(len(self.experts)))
        if s_local is None:
            return s_global
        return 0.5 * (s_global + s_local)

    def forward_features(self, input_ids: Optional[torch.Tensor] = None, attention_mask: Optional[torch.Tensor] = None,
                         experts: Optional[dict[str, torch.Tensor]] = None,
                         expert_masks: Optional[dict[str, torch.Tensor]] = None,
                         expert_available: Optional[dict[str, torch.Tensor]] = None) -> dict[str, torch.Tensor]:
        """Named embeddings (`mmzoo extract`): ``text_*`` from :meth:`encode_text` when texts are
        given, ``video_*`` from :meth:`encode_video` when experts are given (``*_global``: the
        per-expert global embeddings, ``*_local``: the shared-centre local embedding, ...)."""
        out: dict[str, torch.Tensor] = {}
        if input_ids is not None:
            out.update({f"text_{k}": v for k, v in self.encode_text(input_ids, attention_mask).items()
                        if isinstance(v, torch.Tensor)})
        if experts is not None:
            out.update({f"video_{k}": v for k, v in self.encode_video(experts, expert_masks, expert_available).items()
                        if isinstance(v, torch.Tensor)})
        if not out:
            raise ValueError("forward_features needs texts (input_ids) and / or video experts")
        return out

    def forward(self, input_ids: torch.Tensor, attention_mask: Optional[torch.Tensor], experts: dict[str, torch.Tensor],
                expert_masks: Optional[dict[str, torch.Tensor]] = None,
                expert_available: Optional[dict[str, torch.Tensor]] = None) -> torch.Tensor:
        """Similarity matrix ``[num_texts, num_videos]`` of tokenised texts and expert features."""
        text = self.encode_text(input_ids, attention_mask)
        video = self.encode_video(experts, expert_masks, expert_available)
        return self.similarity(text, video, None if self.training else self.hparams.eval_similarity)

    def example_input(self, batch_size: int = 1) -> dict[str, Any]:
        h = self.hparams
        ids = torch.zeros(batch_size, h.text_max_tokens, dtype=torch.long)
        ids[:, 0] = 101 if (h.text_encoder_config or {}).get("vocab_size", 30522) > 102 else 0
        return {
            "input_ids": ids,
            "attention_mask": None,  # all tokens real (and no data-dependent mask check on the meta device)
            "experts": {e: torch.randn(batch_size, n, d) for e, d, n in zip(h.experts, h.expert_dims, h.expert_max_tokens)},
        }

    # ------------------------------------------------------------------- training
    def compute_loss(self, sims: torch.Tensor) -> torch.Tensor:
        fn = max_margin_ranking_loss if self.hparams.loss == "max_margin" else hardest_negative_loss
        return fn(sims, self.hparams.margin)

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        texts = batch["text"]
        if texts and not isinstance(texts[0], str):
            texts = [t[0] for t in texts]  # one caption per video for the in-batch pairs
        ids, att = self.tokenize(texts)
        sims = self(ids, att, batch["experts"], batch.get("expert_masks"), batch.get("expert_available"))
        loss = self.compute_loss(sims)
        self.log("train/loss", loss, prog_bar=True, batch_size=sims.shape[0])
        return loss

    def _eval_step(self, batch: dict[str, Any], stage: str) -> None:
        texts = batch["text"]
        groups = [[t] if isinstance(t, str) else list(t) for t in texts]
        flat = [t for g in groups for t in g]
        owner = torch.cat([torch.full((len(g),), int(v), dtype=torch.long) for g, v in zip(groups, batch["video_index"].tolist())])
        caption_pos = torch.cat([torch.arange(len(g)) for g in groups])
        text = self.encode_texts(flat)
        video = self.encode_video(batch["experts"], batch.get("expert_masks"), batch.get("expert_available"))
        cache = self._eval_cache
        cache["text"].append({k: v.detach() for k, v in text.items()})
        cache["video"].append({k: v.detach() for k, v in video.items()})
        cache["query_video"].append(owner)
        cache["query_caption"].append(caption_pos)
        cache["video_index"].append(batch["video_index"].detach().cpu())

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._eval_step(batch, "test")

    def _gather_eval(self):
        c = self._eval_cache
        text = {k: torch.cat([d[k] for d in c["text"]]) for k in c["text"][0]}
        video = {k: torch.cat([d[k] for d in c["video"]]) for k in c["video"][0]}
        qv, qc, vi = torch.cat(c["query_video"]), torch.cat(c["query_caption"]), torch.cat(c["video_index"])
        world = self.trainer.world_size if self._trainer is not None else 1
        if world > 1 and torch.distributed.is_available() and torch.distributed.is_initialized():
            parts = [None] * world
            torch.distributed.all_gather_object(parts, ({k: v.cpu() for k, v in text.items()}, {k: v.cpu() for k, v in video.items()}, qv, qc, vi))
            text = {k: torch.cat([p[0][k] for p in parts]).to(self.device) for k in text}
            video = {k: torch.cat([p[1][k] for p in parts]).to(self.device) for k in video}
            qv, qc, vi = (torch.cat([p[i] for p in parts]) for i in (2, 3, 4))
        # drop duplicates (DistributedSampler pads the last batch by repeating samples)
        _, first_v = _first_occurrence(vi)
        video = {k: v[first_v] for k, v in video.items()}
        vi = vi[first_v]
        qkey = qv * 100000 + qc
        _, first_q = _first_occurrence(qkey)
        text = {k: v[first_q] for k, v in text.items()}
        qv = qv[first_q]
        col_of = {int(v): i for i, v in enumerate(vi.tolist())}
        q2v = torch.tensor([col_of[int(v)] for v in qv.tolist()], dtype=torch.long)
        return text, video, q2v

    def _eval_epoch_end(self, stage: str, metric: RetrievalMetrics) -> None:
        if not self._eval_cache.get("text"):
            return
        text, video, q2v = self._gather_eval()
        self._eval_cache = defaultdict(list)
        with torch.no_grad():
            sims = torch.cat([self.similarity({k: v[i:i + 1024] for k, v in text.items()}, video, self.hparams.eval_similarity)
                              for i in range(0, q2v.numel(), 1024)])
        world = self.trainer.world_size if self._trainer is not None else 1
        rank = self.trainer.global_rank if self._trainer is not None else 0
        q_sub = torch.arange(rank, sims.shape[0], world)
        v_sub = torch.arange(rank, sims.shape[1], world)
        metric.update(sims, q2v.to(sims.device), q_sub, v_sub)
        res = metric.compute()
        self.last_eval_ranks = metric.ranks() if self.hparams.save_ranks else None
        metric.reset()
        if self._trainer is not None:
            # every rank holds the same (already synced) values; sync_dist averages identical numbers
            self.log_dict({f"{stage}/{k}": v for k, v in res.items()}, prog_bar=False, batch_size=1, sync_dist=True)
        self.last_eval_metrics = res
        self.last_eval_sims = sims.detach().cpu()

    def on_validation_epoch_end(self) -> None:
        self._eval_epoch_end("val", self.val_metrics)

    def on_test_epoch_end(self) -> None:
        self._eval_epoch_end("test", self.test_metrics)

    def on_validation_epoch_start(self) -> None:
        self._eval_cache = defaultdict(list)

    def on_test_epoch_start(self) -> None:
        self._eval_cache = defaultdict(list)

    def predict_step(self, batch: dict[str, Any], batch_idx: int, dataloader_idx: int = 0) -> dict[str, Any]:
        """Video embeddings of a batch (global expert embeddings and the local VLAD descriptor),
        keyed by ``video_id``: the index a text query is scored against (see
        :func:`mmzoo.predict.t2vlad.rank_videos`)."""
        video = self.encode_video(batch["experts"], batch.get("expert_masks"), batch.get("expert_available"))
        return {"video_id": list(batch["video_id"]), **{k: v.detach() for k, v in video.items()}}

    # ------------------------------------------------------------------ optimiser
    def configure_optimizers(self):
        h = self.hparams
        params = [p for p in self.parameters() if p.requires_grad]
        if h.optimizer == "ranger":
            inner = torch.optim.RAdam(params, lr=h.lr, betas=tuple(h.radam_betas), eps=h.radam_eps,
                                      weight_decay=h.weight_decay, decoupled_weight_decay=True)
            opt = Lookahead(inner, k=h.lookahead_k, alpha=h.lookahead_alpha)
        else:
            opt = torch.optim.AdamW(params, lr=h.lr, weight_decay=h.weight_decay)
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=h.lr_decay_every, gamma=h.lr_decay)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}



def _first_occurrence(keys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    seen: dict[int, int] = {}
    for i, k in enumerate(keys.tolist()):
        seen.setdefault(int(k), i)
    idx = torch.tensor(sorted(seen.values()), dtype=torch.long)
    return keys[idx], idx
