"""Audio-visual event localization on AVE: AVSDN, CM-CoAtt, AVEL and a naive LSTM.

Source: Yan-Bo Lin, "Cross-Modality Co-Attention for Audio-Visual Event Localization", master's
thesis, National Taiwan University, 2019 (doi:10.6342/NTU201902224), which contains AVSDN
(Lin, Li, Wang, ICASSP 2019, arXiv:1902.07473) and CM-CoAtt; AVEL is Tian et al., "Audio-Visual
Event Localization in Unconstrained Videos", ECCV 2018.

One class, `AVEventLocalizer`, covers the six registered ids and the thesis's ablation grid
(Tables 4.3-4.8) as configurations:

    visual [B,T,7,7,Cv] --region MLP--> v [B,T,49,K]
        --RegionAttention(attention, intra_v, inter_v)--> v_t [B,T,K'] (+ map M [B,T,49])
    audio [B,T,128] = a_t
    classifier(a_t, v_t) in {lstm, avel, avsdn} --> per-segment logits m_t [B,T,C+1]

Batches are the `ave` DataModule's dicts: "visual" float [B,10,7,7,Cv] (512 for the released
features, 2048 for ResNet-152), "audio" float [B,10,128], "label" long [B,10] (28 = background),
"video_label" float [B,29], "meta".
"""
from __future__ import annotations

from typing import Any, Literal, Optional

import torch
import torch.nn.functional as F
from torch import nn

from mmzoo.data.constants import (
    AVE_CLASSES as _EVENT_CLASSES,
    AVE_NUM_SEGMENTS,
    IMAGENET_MEAN,
    IMAGENET_STD,
    VGGISH_HOP_SECONDS,
    VGGISH_LOG_OFFSET,
    VGGISH_NUM_BANDS,
    VGGISH_NUM_FRAMES,
    VGGISH_SAMPLE_RATE,
    VGGISH_WINDOW_SECONDS,
)
from mmzoo.metrics.segment_accuracy import SegmentAccuracy
from mmzoo.models.base import ZooModule
from mmzoo.nn.ave_attention import RegionAttention
from mmzoo.registry import AudioInput, InputConfig, Weights, register_model

__all__ = [
    "AVE_CLASSES",
    "RegionProjection",
    "LSTMClassifier",
    "AVELClassifier",
    "DMRNStateFusion",
    "AVSDNClassifier",
    "AVEventLocalizer",
    "event_loss",
]

NUM_SEGMENTS = AVE_NUM_SEGMENTS
GRID = 7

#: The model's 29 outputs (thesis Sec. 4.0.1): the 28 AVE event classes in the order of the
#: released annotation files, then background (index 28).
AVE_CLASSES: list[str] = [*_EVENT_CLASSES, "background"]


class RegionProjection(nn.Module):
    """Sec. 4.0.2: "each channel is processed by multilayer perceptrons (MLP) into 512 dimensions".

    ``layers`` x (Linear + ReLU) from Cv to K, applied to each of the 49 regions; 0 layers is the
    identity (then Cv must equal K). Depth and activation are [SILENT]; one layer is our default.
    """

    def __init__(self, in_dim: int, out_dim: int, layers: int = 1) -> None:
        super().__init__()
        if layers == 0 and in_dim != out_dim:
            raise ValueError(f"region_mlp_layers=0 keeps the {in_dim}-d features; region_dim must be {in_dim}")
        mods: list[nn.Module] = []
        for i in range(layers):
            mods += [nn.Linear(in_dim if i == 0 else out_dim, out_dim), nn.ReLU(inplace=True)]
        self.mlp = nn.Sequential(*mods)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(x)


def _modal_inputs(audio: torch.Tensor, visual: torch.Tensor, modality: str) -> torch.Tensor:
    if modality == "audio":
        return audio
    if modality == "visual":
        return visual
    return torch.cat([audio, visual], dim=-1)


class LSTMClassifier(nn.Module):
    """The thesis's "naive LSTM" (unspecified there): one LSTM over concat(a_t, v_t), then a
    Linear per step. Hidden size, depth and direction are [SILENT]: 1 layer, unidirectional."""

    def __init__(self, audio_dim: int, visual_dim: int, hidden: int, num_classes: int,
                 modality: str = "audio_visual") -> None:
        super().__init__()
        in_dim = {"audio": audio_dim, "visual": visual_dim}.get(modality, audio_dim + visual_dim)
        self.lstm = nn.LSTM(in_dim, hidden, batch_first=True)
        self.head = nn.Linear(hidden, num_classes)
        self.modality = modality

    def forward(self, audio: torch.Tensor, visual: torch.Tensor) -> tuple[torch.Tensor, dict]:
        out, _ = self.lstm(_modal_inputs(audio, visual, self.modality))
        return self.head(out), {}


