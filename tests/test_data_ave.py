"""AVE DataModule on the released-feature layout: exact labels, row keying, layouts, strict errors."""
from __future__ import annotations

import shutil

import h5py
import numpy as np
import pytest
import torch

from mmzoo.data import get_datamodule
from mmzoo.data.ave import AVE_CLASSES, AVEDataError, AVEDataModule, parse_annotations
from mmzoo.data.synthetic.ave import write_ave


@pytest.fixture(scope="module")
def ave_feat(tmp_path_factory):
    root = tmp_path_factory.mktemp("ave_feat")
    info = write_ave(root, num_videos_per_class=3, classes=[AVE_CLASSES[0], AVE_CLASSES[2]], with_videos=False,
                     num_noisy=2, seed=1)
    return info


def _copy(info, tmp_path):
    dst = tmp_path / "ave"
    shutil.copytree(info["root"], dst)
    return dst


def _dm(root, **kw):
    kw.setdefault("num_workers", 0)
    kw.setdefault("batch_size", 4)
    return AVEDataModule(root=str(root), **kw)


def test_registered_for_cli():
    assert get_datamodule("ave") is AVEDataModule


def test_features_mode_exact_labels_fields_and_row_keying(ave_feat):
    dm = _dm(ave_feat["root"])
    assert dm.visual_dim == 512  # available before setup (for CLI linking)
    dm.setup("fit")
    assert dm.resolved_mode == "features"
    rows = ave_feat["rows"]
    with h5py.File(ave_feat["feature_dir"] / "visual_feature.h5") as f:
        vis = f["avadataset"][()]
    with h5py.File(ave_feat["feature_dir"] / "audio_feature.h5") as f:
        aud = f["avadataset"][()]
    for split in ("train", "val", "test"):
        ds = dm.datasets[split]
        assert [ds[i]["meta"]["row"] for i in range(len(ds))] == ave_feat["splits"][split]
        for i in range(len(ds)):
            s = ds[i]
            r = rows[s["meta"]["row"]]
            assert s["label"].tolist() == r["labels"]
            assert s["meta"] == dict(row=r["row"], video_id=r["video_id"], category=r["category"], start=r["start"],
                                     end=r["end"], split=split, source="annotations")
            assert torch.equal(s["visual"], torch.from_numpy(vis[r["row"]]))
            assert torch.equal(s["audio"], torch.from_numpy(aud[r["row"]]))
    # the repeated video id: two rows, two categories, two label sequences, row-keyed features
    rep = [r for r in rows if r["video_id"] == rows[0]["video_id"]]
    assert len(rep) == 2 and rep[0]["category"] != rep[1]["category"]
    train = dm.datasets["train"]
    got = {train[i]["meta"]["row"]: train[i] for i in range(len(train))}
    a, b = got[rep[0]["row"]], got[rep[1]["row"]]
    assert a["label"].tolist() != b["label"].tolist()
    assert not torch.equal(a["visual"], b["visual"])
    batch = next(iter(dm.train_dataloader()))
    assert batch["visual"].shape == (4, 10, 7, 7, 512) and batch["visual"].dtype == torch.float32
    assert batch["audio"].shape == (4, 10, 128) and batch["audio"].dtype == torch.float32
    assert batch["label"].shape == (4, 10) and batch["label"].dtype == torch.long
    assert batch["video_label"].shape == (4, 29) and batch["video_label"].dtype == torch.float32
    assert isinstance(batch["meta"], list) and len(batch["meta"]) == 4


def test_degenerate_row_and_weak_label_rules(ave_feat):
    rows = ave_feat["rows"]
    deg = [r for r in rows if r["start"] == r["end"] == 0][0]
    partial = [r for r in rows if 0 < r["end"] - r["start"] < 10][0]
    for rule in ("average", "one_hot"):
        dm = _dm(ave_feat["root"], weak_label=rule)
        dm.setup()
        by_row = {e["meta"]["row"]: e for e in dm.datasets["train"].entries + dm.datasets["val"].entries
                  + dm.datasets["test"].entries}
        assert by_row[deg["row"]]["label"].tolist() == [28] * 10
        vl = by_row[partial["row"]]["video_label"]
        k, n = partial["class_index"], partial["end"] - partial["start"]
        if rule == "average":
            assert vl[k] == pytest.approx(n / 10) and vl[28] == pytest.approx(1 - n / 10) and vl.sum() == pytest.approx(1)
            assert by_row[deg["row"]]["video_label"][28] == 1.0
        else:
            assert vl[k] == 1.0 and vl.sum() == 1.0
            assert by_row[deg["row"]]["video_label"][deg["class_index"]] == 1.0


