"""`kinetics` DataModule on synthetic datasets in the official layout (real mp4 + AAC, CSVs)."""
from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import pytest
import torch

from mmzoo.data import get_datamodule
from mmzoo.data.decode import CorruptVideoError, NoAudioStreamError
from mmzoo.data.kinetics import (
    KINETICS_SOUNDS_CLASSES,
    KineticsDataModule,
    read_mini_kinetics_arnet_list,
    read_mini_kinetics_s3d_list,
)
from mmzoo.data.synthetic.kinetics import write_kinetics, write_mini_kinetics_lists
from mmzoo.data.video_dataset import AnnotationError, LayoutError

SMALL = dict(
    version="any", num_frames=8, stride=2, train_scale=(64, 72), crop_size=56, test_scale=64, test_crop_size=64,
    batch_size=6, num_workers=0,
)  # fmt: skip


@pytest.fixture(scope="module")
def kin(tmp_path_factory):
    root = tmp_path_factory.mktemp("kinetics")
    return write_kinetics(root, per_class={"train": 2, "val": 1}, no_audio=[("train", 1)])


def _dm(root, **kw):
    args = {**SMALL, **kw}
    return KineticsDataModule(root=str(root), **args)


def test_registered_and_classes_from_csv(kin):
    assert get_datamodule("kinetics") is KineticsDataModule
    dm = _dm(kin["root"])
    dm.setup("fit")
    assert dm.classes == ["abseiling", "playing drums", "tickling"] and dm.num_classes == 3
    recs = dm.datasets["train"].records
    assert [r.targets["label"] for r in recs] == [r["label_index"] for r in kin["rows"]["train"]] == [0, 0, 1, 1, 2, 2]
    assert [r.video for r in recs] == [r["path"] for r in kin["rows"]["train"]]
    assert recs[3].meta["line"] == 5 and recs[3].meta["csv"].endswith("annotations/train.csv")


def test_train_batch_fields_labels_and_audio_policy(kin):
    dm = _dm(kin["root"], with_audio=True, alpha=4, deferred_geometry=True)
    dm.setup("fit")
    raw = next(iter(dm.train_dataloader()))
    assert "video" not in raw and raw["video_deferred"]["region"].dtype == torch.uint8  # finished after transfer
    batch = dm.finish_batch(raw)
    slow, fast = batch["video"]
    assert fast.shape == (6, 3, 8, 56, 56) and slow.shape == (6, 3, 2, 56, 56) and fast.dtype == torch.float32
    assert torch.equal(slow, fast[:, :, [0, 7]])  # linspace(0, 7, 8 // 4).long()
    assert batch["audio"].shape == (6, 1, 128, 80)
    by_path = {r["path"]: r for r in kin["rows"]["train"]}
    for i, m in enumerate(batch["meta"]):
        row = by_path[m["source"]]
        assert batch["label"][i].item() == row["label_index"]
        assert batch["has_audio"][i].item() == row["has_audio"]
        idx = m["frame_indices"]
        assert [b - a for a, b in zip(idx, idx[1:])] == [2] * 7 and 0 <= idx[0] <= 40 - 15
        if not row["has_audio"]:
            assert batch["audio"][i].abs().sum() == 0
        else:
            assert batch["audio"][i].std() > 0.5
    dm.record_batch(batch, "train")
    assert dm.missing_audio_count["train"] == 1 and dm.pop_epoch_report("train")["missing_audio"] == 1
    assert batch["skipped"] == []