class AVELClassifier(nn.Module):
    """AVEL's temporal part (Tian et al. 2018, public code ``att_Net``): a BiLSTM per modality
    (hidden H each way), concatenation (4H), ReLU, Linear(4H -> fc), ReLU, Linear(fc -> C).
    With one modality only its BiLSTM is kept (2H into the head), as in Table 4.1's rows."""

    def __init__(self, audio_dim: int, visual_dim: int, hidden: int, num_classes: int,
                 fc_dim: int = 64, modality: str = "audio_visual") -> None:
        super().__init__()
        self.modality = modality
        self.audio_lstm = nn.LSTM(audio_dim, hidden, batch_first=True, bidirectional=True) if modality != "visual" else None
        self.visual_lstm = nn.LSTM(visual_dim, hidden, batch_first=True, bidirectional=True) if modality != "audio" else None
        n = 2 if modality == "audio_visual" else 1
        self.fc1 = nn.Linear(2 * hidden * n, fc_dim)
        self.fc2 = nn.Linear(fc_dim, num_classes)
        nn.init.xavier_uniform_(self.fc1.weight)
        nn.init.xavier_uniform_(self.fc2.weight)

    def forward(self, audio: torch.Tensor, visual: torch.Tensor) -> tuple[torch.Tensor, dict]:
        feats = []
        if self.audio_lstm is not None:
            feats.append(self.audio_lstm(audio)[0])
        if self.visual_lstm is not None:
            feats.append(self.visual_lstm(visual)[0])
        x = F.relu(torch.cat(feats, dim=-1))
        return self.fc2(F.relu(self.fc1(x))), {}


def _state_mlp(dim: int) -> nn.Module:
    # g_theta: depth/width [SILENT]; Tian's DMRN uses Linear-Tanh-Linear at the state width.
    return nn.Sequential(nn.Linear(dim, dim), nn.Tanh(), nn.Linear(dim, dim))


class DMRNStateFusion(nn.Module):
    """Eq. 3.2: fuse the encoders' final states x^a, x^v (hidden or cell) into one::

        m    = 1/2 (g_a(x^a) + g_v(x^v))
        x^a' = tanh(x^a + m);  x^v' = tanh(x^v + m)
        x^f  = x^a' + x^v'            ("sum", the thesis)   or  1/2 (x^a' + x^v')  ("mean", Tian's code)

    ``share``: g_a is g_v (the thesis writes one g_theta; Tian's code has separate U_a, U_v).
    """

    def __init__(self, dim: int, share: bool = True, combine: str = "sum") -> None:
        super().__init__()
        if combine not in ("sum", "mean"):
            raise ValueError(f"fusion_combine must be 'sum' or 'mean', got {combine!r}")
        # One module per set of weights (no aliasing), so the state dict has no shared tensors
        # and safetensors can store it.
        self.g_audio = _state_mlp(dim)
        self.g_visual = None if share else _state_mlp(dim)
        self.combine = combine

    def forward(self, xa: torch.Tensor, xv: torch.Tensor) -> torch.Tensor:
        g_visual = self.g_audio if self.g_visual is None else self.g_visual
        merged = 0.5 * (self.g_audio(xa) + g_visual(xv))
        fused = torch.tanh(xa + merged) + torch.tanh(xv + merged)
        return fused if self.combine == "sum" else 0.5 * fused


