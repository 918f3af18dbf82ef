"""The SAOA objects file (boxes + RoI features per 2 fps frame), its reading around a clip's
centre, box geometry of the views, EPIC-55's object annotations as released, the EPIC DataModule's
``objects`` argument and the detector path (random-init torchvision Faster R-CNN)."""
from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from mmzoo.data.epic_kitchens import EpicKitchensDataModule
from mmzoo.data.epic_objects import (
    EpicObjectLabels,
    ObjectFile,
    build_detector,
    extract_objects,
    grid_frames,
    train_detector,
    view_boxes,
    view_window,
    write_objects,
)
from mmzoo.data.synthetic import write_epic
from mmzoo.data.synthetic.epic_kitchens import OBJECT_DIM, object_box, object_feature
from mmzoo.data.video_dataset import AnnotationError, ClipConfig, LayoutError


def _one_video(path, frames=(1, 31, 61, 91, 121), counts=(2, 2, 1, 2, 0)):
    n = len(frames)
    boxes = np.zeros((n, 2, 4), np.float32)
    boxes[:, 0] = (10, 20, 30, 40)
    boxes[:, 1] = (0, 0, 100, 50)
    feats = np.zeros((n, 2, 3), np.float32)
    for i, f in enumerate(frames):
        feats[i, :, 0], feats[i, :, 1] = f, (0, 1)
    return write_objects(path, {"P01_01": {"frames": np.array(frames), "boxes": boxes, "scores": np.ones((n, 2), np.float32),
                                               "counts": np.array(counts), "features": feats, "width": 100, "height": 50, "fps": 60.0}},
                         feature_dim=3, top_k=2, fps=2.0, detector="test")


def test_grid_frames_at_2_fps():
    assert grid_frames(1, 100, 60.0, 2.0) == [1, 31, 61, 91]
    assert grid_frames(20, 70, 60.0) == [31, 61]
    assert grid_frames(1, 40, 25.0) == [1, 14, 26, 39]  # 1 + round(12.5 k)


def test_window_picks_the_nearest_grid_frames_around_the_centre(tmp_path):
    f = ObjectFile(_one_video(tmp_path / "o.h5"), num_frames=2)
    assert (f.feature_dim, f.top_k, f.fps, f.num_objects, f.detector) == (3, 2, 2.0, 4, "test")
    w = f.window("P01_01", 76.0)  # wants 61 and 91 (76 -/+ 15 frames at 60 fps)
    assert w["features"][:, 0].tolist() == [61, 0, 91, 91]  # padding rows are zero
    assert w["features"][:, 1].tolist() == [0, 0, 0, 1]  # frame 61 keeps one box only
    assert w["mask"].tolist() == [True, False, True, True]
    assert w["times"].tolist() == [-0.25, -0.25, 0.25, 0.25]  # every slot carries its frame's time
    assert torch.allclose(w["boxes"][0], torch.tensor([0.1, 0.4, 0.3, 0.8]))  # / (100, 50)
    assert torch.allclose(w["boxes"][3], torch.tensor([0.0, 0.0, 1.0, 1.0]))
    assert f.missing_frames == 0
    w = f.window("P01_01", 140.0)  # wants 125 (-> 121, no box) and 155 (past the stored frames)
    assert not w["mask"].any() and f.missing_frames == 1
    with pytest.raises(LayoutError, match="no detections for video P09_09"):
        f.window("P09_09", 1.0)


def test_the_file_is_checked(tmp_path):
    with pytest.raises(LayoutError, match="not found"):
        ObjectFile(tmp_path / "none.h5")
    with h5py.File(tmp_path / "x.h5", "w") as h:
        h.attrs["format"] = "something else"
    with pytest.raises(LayoutError, match="not an mmzoo objects file"):
        ObjectFile(tmp_path / "x.h5")
    with pytest.raises(ValueError, match="features has shape"):
        write_objects(tmp_path / "y.h5", {"P01_01": {"frames": [1], "boxes": np.zeros((1, 2, 4)), "scores": np.zeros((1, 2)),
                                                         "counts": [1], "features": np.zeros((1, 2, 5)), "width": 1, "height": 1,
                                                         "fps": 60}}, feature_dim=3, top_k=2)