def test_eval_views_meta_and_frame_pixels(kin):
    dm = _dm(kin["root"], num_clips=2, num_crops=3, batch_size=6)
    dm.setup("test")
    ds = dm.datasets["test"]
    assert len(ds) == 3 * 2 * 3  # val videos x clips x crops (test defaults to val.csv)
    batch = next(iter(dm.test_dataloader()))
    assert [m["video_index"] for m in batch["meta"]] == [0] * 6
    assert [m["clip_index"] for m in batch["meta"]] == [0, 0, 0, 1, 1, 1]
    assert [m["crop_index"] for m in batch["meta"]] == [0, 1, 2, 0, 1, 2]
    # 40 frames, span 15 -> delta 25, starts floor(25 * (k + .5) / 2) = 6, 18
    assert batch["meta"][0]["frame_indices"] == [6, 8, 10, 12, 14, 16, 18, 20]
    assert batch["meta"][3]["frame_indices"][0] == 18
    assert batch["video"].shape == (6, 3, 8, 64, 64)
    pixels = (batch["video"][0] * 0.225 + 0.45) * 255  # left crop keeps the 8x8 index block
    grey = pixels[:, :, 2:6, 2:6].mean(dim=(0, 2, 3))  # mean over RGB: chroma of the background bleeds in
    assert torch.allclose(grey, torch.tensor([4.0 * i for i in batch["meta"][0]["frame_indices"]]), atol=3)
    assert batch["label"].tolist() == [0] * 6


def test_missing_audio_error_and_skip(kin):
    dm = _dm(kin["root"], with_audio=True, missing_audio="error")
    dm.setup("fit")
    with pytest.raises(NoAudioStreamError, match="_000.*mp4: no audio stream"):
        dm.datasets["train"][1]
    dm = _dm(kin["root"], with_audio=True, missing_audio="skip")
    dm.setup("fit")
    s = dm.datasets["train"][1]
    assert s["meta"]["source"] == kin["rows"]["train"][2]["path"]  # replaced by the next record
    assert len(s["skipped"]) == 1 and kin["rows"]["train"][1]["path"] in s["skipped"][0]


def test_corrupt_video_raises_or_is_skipped_and_reported(tmp_path):
    d = write_kinetics(tmp_path, classes=("a", "b"), per_class={"train": 2, "val": 1}, corrupt=[("train", 0)], num_frames=20)
    dm = _dm(tmp_path)
    dm.setup("fit")
    with pytest.raises(CorruptVideoError, match=Path(d["rows"]["train"][0]["path"]).name):
        dm.datasets["train"][0]
    dm = _dm(tmp_path, skip_corrupt=True, batch_size=4)
    dm.setup("fit")
    batch = next(iter(torch.utils.data.DataLoader(dm.datasets["train"], batch_size=4, collate_fn=dm.train_dataloader().collate_fn)))
    assert len(batch["skipped"]) == 1 and d["rows"]["train"][0]["path"] in batch["skipped"][0]
    with pytest.warns(UserWarning, match="skipped .*corrupt|skipped .*mp4"):
        dm.record_batch(batch, "train")
    from mmzoo.data.video_dataset import DataReportCallback

    with pytest.warns(UserWarning, match=r"train epoch: 1 sample\(s\) skipped"):
        DataReportCallback(dm).on_train_epoch_end(None, None)
    assert dm.skipped["train"] == batch["skipped"]


def test_missing_videos_policy(tmp_path):
    d = write_kinetics(tmp_path, classes=("a", "b"), per_class={"train": 1, "val": 1}, num_frames=10)
    Path(d["rows"]["val"][1]["path"]).unlink()
    with pytest.raises(LayoutError, match=r"1 video\(s\) of the val split are missing, e.g.: .*val.csv:3: .*val/b/"):
        _dm(tmp_path).setup("fit")
    dm = _dm(tmp_path, missing_videos="skip")
    with pytest.warns(UserWarning, match="1 annotated video"):
        dm.setup("fit")
    assert len(dm.datasets["val"]) == 1 and len(dm.missing_videos) == 1


def test_layout_variants_flat_and_underscore(tmp_path):
    d = write_kinetics(tmp_path / "flat", classes=("a b", "c"), per_class={"train": 1, "val": 1}, num_frames=10, flat=True)
    dm = _dm(tmp_path / "flat")
    dm.setup("fit")
    assert [r.video for r in dm.datasets["train"].records] == [r["path"] for r in d["rows"]["train"]]
    d2 = write_kinetics(tmp_path / "us", classes=("a b", "c"), per_class={"train": 1, "val": 1}, num_frames=10)
    src = Path(d2["root"]) / "train" / "a b"
    shutil.move(str(src), str(src.with_name("a_b")))
    dm = _dm(tmp_path / "us")
    dm.setup("fit")
    assert "/train/a_b/" in dm.datasets["train"].records[0].video