class AVSDNClassifier(nn.Module):
    """AVSDN (Sec. 3.0.2, Fig. 3.1): audio and visual encoder LSTMs, DMRN fusion (Eq. 3.2) of
    their final (h_T, c_T) as the decoder's initial state, a decoder LSTM on concat(a_t, v_t) and
    a fully connected layer per step giving m_t.

    ``init_state``: "fusion" (the thesis), "audio" / "visual" (Table 4.5 rows 1-2: that
    encoder's state alone), "sum" (h^a + h^v and c^a + c^v without the DMRN block).
    ``label_guided``: add MLP heads on h_T^a and h_T^v whose video-level predictions the module
    trains with an extra loss (Table 4.5 row 3, read as init_state="sum" + label guidance [INF]).
    ``cell_fusion``: "separate" = the cell states get their own DMRN MLPs, "shared" = they reuse
    the hidden-state MLPs ("the cell states can be fused like hidden states" [AMBIG]).
    """

    def __init__(self, audio_dim: int, visual_dim: int, hidden: int, num_classes: int,
                 init_state: str = "fusion", fusion_share: bool = True, fusion_combine: str = "sum",
                 cell_fusion: str = "separate", head_hidden: int = 0, label_guided: bool = False) -> None:
        super().__init__()
        if init_state not in ("fusion", "audio", "visual", "sum"):
            raise ValueError(f"init_state must be fusion|audio|visual|sum, got {init_state!r}")
        if cell_fusion not in ("separate", "shared"):
            raise ValueError(f"cell_fusion must be 'separate' or 'shared', got {cell_fusion!r}")
        self.init_state = init_state
        self.audio_encoder = nn.LSTM(audio_dim, hidden, batch_first=True)
        self.visual_encoder = nn.LSTM(visual_dim, hidden, batch_first=True)
        self.fuse_h: Optional[DMRNStateFusion] = None
        self.fuse_c: Optional[DMRNStateFusion] = None
        if init_state == "fusion":
            self.fuse_h = DMRNStateFusion(hidden, fusion_share, fusion_combine)
            if cell_fusion == "separate":  # "shared": the cell states reuse fuse_h
                self.fuse_c = DMRNStateFusion(hidden, fusion_share, fusion_combine)
        self.decoder = nn.LSTM(audio_dim + visual_dim, hidden, batch_first=True)
        if head_hidden > 0:
            self.head: nn.Module = nn.Sequential(nn.Linear(hidden, head_hidden), nn.ReLU(inplace=True),
                                                 nn.Linear(head_hidden, num_classes))
        else:
            self.head = nn.Linear(hidden, num_classes)
        self.guide_audio: Optional[nn.Module] = None
        self.guide_visual: Optional[nn.Module] = None
        if label_guided:
            self.guide_audio = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, num_classes))
            self.guide_visual = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, num_classes))

    def initial_state(self, ha, ca, hv, cv) -> tuple[torch.Tensor, torch.Tensor]:
        if self.init_state == "audio":
            return ha, ca
        if self.init_state == "visual":
            return hv, cv
        if self.init_state == "sum":
            return ha + hv, ca + cv
        fuse_c = self.fuse_h if self.fuse_c is None else self.fuse_c
        return self.fuse_h(ha, hv), fuse_c(ca, cv)

    def forward(self, audio: torch.Tensor, visual: torch.Tensor) -> tuple[torch.Tensor, dict]:
        _, (ha, ca) = self.audio_encoder(audio)  # [1, B, H] each: last step T
        _, (hv, cv) = self.visual_encoder(visual)
        h0, c0 = self.initial_state(ha, ca, hv, cv)
        out, _ = self.decoder(torch.cat([audio, visual], dim=-1), (h0.contiguous(), c0.contiguous()))
        extras: dict[str, torch.Tensor] = {}
        if self.guide_audio is not None:
            extras["guide_logits"] = torch.stack([self.guide_audio(ha[-1]), self.guide_visual(hv[-1])], dim=1)
        return self.head(out), extras


def event_loss(logits: torch.Tensor, target: torch.Tensor, kind: str = "bce") -> torch.Tensor:
    """Loss between class logits ``[..., C]`` and a (soft) target distribution ``[..., C]``.

    "bce": binary cross-entropy of softmax(logits) against the target, averaged over classes and
    rows (the thesis: "the predicted probability distribution ... optimized ... through binary
    cross-entropy"); "ce": soft-target cross-entropy; "mlsm": Tian's public code,
    ``MultiLabelSoftMarginLoss`` applied to the softmax output.
    """
    if kind == "bce":
        logp = F.log_softmax(logits, dim=-1)
        log1mp = torch.log1p(-logp.exp().clamp(max=1.0 - 1e-6))
        return -(target * logp + (1 - target) * log1mp).mean()
    if kind == "ce":
        return -(target * F.log_softmax(logits, dim=-1)).sum(-1).mean()
    if kind == "mlsm":
        return F.multilabel_soft_margin_loss(torch.softmax(logits, dim=-1), target)
    raise ValueError(f"loss must be bce|ce|mlsm, got {kind!r}")


