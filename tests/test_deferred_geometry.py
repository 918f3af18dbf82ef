"""Deferred geometry (issue 14, "Data pipeline"): workers return the uint8 source region of a
crop + bilinear taps; the DataModule (or the worker) finishes the batch. The result must be exactly
(float32 rounding) PySlowFast's transforms: ``F.interpolate(mode="bilinear", align_corners=False)``
of the whole native clip to the short side (long side ``floor(long / short * size)``), then, in
training, random crop, flip, and at test time ``uniform_crop`` (first / centre / last along the
longer side, centre offset ``ceil(margin / 2)``), then ``(x / 255 - mean) / std``."""
from __future__ import annotations

import math

import av
import numpy as np
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
    nh, nw = scaled(h, w, short)
    if (nh, nw) != (h, w):
        x = F.interpolate(x.transpose(0, 1), size=(nh, nw), mode="bilinear", align_corners=False).transpose(0, 1)
    x = x[..., y0 : y0 + crop, x0 : x0 + crop]
    if flip:
        x = x.flip(-1)
    return TF.normalize(x, MEAN, STD)


def scaled(h: int, w: int, short: int) -> tuple[int, int]:
    """PySlowFast's ``short_side_scale`` size: unchanged when the short side is ``short``, else
    ``int(math.floor((float(long) / short_side) * short))``."""
    if min(h, w) == short:
        return h, w
    return (int(math.floor(float(h) / w * short)), short) if w < h else (short, int(math.floor(float(w) / h * short)))


