"""`vid` DataModule on a synthetic dataset in the official ILSVRC2015 layout: exact labels, boxes,
frame indices, flips, and a clear error for each kind of bad input."""
from pathlib import Path

import pytest
import torch

from mmzoo.data import get_datamodule
from mmzoo.data.decode import FrameNotFoundError
from mmzoo.data.synthetic.vid import write_vid
from mmzoo.data.vid import VID_CLASSES, VID_WNIDS, VIDDataModule, VIDFormatError, parse_vid_xml, to_devkit_boxes


@pytest.fixture()
def vid(tmp_path):
    truth = write_vid(tmp_path, num_train=3, num_val=2, num_frames=25, det_images=2, seed=1)
    return tmp_path, truth


def _dm(root, **kw):
    args = dict(root=str(root), num_workers=0, short_side=64, max_side=96, num_frames=7, stride=10, eval_window=11)
    args.update(kw)
    return VIDDataModule(**args)


def test_registered_and_class_list():
    assert get_datamodule("vid") is VIDDataModule
    assert len(VID_WNIDS) == 30 and VID_WNIDS[0] == "n02691156" and VID_WNIDS[-1] == "n02391049"
    assert VID_CLASSES[9] == "domestic_cat" and VID_CLASSES[17] == "monkey"


def test_official_files_written(vid):
    root, _ = vid
    lines = (root / "ImageSets/VID/val.txt").read_text().splitlines()
    assert lines[0] == "ILSVRC2015_val_00000000/000000 1" and lines[-1].endswith(" 50")
    tr = (root / "ImageSets/VID/train_1.txt").read_text().splitlines() + \
        (root / "ImageSets/VID/train_2.txt").read_text().splitlines()
    assert all(l.startswith("ILSVRC2015_VID_train_0000/ILSVRC2015_train_") and l.endswith(" 1") for l in tr)
    a = parse_vid_xml(root / "Annotations/VID/val/ILSVRC2015_val_00000001/000003.xml")
    assert (a.width, a.height) == (96, 64)


def test_eval_windows_cover_every_frame_exactly(vid):
    root, truth = vid
    dm = _dm(root, eval_stride=1, eval_window_step=11)  # consecutive, non-overlapping windows
    dm.setup("validate")
    seen = []
    for batch in dm.val_dataloader():
        assert batch["video"].shape[:2] == (1, 3)
        for m, b, lab in zip(batch["meta"], batch["boxes"], batch["labels"]):
            seen.append((m["snippet"], m["frame"], m["eval_index"]))
            gt = truth["val"][m["snippet"]][m["frame"]]
            assert lab.tolist() == [o["label"] for o in gt]
            want = torch.tensor([o["box"] for o in gt], dtype=torch.float)
            assert torch.allclose(to_devkit_boxes(b, m), want, atol=1e-4)
            assert m["track_ids"] == [o["trackid"] for o in gt]
    expected = [(sid, t, i * 25 + t + 1) for i, sid in enumerate(truth["val"]) for t in range(25)]
    assert seen == expected
    # windows of 11: 11, 11, 3 per snippet; the last one flagged
    lasts = [w[3] for w in dm.val_set.windows]
    assert [len(w[1]) for w in dm.val_set.windows] == [11, 11, 3, 11, 11, 3] and lasts == [False, False, True] * 2