def _rewrite(path: str, lineno: int, text: str) -> None:
    lines = Path(path).read_text().splitlines()
    lines[lineno - 1] = text
    Path(path).write_text("\n".join(lines) + "\n")


def test_bad_annotations_name_file_and_line(tmp_path):
    d = write_kinetics(tmp_path, classes=("a", "b"), per_class={"train": 1, "val": 1}, num_frames=10)
    val = d["csv"]["val"]
    good = Path(val).read_text()
    _rewrite(val, 3, "b,xyz,ten,20,val")
    with pytest.raises(AnnotationError, match=r"val.csv:3: column 'time_start': cannot parse 'ten' as int"):
        _dm(tmp_path).setup("fit")
    _rewrite(val, 3, "b,xyz,10,20")
    with pytest.raises(AnnotationError, match=r"val.csv:3: expected 5 fields"):
        _dm(tmp_path).setup("fit")
    _rewrite(val, 3, "zebra,xyz,10,20,val")
    with pytest.raises(AnnotationError, match=r"val.csv:3: label 'zebra' is not a class of the training CSV"):
        _dm(tmp_path).setup("fit")
    _rewrite(val, 3, "b,xyz,30,20,val")
    with pytest.raises(AnnotationError, match=r"val.csv:3: time_end 20 <= time_start 30"):
        _dm(tmp_path).setup("fit")
    Path(val).write_text(good.replace("label,youtube_id", "name,youtube_id"))
    _dm(tmp_path).setup("fit")  # val.csv may lack labels (label column only required for train)
    Path(d["csv"]["train"]).write_text("label,youtube_id,time_start,split\n")
    with pytest.raises(AnnotationError, match=r"train.csv:1: header lacks column\(s\) \['time_end'\]"):
        _dm(tmp_path).setup("fit")
    with pytest.raises(LayoutError, match="Kinetics root not found"):
        _dm(tmp_path / "nope").setup("fit")
    with pytest.raises(LayoutError, match=r"val annotation file not found: --data.val_csv missing.csv \(tried: missing.csv, "):
        _dm(tmp_path, val_csv="missing.csv").setup("fit")


def test_version_class_count_check(kin):
    with pytest.raises(AnnotationError, match="Kinetics-400 has 400 classes, the training CSV has 3"):
        KineticsDataModule(root=kin["root"], version="400").setup("fit")


def test_kinetics_sounds_and_custom_subsets(tmp_path, kin):
    classes = list(KINETICS_SOUNDS_CLASSES) + ["abseiling"]
    d = write_kinetics(tmp_path / "ks", classes=classes, per_class={"train": 1, "val": 1}, num_frames=4, size=(32, 32))
    dm = _dm(tmp_path / "ks", subset="kinetics-sounds")
    dm.setup("fit")
    assert dm.num_classes == 32 and dm.classes == sorted(KINETICS_SOUNDS_CLASSES)
    recs = dm.datasets["train"].records
    assert len(recs) == 32 and all("abseiling" not in r.video for r in recs)
    expected = {r["path"]: sorted(KINETICS_SOUNDS_CLASSES).index(r["label"]) for r in d["rows"]["train"] if r["label"] != "abseiling"}
    assert {r.video: r.targets["label"] for r in recs} == expected
    with pytest.raises(AnnotationError, match=r"30 class\(es\) of the Kinetics-Sounds .* absent"):
        _dm(kin["root"], subset="kinetics-sounds").setup("fit")
    f = tmp_path / "mini.txt"
    f.write_text("tickling\nabseiling\n")
    dm = _dm(kin["root"], subset="custom", subset_classes_file=str(f))
    dm.setup("fit")
    assert dm.classes == ["abseiling", "tickling"]
    assert [r.targets["label"] for r in dm.datasets["train"].records] == [0, 0, 1, 1]
    with pytest.raises(ValueError, match="subset='custom' needs --data.subset_classes_file"):
        _dm(kin["root"], subset="custom")


