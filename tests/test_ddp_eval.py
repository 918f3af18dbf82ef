"""Exact evaluation under DDP (mmzoo.data.distributed): no sample is repeated to pad the last
batch, and ``mmzoo test`` on 2 CPU processes (gloo, Lightning's ``strategy="ddp"``) gives the
same metrics as on one process, for every kind of metric of the zoo: multi-view classification
(views of one video scored on different ranks), AVE per-segment accuracy, text-video retrieval,
VID mAP and COCO AP. Every evaluation set has a size that is not a multiple of 2 x the batch
size and is odd, so a padding sampler would score some samples twice and change the mean loss
or the metric (checked by running this file with the sampler replaced by Lightning's padding
one: the classification and AVE cases fail; retrieval is exact either way because T2VLAD drops
repeated videos itself, COCO because CocoEvaluation keeps one copy of a repeated image, and VID
because its snippet sharding never padded).

The multi-process runs are real ``mmzoo test`` subprocesses (Lightning re-launches the command
for rank 1), through the real CLI on synthetic datasets in the official layouts.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.data import SequentialSampler

from mmzoo.data.distributed import exact_eval_sampler
from mmzoo.errors import DataError


# --------------------------------------------------------------------------- the sampler
@pytest.mark.parametrize("n", [7, 8, 9])
def test_every_sample_exactly_once_over_ranks(n):
    data = list(range(n))
    shards = [list(exact_eval_sampler(data, None, 2, r)) for r in range(2)]
    assert shards[0] == list(range(0, n, 2)) and shards[1] == list(range(1, n, 2))
    assert sorted(shards[0] + shards[1]) == data  # a padding sampler gives n + n % 2 indices


def test_custom_order_is_kept_and_split_without_padding():
    data = list(range(5))
    order = [4, 2, 0, 3, 1]

    class Reversed(SequentialSampler):
        def __iter__(self):
            return iter(order)

    shards = [list(exact_eval_sampler(data, Reversed(data), 2, r)) for r in range(2)]
    assert shards == [[4, 0, 1], [2, 3]]


def test_fewer_samples_than_processes_is_a_clear_error():
    with pytest.raises(DataError, match="1 evaluation sample.*2 processes"):
        exact_eval_sampler([0], None, 2, 0)


# --------------------------------------------------------------------------- mmzoo test, 1 vs 2 processes
_COMMON = ["--pretrained", "false", "--seed_everything", "0", "--trainer.accelerator", "cpu", "--trainer.logger",
           "false", "--trainer.enable_progress_bar", "false", "--data.num_workers", "0"]
_SLOWFAST = ["--model.depth", "14", "--model.width", "8", "--model.slow_frames", "2", "--model.crop_size", "32"]
_AVE = ["--model.region_dim", "16", "--model.inter_hidden", "16", "--model.hidden_dim", "8"]
_T2VLAD = ["--model.text_encoder_config", json.dumps(dict(vocab_size=64, hidden_size=16, num_hidden_layers=1,
                                                          num_attention_heads=2, intermediate_size=64,
                                                          max_position_embeddings=64)),
           "--model.text_encoder_init", "random", "--model.embed_dim", "16", "--model.transformer_ffn_dim", "16",
           "--model.num_clusters", "3", "--model.text_max_tokens", "8"]
_MASKRCNN = ["--model.depth", "18", "--model.fpn_channels", "16", "--model.representation_size", "32",
             "--model.mask_head_channels", "16", "--model.min_size", "64", "--model.max_size", "96"]
_STMN = ["--model.backbone", "resnet18", "--model.pretrained_backbone", "false", "--model.head_channels", "16",
         "--model.embed_channels", "24", "--model.mem_channels", "8", "--model.anchor_sizes", "[16, 32, 64]",
         "--model.rpn_pre_nms_test", "100", "--model.rpn_post_nms_test", "30", "--model.test_window", "2",
         "--model.seq_nms_top_k", "5", "--model.max_dets", "50"]


def _write(family: str, root: Path) -> None:
    from mmzoo.data import synthetic

    if family == "kinetics":
        synthetic.write_kinetics(root, per_class={"train": 1, "val": 1}, num_frames=8)  # 3 videos x 3 clips
    elif family == "ave":
        synthetic.write_ave(root, num_videos_per_class=4, with_videos=False)  # 3 test videos
    elif family == "msrvtt":
        synthetic.write_msrvtt(root, num_videos=24, captions_per_video=2, num_mp4=0)  # 3 test videos
    elif family == "vid":
        synthetic.write_vid(root, num_train=1, num_val=3, num_frames=5)
    elif family == "coco":
        synthetic.write_coco(root, num_images={"train": 1, "val": 5})  # 5 images


#: (model id, data, flags, the metrics that must be present)
CASES = {
    "multiview-classification": ("slowfast-r50-4x16", "kinetics", [
        *_SLOWFAST, "--data.version", "any", "--data.num_frames", "8", "--data.crop_size", "32", "--data.train_scale",
        "[32,40]", "--data.test_scale", "32", "--data.test_crop_size", "32", "--data.num_clips", "3",
        "--data.num_crops", "1", "--data.batch_size", "4"], ("test/top1", "test/top5", "test/loss")),
    "ave-segment-accuracy": ("avel", "ave", [*_AVE, "--data.batch_size", "2"], ()),
    "retrieval": ("t2vlad", "msrvtt", [*_T2VLAD, "--data.batch_size", "2"], ()),
    "vid-map": ("stmn-r101", "vid", [*_STMN, "--data.short_side", "64", "--data.max_side", "96", "--data.num_frames",
                                     "2", "--data.eval_window", "2", "--data.batch_size", "1"], ()),
    "coco-ap": ("maskrcnn-r50-fpn", "coco", [*_MASKRCNN, "--data.batch_size", "2"], ("test/bbox/AP",)),
}


def _run_test(model: str, data: str, root: Path, flags: list[str], devices: int, out: Path) -> dict:
    args = ["test", "--model", model, "--data", data, "--data.root", str(root), *_COMMON, *flags, "--trainer.devices",
            str(devices), "--results_json", str(out), "--trainer.default_root_dir", str(out.parent / f"run{devices}")]
    if devices == 1:  # in this process (saves an interpreter start); the same CLI
        from mmzoo.cli import main

        main(args)
        return json.loads(out.read_text())["metrics"]
    argv = [sys.executable, "-m", "mmzoo.cli", *args, "--trainer.strategy", "ddp"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(argv, cwd=out.parent, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, f"mmzoo test on {devices} process(es) failed:\n{proc.stderr[-3000:]}"
    return json.loads(out.read_text())["metrics"]


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_two_processes_give_the_metrics_of_one(case, tmp_path):
    model, data, flags, required = CASES[case]
    root = tmp_path / data
    _write(data, root)
    one = _run_test(model, data, root, flags, 1, tmp_path / "one.json")
    two = _run_test(model, data, root, flags, 2, tmp_path / "two.json")
    assert set(one) == set(two)
    assert all(k in one for k in required), one
    for key in one:
        assert two[key] == pytest.approx(one[key], rel=1e-5, abs=1e-6, nan_ok=True), (key, one, two)


# --------------------------------------------------------------------------- COCO: repeated images
def test_coco_counts_a_repeated_image_once(tmp_path):
    """A padding DistributedSampler repeats images; CocoEvaluation keeps one copy of their
    detections (before the fix the repeated image's detections were scored twice: more false
    positives, and AP fell)."""
    from mmzoo.data.synthetic import write_coco
    from mmzoo.metrics.coco import CocoEvaluation

    coco = write_coco(tmp_path, num_images={"val": 3}, seed=3)
    cats = sorted(c["id"] for c in coco["categories"])
    preds = {}
    for im in coco["images"]["val"]:
        gts = [a for a in coco["annotations"]["val"] if a["image_id"] == im["id"] and not a["iscrowd"]]
        boxes = [[a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3]] for a in gts]
        preds[im["id"]] = {"boxes": torch.tensor(boxes, dtype=torch.float32).view(-1, 4),
                           "labels": torch.tensor([cats.index(a["category_id"]) + 1 for a in gts]),
                           "scores": torch.linspace(0.9, 0.5, len(gts))}
    ids = list(preds)
    once = CocoEvaluation(coco["json"]["val"], cats, iou_types=("bbox",))
    once.update([preds[i] for i in ids], ids)
    padded = CocoEvaluation(coco["json"]["val"], cats, iou_types=("bbox",))
    padded.update([preds[i] for i in ids[:2]], ids[:2])
    padded.update([preds[i] for i in ids[2:] + ids[:1]], ids[2:] + ids[:1])  # the first image again
    _, bbox_once, _ = once.results()
    _, bbox_padded, _ = padded.results()
    assert bbox_padded == bbox_once
    a, b = once.compute(), padded.compute()
    assert float(a["bbox/AP"]) == 100.0  # exact ground-truth boxes
    assert all(float(a[k]) == float(b[k]) for k in a)