def test_view_geometry_by_hand():
    # a 48 x 64 frame, short side 32 -> 32 x 42, centre crop 32: x from 5 to 37 of 42
    cfg = ClipConfig(train=False, test_scale=32, test_crop_size=32, num_crops=1)
    assert view_window(cfg, 0, (48, 64)) == pytest.approx((5 / 42, 0.0, 37 / 42, 1.0))
    cfg3 = ClipConfig(train=False, test_scale=32, test_crop_size=32, num_crops=3)
    assert view_window(cfg3, 2, (48, 64)) == pytest.approx((10 / 42, 0.0, 1.0, 1.0))
    b = torch.tensor([[0.5, 0.25, 1.0, 0.75]])
    assert torch.allclose(view_boxes(b, (0.0, 0.0, 1.0, 1.0), (32, 64)), torch.tensor([[32.0, 8.0, 64.0, 24.0]]))
    assert torch.allclose(view_boxes(b, (0.5, 0.0, 1.0, 1.0), (32, 32)), torch.tensor([[0.0, 8.0, 32.0, 24.0]]))
    # flipped: x -> W - x; a box left of the window is clipped to an empty box at x = 0
    assert torch.allclose(view_boxes(b, (0.5, 0.0, 1.0, 1.0), (32, 32), flipped=True), torch.tensor([[0.0, 8.0, 32.0, 24.0]]))
    assert torch.allclose(view_boxes(torch.tensor([[0.1, 0.0, 0.2, 1.0]]), (0.5, 0.0, 1.0, 1.0), (32, 32)),
                          torch.tensor([[0.0, 0.0, 0.0, 32.0]]))


def test_object_labels_as_released(tmp_path):
    out = write_epic(tmp_path / "epic", version="55", write_videos=False, write_frames=False, write_objects=True)
    labels = EpicObjectLabels(out["object_labels"], num_nouns=6)
    # (top, left, height, width) = (2, 4, 10, 20) -> x0, y0, x1, y1 = 4, 2, 24, 12
    assert labels.images[("P01_01", 1)] == [(4.0, 2.0, 24.0, 12.0, 0)]
    assert labels.images[("P01_01", 31)] == [(0.0, 0.0, 8.0, 8.0, 1), (30.0, 20.0, 46.0, 32.0, 1)]
    assert labels.images[("P01_01", 61)] == []  # annotated, not visible
    ds = labels.dataset(tmp_path / "epic")
    assert len(ds) == 4  # two frames with boxes per training video
    img, target = ds[1]
    assert img.shape == (3, 48, 64) and target["labels"].tolist() == [2, 2]  # noun 1 + background
    bad = tmp_path / "bad.csv"
    bad.write_text("noun_class,noun,participant_id,video_id,frame,bounding_boxes\n0,plate,P01,P01_01,1,\"[(1, 2)]\"\n")
    with pytest.raises(AnnotationError, match=r"bad.csv:2: box"):
        EpicObjectLabels(bad)
    with pytest.raises(AnnotationError, match="outside"):
        EpicObjectLabels(out["object_labels"], num_nouns=2)


def _dm(root, **kw):
    args = {"version": "55", "num_frames": 8, "stride": 2, "crop_size": 32, "train_scale": [32, 32], "test_scale": 32,
                "test_crop_size": 32, "num_clips": 1, "num_crops": 1, "batch_size": 2, "num_workers": 0}
    return EpicKitchensDataModule(str(root), **{**args, **kw})


def test_datamodule_adds_the_objects_of_each_clip(tmp_path):
    out = write_epic(tmp_path / "epic", version="55", write_videos=False, write_objects=True)
    dm = _dm(out["root"], objects="objects/EPIC_objects.h5")
    dm.setup("fit")
    batch = next(iter(dm.val_dataloader()))
    assert batch["object_features"].shape == (2, 60, OBJECT_DIM) and batch["object_mask"].shape == (2, 60)
    meta = batch["meta"][0]
    idx = meta["frame_indices"]
    centre = (idx[0] + idx[-1]) / 2
    # at 30 fps the grid frames are 1, 16, 31, ...; frame j of the 12 is the one nearest centre + 15 (j - 5.5)
    feats, mask = batch["object_features"][0], batch["object_mask"][0]
    read = sorted({float(feats[i, 0]) for i in range(60) if mask[i] and feats[i, 1] == 0})
    want = sorted({1 + 15 * round((centre + 15 * (j - 5.5) - 1) / 15) for j in range(12)} & set(range(1, 91)))
    assert read == want
    i = int(torch.nonzero(mask)[0])
    k = int(feats[i, 1])
    assert torch.allclose(feats[i], torch.from_numpy(object_feature(int(feats[i, 0]), k)))
    # boxes in pixels of the 32 x 32 view: the 48 x 64 frame at short side 32 is 32 x 42, cropped at x = 5
    x0, y0, x1, y1 = object_box(k)
    sx, sy = 42 / 64, 32 / 48
    want_box = torch.tensor([x0 * sx - 5, y0 * sy, x1 * sx - 5, y1 * sy]).clamp(0, 32)
    assert torch.allclose(batch["object_boxes"][0, i], want_box, atol=1e-4)


