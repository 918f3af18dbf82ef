"""Deferred training geometry (issue 14, "Data pipeline"): workers return the uint8 source region
of a crop + bilinear taps; the DataModule finishes the batch. The result must be exactly (float32
rounding) PySlowFast's training transform: ``F.interpolate(mode="bilinear", align_corners=False)``
of the whole native clip to the random short side, random crop, flip, ``(x / 255 - mean) / std``."""
from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from mmzoo.data import transforms as TF
from mmzoo.data.collate import collate_deferred
from mmzoo.data.decode import read_frames, read_video_clip
from mmzoo.data.kinetics import KineticsDataModule
from mmzoo.data.synthetic.kinetics import write_kinetics
from mmzoo.data.video_dataset import ClipConfig, ClipDataset, VideoRecord, collate_clips, finish_deferred_clips

MEAN, STD = TF.KINETICS_MEAN, TF.KINETICS_STD


def reference(frames: torch.Tensor, short: int, y0: int, x0: int, crop: int, flip: bool) -> torch.Tensor:
    """PySlowFast's order on the full float clip: scale (F.interpolate, floor of the long side),
    crop, flip, normalise."""
    x = frames.permute(3, 0, 1, 2).float() / 255.0
    h, w = frames.shape[1:3]
    nh, nw = (short, int(w * short / h)) if h <= w else (int(h * short / w), short)
    if (nh, nw) != (h, w):
        x = F.interpolate(x.transpose(0, 1), size=(nh, nw), mode="bilinear", align_corners=False).transpose(0, 1)
    x = x[..., y0 : y0 + crop, x0 : x0 + crop]
    if flip:
        x = x.flip(-1)
    return TF.normalize(x, MEAN, STD)


def deferred_item(frames, short, y0, x0, crop, flip, alpha=None):
    p = TF.crop_plan(frames.shape[1], frames.shape[2], short, y0, x0, crop, flip)
    ya, yb, xa, xb = p["region"]
    return {"region": frames[:, ya:yb, xa:xb].contiguous(), "rows": p["rows"], "row_w": p["row_w"],
            "cols": p["cols"], "col_w": p["col_w"], "mean": MEAN, "std": STD, "alpha": alpha,
            "pathway_mode": "linspace"}  # fmt: skip


def test_random_sizes_crops_flips_match_interpolate():
    g = torch.Generator().manual_seed(0)
    cases = [(240, 320, 256), (240, 320, 320), (31, 57, 40), (57, 31, 40), (100, 60, 37), (45, 45, 45), (81, 33, 17)]
    for _ in range(25):  # random odd / even, portrait / landscape, up- and downscaling
        h, w = (int(v) for v in torch.randint(9, 90, (2,), generator=g))
        cases.append((h, w, int(torch.randint(6, 120, (1,), generator=g))))
    for h, w, short in cases:
        frames = torch.randint(0, 256, (3, h, w, 3), dtype=torch.uint8, generator=g)
        nh, nw = TF.short_side_size(h, w, short)
        crop = int(torch.randint(1, min(nh, nw) + 1, (1,), generator=g))
        y0 = int(torch.randint(0, nh - crop + 1, (1,), generator=g))
        x0 = int(torch.randint(0, nw - crop + 1, (1,), generator=g))
        flip = bool(torch.rand((), generator=g) < 0.5)
        v = deferred_item(frames, short, y0, x0, crop, flip)
        got = TF.finish_crops(v["region"], v["rows"], v["row_w"], v["cols"], v["col_w"], MEAN, STD)
        torch.testing.assert_close(got, reference(frames, short, y0, x0, crop, flip), rtol=0, atol=1e-5,
                                   msg=f"{h}x{w} -> short {short}, crop {crop} at ({y0},{x0}), flip {flip}")


def test_taps_equal_interpolate_weights_exactly():
    """Each output pixel of F.interpolate is w0 * x[i0] + w1 * x[i1]: read the kernel's weights
    off the impulse responses and compare them bit for bit with the taps."""
    for n_in, n_out in [(65, 34), (240, 256), (320, 341), (7, 20), (20, 7), (1, 5), (5, 1), (33, 33)]:
        eye = torch.eye(n_in).view(n_in, 1, n_in, 1)
        m = F.interpolate(eye, size=(n_out, 1), mode="bilinear", align_corners=False)[:, 0, :, 0].T
        i0, i1, w = TF.bilinear_taps(n_in, n_out, 0, n_out)
        mine = torch.zeros(n_out, n_in)
        mine.index_put_((torch.arange(n_out), i0), 1 - w, accumulate=True)
        mine.index_put_((torch.arange(n_out), i1), w, accumulate=True)
        assert torch.equal(mine, m), (n_in, n_out)