class AVEventLocalizer(ZooModule):
    """Audio-visual event localization: a label in C+1 classes (C events + background) per 1-s
    segment, from per-segment visual region features and VGGish audio features.

    ``forward(visual [B,T,7,7,Cv], audio [B,T,A]) -> logits m_t [B,T,C+1]``; with
    ``return_attention=True`` also the region attention map ``[B,T,49]`` (None without attention).

    Architecture (thesis Sec. 3.0.2-3.0.4, 4.0.2, 4.0.4):
        classifier: "avsdn" (encoders + DMRN state fusion + decoder, Sec. 3.0.2), "avel" (Tian et
            al.'s BiLSTMs + MLP head), "lstm" (the "naive LSTM" baseline).
        attention: "none" (regions averaged), "add" (Tian's audio-guided MLP attention), "dot"
            (inner products v_r . a), "cmcoatt" (Eqs. 3.6-3.7: dot scores on the inter-frame
            features; requires ``inter_v``). See `mmzoo.nn.ave_attention.RegionAttention`.
        intra_v: the intra-frame BiLSTM over the 49 regions, fwd + bwd summed (Eq. 3.4).
        inter_v: the inter-frame encoder giving the keys: "mlp" over frames t-1, t, t+1 (Eq. 3.5),
            "conv3d" or "lstm" (Table 4.8), "none".
        modality: "audio_visual", or "audio" / "visual" only (Table 4.1 rows; lstm and avel only,
            without attention).

    Dimensions ([SILENT] / [AMBIG] in the thesis; defaults and why):
        visual_dim: Cv, 2048 for the thesis's ResNet-152 7x7 maps; 512 for Tian's released features.
        audio_dim: 128 (VGGish).  num_classes: 29 (28 AVE events + background at index 28).
        region_dim: K = 512, the width of the region MLP output (Sec. 4.0.2 "into 512
            dimensions"); also the intra-frame BiLSTM width (Eq. 3.4 keeps K).
        region_mlp_layers: 1 (Linear + ReLU); 0 = identity, only when visual_dim == region_dim.
        attn_dim: D = 128, the key width for dot scores; equal to the audio width because Eq. 3.6
            compares ṽ_r and a^t directly and the ablation text gives 128-d v_r and a (the
            alternative reading K = D = 128 is ``region_dim=128``).
        audio_proj: False; the thesis never projects the audio (True adds Linear(A -> D)).
        attn_scale: False; Eq. 3.6 has no 1/sqrt(D).
        attn_values: "frame" (Eq. 3.7 as printed: weights from ṽ pool v̂) or "keys" (pool ṽ,
            reading v̂ as a typo).
        inter_hidden / inter_layers: 512 / 2 (a "standard multilayer perceptron").
        inter_pad: "zero"; the missing neighbour at t=1 and t=T is zeros ("replicate" copies the
            edge frame).
        add_hidden / add_proj: 512 / 49, Tian's ``att_Net(128, 128, 512, 29)``.
        hidden_dim: H = 128 for every temporal LSTM (Tian's BiLSTM width; AVSDN's is [SILENT]).
        avel_fc_dim: 64, Tian's head Linear(4H -> 64) - ReLU - Linear(64 -> C).
        head_hidden: 0; AVSDN's per-step head is "a last fully connected layer".
        init_state: "fusion" (Eq. 3.2); "audio" / "visual" / "sum" for Table 4.5.
        label_guided_weight: 0.0; > 0 adds Table 4.5's label-guided heads on the encoders' final
            hidden states and their video-level loss with this weight.
        fusion_share: True, one g_theta for both modalities as Eq. 3.2 writes it (Tian: separate).
        fusion_combine: "sum", h^f = h^a' + h^v' as Eq. 3.2 writes it (Tian's DMRN averages).
        fusion_cell: "separate", the cell states are fused by the same equation with their own
            MLPs ("shared" reuses the hidden-state MLPs).

    Supervision and loss:
        supervision: "full" (segment labels) or "weak" (video-level labels only).
        loss: "bce" (the thesis's binary cross-entropy on the softmax output), "ce", or "mlsm"
            (Tian's MultiLabelSoftMarginLoss on the softmax output).
        full_target: "segment" (each softmax(m_t) against y_t, the plausible reading and Tian's
            code) or "video" (the literal sentence: even supervised training uses video labels).
        weak_pool: "mean" (Eq. 3.3, softmax of the average of m_t) or "max" (Tian's MIL max).
        weak_target: "video_label" (the batch's ``video_label``: the `ave` DataModule builds it by
            its ``weak_label`` rule, by default the thesis's Y = mean_t y_t, soft, with background
            mass; ``weak_label=one_hot`` gives Tian's ``mil_labels.h5``) or "average" (compute the
            thesis's Y here from the batch's segment labels).
        Evaluation is always per segment on argmax m_t (before pooling), in both settings.

    Optimisation (the thesis gives none; Tian's public AVEL code): Adam, lr 1e-3, weight decay
    0, StepLR every ``lr_step_iters`` = 15000 iterations by ``lr_gamma`` = 0.1 (batch 64, 300
    epochs supervised / 250 weakly supervised are DataModule / Trainer settings).

    class_names: label names for predict_step; defaults to the AVE classes when num_classes=29.
    """

    def __init__(
        self,
        classifier: Literal["lstm", "avel", "avsdn"] = "avsdn",
        attention: Literal["none", "add", "dot", "cmcoatt"] = "cmcoatt",
        intra_v: bool = True,
        inter_v: Literal["none", "mlp", "conv3d", "lstm"] = "mlp",
        modality: Literal["audio_visual", "audio", "visual"] = "audio_visual",
        visual_dim: int = 2048, audio_dim: int = 128,
        num_classes: int = 29,
        supervision: Literal["full", "weak"] = "full",
        region_dim: int = 512, region_mlp_layers: int = 1,
        attn_dim: int = 128,
        audio_proj: bool = False, attn_scale: bool = False,
        attn_values: Literal["frame", "keys"] = "frame",
        inter_hidden: int = 512, inter_layers: int = 2,
        inter_pad: Literal["zero", "replicate"] = "zero",
        add_hidden: int = 512, add_proj: int = 49,
        hidden_dim: int = 128, avel_fc_dim: int = 64,
        head_hidden: int = 0,
        init_state: Literal["fusion", "audio", "visual", "sum"] = "fusion",
        label_guided_weight: float = 0.0,
        fusion_share: bool = True,
        fusion_combine: Literal["sum", "mean"] = "sum",
        fusion_cell: Literal["separate", "shared"] = "separate",
        loss: Literal["bce", "ce", "mlsm"] = "bce",
        full_target: Literal["segment", "video"] = "segment",
        weak_pool: Literal["mean", "max"] = "mean",
        weak_target: Literal["video_label", "average"] = "video_label",
        lr: float = 1e-3, weight_decay: float = 0.0,
        lr_step_iters: int = 15000, lr_gamma: float = 0.1,
        class_names: Optional[list[str]] = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        if classifier not in ("lstm", "avel", "avsdn"):
            raise ValueError(f"classifier must be lstm|avel|avsdn, got {classifier!r}")
        if supervision not in ("full", "weak"):
            raise ValueError(f"supervision must be 'full' or 'weak', got {supervision!r}")
        if modality not in ("audio_visual", "audio", "visual"):
            raise ValueError(f"modality must be audio_visual|audio|visual, got {modality!r}")
        if modality != "audio_visual" and (classifier == "avsdn" or attention != "none"):
            raise ValueError("single-modality runs (Table 4.1) need classifier=lstm|avel and attention='none'")
        if label_guided_weight > 0 and classifier != "avsdn":
            raise ValueError("label_guided_weight applies to the AVSDN encoders (classifier='avsdn')")
        for name, value, allowed in (("loss", loss, ("bce", "ce", "mlsm")), ("full_target", full_target, ("segment", "video")),
                                     ("weak_pool", weak_pool, ("mean", "max")), ("weak_target", weak_target, ("video_label", "average"))):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(f"class_names has {len(class_names)} names for num_classes={num_classes}")

        self.region_proj = RegionProjection(visual_dim, region_dim, region_mlp_layers)
        self.attention = RegionAttention(
            region_dim=region_dim, audio_dim=audio_dim, attention=attention, intra_v=intra_v, inter_v=inter_v,
            attn_dim=attn_dim, audio_proj=audio_proj, scale=attn_scale, values=attn_values,
            inter_hidden=inter_hidden, inter_layers=inter_layers, inter_pad=inter_pad,
            add_hidden=add_hidden, add_proj=add_proj, grid=GRID,
        )
        v_dim = self.attention.out_dim
        if classifier == "lstm":
            self.classifier: nn.Module = LSTMClassifier(audio_dim, v_dim, hidden_dim, num_classes, modality)
        elif classifier == "avel":
            self.classifier = AVELClassifier(audio_dim, v_dim, hidden_dim, num_classes, avel_fc_dim, modality)
        else:
            self.classifier = AVSDNClassifier(
                audio_dim, v_dim, hidden_dim, num_classes, init_state=init_state, fusion_share=fusion_share,
                fusion_combine=fusion_combine, cell_fusion=fusion_cell, head_hidden=head_hidden,
                label_guided=label_guided_weight > 0,
            )
        self.val_acc = SegmentAccuracy()
        self.test_acc = SegmentAccuracy()
        if class_names is None and num_classes == len(AVE_CLASSES):
            class_names = AVE_CLASSES
        self.class_names = list(class_names) if class_names is not None else None

    # ------------------------------------------------------------------ inference
    def _regions(self, visual: torch.Tensor) -> torch.Tensor:
        cv = self.hparams.visual_dim
        if visual.dim() == 5:  # [B, T, 7, 7, Cv]
            b, t, h, w, c = visual.shape
            visual = visual.reshape(b, t, h * w, c)
        if visual.dim() != 4 or visual.shape[-1] != cv:
            raise ValueError(f"visual must be [B, T, 7, 7, {cv}] (or [B, T, 49, {cv}]), got {tuple(visual.shape)}; "
                             f"the model was built with visual_dim={cv}")
        return self.region_proj(visual)

    def forward_with_attention(self, visual: torch.Tensor, audio: torch.Tensor) -> dict[str, Any]:
        """Logits ``[B,T,C]``, the attention map ``[B,T,49]`` (None without attention) and the
        classifier's extras (``guide_logits`` [B,2,C] with label guidance)."""
        if audio.dim() != 3 or audio.shape[-1] != self.hparams.audio_dim:
            raise ValueError(f"audio must be [B, T, {self.hparams.audio_dim}], got {tuple(audio.shape)}")
        dtype = next(self.parameters()).dtype  # e.g. float16 feature caches into a float32 model
        visual, audio = visual.to(dtype), audio.to(dtype)
        regions = self._regions(visual)
        if regions.shape[:2] != audio.shape[:2]:
            raise ValueError(f"visual has {tuple(regions.shape[:2])} (batch, segments) but audio {tuple(audio.shape[:2])}")
        v, weights = self.attention(regions, audio)
        logits, extras = self.classifier(audio, v)
        return {"logits": logits, "attention": weights, **extras}

    def forward_features(self, visual: torch.Tensor, audio: torch.Tensor) -> dict[str, torch.Tensor]:
        """Named per-segment features (`mmzoo extract`): "audio" (``[B, T, audio_dim]``, the
        segment embeddings the classifier reads), "visual" (``[B, T, D]``, each segment's visual
        vector after the audio-guided region attention, Sec. 4.1 of the thesis: the classifier's
        visual input) and, with attention, "attention" (``[B, T, 49]`` region weights)."""
        dtype = next(self.parameters()).dtype
        audio = audio.to(dtype)
        v, weights = self.attention(self._regions(visual.to(dtype)), audio)
        out = {"audio": audio, "visual": v}
        if weights is not None:
            out["attention"] = weights
        return out

    def forward(self, visual: torch.Tensor, audio: torch.Tensor, return_attention: bool = False):
        out = self.forward_with_attention(visual, audio)
        return (out["logits"], out["attention"]) if return_attention else out["logits"]

    def example_input(self, batch_size: int = 1) -> dict[str, torch.Tensor]:
        """``forward`` keyword arguments: one AVE video of 10 one-second segments (Sec. 4.0.2)."""
        return {
            "visual": torch.randn(batch_size, NUM_SEGMENTS, GRID, GRID, self.hparams.visual_dim),
            "audio": torch.randn(batch_size, NUM_SEGMENTS, self.hparams.audio_dim),
        }

    # ------------------------------------------------------------------ training
    def video_target(self, batch: dict) -> torch.Tensor:
        """The video-level training label Y ``[B, C]`` under ``weak_target``."""
        if self.hparams.weak_target == "video_label":
            if "video_label" not in batch:
                raise KeyError("weak_target='video_label' needs the batch field 'video_label' [B, C]")
            return batch["video_label"].float()
        return F.one_hot(batch["label"].long(), self.hparams.num_classes).float().mean(dim=1)

    def compute_loss(self, out: dict, batch: dict) -> torch.Tensor:
        hp = self.hparams
        logits = out["logits"]
        video_level = hp.supervision == "weak" or hp.full_target == "video"
        if video_level:
            pooled = logits.mean(dim=1) if hp.weak_pool == "mean" else logits.amax(dim=1)
            if hp.supervision == "full":  # literal reading: the averaged segment labels
                target = F.one_hot(batch["label"].long(), hp.num_classes).float().mean(dim=1)
            else:
                target = self.video_target(batch)
            loss = event_loss(pooled, target, hp.loss)
        else:
            target = F.one_hot(batch["label"].long(), hp.num_classes).float()
            loss = event_loss(logits, target, hp.loss)
        if "guide_logits" in out:
            y = self.video_target(batch) if hp.supervision == "weak" else \
                F.one_hot(batch["label"].long(), hp.num_classes).float().mean(dim=1)
            guide = out["guide_logits"]
            loss = loss + hp.label_guided_weight * event_loss(guide, y.unsqueeze(1).expand_as(guide), hp.loss)
        return loss

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        out = self.forward_with_attention(batch["visual"], batch["audio"])
        loss = self.compute_loss(out, batch)
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["audio"].shape[0])
        return loss

    def _eval_step(self, batch: dict, metric: SegmentAccuracy, stage: str) -> None:
        out = self.forward_with_attention(batch["visual"], batch["audio"])
        bs = batch["audio"].shape[0]
        self.log(f"{stage}/loss", self.compute_loss(out, batch), batch_size=bs, sync_dist=True)
        metric.update(out["logits"], batch["label"])
        self.log(f"{stage}/acc", metric, prog_bar=True, batch_size=bs)

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._eval_step(batch, self.val_acc, "val")

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._eval_step(batch, self.test_acc, "test")

    def predict_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> dict[str, Any]:
        out = self.forward_with_attention(batch["visual"], batch["audio"])
        probs = torch.softmax(out["logits"], dim=-1)
        pred = probs.argmax(dim=-1)
        result: dict[str, Any] = {"pred": pred, "probs": probs, "attention": out["attention"]}
        if self.class_names is not None:
            result["names"] = [[self.class_names[i] for i in row] for row in pred.tolist()]
        if "meta" in batch:
            result["meta"] = batch["meta"]
        return result

    def configure_optimizers(self):
        hp = self.hparams
        opt = torch.optim.Adam(self.parameters(), lr=hp.lr, weight_decay=hp.weight_decay)
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=hp.lr_step_iters, gamma=hp.lr_gamma)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