def uniform_crop(h: int, w: int, crop: int, spatial_idx: int) -> tuple[int, int]:
    """PySlowFast's ``uniform_crop`` offsets ``(y0, x0)`` on a ``h x w`` frame."""
    y0, x0 = int(math.ceil((h - crop) / 2)), int(math.ceil((w - crop) / 2))
    if h > w:
        y0 = {0: 0, 1: y0, 2: h - crop}[spatial_idx]
    else:
        x0 = {0: 0, 1: x0, 2: w - crop}[spatial_idx]
    return y0, x0


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
    the finished clip (the whole clip scaled once by F.interpolate), the tensors the deferred
    path gives after finish_deferred_clips to float32 rounding."""
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
        for x, y in zip(a["video"], d["video"], strict=True):  # full-frame F.interpolate vs taps: float rounding
            torch.testing.assert_close(x, y, rtol=0, atol=1e-5)


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


# ---------------------------------------------------------------------- evaluation views
def test_short_side_size_is_pyslowfasts_float_arithmetic():
    assert TF.short_side_size(100, 115, 340) == (340, 390)  # float(115) / 100 * 340 = 390.99999999999994
    assert TF.short_side_size(115, 100, 340) == (390, 340) and TF.short_side_size(256, 340, 256) == (256, 340)
    for h in range(9, 120, 7):
        for w in range(9, 200, 5):
            for short in (17, 112, 224, 256, 320, 340):
                assert TF.short_side_size(h, w, short) == scaled(h, w, short), (h, w, short)


def pyav_native(path) -> torch.Tensor:
    """Every frame of ``path`` at its native size, decoded by PyAV (``T, H, W, C`` uint8)."""
    with av.open(str(path)) as c:
        return torch.from_numpy(np.stack([f.to_ndarray(format="rgb24") for f in c.decode(c.streams.video[0])]))


@pytest.fixture(scope="module")
def odd_videos(tmp_path_factory):
    """A landscape 46 x 72 and a portrait 70 x 40 video of random pixels (36 frames): at short side
    33 the long sides are 51 and 57, and a 28 crop leaves odd margins of 23 (centre offset 12, not
    11), 29 (15, not 14) and 5 (3, not 2)."""
    from mmzoo.data.media import write_mp4

    root = tmp_path_factory.mktemp("odd")
    rng = np.random.default_rng(7)
    paths = []
    for name, (h, w) in {"land": (46, 72), "port": (70, 40)}.items():
        write_mp4(root / f"{name}.mp4", rng.integers(0, 256, (36, h, w, 3), dtype=np.uint8), 30.0)
        paths.append(str(root / f"{name}.mp4"))
    return paths


EVAL = dict(train=False, num_frames=4, stride=3, num_clips=2, num_crops=3, test_scale=33, test_crop_size=28,
            deferred_geometry=True)


def test_eval_views_equal_interpolate_then_uniform_crop(odd_videos, monkeypatch):
    """Every crop of 2 clips of a landscape and a portrait video, collated into one padded batch
    and finished, equals F.interpolate of the whole native clip to test_scale + uniform_crop; the
    3 crops of a clip share one decode."""
    from mmzoo.data import decode

    calls = []
    real = decode.VideoReader.frames_by_index

    def counted(self, indices, **kw):
        calls.append((self.path, list(indices), kw.get("short_side")))
        return real(self, indices, **kw)

    monkeypatch.setattr(decode.VideoReader, "frames_by_index", counted)
    ds = ClipDataset([VideoRecord(targets={"label": i}, video=p) for i, p in enumerate(odd_videos)], ClipConfig(**EVAL))
    items = [ds[i] for i in range(len(ds))]
    assert len(items) == 12 and len(calls) == 4  # 2 videos x 2 clips, each decoded once for its 3 crops
    assert all(short is None for _, _, short in calls)  # native frames: no decoder resize
    raw = collate_clips(items)
    d = raw["video_deferred"]
    assert {tuple(v["video_deferred"]["region"].shape[1:3]) for v in items} == {(40, 40), (35, 35)}
    assert d["region"].shape == (12, 4, 40, 40, 3)  # the portrait video's regions are zero-padded
    batched = TF.finish_crops(d["region"], d["rows"], d["row_w"], d["cols"], d["col_w"], MEAN, STD, batched=True)
    batch = finish_deferred_clips(raw)  # on the CPU: the per-sample loop
    assert batch["video"].shape == (12, 3, 4, 28, 28)
    torch.testing.assert_close(batched, batch["video"], rtol=0, atol=1e-6)  # the accelerator's code path
    natives = [pyav_native(p) for p in odd_videos]
    offsets = set()
    for i, m in enumerate(batch["meta"]):
        native = natives[m["video_index"]][m["frame_indices"]]
        nh, nw = scaled(*native.shape[1:3], 33)
        y0, x0 = uniform_crop(nh, nw, 28, m["crop_index"])
        assert m["crop_offset"] == (y0, x0) and m["short_side"] == 33 and m["flipped"] is False
        offsets.add((m["video_index"], y0, x0))
        torch.testing.assert_close(batch["video"][i], reference(native, 33, y0, x0, 28, False), rtol=0, atol=1e-5,
                                   msg=f"view {i}: {m}")
    assert offsets == {(0, 3, 0), (0, 3, 12), (0, 3, 23), (1, 0, 3), (1, 15, 3), (1, 29, 3)}


def test_worker_finished_eval_views_scale_each_clip_once(odd_videos, monkeypatch):
    """finish_in_worker (auto mode off the accelerator): every crop of 2 clips of both videos
    equals the reference, and the 3 crops of a clip share one F.interpolate of the clip."""
    calls = []
    real = TF.scaled_clip

    def counted(frames, size):
        calls.append(tuple(frames.shape))
        return real(frames, size)

    monkeypatch.setattr(TF, "scaled_clip", counted)
    ds = ClipDataset([VideoRecord(targets={"label": i}, video=p) for i, p in enumerate(odd_videos)], ClipConfig(**EVAL))
    ds.finish_in_worker = True
    natives = [pyav_native(p) for p in odd_videos]
    for i in range(len(ds)):
        item = ds[i]
        m = item["meta"]
        assert "video_deferred" not in item
        y0, x0 = m["crop_offset"]
        ref = reference(natives[m["video_index"]][m["frame_indices"]], 33, y0, x0, 28, False)
        torch.testing.assert_close(item["video"], ref, rtol=0, atol=1e-5, msg=f"view {i}: {m}")
    assert len(calls) == 4  # 2 videos x 2 clips


def test_eval_views_of_frame_folders(tmp_path):
    from torchvision.io import decode_jpeg, read_file, write_jpeg

    folder = tmp_path / "rgb"
    folder.mkdir()
    g = torch.Generator().manual_seed(8)
    for n in range(1, 21):  # portrait 50 x 36 frames
        write_jpeg(torch.randint(0, 256, (3, 50, 36), dtype=torch.uint8, generator=g), str(folder / f"frame_{n:010d}.jpg"))
    rec = VideoRecord(targets={"label": 0}, frames_dir=str(folder), first_frame=1, last_frame=20)
    ds = ClipDataset([rec], ClipConfig(**{**EVAL, "test_scale": 40, "test_crop_size": 37}))
    ds.finish_in_worker = True  # the auto mode off the accelerator: items carry the finished video
    for i in range(len(ds)):
        s = ds[i]
        m = s["meta"]
        native = torch.stack([decode_jpeg(read_file(str(folder / f"frame_{n:010d}.jpg"))).permute(1, 2, 0)
                              for n in m["frame_indices"]])  # fmt: skip
        y0, x0 = uniform_crop(55, 40, 37, m["crop_index"])  # 50 x 36 -> floor(50 / 36 * 40) = 55 x 40
        assert "video_deferred" not in s and m["crop_offset"] == (y0, x0)
        torch.testing.assert_close(s["video"], reference(native, 40, y0, x0, 37, False), rtol=0, atol=1e-5)


def test_eval_off_switch_keeps_the_decoder_resize(odd_videos, monkeypatch):
    from mmzoo.data import decode

    shorts = []
    real = decode.VideoReader.frames_by_index

    def counted(self, indices, **kw):
        shorts.append(kw.get("short_side"))
        return real(self, indices, **kw)

    monkeypatch.setattr(decode.VideoReader, "frames_by_index", counted)
    ds = ClipDataset([VideoRecord(targets={"label": 0}, video=odd_videos[0])], ClipConfig(**{**EVAL, "deferred_geometry": False}))
    s = ds[1]
    assert shorts == [33] and s["video"].shape == (3, 4, 28, 28) and "crop_offset" not in s["meta"]