def test_border_clamping_at_both_edges():
    """Upscaling: the first output pixels sit before source pixel 0 (src < 0 is clamped to 0,
    weight 0) and the last ones past the last source pixel (i1 stays at size - 1). A crop at
    the origin and one at the far corner, flipped and not, must match F.interpolate."""
    h, w, short, crop = 10, 13, 40, 9  # 10x13 -> 40x52: 4x upscaling
    i0, i1, wt = TF.bilinear_taps(h, 40, 0, 3)  # src = (d + 0.5) / 4 - 0.5 = -0.375, -0.125, 0.125
    assert i0.tolist() == [0, 0, 0] and wt.tolist() == [0.0, 0.0, 0.125] and i1.tolist() == [1, 1, 1]
    i0, i1, wt = TF.bilinear_taps(h, 40, 38, 2)
    assert i0.tolist() == [9, 9] and i1.tolist() == [9, 9]
    frames = torch.randint(0, 256, (2, h, w, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    nh, nw = TF.short_side_size(h, w, short)
    for y0, x0 in [(0, 0), (nh - crop, nw - crop), (0, nw - crop), (nh - crop, 0)]:
        for flip in (False, True):
            v = deferred_item(frames, short, y0, x0, crop, flip)
            got = TF.finish_crops(v["region"], v["rows"], v["row_w"], v["cols"], v["col_w"], MEAN, STD)
            torch.testing.assert_close(got, reference(frames, short, y0, x0, crop, flip), rtol=0, atol=1e-5)


def test_padded_batch_of_mixed_regions_and_alpha_packing():
    g = torch.Generator().manual_seed(2)
    shapes = [(48, 64, 50), (64, 48, 70), (30, 90, 32), (48, 64, 48)]  # different region sizes
    items, refs = [], []
    for h, w, short in shapes:
        frames = torch.randint(0, 256, (8, h, w, 3), dtype=torch.uint8, generator=g)
        nh, nw = TF.short_side_size(h, w, short)
        y0, x0 = nh - 24, (nw - 24) // 2
        flip = len(items) % 2 == 1
        items.append(deferred_item(frames, short, y0, x0, 24, flip, alpha=4))
        refs.append(reference(frames, short, y0, x0, 24, flip))
    b = collate_deferred(items)
    sizes = {tuple(v["region"].shape[1:3]) for v in items}
    assert len(sizes) > 1 and b["region"].shape[2:4] == (max(s[0] for s in sizes), max(s[1] for s in sizes))
    for i, v in enumerate(items):  # fill the padding with 255: it must never be read
        b["region"][i, :, v["region"].shape[1]:] = 255
        b["region"][i, :, :, v["region"].shape[2]:] = 255
    batched = TF.finish_crops(b["region"], b["rows"], b["row_w"], b["cols"], b["col_w"], MEAN, STD, batched=True)
    torch.testing.assert_close(batched, torch.stack(refs), rtol=0, atol=1e-5)  # the accelerator code path
    out = finish_deferred_clips({"video_deferred": b, "label": torch.arange(4)})
    slow, fast = out["video"]
    assert fast.shape == (4, 3, 8, 24, 24) and slow.shape == (4, 3, 2, 24, 24) and fast.is_contiguous()
    torch.testing.assert_close(fast, torch.stack(refs), rtol=0, atol=1e-5)
    assert torch.equal(slow, fast[:, :, [0, 7]])  # linspace(0, 7, 2)
    assert set(out) == {"video", "label"}
    with pytest.raises(ValueError, match="sample 1 .* other normalisation"):
        collate_deferred([items[0], {**items[1], "std": (1.0, 1.0, 1.0)}])


@pytest.fixture(scope="module")
def kin(tmp_path_factory):
    root = tmp_path_factory.mktemp("kin_deferred")
    return write_kinetics(root, classes=("a", "b"), per_class={"train": 2, "val": 1}, size=(50, 66), num_frames=24)


SMALL = dict(version="any", num_frames=4, stride=2, train_scale=(52, 70), crop_size=48, batch_size=4, num_workers=0)


def test_dataset_item_equals_reference_on_the_decoded_clip(kin):
    dm = KineticsDataModule(root=str(kin["root"]), alpha=2, deferred_geometry=True, **SMALL)
    dm.setup("fit")
    ds = dm.datasets["train"]
    torch.manual_seed(3)
    flips = set()
    for i in range(len(ds)):
        s = ds[i]
        assert "video" not in s and s["video_deferred"]["region"].dtype == torch.uint8
        m = s["meta"]
        native = read_video_clip(m["source"], frame_indices=m["frame_indices"]).frames  # 50x66 native
        ref = reference(native, m["short_side"], *m["crop_offset"], 48, m["flipped"])
        slow, fast = finish_deferred_clips(s)["video"]
        torch.testing.assert_close(fast, ref, rtol=0, atol=1e-5)
        assert torch.equal(slow, fast[:, [0, 3]])
        flips.add(m["flipped"])
    assert flips == {False, True}  # seeded: both branches seen
    off = KineticsDataModule(root=str(kin["root"]), deferred_geometry=False, **SMALL)
    off.setup("fit")
    assert off.datasets["train"][0]["video"].shape == (3, 4, 48, 48)  # the float path stays available


def test_auto_mode_finishes_in_the_worker_off_the_accelerator(kin):
    """deferred_geometry=None (default) without a Trainer, or with a CPU one: the worker returns
    the finished clip, the same tensors the deferred path gives after finish_deferred_clips."""
    auto = KineticsDataModule(root=str(kin["root"]), alpha=2, **SMALL)
    auto.setup("fit")
    deferred = KineticsDataModule(root=str(kin["root"]), alpha=2, deferred_geometry=True, **SMALL)
    deferred.setup("fit")
    for i in range(3):
        torch.manual_seed(10 + i)
        a = auto.datasets["train"][i]
        torch.manual_seed(10 + i)
        d = finish_deferred_clips(deferred.datasets["train"][i])
        assert "video_deferred" not in a and a["meta"]["crop_offset"] == d["meta"]["crop_offset"]
        for x, y in zip(a["video"], d["video"], strict=True):
            assert torch.equal(x, y)


def test_frame_folder_records_take_the_same_path(tmp_path):
    from torchvision.io import write_jpeg

    folder = tmp_path / "rgb"
    folder.mkdir()
    g = torch.Generator().manual_seed(4)
    for n in range(1, 13):  # portrait 45x31 frames
        write_jpeg(torch.randint(0, 256, (3, 45, 31), dtype=torch.uint8, generator=g), str(folder / f"frame_{n:010d}.jpg"))
    rec = VideoRecord(targets={"label": 0}, frames_dir=str(folder), first_frame=1, last_frame=12)
    cfg = ClipConfig(train=True, num_frames=3, stride=2, train_scale=(33, 40), crop_size=30, deferred_geometry=True)
    ds = ClipDataset([rec], cfg)
    torch.manual_seed(5)
    for _ in range(3):
        s = ds[0]
        m = s["meta"]
        native = read_frames(folder, m["frame_indices"])
        ref = reference(native, m["short_side"], *m["crop_offset"], 30, m["flipped"])
        torch.testing.assert_close(finish_deferred_clips(collate_clips([s]))["video"][0], ref, rtol=0, atol=1e-5)


class _Probe(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(3, 2)
        self.seen = []

    def training_step(self, batch, batch_idx):
        self.seen.append({k: (type(v).__name__, [tuple(t.shape) for t in v] if isinstance(v, list) and k == "video" else None)
                          for k, v in batch.items()})  # fmt: skip
        slow, fast = batch["video"]
        self.seen[-1]["dtype"] = fast.dtype
        return F.cross_entropy(self.fc(fast.mean(dim=(2, 3, 4))), batch["label"])

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_trainer_batches_carry_the_finished_video(kin, tmp_path):
    dm = KineticsDataModule(root=str(kin["root"]), alpha=2, **SMALL)
    model = _Probe()
    trainer = pl.Trainer(max_steps=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                         limit_val_batches=0, default_root_dir=str(tmp_path))  # fmt: skip
    trainer.fit(model, datamodule=dm)
    seen = model.seen[0]
    assert "video_deferred" not in seen and seen["video"][1] == [(4, 3, 2, 48, 48), (4, 3, 4, 48, 48)]
    assert seen["dtype"] == torch.float32 and {"label", "meta", "has_audio", "video_index", "skipped"} <= set(seen)
