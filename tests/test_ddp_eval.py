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

Every other registered DataModule's evaluation (``FAMILIES``) is checked the same way, in one
2-process launch shared by all of them: EPIC-Kitchens verb / noun / action top-k with the unseen
and tail subsets (IPL) and the action-prior accuracies (SAOA, objects file), EGTEA mean class
accuracy, Charades mAP / wAP (max over views), ActivityNet and FCVID official mAP / hit@k and the
measured GFLOPs (TSN, PSN), DAVIS J&F with recall and decay, JHMDB PCK, VIP part mIoU and
instance AP^r_vol (label propagation), Something-Something top-k (STRG), UCF101 / HMDB51 video
and clip accuracy (transfer), ESC-50 / DCASE 2014 clip and window accuracy (audio probe), and
Arrow of Time (T-CAM). Run with the padding sampler, every family but Arrow of Time (whose test
set is always even, so nothing is padded) fails here: the mean loss changes (a repeated sample
weighs twice), and so do the per-sample metrics (clip / window accuracy, J&F, PCK, mIoU, AP^r_vol);
the metrics that average views per video index are unchanged by a repeated view.

Not exact under DDP, and not tested for equality: the evaluations whose inputs are built from the
other samples of a batch, since sharding changes which samples share a batch: the sync accuracy of
AVTS (easy negatives: another video's audio in the batch) and Multisensory (misaligned audio drawn
per batch from a generator seeded by the batch index), L3-Net's correspondence accuracy on AudioSet (negative
pairs inside the batch), and TimeCycle's loss on unlabelled clips (``video-folder``: the patches
of the i-th sample of every batch come from one seeded draw, so they depend on its position in its
batch). Those numbers also change with the batch size on one process.
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


# --------------------------------------------------------------------------- the other families, one 2-process launch
_CLIP = ["--data.num_frames", "8", "--data.crop_size", "32", "--data.train_scale", "[32,40]", "--data.test_scale", "32",
         "--data.test_crop_size", "32", "--data.num_crops", "1"]
_UNTRIMMED = ["--data.crop_size", "32", "--data.train_scale", "[32,40]", "--data.test_scale", "32",
              "--data.test_crop_size", "32"]
_IPL = ["--model.width_multiplier", "0.125", "--model.frames", "8", "--model.crop_size", "32", "--model.top_k", "2"]
_NONLOCAL = ["--model.depth", "14", "--model.width", "8", "--model.frames", "8", "--model.crop_size", "32"]
_TSN = ["--model.backbone_layers", "[1,1,1,1]", "--model.backbone_channels", "[8,8,8,8]", "--model.stem_width", "8",
        "--model.crop_size", "32", "--model.pretrained_backbone", "false"]
_PSN = ["--model.num_segments", "8", "--model.num_selected", "3", "--model.recognizer_layers", "[1,1,1,1]",
        "--model.recognizer_channels", "[8,8,8,8]", "--model.recognizer_stem_width", "8", "--model.crop_size", "32",
        "--model.sampler_pretrained", "false", "--model.sampler_repeats", "[1,1,1]",
        "--model.sampler_channels", "[8,16,16,16,32]", "--model.crm_filters", "[8,8,8]", "--model.crm_out_dim", "8"]
_PROPAGATION = ["--model.depth", "10", "--model.width", "8", "--model.pretrained_backbone", "false",
                "--model.frame_size", "32", "--data.frame_size", "32", "--data.batch_size", "1"]
_STRG = ["--model.depth", "14", "--model.width", "8", "--model.frames", "8", "--model.crop_size", "32",
         "--model.node_dim", "16", "--model.pretrained_backbone", "false", "--model.stem_temporal_stride", "1",
         "--model.nonlocal_placement", "custom", "--model.nonlocal_positions", "[[], [0], [0], []]",
         "--data.proposals", "strg_proposals.safetensors", "--data.proposal_frames", "4"]
_TRANSFER = ["--model.source_kwargs", json.dumps(dict(depth=14, width=8, slow_frames=2, alpha=4, crop_size=32,
                                                      audio_frames=32, mel_bins=16, mode="ssl")),
             *_CLIP, "--data.alpha", "4", "--data.num_clips", "1",
             "--data.audio_num_frames", "32", "--data.audio_n_mels", "16"]
_PROBE = ["--model.source_kwargs", json.dumps(dict(widths=[4, 8, 8, 16], fusion_dim=8))]
_TCAM = ["--model.flow_frames", "2", "--model.widths", "[4,8,8,16,16]", "--model.crop_size", "32",
         "--data.flow_frames", "2", "--data.short_side", "32", "--data.crop_size", "32", "--data.flow_method", "farneback"]