def test_weak_background_videos(ave_feat, tmp_path):
    n_train = len(ave_feat["splits"]["train"])
    dm = _dm(ave_feat["root"], supervision="weak")
    dm.setup()
    assert dm.uses_background_videos and len(dm.datasets["train"]) == n_train + 2
    noisy = dm.datasets["train"][n_train + 1]
    assert noisy["meta"]["source"] == "noisy" and noisy["label"].tolist() == [28] * 10
    assert noisy["video_label"][28] == 1.0
    with h5py.File(ave_feat["feature_dir"] / "visual_feature_noisy.h5") as f:
        assert torch.equal(noisy["visual"], torch.from_numpy(f["avadataset"][1]))
    dm = _dm(ave_feat["root"], supervision="weak", weak_background_videos=False)
    dm.setup()
    assert len(dm.datasets["train"]) == n_train
    dm = _dm(ave_feat["root"], supervision="full")
    dm.setup()
    assert len(dm.datasets["train"]) == n_train
    root = _copy(ave_feat, tmp_path)
    (root / "data" / "audio_feature_noisy.h5").unlink()
    with pytest.raises(FileNotFoundError, match="audio_feature_noisy.h5"):
        _dm(root, supervision="weak", weak_background_videos=True).setup()


@pytest.mark.parametrize("header,layout,order", [(True, "flat", False), (False, "authors", False), (True, "authors", True)])
def test_layouts_header_and_split_sources(tmp_path, header, layout, order):
    info = write_ave(tmp_path / "d", num_videos_per_class=3, classes=[AVE_CLASSES[5], AVE_CLASSES[7]],
                     with_videos=False, header=header, layout=layout, with_order_h5=order, seed=3)
    first = info["annotations"].read_text().splitlines()[0]
    assert first.startswith("Category&VideoID") == header
    rows, classes = parse_annotations(info["annotations"])
    assert [r.row for r in rows] == list(range(len(info["rows"])))
    assert [r.class_index for r in rows] == [r["class_index"] for r in info["rows"]]
    dm = _dm(info["root"])
    dm.setup()
    note = "*_order.h5" if order else "*Set.txt"
    assert any(note in n for n in dm.layout.notes)
    for split in ("train", "val", "test"):
        ds = dm.datasets[split]
        assert sorted(e["meta"]["row"] for e in ds.entries) == sorted(info["splits"][split])
        for e in ds.entries:
            assert e["label"].tolist() == info["rows"][e["meta"]["row"]]["labels"]


def test_first_appearance_class_order(tmp_path):
    ann = tmp_path / "Annotations.txt"
    ann.write_text("Goat&aaaaaaaaaaa&good&0&10\nMy class&bbbbbbbbbbb&good&2&5\nGoat&ccccccccccc&good&1&2\n")
    rows, classes = parse_annotations(ann, class_order="first_appearance")
    assert classes == ["Goat", "My class"] and [r.class_index for r in rows] == [0, 1, 0]
    assert rows[1].segment_labels().tolist() == [28, 28, 1, 1, 1, 28, 28, 28, 28, 28]
    with pytest.raises(AVEDataError, match=r"Annotations.txt:2: .*out of range"):
        parse_annotations(ann, class_order="first_appearance", num_events=1)
    with pytest.raises(AVEDataError, match=r"Annotations.txt:2: category 'My class' is not one of the 28 AVE classes"):
        parse_annotations(ann)


@pytest.mark.parametrize(
    "line,pattern",
    [
        ("Bark&xyz&good&0", r"Annotations.txt:3: expected 5 '&'-separated fields"),
        ("Bark&xyz&good&a&5", r"Annotations.txt:3: StartTime/EndTime must be integer"),
        ("Bark&xyz&good&6&4", r"Annotations.txt:3: StartTime 6 > EndTime 4"),
        ("Bark&xyz&good&0&11", r"Annotations.txt:3: StartTime/EndTime 0/11 out of range"),
        ("Barking dog&xyz&good&0&5", r"Annotations.txt:3: category 'Barking dog' is not one of the 28 AVE classes \(label out of range\)"),
    ],
)
def test_bad_annotation_line_names_file_and_line(ave_feat, tmp_path, line, pattern):
    root = _copy(ave_feat, tmp_path)
    ann = root / "AVE_Dataset" / "Annotations.txt"
    lines = ann.read_text().splitlines()
    lines[2] = line  # third line of a file without header
    ann.write_text("\n".join(lines) + "\n")
    with pytest.raises(AVEDataError, match=pattern):
        _dm(root).setup()