def test_lightning_fit_reports_skips_at_epoch_end(tmp_path):
    import pytorch_lightning as pl

    write_kinetics(tmp_path, classes=("a", "b"), per_class={"train": 2, "val": 1}, corrupt=[("train", 2)], num_frames=12)

    class Tiny(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(3, 2)

        def training_step(self, batch, i):
            return torch.nn.functional.cross_entropy(self.fc(batch["video"].mean(dim=(2, 3, 4))), batch["label"])

        def validation_step(self, batch, i):
            pass

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    dm = _dm(tmp_path, skip_corrupt=True, batch_size=4, num_frames=4)
    trainer = pl.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, num_sanity_val_steps=0)  # fmt: skip
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.fit(Tiny(), datamodule=dm)
    msgs = [str(w.message) for w in caught]
    assert any("train epoch: 1 sample(s) skipped" in m for m in msgs), msgs
    assert len(dm.skipped["train"]) == 1


def test_audio_shifted_hard_negative_window(kin):
    from mmzoo.data.audio import avslowfast_logmel
    from mmzoo.data.decode import read_audio

    dm = _dm(kin["root"], with_audio=True, audio_shift_sec=0.5, num_clips=1, num_crops=1)
    dm.setup("test")
    s = dm.datasets["test"][0]
    assert s["audio"].shape == s["audio_shifted"].shape == (1, 128, 80)
    idx = s["meta"]["frame_indices"]
    t0, t1 = idx[0] / 30, (idx[-1] + 2) / 30
    a0 = 0.5 * (t0 + t1) - 0.5 * 33024 / 16000
    lm = avslowfast_logmel()
    path = s["meta"]["source"]
    aligned = lm(read_audio(path, a0, a0 + 33024 / 16000))
    # 1.33 s video: the 2.064 s window fits neither after nor before -> shifted later (zero-padded)
    shifted = lm(read_audio(path, a0 + 0.5, a0 + 0.5 + 33024 / 16000))
    assert torch.allclose(s["audio"], aligned, atol=1e-4)
    assert torch.allclose(s["audio_shifted"], shifted, atol=1e-4)
    assert not torch.allclose(s["audio"], s["audio_shifted"], atol=1e-2)


def test_eval_crops_of_a_clip_decode_once(kin, monkeypatch):
    from mmzoo.data import decode

    calls = []
    orig = decode.VideoReader.frames_by_index

    def counting(self, indices, **kw):
        calls.append(list(indices))
        return orig(self, indices, **kw)

    monkeypatch.setattr(decode.VideoReader, "frames_by_index", counting)
    dm = _dm(kin["root"], num_clips=2, num_crops=3)
    dm.setup("test")
    ds = dm.datasets["test"]
    views = [ds[i] for i in range(6)]
    assert len(calls) == 2  # one decode per clip, three crops each
    assert [v["meta"]["crop_index"] for v in views] == [0, 1, 2, 0, 1, 2]
    assert not torch.equal(views[0]["video"], views[2]["video"])  # left vs right crop differ in pixels
    assert torch.equal(views[0]["video"][:, :, :, 8:], views[1]["video"][:, :, :, :-8])  # 8 px apart


# ------------------------------------------------------------------ Mini-Kinetics (official list files)
MINI = ["playing drums", "tickling"]