#: family: (model id, data, flags, the metrics that must be present). Evaluation sets (samples
#: = views, all odd but one): EPIC-100 val 5 segments (IPL; SAOA with the objects file); EGTEA
#: split-1 test 5 clips; Charades test 3 videos x 3 clips; ActivityNet / FCVID 3 videos; DAVIS /
#: JHMDB / VIP 3 sequences (batch 1); Something-Something v1 validation 3 videos; UCF101 / HMDB51
#: split-1 test 3 clips; ESC-50 fold 1, 3 clips of several windows each; DCASE 2014 fold 1, 3
#: recordings x 3 windows; Arrow of Time 3 videos x 2 directions (always even, since every video is
#: played both ways: no padding with 2 processes, but the two plays of a video land on different
#: ranks).
FAMILIES = {
    "epic-kitchens": ("ipl-i3d-rgb", "epic-kitchens", [
        *_IPL, "--model.num_verbs", "5", "--model.num_nouns", "6", *_CLIP, "--data.num_clips", "1",
        "--data.batch_size", "2"], ("test/verb_top1", "test/noun_top5", "test/action_top1", "test/unseen_action_top1",
                                    "test/tail_verb_top1", "test/loss")),
    "epic-kitchens-objects": ("saoa-r50-rgb", "epic-kitchens", [
        "--model.width_multiplier", "0.125", "--model.frames", "8", "--model.crop_size", "32", "--model.object_dim", "16",
        "--model.num_objects", "10", "--model.num_verbs", "5", "--model.num_nouns", "6", *_CLIP, "--data.num_clips", "1",
        "--data.objects", "objects/EPIC_objects.h5", "--data.batch_size", "2"],
        ("test/action_top5", "test/unseen_noun_top1", "test/action_prior_top1", "test/action_prior_top5", "test/loss")),
    "egtea": ("ipl-i3d-rgb", "egtea", [
        *_IPL, "--model.num_verbs", "4", "--model.num_nouns", "3", *_CLIP, "--data.num_clips", "1",
        "--data.batch_size", "2"], ("test/action_top1", "test/action_mean_class_accuracy", "test/loss")),
    "charades": ("i3d-r101-charades", "charades", [
        *_NONLOCAL, *_CLIP, "--data.train_resize", "32", "--data.num_clips", "3", "--data.batch_size", "2"],
        ("test/mAP", "test/wAP", "test/loss")),
    "activitynet": ("tsn-r50", "activitynet", [*_TSN, *_UNTRIMMED, "--data.num_frames", "4", "--data.batch_size", "2"],
                    ("test/mAP", "test/hit@3", "test/top1", "test/gflops_per_video", "test/loss")),
    "fcvid": ("psn-r101-fcvid", "fcvid", [*_PSN, *_UNTRIMMED, "--data.num_frames", "8", "--data.batch_size", "2"],
              ("test/mAP", "test/top1", "test/gflops_per_video", "test/loss")),
    "davis2017": ("labelprop-random-r50", "davis2017", _PROPAGATION, ("test/JF_mean", "test/J_decay", "test/F_recall")),
    "jhmdb": ("labelprop-random-r50", "jhmdb", _PROPAGATION, ("test/pck@0.1", "test/pck@0.2")),
    "vip": ("labelprop-random-r50", "vip", _PROPAGATION, ("test/mIoU", "test/APr_vol")),
    "something-something": ("strg-i3d-r50-sthv1", "something-something", [
        *_STRG, *_CLIP, "--data.num_clips", "1", "--data.batch_size", "2"], ("test/top1", "test/top5", "test/loss")),
    "ucf101": ("transfer", "ucf101", [*_TRANSFER, "--data.batch_size", "2"], ("test/top1", "test/clip_top1", "test/loss")),
    "hmdb51": ("transfer", "hmdb51", [*_TRANSFER, "--data.batch_size", "2"], ("test/top1", "test/clip_top1", "test/loss")),
    "esc50": ("audio-probe", "esc50", [*_PROBE, "--data.batch_size", "2"], ("test/top1", "test/window_top1", "test/loss")),
    "dcase2014": ("audio-probe", "dcase2014", [*_PROBE, "--data.num_windows", "3", "--data.batch_size", "2"],
                  ("test/top1", "test/window_top1", "test/loss")),
    "arrow-of-time": ("aot-tcam-vgg16", "arrow-of-time", [*_TCAM, "--data.batch_size", "2"], ("test/top1", "test/loss")),
}