def test_train_sequences_stride_flip_and_boxes(vid):
    root, truth = vid
    dm = _dm(root, det_list="ImageSets/DET/train_vid30.txt")
    dm.setup("fit")
    ds = dm.train_set
    assert len(ds) == 3 + 2
    for i in range(3):
        s = ds[i]
        frames = [m["frame"] for m in s["meta"]]
        assert len(frames) == 7
        key = frames[3]  # the key frame sits in the centre; the others are 10 apart, clamped to the snippet
        assert frames == [min(max(key + 10 * (k - 3), 0), 24) for k in range(7)]
        assert s["video"].shape[:2] == (3, 7)
        sid = s["meta"][0]["snippet"]
        for m, b, lab in zip(s["meta"], s["boxes"], s["labels"]):
            gt = truth["train"][sid][m["frame"]]
            assert torch.allclose(to_devkit_boxes(b, m), torch.tensor([o["box"] for o in gt], dtype=torch.float), atol=1e-4)
            assert lab.tolist() == [o["label"] for o in gt]
    # a flipped sequence is the mirror image of the unflipped one, boxes included
    sid = ds.snippets[0]
    idx = [0, 10, 20]
    anns = [ds._ann("train", sid, f) for f in idx]
    plain = ds._sample("train", sid, idx, anns, False, [-1] * 3, False)
    flipped = ds._sample("train", sid, idx, anns, True, [-1] * 3, False)
    assert torch.allclose(flipped["video"], plain["video"].flip(-1), atol=1e-5)
    w = plain["meta"][0]["size"][1]
    b0, b1 = plain["boxes"][0], flipped["boxes"][0]
    assert torch.allclose(b1[:, 0], w - b0[:, 2]) and torch.allclose(b1[:, 2], w - b0[:, 0])
    # random flips: whole sequences, both outcomes occur over epochs
    loader = dm.train_dataloader()
    outcomes, keys = set(), set()
    for epoch in range(12):
        loader.sampler.set_epoch(epoch)  # what Lightning calls at every epoch start
        assert ds.epoch == epoch
        s = ds[0]
        keys.add(s["meta"][3]["frame"])
        assert len({m["flipped"] for m in s["meta"]}) == 1
        outcomes.add(s["meta"][0]["flipped"])
    assert outcomes == {True, False} and len(keys) > 1  # new key frames and flips every epoch
    # DET stills: T copies of one image with its boxes
    det = ds[3]
    assert det["meta"][0]["split"] == "det" and torch.equal(det["video"][:, 0], det["video"][:, 6])
    # batches: B*T flat lists
    batch = next(iter(dm.train_dataloader()))
    assert batch["video"].shape[:3] == (2, 3, 7) and len(batch["boxes"]) == len(batch["meta"]) == 14


def _break(root: Path, rel: str, old: str, new: str):
    p = root / rel
    p.write_text(p.read_text().replace(old, new, 1))
    return p


def test_bad_xml_names_file_and_line(vid):
    root, _ = vid
    p = root / "Annotations/VID/val/ILSVRC2015_val_00000000/000002.xml"
    p.write_text(p.read_text().replace("</size>", "</sise>"))
    dm = _dm(root)
    dm.setup("validate")
    with pytest.raises(VIDFormatError, match=r"000002\.xml:\d+: XML does not parse"):
        dm.val_set[0]


def test_unknown_wnid_and_box_outside(vid):
    root, truth = vid
    p = root / "Annotations/VID/val/ILSVRC2015_val_00000000/000001.xml"
    wnid = truth["val"]["ILSVRC2015_val_00000000"][1][0]["wnid"]
    p.write_text(p.read_text().replace(wnid, "n99999999"))
    with pytest.raises(VIDFormatError, match=r"000001\.xml:\d+: unknown WNID 'n99999999'"):
        parse_vid_xml(p)
    q = root / "Annotations/VID/val/ILSVRC2015_val_00000001/000000.xml"
    import re
    text = q.read_text()
    q.write_text(re.sub(r"<xmax>\d+</xmax>", "<xmax>500</xmax>", text, count=1))
    with pytest.raises(VIDFormatError, match=r"000000\.xml:\d+: box .* outside the 96x64 image"):
        parse_vid_xml(q)


def test_missing_frame_and_bad_lists(vid):
    root, _ = vid
    (root / "Data/VID/val/ILSVRC2015_val_00000001/000004.JPEG").unlink()
    dm = _dm(root)
    dm.setup("validate")
    with pytest.raises(FrameNotFoundError, match="000004.JPEG"):
        for i in range(len(dm.val_set)):
            dm.val_set[i]
    with pytest.raises(VIDFormatError, match="000004.JPEG: frame listed"):
        _dm(root, check_files="all").setup("validate")
    _break(root, "ImageSets/VID/val.txt", "ILSVRC2015_val_00000000/000003 4", "ILSVRC2015_val_00000000/000003")
    with pytest.raises(VIDFormatError, match=r"val\.txt:4: cannot parse"):
        _dm(root).setup("validate")


def test_missing_snippet_folder(vid):
    root, _ = vid
    import shutil
    shutil.rmtree(root / "Data/VID/train/ILSVRC2015_VID_train_0000/ILSVRC2015_train_00001000")
    with pytest.raises(VIDFormatError, match="ILSVRC2015_train_00001000: snippet folder not found"):
        _dm(root).setup("fit")
    with pytest.raises(VIDFormatError, match="root folder not found"):
        _dm(root / "nope").setup("fit")


def test_snippet_shard_sampler_keeps_snippets_whole(vid):
    from mmzoo.data.vid import SnippetShardSampler

    root, _ = vid
    dm = _dm(root, eval_window=4)
    dm.setup("validate")
    ds = dm.val_set
    shards = [list(SnippetShardSampler(ds, 2, r)) for r in range(2)]
    assert sorted(shards[0] + shards[1]) == list(range(len(ds)))
    owners = [{ds.windows[i][0] for i in sh} for sh in shards]
    assert owners[0] and owners[1] and not (owners[0] & owners[1])
    for sh in shards:
        assert sh == sorted(sh)  # windows of a snippet in order