def test_mini_kinetics_list_parsers_on_release_lines(tmp_path):
    # one line of each release, verbatim in format (AR-Net val list, S3D train list)
    a = tmp_path / "mini_val_videofolder.txt"
    a.write_text("images/val/air drumming/7LSJ2Ryv1a8_000000_000010 60 0\nimages/val/applauding/x-y_z0123AB_000101_000111 7 2")
    assert read_mini_kinetics_arnet_list(a) == [
        (1, {"class": "air drumming", "youtube_id": "7LSJ2Ryv1a8", "time_start": 0, "time_end": 10, "num_frames": 60, "label": 0}),
        (2, {"class": "applauding", "youtube_id": "x-y_z0123AB", "time_start": 101, "time_end": 111, "num_frames": 7, "label": 2}),
    ]  # fmt: skip
    b = tmp_path / "train_ytid_list.txt"
    b.write_text("kIRmvrmc2nM\n2B65vtRd5Ck\n")
    assert read_mini_kinetics_s3d_list(b) == [(1, "kIRmvrmc2nM"), (2, "2B65vtRd5Ck")]
    for bad, msg in [("kIRmvrmc2nM\nshort\n", r"train_ytid_list.txt:2: expected one 11-character"),
                     ("kIRmvrmc2nM\nkIRmvrmc2nM\n", r":2: youtube_id kIRmvrmc2nM already listed at line 1")]:  # fmt: skip
        b.write_text(bad)
        with pytest.raises(AnnotationError, match=msg):
            read_mini_kinetics_s3d_list(b)
    for bad, msg in [("images/val/x/7LSJ2Ryv1a8_000000_000010 sixty 0", r":1: <num_frames> and <label> must be integers"),
                     ("images/val/x/7LSJ2Ryv1a8_0_10 60 0", r":1: folder .* is not"),
                     ("7LSJ2Ryv1a8_000000_000010 60", r":1: expected '<folder> <num_frames> <label>'")]:  # fmt: skip
        a.write_text(bad)
        with pytest.raises(AnnotationError, match=msg):
            read_mini_kinetics_arnet_list(a)


def test_mini_kinetics_arnet_split(tmp_path, kin):
    lists = write_mini_kinetics_lists(kin, tmp_path / "minik", split="arnet", classes=MINI)
    text = Path(lists["files"]["train"]).read_text()
    r0 = kin["rows"]["train"][2]  # first "playing drums" row
    assert text.split("\n")[0] == f"images/train/playing drums/{r0['youtube_id']}_{r0['time_start']:06d}_{r0['time_end']:06d} 40 0"
    assert not text.endswith("\n") and len(text.split("\n")) == 4  # the release has no final newline
    dm = _dm(kin["root"], subset="mini", mini_kinetics_dir=lists["dir"])  # arnet is the default
    dm.setup("fit")
    assert dm.classes == MINI and dm.num_classes == 2
    recs = dm.datasets["train"].records
    assert [r.video for r in recs] == [r["path"] for r in lists["rows"]["train"]]
    assert [r.targets["label"] for r in recs] == [0, 0, 1, 1]
    assert [r.meta["list_line"] for r in recs] == [1, 2, 3, 4] and recs[0].meta["list"] == lists["files"]["train"]
    assert [(r.video, r.targets["label"]) for r in dm.datasets["val"].records] == [
        (x["path"], MINI.index(x["label"])) for x in lists["rows"]["val"]
    ]
    dm.setup("test")  # test_csv=None: the validation list
    assert [r.video for r in dm.datasets["test"].records] == [x["path"] for x in lists["rows"]["val"]]
    with pytest.raises(AnnotationError, match="Mini-Kinetics has 200 classes, the list gives 2"):
        KineticsDataModule(root=kin["root"], subset="mini", mini_kinetics_dir=lists["dir"]).setup("fit")
    with pytest.raises(ValueError, match="subset='mini' needs --data.mini_kinetics_dir"):
        _dm(kin["root"], subset="mini")