def test_stage2_trains_on_the_full_view_by_default(tmp_path):
    out = write_epic(tmp_path / "epic", version="55", write_videos=False, write_objects=True)
    kw = {"objects": "objects/EPIC_objects.h5", "train_scale": [40, 48], "crop_size": 24}
    full = _dm(out["root"], **kw)
    full.setup("fit")
    train, val = full.datasets["train"], full.datasets["val"]
    ref = type(train.inner)(train.inner.records, full.eval_cfg)  # the test view of the same segment,
    ref.defer_geometry = False  # as a wrapped dataset gives it (the float view its boxes are placed in)
    a, b = train[0], ref[0]
    assert a["video"].shape[-2:] == (32, 32)  # test_crop_size, not the 24 training crop
    assert a["meta"]["frame_indices"] == b["meta"]["frame_indices"] and not a["meta"]["flipped"]
    assert torch.equal(a["video"], b["video"])
    rnd = _dm(out["root"], objects_train_view="random", **kw)
    rnd.setup("fit")
    assert rnd.datasets["train"][0]["video"].shape[-2:] == (24, 24)
    assert val.inner.cfg.train is False
    with pytest.raises(ValueError, match="objects_train_view"):
        _dm(out["root"], objects_train_view="crop")


def test_datamodule_reports_videos_without_detections(tmp_path):
    out = write_epic(tmp_path / "epic", version="55", write_videos=False, write_objects=True)
    path = out["objects"]
    with h5py.File(path, "a") as h:
        del h["videos"]["P26_01"]
    with pytest.raises(LayoutError, match=r"1 video\(s\) of the val split have no detections.*P26_01.*objects_missing"):
        _dm(out["root"], objects=path).setup("fit")
    dm = _dm(out["root"], objects=path, objects_missing="empty")
    with pytest.warns(UserWarning, match="without detections"):
        dm.setup("fit")
    assert dm.objects_missing_videos == ["P26_01"]
    batch = next(iter(dm.val_dataloader()))
    assert not batch["object_mask"].any()


def test_detector_path_writes_the_file_the_datamodule_reads(tmp_path):
    out = write_epic(tmp_path / "epic", version="55", write_videos=False, write_objects=True, num_frames=50,
                     segments_per_video=1)
    dm = _dm(out["root"])
    torch.manual_seed(0)
    det = build_detector(num_classes=7, backbone="resnet18", min_size=48, max_size=64, box_score_thresh=0.0)
    path = extract_objects(dm, tmp_path / "det.h5", det, splits=("train", "val"), video_fps=30.0, progress=False)
    f = ObjectFile(path)
    assert f.feature_dim == 256 and f.top_k == 5 and f.video_ids == {"P01_01", "P26_01"}
    with h5py.File(path) as h:
        g = h["videos"]["P01_01"]
        # segment frames 6..30 widened by 3 s (90 frames) on both sides, within the 50 frames: 1, 16, 31, 46
        assert g["frames"][()].tolist() == [1, 16, 31, 46]
        assert (g.attrs["width"], g.attrs["height"]) == (64, 48)
        counts = g["counts"][()]
        assert (counts == 5).all()  # a random detector with no score threshold fills every slot
        boxes = g["boxes"][()]
        assert (boxes[..., 2] >= boxes[..., 0]).all() and (boxes[..., 2] <= 64).all()
    dm2 = _dm(out["root"], objects=str(path))
    dm2.setup("fit")
    assert next(iter(dm2.val_dataloader()))["object_features"].shape == (1, 60, 256)


def test_detector_fine_tunes_on_the_object_annotations(tmp_path):
    out = write_epic(tmp_path / "epic", version="55", write_videos=False, write_frames=False, write_objects=True)
    ds = EpicObjectLabels(out["object_labels"], num_nouns=6).dataset(tmp_path / "epic")
    torch.manual_seed(0)
    det = build_detector(num_classes=7, backbone="resnet18", min_size=48, max_size=64)
    w0 = det.roi_heads.box_predictor.cls_score.weight.detach().clone()
    train_detector(det, ds, iterations=1, lr_steps=(), batch_size=2, progress=False)
    assert not torch.equal(w0, det.roi_heads.box_predictor.cls_score.weight)