def test_eval_window_indices_follow_the_authors_test_protocol():
    from mmzoo.data.vid import eval_window_indices

    # 1 frame in 10 as in training, 11-frame windows sliding by 1 over each of the 10 sequences
    wins = eval_window_indices(130, window=11, stride=10, step=1)
    assert wins[:3] == [list(range(0, 101, 10)), list(range(10, 111, 10)), list(range(20, 121, 10))]
    assert wins[3] == list(range(1, 102, 10)) and len(wins) == 10 * 3
    # a sequence no longer than the window is one window; every frame is covered
    assert eval_window_indices(25, 11, 10, 1) == [[p, p + 10, p + 20] if p < 5 else [p, p + 10] for p in range(10)]
    for t in (3, 7, 11, 15):  # the thesis's test-window ablation
        wins = eval_window_indices(200, t, 10, 1)
        assert {len(w) for w in wins} == {t}
        assert sorted({i for w in wins for i in w}) == list(range(200))
        assert all(b - a == 10 for w in wins for a, b in zip(w, w[1:]))
    # the previous protocol stays expressible: consecutive frames, non-overlapping windows
    assert eval_window_indices(25, 11, 1, 11) == [list(range(11)), list(range(11, 22)), [22, 23, 24]]
    with pytest.raises(ValueError):
        eval_window_indices(25, 3, 10, 4)  # a step longer than the window would skip frames


def test_default_eval_windows_are_strided_and_overlapping(vid):
    root, truth = vid
    dm = _dm(root, eval_window=2)  # defaults: eval_stride=10, eval_window_step=1
    dm.setup("validate")
    wins = dm.val_set.windows
    sid0 = next(iter(truth["val"]))
    mine = [w for w in wins if w[0] == sid0]
    assert [w[1] for w in mine[:3]] == [[0, 10], [10, 20], [1, 11]]
    assert [w[2] for w in mine[:2]] == [[1, 11], [11, 21]]  # val.txt indices
    assert [w[3] for w in mine] == [False] * (len(mine) - 1) + [True]
    seen = {}
    for batch in dm.val_dataloader():
        for m in batch["meta"]:
            seen.setdefault((m["snippet"], m["frame"]), set()).add(m["eval_index"])
    assert sorted(seen) == sorted((s, t) for s in truth["val"] for t in range(25))
    assert all(len(v) == 1 for v in seen.values())


def test_eval_meta_carries_exact_xml_boxes_and_motion_iou(vid):
    from mmzoo.metrics.vid_motion import motion_iou

    root, truth = vid
    sid = next(iter(truth["val"]))
    # an object touching the right border: xmax == width is valid XML that the scaled path clips
    xml = root / "Annotations/VID/val" / sid / "000000.xml"
    text = xml.read_text()
    old = f"<xmax>{truth['val'][sid][0][0]['box'][2]}</xmax>"
    xml.write_text(text.replace(old, "<xmax>96</xmax>", 1))
    truth["val"][sid][0][0]["box"] = (truth["val"][sid][0][0]["box"][0], *truth["val"][sid][0][0]["box"][1:2], 96,
                                      truth["val"][sid][0][0]["box"][3])
    dm = _dm(root)
    dm.setup("validate")
    frames = truth["val"][sid]
    want_mi = motion_iou([t for t, f in enumerate(frames) for _ in f], [o["trackid"] for f in frames for o in f],
                         torch.tensor([o["box"] for f in frames for o in f], dtype=torch.float64))
    want_mi = dict(zip(range(len(frames)), torch.split(want_mi, [len(f) for f in frames])))
    checked = 0
    for i in range(len(dm.val_set)):
        item = dm.val_set[i]
        for m in item["meta"]:
            if m["snippet"] != sid:
                continue
            gt = torch.tensor([o["box"] for o in frames[m["frame"]]], dtype=torch.float64).reshape(-1, 4)
            assert m["xml_boxes"].dtype == torch.float64 and torch.equal(m["xml_boxes"], gt)
            assert torch.allclose(m["motion_iou"], want_mi[m["frame"]])
            checked += 1
    assert checked == len(frames)


def test_empty_eval_list_is_an_error_naming_the_file(vid):
    root, _ = vid
    (root / "ImageSets/VID/val.txt").write_text("")
    with pytest.raises(VIDFormatError, match=r"ImageSets/VID/val\.txt: lists no frame"):
        _dm(root).setup("validate")
