"""A tiny STMN trains and tests on a synthetic VID-format dataset through `mmzoo fit` / `mmzoo test`
(the real DataModule, LightningCLI and Trainer), and `predict_video` writes its outputs."""
import json
from pathlib import Path

import pytest
import torch

from mmzoo.cli import main as mmzoo_main
from mmzoo.data.synthetic.vid import write_vid
from mmzoo.models.stmn import STMN
from mmzoo.predict.stmn import predict_video

TINY = ["--model.backbone", "resnet18", "--model.pretrained_backbone", "false", "--model.head_channels", "16",
        "--model.embed_channels", "24", "--model.mem_channels", "8", "--model.anchor_sizes", "[16, 32, 64]",
        "--model.rpn_pre_nms_train", "200", "--model.rpn_pre_nms_test", "100", "--model.rpn_post_nms_train", "40",
        "--model.rpn_post_nms_test", "30", "--model.roi_batch_size", "32", "--model.test_window", "6",
        "--model.seq_nms_top_k", "5", "--model.max_dets", "50", "--model.lr", "0.01"]
DATA = ["--data.num_workers", "0", "--data.short_side", "64", "--data.max_side", "96", "--data.num_frames", "3",
        "--data.eval_window", "6", "--data.batch_size", "2"]
TRAINER = ["--trainer.accelerator", "cpu", "--trainer.devices", "1", "--trainer.logger", "false",
           "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


@pytest.fixture(scope="module")
def vid_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("vid")
    truth = write_vid(root, num_train=3, num_val=2, num_frames=10, det_images=2, seed=3)
    return root, truth


def test_fit_then_test_through_cli(vid_root, tmp_path):
    root, truth = vid_root
    torch.manual_seed(0)
    mmzoo_main(["fit", "--model", "stmn-r101", "--data", "vid", "--data.root", str(root),
                "--data.det_list", "ImageSets/DET/train_vid30.txt", *TINY, *DATA, *TRAINER,
                "--trainer.max_steps", "3", "--trainer.limit_val_batches", "0",
                "--trainer.default_root_dir", str(tmp_path)])
    ckpts = sorted(Path(tmp_path).rglob("last.ckpt"))
    assert ckpts, "fit wrote no checkpoint"
    ckpt = torch.load(ckpts[0], map_location="cpu", weights_only=False)
    assert ckpt["global_step"] == 3
    out = tmp_path / "results.json"
    mmzoo_main(["test", "--model", "stmn-r101", "--data", "vid", "--data.root", str(root), *TINY, *DATA, *TRAINER,
                "--ckpt_path", str(ckpts[0]), "--pretrained", "false", "--results_json", str(out),
                "--trainer.default_root_dir", str(tmp_path)])
    res = json.loads(out.read_text())
    m = res["metrics"]["test/map"]
    assert 0.0 <= m <= 1.0
    # FGFA's speed / size breakdown (motion IoU from the XML track ids) is reported by `mmzoo test`
    for k in ("motion_slow", "motion_medium", "motion_fast", "area_small", "area_medium", "area_large"):
        assert f"test/map/{k}" in res["metrics"]
    # `mmzoo predict --input` on a frame folder with the trained checkpoint draws and writes JSON
    snippet = root / "Data/VID/val/ILSVRC2015_val_00000000"
    mmzoo_main(["predict", "--model", "stmn-r101", "--input", str(snippet), "--ckpt_path", str(ckpts[0]),
                "--output_dir", str(tmp_path / "pred")])
    written = json.loads((tmp_path / "pred" / "detections.json").read_text())
    assert len(written["frames"]) == len(list(snippet.glob("*.JPEG")))
    assert len(list((tmp_path / "pred" / "frames").glob("*.jpg"))) == len(written["frames"])


def test_every_val_frame_evaluated_and_perfect_detections_score_one(vid_root):
    """The evaluation path (windows -> per-snippet buffers -> Seq-NMS -> metric) sees every frame."""
    from mmzoo.data.vid import VIDDataModule

    root, truth = vid_root
    dm = VIDDataModule(root=str(root), num_workers=0, short_side=64, max_side=96, eval_window=4)
    dm.setup("test")
    model = STMN(backbone="resnet18", pretrained_backbone=False, head_channels=16, embed_channels=24,
                 mem_channels=8, test_window=4, seq_nms=True)
    # replace the network by an oracle that returns the ground truth of each frame
    def oracle(video, sizes, proposals=None, **kw):
        return [{"boxes": b, "scores": torch.ones(len(b)), "labels": lab} for b, lab in zip(cur["boxes"], cur["labels"])]
    model.forward = oracle
    cur = {}
    for batch in dm.test_dataloader():
        cur = batch
        model.test_step(batch, 0)
    model.on_test_epoch_end()
    r = model.last_eval_result
    assert r["num_frames"] == sum(len(f) for f in truth["val"].values())
    assert abs(r["map"] - 1.0) < 1e-6
    assert "map/motion_fast" in r and "map/area_large" in r


def test_predict_video_on_frames_and_mp4(tmp_path, vid_root):
    import numpy as np

    from mmzoo.data.media import write_mp4

    root, _ = vid_root
    model = STMN(backbone="resnet18", pretrained_backbone=False, head_channels=16, embed_channels=24, mem_channels=8,
                 test_window=4, short_side=64, max_side=96, seq_nms_top_k=3, max_dets=20, test_score_thresh=0.0)
    folder = root / "Data/VID/val/ILSVRC2015_val_00000000"
    rec = predict_video(model, folder, tmp_path / "a", draw_threshold=0.0)
    assert len(rec["frames"]) == 10 and len(list((tmp_path / "a/frames").glob("*.jpg"))) == 10
    assert json.loads((tmp_path / "a/detections.json").read_text())["frames"][0]["frame"] == 0
    dets = [d for f in rec["frames"] for d in f["detections"]]
    assert dets and all(0 <= d["box"][0] <= d["box"][2] <= 96 for d in dets)
    frames = np.full((6, 64, 96, 3), 120, dtype=np.uint8)
    write_mp4(tmp_path / "v.mp4", frames, fps=10)
    rec2 = predict_video(model, tmp_path / "v.mp4", tmp_path / "b")
    assert len(rec2["frames"]) == 6 and (tmp_path / "b/detections.mp4").is_file()


def test_training_steps_reduce_the_loss(vid_root):
    """Plain SGD on one batch (RPN + OHEM RoI losses through the STMM) must lower the loss."""
    from mmzoo.data.vid import VIDDataModule

    root, _ = vid_root
    torch.manual_seed(0)
    dm = VIDDataModule(root=str(root), num_workers=0, short_side=64, max_side=96, num_frames=3, batch_size=2)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    m = STMN(backbone="resnet18", pretrained_backbone=False, head_channels=32, embed_channels=32, mem_channels=16,
             anchor_sizes=(16, 32, 48), rpn_pre_nms_train=200, rpn_post_nms_train=48, roi_batch_size=32, w_scale=1.0,
             ensemble="none")
    opt = torch.optim.SGD([p for p in m.parameters() if p.requires_grad], lr=0.3, momentum=0.9)
    m.train()
    first = None
    for _ in range(20):
        losses = m._losses(batch)
        loss = sum(losses.values())
        first = first if first is not None else {k: float(v) for k, v in losses.items()}
        opt.zero_grad()
        loss.backward()
        opt.step()
    last = {k: float(v) for k, v in m._losses(batch).items()}
    assert last["loss_cls"] < 0.7 * first["loss_cls"], (first, last)
    assert last["loss_rpn_cls"] < first["loss_rpn_cls"], (first, last)