def test_mini_kinetics_arnet_strictness(tmp_path, kin):
    def dm_for(d, **kw):
        dm = _dm(kin["root"], subset="mini", mini_kinetics_dir=str(d), mini_kinetics_split="arnet", **kw)
        dm.setup("fit")
        return dm

    d = tmp_path / "cls"
    write_mini_kinetics_lists(kin, d, classes=MINI)
    (d / "minik_classInd.txt").write_text("tickling\nplaying drums\n")
    with pytest.raises(AnnotationError, match=r"minik_classInd.txt:1: class 0 is 'tickling', the training list labels 'playing drums'"):
        dm_for(d)
    (d / "minik_classInd.txt").unlink()
    assert dm_for(d).classes == MINI  # without the class file, the classes come from the list

    ghost = "images/train/tickling/AAAAAAAAAAA_000001_000011 40 1"
    d = tmp_path / "ghost"
    write_mini_kinetics_lists(kin, d, classes=MINI, extra={"train": [ghost]})
    with pytest.raises(AnnotationError, match=r"mini_train_videofolder.txt:5: 1 listed video\(s\) are not in .*train.csv"):
        dm_for(d)
    with pytest.warns(UserWarning, match="1 listed video"):
        dm = dm_for(d, mini_kinetics_missing="skip")
    assert len(dm.datasets["train"].records) == 4 and len(dm.mini_kinetics_missing) == 1
    assert "AAAAAAAAAAA_000001_000011" in dm.mini_kinetics_missing[0]

    d = tmp_path / "wrong"
    write_mini_kinetics_lists(kin, d, classes=MINI)
    f = d / "mini_train_videofolder.txt"
    lines = f.read_text().split("\n")
    f.write_text("\n".join([lines[0].replace("playing drums", "abseiling", 1)] + lines[1:]))
    with pytest.raises(AnnotationError, match=r":1: class folder 'abseiling', but .*train.csv:\d+ labels the clip 'playing drums'"):
        dm_for(d)
    f.write_text("\n".join(lines[:3] + [lines[3][:-1] + "0"]))  # a tickling clip labelled 0
    with pytest.raises(AnnotationError, match=r":4: label 0 is 'playing drums' at line 1, here 'tickling'"):
        dm_for(d)


def test_mini_kinetics_s3d_split(tmp_path, kin):
    lists = write_mini_kinetics_lists(kin, tmp_path / "s3d", split="s3d", classes=MINI)
    text = Path(lists["files"]["train"]).read_text()
    assert text == "".join(r["youtube_id"] + "\n" for r in lists["rows"]["train"])
    dm = _dm(kin["root"], subset="mini", mini_kinetics_dir=lists["dir"], mini_kinetics_split="s3d")
    dm.setup("fit")
    assert dm.classes == MINI  # derived from the labels of the listed training videos
    assert [(r.video, r.targets["label"]) for r in dm.datasets["train"].records] == [
        (x["path"], MINI.index(x["label"])) for x in lists["rows"]["train"]
    ]
    assert len(dm.datasets["val"].records) == 2

    absent = "zzzzzzzzzzz"
    d = tmp_path / "s3d_missing"
    write_mini_kinetics_lists(kin, d, split="s3d", classes=MINI, extra={"val": [absent]})
    kw = {"subset": "mini", "mini_kinetics_dir": str(d), "mini_kinetics_split": "s3d"}
    with pytest.raises(AnnotationError, match=r"val_ytid_list.txt:3: 1 listed video\(s\) are not in .*val.csv.*zzzzzzzzzzz"):
        _dm(kin["root"], **kw).setup("fit")
    dm = _dm(kin["root"], mini_kinetics_missing="skip", **kw)
    with pytest.warns(UserWarning, match="Mini-Kinetics val: 1 listed video"):
        dm.setup("fit")
    assert len(dm.datasets["val"].records) == 2 and dm.mini_kinetics_missing == [f"{d / 'val_ytid_list.txt'}:3: youtube_id {absent}"]

    outsider = next(r for r in kin["rows"]["val"] if r["label"] == "abseiling")["youtube_id"]
    d = tmp_path / "s3d_outsider"
    write_mini_kinetics_lists(kin, d, split="s3d", classes=MINI, extra={"val": [outsider]})
    with pytest.raises(AnnotationError, match=r"val_ytid_list.txt:3: .*label 'abseiling', not a class of the training list"):
        _dm(kin["root"], subset="mini", mini_kinetics_dir=str(d), mini_kinetics_split="s3d").setup("fit")


def test_multiview_test_batches_carry_video_index(kin):
    dm = _dm(kin["root"], num_clips=2, num_crops=3, batch_size=4)
    dm.setup("test")
    seen = []
    for batch in dm.test_dataloader():
        vi = batch["video_index"]
        assert vi.dtype == torch.int64 and vi.shape == (len(batch["meta"]),)
        assert vi.tolist() == [m["video_index"] for m in batch["meta"]]
        seen += vi.tolist()
    assert seen == [v for v in range(3) for _ in range(6)]