# ---------------------------------------------------------------------- registry
_PAPER = ("Y.-B. Lin, Cross-Modality Co-Attention for Audio-Visual Event Localization, "
          "MSc thesis, National Taiwan University, 2019 (doi:10.6342/NTU201902224)")
_TASK = "audio-visual event localization"
# Sec. 4.0.2: ResNet-152 (ImageNet) 7x7 maps of one 224x224 frame per 1-s segment, VGGish (AudioSet)
# embeddings of the segment's audio; the recipe (batch 64, 300 / 250 epochs) is Tian et al.'s code.
_INPUT = InputConfig(
    shapes={"visual": "float [B,10,7,7,visual_dim] (ResNet-152 7x7x2048 maps; 512 for Tian's released features)",
            "audio": "float [B,10,128] (VGGish, one per 1-s segment)"},
    frames=NUM_SEGMENTS, test_crop=224, mean=IMAGENET_MEAN, std=IMAGENET_STD,
    audio=AudioInput(kind="vggish", sample_rate=VGGISH_SAMPLE_RATE, window_ms=1000 * VGGISH_WINDOW_SECONDS,
                     hop_ms=1000 * VGGISH_HOP_SECONDS, n_mels=VGGISH_NUM_BANDS, num_frames=VGGISH_NUM_FRAMES,
                     log_offset=VGGISH_LOG_OFFSET),
    datamodules=("ave",),
    notes="one ResNet-152 7x7 map and one VGGish embedding per 1-s segment, 10 segments (thesis Sec. 4.0.2); "
          "recipe of Tian et al.'s public AVEL code: batch 64, 300 epochs supervised / 250 weakly supervised",
)
_NO_WEIGHTS = ("No weights are published: the thesis released none, AVE features/videos are not reachable "
               "from this workplace, and Tian's AVEL checkpoints are PyTorch-0.3 whole-module pickles of a "
               "different architecture. Train with `mmzoo fit --model {id} --data ave --data.root <dir>`; "
               "metrics are the thesis's reported accuracies (%).")
