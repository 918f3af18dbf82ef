"""PSN's two-stage training through `mmzoo fit`: a tiny TSN recogniser first, then the sampler
against the frozen recogniser, on synthetic ActivityNet and FCVID (real mp4, the release's
annotation files, the real DataModules) where one class shows its evidence in 3 of 16 seconds
only. The trained sampler must pick those frames more often than uniform sampling does (3 / 16),
and `mmzoo test` must report mAP / hit@3 / top-1 beside the measured GFLOPs per video."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from mmzoo.cli import main as mmzoo_main
from mmzoo.data.activitynet import ActivityNetDataModule
from mmzoo.data.fcvid import FCVIDDataModule
from mmzoo.data.synthetic.activitynet import write_activitynet
from mmzoo.data.synthetic.fcvid import write_fcvid
from mmzoo.models.psn import PSN

N, M, SECONDS, RARE_SECONDS = 16, 3, 16, 3
TRAINER = ["--trainer.accelerator", "cpu", "--trainer.devices", "1", "--trainer.logger", "false",
           "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
           "--trainer.limit_val_batches", "0", "--seed_everything", "0"]  # fmt: skip
FRAMES = ["--data.num_workers", "0", "--data.batch_size", "6", "--data.num_frames", str(N), "--data.crop_size", "32",
          "--data.train_scale", "[32, 32]", "--data.test_scale", "32", "--data.test_crop_size", "32",
          "--data.flip", "false"]  # fmt: skip
TINY_REC = ["--model.backbone_layers", "[1, 1, 1, 1]", "--model.backbone_channels", "[8, 8, 16, 16]",
            "--model.stem_width", "8", "--model.dropout", "0.0", "--model.crop_size", "32"]  # fmt: skip
TINY_PSN = ["--model.recognizer_layers", "[1, 1, 1, 1]", "--model.recognizer_channels", "[8, 8, 16, 16]",
            "--model.recognizer_stem_width", "8", "--model.recognizer_dropout", "0.0", "--model.crop_size", "32",
            "--model.sampler_pretrained", "false", "--model.sampler_repeats", "[1, 1, 1]",
            "--model.sampler_channels", "[8, 16, 32, 64, 64]", "--model.crm_filters", "[32, 32, 32]",
            "--model.crm_out_dim", "32", "--model.num_segments", str(N), "--model.num_selected", str(M)]  # fmt: skip


def _two_stage(tmp_path: Path, data: str, root: Path, rec_id: str, psn_id: str) -> tuple[Path, dict]:
    """`mmzoo fit` the recogniser, then the sampler with it; `mmzoo test` the PSN."""
    torch.manual_seed(0)
    common = ["--data", data, "--data.root", str(root), *FRAMES, *TRAINER]
    mmzoo_main(["fit", "--model", rec_id, *common, *TINY_REC, "--model.pretrained_backbone", "false",
                "--model.training_mode", "frame", "--model.base_lr", "0.05", "--model.base_batch_size", "6",
                "--trainer.max_steps", "80", "--trainer.default_root_dir", str(tmp_path / "rec")])  # fmt: skip
    rec_ckpt = max((tmp_path / "rec").rglob("last.ckpt"))
    mmzoo_main(["fit", "--model", psn_id, *common, *TINY_PSN, "--model.recognizer_checkpoint", str(rec_ckpt),
                "--model.base_lr", "0.1", "--model.lr_steps", "[]", "--trainer.max_steps", "48",
                "--trainer.default_root_dir", str(tmp_path / "psn")])  # fmt: skip
    psn_ckpt = max((tmp_path / "psn").rglob("last.ckpt"))
    out = tmp_path / "results.json"
    mmzoo_main(["test", "--model", psn_id, *common, *TINY_PSN, "--ckpt_path", str(psn_ckpt), "--pretrained", "false",
                "--results_json", str(out), "--trainer.default_root_dir", str(tmp_path / "psn")])  # fmt: skip
    return psn_ckpt, json.loads(out.read_text())["metrics"]


def _evidence_rate(psn_ckpt: Path, dm, evidence: dict[str, list[int]], rare_label: int) -> tuple[float, float]:
    """Fraction of the frames PSN selects that carry evidence, on the rare class's test videos, and
    the same fraction for uniform sampling (M of the N segment frames)."""
    model = PSN.load_from_checkpoint(psn_ckpt, map_location="cpu").eval()
    dm.setup("test")
    hits = uniform_hits = total = 0
    uniform = [int(i) for i in ((torch.arange(M) * 2 + 1) * N // (2 * M))]
    for batch in dm.test_dataloader():
        with torch.no_grad():
            idx, _ = model.select(batch["video"])
        for i, vid in enumerate(batch["video_id"]):
            if int(batch["label"][i]) != rare_label:
                continue
            ev = set(evidence[vid])  # at 1 fps with N = seconds, segment j is second j
            assert batch["meta"][i]["frame_indices"] == list(range(N))
            hits += sum(int(j) in ev for j in idx[i])
            uniform_hits += sum(j in ev for j in uniform)
            total += M
    assert total > 0
    return hits / total, uniform_hits / total


def _check_metrics(metrics: dict, tiny: PSN) -> None:
    for key in ("test/mAP", "test/hit@3", "test/top1", "test/gflops_per_video"):
        assert key in metrics, sorted(metrics)
    # the measured cost is the sampler on N frames plus the recogniser on the M selected ones
    assert metrics["test/gflops_per_video"] == pytest.approx(tiny.cost_breakdown(32)["total"], rel=1e-5)


def _tiny_psn(num_classes: int) -> PSN:
    return PSN(num_classes=num_classes, num_segments=N, num_selected=M, recognizer_backbone="resnet50",
               recognizer_layers=[1, 1, 1, 1], recognizer_channels=[8, 8, 16, 16], recognizer_stem_width=8,
               recognizer_dropout=0.0, crop_size=32, sampler_pretrained=False, sampler_repeats=[1, 1, 1],
               sampler_channels=[8, 16, 32, 64, 64], crm_filters=[32, 32, 32], crm_out_dim=32)  # fmt: skip


def test_psn_two_stage_fit_on_activitynet_picks_the_rare_evidence(tmp_path):
    truth = write_activitynet(tmp_path / "anet", rare=["Spinning"], per_class={"training": 3, "validation": 4},
                              num_seconds=SECONDS, rare_seconds=RARE_SECONDS, seed=3)
    ckpt, metrics = _two_stage(tmp_path, "activitynet", truth["root"], "tsn-r50", "psn-r50-anet")
    _check_metrics(metrics, _tiny_psn(3))
    dm = ActivityNetDataModule(root=str(truth["root"]), batch_size=6, num_workers=0, num_frames=N, crop_size=32,
                               train_scale=(32, 32), test_scale=32, test_crop_size=32)
    rate, uniform = _evidence_rate(ckpt, dm, {v: e["evidence"] for v, e in truth["videos"].items()},
                                   truth["classes"].index("Spinning"))
    print(f"ActivityNet rare class: PSN picks evidence {rate:.2f} of the time, uniform sampling {uniform:.2f}")
    assert rate > uniform


def test_psn_two_stage_fit_on_fcvid_picks_the_rare_evidence(tmp_path):
    truth = write_fcvid(tmp_path / "fcvid", rare=["panda"], per_class={"train": 3, "test": 4}, num_seconds=SECONDS,
                        rare_seconds=RARE_SECONDS, seed=3)
    ckpt, metrics = _two_stage(tmp_path, "fcvid", truth["root"], "tsn-r101", "psn-r101-fcvid")
    _check_metrics(metrics, _tiny_psn(3))
    dm = FCVIDDataModule(root=str(truth["root"]), batch_size=6, num_workers=0, num_frames=N, crop_size=32,
                         train_scale=(32, 32), test_scale=32, test_crop_size=32)
    evidence = {rel.rsplit(".", 1)[0]: v["evidence"] for rel, v in truth["videos"].items()}
    rate, uniform = _evidence_rate(ckpt, dm, evidence, truth["classes"].index("panda"))
    print(f"FCVID rare class: PSN picks evidence {rate:.2f} of the time, uniform sampling {uniform:.2f}")
    assert rate > uniform