def test_defaults_from_input_sets_logmel_frames(kin):
    from mmzoo.registry import AudioInput, InputConfig

    cfg = InputConfig(
        shapes={}, frames=8, sampling_rate=2, alpha=4, train_crop=56, test_crop=64, short_side=64,
        train_scale=(64, 72), test_views=(1, 1),
        audio=AudioInput(kind="logmel", sample_rate=16000, window_ms=32.0, hop_ms=16.0, n_mels=80, num_frames=256),
    )  # fmt: skip
    kw = KineticsDataModule.defaults_from_input(cfg)
    assert kw["audio_num_frames"] == 256 and kw["with_audio"] is True and kw["num_clips"] == 1 and kw["alpha"] == 4
    assert kw["stride"] == 2 and kw["crop_size"] == 56 and kw["test_scale"] == 64 and kw["train_scale"] == (64, 72)
    dm = KineticsDataModule(root=str(kin["root"]), version="any", batch_size=2, num_workers=0, **kw)
    dm.setup("fit")
    batch = dm.finish_batch(next(iter(dm.train_dataloader())))
    assert batch["audio"].shape == (2, 1, 256, 80)
    assert [t.shape[2] for t in batch["video"]] == [2, 8]
    assert dm.hparams["audio_num_frames"] == 256 and dm.hparams["batch_size"] == 2  # save_hyperparameters policy
    dm.setup("test")
    assert next(iter(dm.test_dataloader()))["audio"].shape == (2, 1, 256, 80)


# ---------------------------------------------------------------------- Kinetics as downloaded
def test_deepmind_file_names_are_found_by_themselves(tmp_path):
    d = write_kinetics(tmp_path / "k400", per_class={"train": 1, "val": 1, "test": 1}, num_frames=8,
                       deepmind_csvs=True)
    assert sorted(p.name for p in (tmp_path / "k400").glob("*.csv")) == ["test.csv", "train.csv", "validate.csv"]
    dm = _dm(d["root"])
    dm.setup("fit")
    assert dm.datasets["val"].records[0].meta["csv"].endswith("validate.csv")
    dm = _dm(d["root"], test_csv="test.csv")
    dm.setup("test")
    assert dm.datasets["test"].records[0].meta["csv"] == str(tmp_path / "k400" / "test.csv")


def test_flag_paths_are_resolved_as_given_before_the_root(kin, tmp_path, monkeypatch):
    # a val list of the same name under the root and, different, in the working directory
    work = tmp_path / "work"
    (work / "annotations").mkdir(parents=True)
    lines = Path(kin["csv"]["val"]).read_text().splitlines()
    (work / "annotations" / "val.csv").write_text("\n".join(lines[:2]) + "\n")  # header + one row
    monkeypatch.chdir(work)
    dm = _dm(kin["root"], val_csv="annotations/val.csv")
    dm.setup("fit")
    assert len(dm.datasets["val"].records) == 1  # the working directory's file, not the root's
    assert Path(dm.datasets["val"].records[0].meta["csv"]).resolve() == (work / "annotations" / "val.csv").resolve()
    # relative to the root when not found as given
    dm = _dm(kin["root"], val_csv="val.csv")
    dm.setup("fit")
    assert len(dm.datasets["val"].records) == len(lines) - 1


def test_errors_name_the_cli_flag(kin, tmp_path):
    with pytest.raises(LayoutError, match=r"train annotation file not found: --data\.train_csv nope\.csv \(tried: nope\.csv, .*nope\.csv"):
        _dm(kin["root"], train_csv="nope.csv").setup("fit")
    with pytest.raises(LayoutError, match=r"Kinetics root not found: .* \(--data\.root\)"):
        _dm(tmp_path / "nowhere").setup("fit")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(LayoutError, match=r"none of .*annotations/train\.csv, .*train\.csv exists \(set --data\.train_csv"):
        _dm(empty).setup("fit")
    with pytest.raises(LayoutError, match=r"class list not found: --data\.subset_classes_file my_classes\.txt"):
        _dm(kin["root"], subset="custom", subset_classes_file="my_classes.txt").setup("fit")