def _write_family(family: str, root: Path) -> None:
    from mmzoo.data import synthetic
    from mmzoo.data.synthetic.dcase2014 import write_dcase2014
    from mmzoo.data.synthetic.esc50 import write_esc50
    from mmzoo.data.synthetic.something_something import write_something_something

    if family.startswith("epic-kitchens"):  # P01 is the unseen participant of the synthetic validation set
        val = ["P01_11", "P02_12", "P04_13", "P05_14", "P06_15"]
        synthetic.write_epic(root, videos={"train": ["P01_01"], "val": val, "test": ["P03_101"]}, segments_per_video=1,
                             num_frames=40, write_videos=False, write_objects=family == "epic-kitchens-objects")
    elif family == "egtea":
        synthetic.write_egtea(root, clips_per_action=3, num_frames=16)
    elif family == "charades":
        synthetic.write_charades(root, num_videos={"train": 1, "test": 3}, num_frames=24, size=(32, 40))
    elif family == "activitynet":
        synthetic.write_activitynet(root, per_class={"training": 1, "validation": 1}, num_seconds=4)
    elif family == "fcvid":
        synthetic.write_fcvid(root, per_class={"train": 1, "test": 1}, num_seconds=4)
    elif family == "davis2017":
        synthetic.write_davis(root, sequences={"val": ["a", "b", "c"], "train": ["t"]}, num_frames=4, num_objects=2)
    elif family == "jhmdb":
        synthetic.write_jhmdb(root, classes={"wave": {"a": 2, "b": 2, "c": 2, "t": 1}}, num_frames=4)
    elif family == "vip":
        synthetic.write_vip(root, splits={"val": ["a", "b", "c"], "train": ["t"]}, num_frames=4)
    elif family == "something-something":
        write_something_something(root, "v1", num_videos={"train": 1, "validation": 3}, num_frames=12, size=(32, 40))
    elif family in ("ucf101", "hmdb51"):
        getattr(synthetic, f"write_{family}")(root, num_frames=8)
    elif family == "esc50":
        write_esc50(root, seconds=2.0)
    elif family == "dcase2014":
        write_dcase2014(root, seconds=2.0)
    elif family == "arrow-of-time":
        synthetic.write_aot_folder(root, train=1, test=3, num_frames=6)


def _family_args(family: str, base: Path, out: Path) -> list[str]:
    model, data, flags, _ = FAMILIES[family]
    return ["test", "--model", model, "--data", data, "--data.root", str(base / family), *_COMMON, *flags,
            "--results_json", str(out), "--trainer.default_root_dir", str(out.parent / out.stem)]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


#: What each of the two processes runs: ``mmzoo test`` once per family, in one process group.
_RANK_SCRIPT = ("import json, sys\nfrom mmzoo.cli import main\nfor argv in json.load(open(sys.argv[1])):\n"
                "    print('=== mmzoo', *argv[:5], flush=True)\n    main(argv)\n")


@pytest.fixture(scope="module")
def two_process_metrics(tmp_path_factory) -> tuple[Path, dict[str, dict]]:
    """Every FAMILIES case through ``mmzoo test --trainer.devices 2 --trainer.strategy ddp`` in
    one launch: two interpreters started the way ``torchrun`` starts them (``LOCAL_RANK``,
    ``WORLD_SIZE``, ``MASTER_ADDR`` / ``MASTER_PORT``, so Lightning launches nothing itself), each
    running the CLI for every family in turn (one interpreter start for all of them)."""
    import time

    base = tmp_path_factory.mktemp("ddp_families")
    for family in FAMILIES:
        _write_family(family, base / family)
    runs = [[*_family_args(f, base, base / f"{f}-two.json"), "--trainer.devices", "2", "--trainer.strategy", "ddp"]
            for f in FAMILIES]
    (base / "runs.json").write_text(json.dumps(runs))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PL_")}
    env.update(OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_free_port()),
               WORLD_SIZE="2", NODE_RANK="0")
    procs, logs = [], []
    for rank in range(2):
        logs.append(open(base / f"rank{rank}.log", "w"))
        procs.append(subprocess.Popen([sys.executable, "-c", _RANK_SCRIPT, str(base / "runs.json")], cwd=base,
                                      env={**env, "LOCAL_RANK": str(rank), "RANK": str(rank)}, stdout=logs[-1],
                                      stderr=subprocess.STDOUT))
    deadline = time.monotonic() + 600
    while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
        if any(p.poll() not in (None, 0) for p in procs):  # one rank failed: the other would wait in a collective
            break
        time.sleep(0.2)
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait()
    for log in logs:
        log.close()
    failed = [r for r, p in enumerate(procs) if p.returncode != 0]
    assert not failed, "mmzoo test on 2 processes failed:\n" + "\n".join(
        (base / f"rank{r}.log").read_text()[-3000:] for r in failed)
    return base, {f: json.loads((base / f"{f}-two.json").read_text())["metrics"] for f in FAMILIES}


@pytest.mark.slow
@pytest.mark.parametrize("family", list(FAMILIES))
def test_two_processes_give_the_metrics_of_one_every_family(family, two_process_metrics):
    base, two_all = two_process_metrics
    out = base / f"{family}-one.json"
    from mmzoo.cli import main

    main([*_family_args(family, base, out), "--trainer.devices", "1"])
    one, two = json.loads(out.read_text())["metrics"], two_all[family]
    assert set(one) == set(two)
    assert all(k in one for k in FAMILIES[family][3]), one
    for key in one:
        assert two[key] == pytest.approx(one[key], rel=1e-5, abs=1e-6, nan_ok=True), (key, one, two)