def test_h5_shape_mismatch_names_file_and_key(ave_feat, tmp_path):
    root = _copy(ave_feat, tmp_path)
    n = len(ave_feat["rows"])
    with h5py.File(root / "data" / "audio_feature.h5", "w") as f:
        f.create_dataset("avadataset", data=np.zeros((n, 10, 64), np.float32))
    with pytest.raises(AVEDataError, match=r"audio_feature.h5: key 'avadataset' has shape \[\d+, 10, 64\], expected \[\d+,10,128\]"):
        _dm(root).setup()
    with h5py.File(root / "data" / "audio_feature.h5", "w") as f:
        f.create_dataset("features", data=np.zeros((n, 10, 128), np.float32))
    with pytest.raises(AVEDataError, match=r"audio_feature.h5: HDF5 key 'avadataset' missing"):
        _dm(root).setup()
    with h5py.File(root / "data" / "visual_feature.h5", "w") as f:
        f.create_dataset("avadataset", data=np.zeros((n - 1, 10, 7, 7, 8), np.float32))
    with pytest.raises(AVEDataError, match=r"visual_feature.h5: key 'avadataset' has shape"):
        _dm(root).setup()


def test_labels_h5_disagreeing_with_annotations(ave_feat, tmp_path):
    root = _copy(ave_feat, tmp_path)
    with h5py.File(root / "data" / "labels.h5", "a") as f:
        lab = f["avadataset"][()]
        lab[4] = 0
        lab[4, :, 28] = 1
        f["avadataset"][...] = lab
    with pytest.raises(AVEDataError, match=r"labels.h5: row 4 .*line 5 of"):
        _dm(root).setup()


def test_split_file_errors(ave_feat, tmp_path):
    root = _copy(ave_feat, tmp_path)
    n = len(ave_feat["rows"])
    with h5py.File(root / "data" / "val_order.h5", "w") as f:
        f.create_dataset("order", data=np.array([0, n + 3]))
    with pytest.raises(AVEDataError, match=r"val_order.h5: key 'order' has row index \d+ out of range"):
        _dm(root).setup()
    # txt lists: a line that matches no annotation row
    tst = root / "AVE_Dataset" / "testSet.txt"
    tst.write_text(tst.read_text() + "Bark&NOSUCHVIDEO&good&0&10\n")
    with pytest.raises(AVEDataError, match=r"testSet.txt:\d+: line Bark&NOSUCHVIDEO"):
        _dm(root, split_source="txt").setup()
    for s in ("train", "val", "test"):
        (root / "data" / f"{s}_order.h5").unlink()
    (root / "AVE_Dataset" / "valSet.txt").unlink()
    with pytest.raises(FileNotFoundError, match="No complete AVE split"):
        _dm(root).setup()


def test_missing_files_and_ambiguous_copies(ave_feat, tmp_path):
    with pytest.raises(FileNotFoundError, match="AVE root folder not found"):
        _dm(tmp_path / "nope").setup()
    root = _copy(ave_feat, tmp_path)
    (root / "data" / "Annotations.txt").write_text("Bark&zzzzzzzzzzz&good&0&10\n")
    with pytest.raises(AVEDataError, match="2 different files named Annotations.txt"):
        _dm(root).setup()
    shutil.copy(root / "AVE_Dataset" / "Annotations.txt", root / "data" / "Annotations.txt")
    dm = _dm(root)
    dm.setup()  # identical copies are fine, and said so
    assert any("identical copies of Annotations.txt" in n for n in dm.layout.notes)
    (root / "data" / "Annotations.txt").unlink()
    (root / "AVE_Dataset" / "Annotations.txt").unlink()
    with pytest.raises(FileNotFoundError, match="Annotations.txt not found under"):
        _dm(root).setup()
    root2 = _copy(ave_feat, tmp_path / "b")
    (root2 / "data" / "visual_feature.h5").unlink()
    with pytest.raises(FileNotFoundError, match="input_mode='features' but visual_feature.h5 not found"):
        _dm(root2, input_mode="features").setup()
    with pytest.raises(FileNotFoundError, match="No AVE inputs"):
        _dm(root2).setup()  # auto: no features and no videos


def test_synthetic_features_are_learnable(ave_feat):
    # nearest class centroid on pooled segment features separates event classes and background
    dm = _dm(ave_feat["root"])
    dm.setup()

    def pooled(split):
        xs, ys = [], []
        for i in range(len(dm.datasets[split])):
            s = dm.datasets[split][i]
            xs.append(torch.cat([s["visual"].amax(dim=(1, 2)), s["audio"]], dim=-1))
            ys.append(s["label"])
        return torch.cat(xs), torch.cat(ys)

    xtr, ytr = pooled("train")
    xte, yte = pooled("test")
    classes = ytr.unique()
    centroids = torch.stack([xtr[ytr == c].mean(0) for c in classes])
    pred = classes[torch.cdist(xte, centroids).argmin(1)]
    assert (pred == yte).float().mean() > 0.9