_BASE = {"visual_dim": 2048, "audio_dim": 128, "num_classes": 29}
_NO_ATT = {"attention": "none", "intra_v": False, "inter_v": "none"}
_COATT = {"attention": "cmcoatt", "intra_v": True, "inter_v": "mlp"}

# id -> (configuration, (supervised, weakly supervised) accuracy, every number the thesis reports for it)
_IDS = {
    "lstm-ave": ({"classifier": "lstm", **_NO_ATT}, (74.98, 73.11), [
        ("acc_full (Table 4.3, CM-CoAtt N)", 74.98), ("acc_weak (Table 4.4, CM-CoAtt N)", 73.11)]),
    "cmcoatt-lstm": ({"classifier": "lstm", **_COATT}, (75.82, 73.81), [
        ("acc_full (Table 4.3, CM-CoAtt Y)", 75.82), ("acc_weak (Table 4.4, CM-CoAtt Y)", 73.81)]),
    "avel": ({"classifier": "avel", "attention": "add", "intra_v": False, "inter_v": "none"}, (74.7, 73.3), [
        ("acc_full w/ att, ResNet (Table 4.1 = Table 4.6 Add/N)", 74.7),
        ("acc_weak w/ att, ResNet (Table 4.2 = Table 4.7 Add/N)", 73.3),
        ("acc_full Add + Intra-V (intra_v=True; Table 4.6)", 75.04),
        ("acc_weak Add + Intra-V (intra_v=True; Table 4.7)", 74.08),
        ("acc_full no att, ResNet (attention=none; Tables 4.1/4.3)", 74.0),
        ("acc_weak no att, ResNet (attention=none; Tables 4.2/4.4)", 71.6),
        ("acc_full visual only, ResNet (modality=visual, attention=none)", 65.0),
        ("acc_weak visual only, ResNet (modality=visual, attention=none)", 63.4),
        ("acc_full audio only (modality=audio, attention=none)", 59.5),
        ("acc_weak audio only (modality=audio, attention=none)", 53.4)]),
    "cmcoatt-avel": ({"classifier": "avel", **_COATT}, (76.37, 74.30), [
        ("acc_full (Tables 4.3/4.6/4.8)", 76.37), ("acc_weak (Tables 4.4/4.7)", 74.30),
        ("acc_full without Intra-V (intra_v=False)", 75.55), ("acc_weak without Intra-V (intra_v=False)", 73.66)]),
    "avsdn": ({"classifier": "avsdn", **_NO_ATT}, (75.4, 74.2), [
        ("acc_full (Tables 4.1/4.3/4.6)", 75.4), ("acc_weak (Tables 4.2/4.4/4.5/4.7)", 74.2),
        ("acc_weak init_state=visual (Table 4.5)", 70.2), ("acc_weak init_state=audio (Table 4.5)", 70.9),
        ("acc_weak label guided (Table 4.5; init_state=sum, label_guided_weight=1)", 72.6)]),
    "cmcoatt-avsdn": ({"classifier": "avsdn", **_COATT}, (77.86, 75.85), [
        ("acc_full (Tables 4.3/4.6/4.8, best)", 77.86), ("acc_weak (Tables 4.4/4.7, best)", 75.85),
        ("acc_full without Intra-V (intra_v=False)", 76.02), ("acc_weak without Intra-V (intra_v=False)", 75.15)]),
}

for _id, (_cfg, (_full, _weak), _reported) in _IDS.items():
    register_model(
        _id,
        defaults={**_BASE, **_cfg},
        weights=[Weights(tag="ave", hub_repo=None, dataset="AVE", metrics={"acc_full": _full, "acc_weak": _weak},
                         notes=_NO_WEIGHTS.format(id=_id))],
        reported=dict(_reported),
        task=_TASK,
        paper=_PAPER,
        input=_INPUT,
        label_names=AVE_CLASSES,
        family="ave",
    )(AVEventLocalizer)
