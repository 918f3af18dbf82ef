"""`epic-kitchens` DataModule on synthetic EPIC-55 / EPIC-100 datasets in the official layouts."""
from __future__ import annotations

import shutil
import tarfile
from pathlib import Path

import pytest
import torch

from mmzoo.data import get_datamodule
from mmzoo.data.epic_kitchens import (
    DEFAULT_VAL_PARTICIPANTS_55,
    EpicKitchensDataModule,
    parse_timestamp,
)
from mmzoo.data.synthetic.epic_kitchens import format_timestamp, write_epic
from mmzoo.data.video_dataset import AnnotationError, LayoutError

SMALL = dict(
    num_frames=8, stride=2, train_scale=(48, 56), crop_size=40, test_scale=48, test_crop_size=48, batch_size=4,
    num_workers=0,
)  # fmt: skip


@pytest.fixture(scope="module")
def e100(tmp_path_factory):
    return write_epic(tmp_path_factory.mktemp("epic100"), version="100", no_audio_videos=["P02_101"])


@pytest.fixture(scope="module")
def e55(tmp_path_factory):
    return write_epic(tmp_path_factory.mktemp("epic55"), version="55")


def _dm(d, **kw):
    return EpicKitchensDataModule(root=d["root"], version=d["version"], **{**SMALL, **kw})


def _grey(video: torch.Tensor) -> list[float]:
    """Mean grey level of the top-left index block per frame of a normalised C,T,H,W clip."""
    px = (video * 0.225 + 0.45) * 255
    return px[:, :, 2:6, 2:6].mean(dim=(0, 2, 3)).tolist()


def test_timestamps():
    assert parse_timestamp("00:00:01.089") == pytest.approx(1.089)
    assert parse_timestamp("01:02:03.5") == pytest.approx(3723.5)
    assert format_timestamp(3723.5) == "01:02:03.50"
    with pytest.raises(ValueError, match="not a HH:MM:SS.ff timestamp"):
        parse_timestamp("1.5")


def test_epic100_targets_exact(e100):
    assert get_datamodule("epic-kitchens") is EpicKitchensDataModule
    dm = _dm(e100)
    dm.setup("fit")
    assert (dm.num_verbs, dm.num_nouns, dm.num_actions) == (5, 6, 30)
    for split in ("train", "val"):
        recs = dm.datasets[split].records
        rows = e100["rows"][split]
        assert [r.targets for r in recs] == [
            {"verb": x["verb_class"], "noun": x["noun_class"], "action": x["verb_class"] * 6 + x["noun_class"]} for x in rows
        ]
        assert [r.frames_dir for r in recs] == [e100["frames_dirs"][x["video_id"]] for x in rows]
        assert [(r.first_frame, r.last_frame) for r in recs] == [(x["start_frame"], x["stop_frame"]) for x in rows]
        assert [r.meta["line"] for r in recs] == [x["line"] for x in rows]


def test_epic100_frames_and_video_agree_on_frames(e100):
    out = {}
    for source in ("frames", "video"):
        dm = _dm(e100, source=source, num_crops=3, batch_size=6)
        dm.setup("test")
        batch = next(iter(dm.test_dataloader()))
        assert batch["video"].shape == (6, 3, 8, 48, 48)
        assert batch["verb"].tolist() == [e100["rows"]["val"][0]["verb_class"]] * 3 + [e100["rows"]["val"][1]["verb_class"]] * 3
        assert batch["action"].tolist() == [r["verb_class"] * 6 + r["noun_class"] for r in e100["rows"]["val"] for _ in range(3)]
        out[source] = batch
    # val segment 0 = frames 6..30: span 15 -> centre start 6 + floor(10 / 2) = 11
    assert out["frames"]["meta"][0]["frame_indices"] == [11, 13, 15, 17, 19, 21, 23, 25]
    assert out["frames"]["meta"][3]["frame_indices"] == [51, 53, 55, 57, 59, 61, 63, 65]
    # video mode uses the 2-decimal timestamps: [0.17 s, 0.97 s) at 30 fps -> stream frames 6..29
    assert out["video"]["meta"][0]["frame_indices"] == [10, 12, 14, 16, 18, 20, 22, 24]
    # frame file n holds stream frame n - 1: grey level 4 (n - 1)
    assert _grey(out["frames"]["video"][0]) == pytest.approx([4.0 * (n - 1) for n in out["frames"]["meta"][0]["frame_indices"]], abs=3)
    assert _grey(out["video"]["video"][0]) == pytest.approx([4.0 * i for i in out["video"]["meta"][0]["frame_indices"]], abs=3)


def test_epic100_train_audio_from_video_and_missing_audio(e100):
    dm = _dm(e100, with_audio=True, alpha=4, batch_size=4)
    dm.setup("fit")
    ds = dm.datasets["train"]
    by_vid = {}
    for i in range(len(ds)):
        s = ds[i]
        by_vid.setdefault(s["meta"]["video_id"], []).append(s)
        slow, fast = dm.finish_batch(s)["video"]  # training items leave geometry to the DataModule
        assert fast.shape == (3, 8, 40, 40) and slow.shape == (3, 2, 40, 40)
        seg = (s["meta"]["start_frame"], s["meta"]["stop_frame"])
        assert all(seg[0] <= n <= seg[1] for n in s["meta"]["frame_indices"])
        assert s["audio"].shape == (1, 128, 80)
    assert all(s["has_audio"] and s["audio"].std() > 0.3 for s in by_vid["P01_01"])
    assert all((not s["has_audio"]) and s["audio"].abs().sum() == 0 for s in by_vid["P02_101"])
    dm = _dm(e100, with_audio=True, missing_audio="error")
    dm.setup("fit")
    with pytest.raises(Exception, match="P02_101.MP4: no audio stream"):
        dm.datasets["train"][2]


def test_epic100_test_split_unlabelled(e100):
    dm = _dm(e100, test_set="test")
    dm.setup("test")
    batch = next(iter(dm.test_dataloader()))
    assert batch["verb"].tolist() == batch["noun"].tolist() == batch["action"].tolist() == [-1, -1]
    assert [m["narration_id"] for m in batch["meta"]] == ["P03_101_0", "P03_101_1"]
    with pytest.raises(ValueError, match="test_set 's1' does not exist for EPIC-100"):
        _dm(e100, test_set="s1")


def test_epic55_split_arguments_and_test_sets(e55):
    dm = _dm(e55)  # default validation participants P26-P31
    dm.setup("fit")
    assert (dm.num_verbs, dm.num_nouns) == (5, 6)
    assert {r.meta["video_id"] for r in dm.datasets["train"].records} == {"P01_01"}
    assert {r.meta["video_id"] for r in dm.datasets["val"].records} == {"P26_01"}
    assert "/frames_rgb_flow/rgb/train/P26/P26_01" in dm.datasets["val"].records[0].frames_dir
    dm = _dm(e55, val_videos=["P01_01"])
    dm.setup("fit")
    assert {r.meta["video_id"] for r in dm.datasets["val"].records} == {"P01_01"}
    f = Path(e55["root"]) / "val_videos.txt"
    f.write_text("P26_01\n")
    dm = _dm(e55, val_videos_file=str(f), val_videos=["P01_01"])  # the file wins
    dm.setup("fit")
    assert {r.meta["video_id"] for r in dm.datasets["val"].records} == {"P26_01"}
    with pytest.raises(LayoutError, match="EPIC-55 val split is empty"):
        _dm(e55, val_participants=["P99"]).setup("fit")
    for test_set, vid in (("s1", "P01_05"), ("s2", "P32_01")):
        dm = _dm(e55, test_set=test_set, source="video")
        dm.setup("test")
        recs = dm.datasets["test"].records
        assert {r.meta["video_id"] for r in recs} == {vid} and all(r.targets["verb"] == -1 for r in recs)
        assert f"/videos/test/{vid.split('_')[0]}/{vid}.MP4" in recs[0].video
        assert next(iter(dm.test_dataloader()))["video"].shape[0] == 2


def test_layout_errors_name_paths(tmp_path, e100):
    root = tmp_path / "e"
    shutil.copytree(e100["root"], root)
    d = {**e100, "root": str(root)}
    fdir = root / "P01" / "rgb_frames" / "P01_11"
    with tarfile.open(str(fdir) + ".tar", "w") as tar:
        tar.add(fdir, arcname=".")
    shutil.rmtree(fdir)
    with pytest.raises(LayoutError, match=r"EPIC_100_validation.csv:2: frame folder of P01_11 not found; .*P01_11.tar exists: extract it"):
        _dm(d).setup("fit")
    (root / "P01" / "videos" / "P01_01.MP4").unlink()
    with pytest.raises(LayoutError, match=r"EPIC_100_train.csv:2: video of P01_01 not found; looked for .*P01/videos/P01_01.MP4"):
        _dm(d, source="video").setup("fit")
    with pytest.raises(LayoutError, match="EPIC-Kitchens annotations folder not found"):
        _dm(d, annotations_dir="nowhere").setup("fit")
    (root / "annotations" / "EPIC_100_validation.csv").unlink()
    with pytest.raises(LayoutError, match="annotation file not found: .*EPIC_100_validation.csv"):
        _dm(d).setup("fit")


def _rewrite(path: str, lineno: int, fn) -> None:
    lines = Path(path).read_text().splitlines()
    lines[lineno - 1] = fn(lines[lineno - 1])
    Path(path).write_text("\n".join(lines) + "\n")


def test_bad_annotation_lines(tmp_path, e100):
    root = tmp_path / "e"
    shutil.copytree(e100["root"], root)
    d = {**e100, "root": str(root)}
    train = root / "annotations" / "EPIC_100_train.csv"
    good = train.read_text()
    cases = [
        (lambda l: l.replace("00:00:00.17", "0:0:x"), r"EPIC_100_train.csv:2: not a HH:MM:SS.ff timestamp: '0:0:x'"),
        (lambda l: l.replace(",6,30,", ",6,abc,"), r"EPIC_100_train.csv:2: column 'stop_frame': cannot parse 'abc' as int"),
        (lambda l: l.replace(",6,30,", ",30,6,"), r"EPIC_100_train.csv:2: bad frame range 30..6"),
        (lambda l: ",".join(l.split(",")[:10] + ["9"] + l.split(",")[11:]), r"EPIC_100_train.csv:2: verb_class 9 outside \[0, 5\)"),
        (lambda l: ",".join(l.split(",")[:-1]), r"EPIC_100_train.csv:2: expected 15 fields"),
    ]
    for fn, msg in cases:
        train.write_text(good)
        _rewrite(str(train), 2, fn)
        with pytest.raises(AnnotationError, match=msg):
            _dm(d).setup("fit")
    train.write_text(good)
    nouns = root / "annotations" / "EPIC_100_noun_classes.csv"
    _rewrite(str(nouns), 3, lambda l: "7" + l[1:])
    with pytest.raises(AnnotationError, match=r"EPIC_100_noun_classes.csv: class ids are not 0..5"):
        _dm(d).setup("fit")


def test_tsn_segments_through_the_datamodule(e100):
    dm = _dm(e100, temporal="tsn", num_frames=4, batch_size=2)
    dm.setup("test")
    batch = next(iter(dm.test_dataloader()))
    assert batch["video"].shape == (2, 3, 4, 48, 48)
    # val segment 0: frames 6..30 (25 frames) cut into [0,6) [6,12) [12,18) [18,25), middle of each
    assert batch["meta"][0]["frame_indices"] == [8, 14, 20, 27]
    assert dm.num_verbs == 5 and dm.num_nouns == 6 and not getattr(EpicKitchensDataModule, "model_links", ())


def test_epic100_evaluation_subset_flags(e100):
    dm = _dm(e100, test_set="test")
    dm.setup("fit")
    dm.setup("test")
    val = dm.datasets["val"].records
    assert [r.meta["unseen_participant"] for r in val] == [True, True]  # P01 listed as unseen in val
    assert [r.meta["tail_verb"] for r in val] == [x["verb_class"] in (3, 4) for x in e100["rows"]["val"]]
    assert [r.meta["tail_noun"] for r in val] == [x["noun_class"] in (4, 5) for x in e100["rows"]["val"]]
    assert all("unseen_participant" not in r.meta for r in dm.datasets["train"].records)  # val/test only
    test = dm.datasets["test"].records
    assert all(r.meta["unseen_participant"] for r in test) and "tail_verb" not in test[0].meta  # unlabelled


def test_action_counts_from_training_rows(e100, e55):
    c = _dm(e100).action_counts()
    assert c.shape == (5, 6) and int(c.sum()) == len(e100["rows"]["train"])
    for x in e100["rows"]["train"]:
        assert c[x["verb_class"], x["noun_class"]] >= 1
    expected = torch.zeros(5, 6, dtype=torch.long)
    for x in e55["rows"]["train"]:  # EPIC-55: only the training part of the split (P26 is validation)
        if x["participant_id"] != "P26":
            expected[x["verb_class"], x["noun_class"]] += 1
    assert torch.equal(_dm(e55).action_counts(), expected)


def test_epic55_validation_list_is_strict(e55, tmp_path):
    # the default is the (unverified, documented) participant split: train P01-P25, validate P26-P31
    assert DEFAULT_VAL_PARTICIPANTS_55 == tuple(f"P{i}" for i in range(26, 32))
    f = tmp_path / "val.txt"
    for text, msg in [
        ("P26_01\nP26_1\n", r"val.txt:2: not an EPIC video id \(Pxx_yy\): 'P26_1'"),
        ("P26_01\n\nP26_01\n", r"val.txt:3: video P26_01 listed twice"),
        ("P26_01\nP27_01\n", r"val.txt:2: 1 validation video\(s\) not in .*EPIC_train_action_labels.csv: \['P27_01'\]"),
    ]:
        f.write_text(text)
        with pytest.raises(AnnotationError, match=msg):
            _dm(e55, val_videos_file=str(f)).setup("fit")
    with pytest.raises(AnnotationError, match=r"val_videos: 1 validation video\(s\) not in .*\['P01_02'\]"):
        _dm(e55, val_videos=["P01_01", "P01_02"]).setup("fit")
    with pytest.raises(ValueError, match=r"val_participants must be EPIC participant ids like 'P26', got \['26'\]"):
        _dm(e55, val_participants=["26"])


def test_multiview_test_batches_carry_video_index(e100):
    dm = _dm(e100, num_clips=2, num_crops=3, batch_size=6)
    dm.setup("test")
    batch = next(iter(dm.test_dataloader()))
    assert batch["video_index"].dtype == torch.int64 and batch["video_index"].tolist() == [0] * 6
    assert batch["video_index"].tolist() == [m["video_index"] for m in batch["meta"]]


def test_epic100_batches_carry_unseen_and_dm_exposes_tail_lists(e100, tmp_path):
    dm = _dm(e100, test_set="val")
    dm.setup("test")
    batch = next(iter(dm.test_dataloader()))
    expected = [m["participant_id"] in e100["unseen_participants"]["val"] for m in batch["meta"]]
    assert batch["unseen"].dtype == torch.bool and batch["unseen"].tolist() == expected
    assert dm.metric_subsets() == {"tail_verbs": e100["tail_verbs"], "tail_nouns": e100["tail_nouns"]}
    # the release's one-file unseen list is read when the per-split one is absent
    root = tmp_path / "epic"
    shutil.copytree(e100["root"], root)
    (root / "annotations" / "EPIC_100_unseen_participant_ids_validation.csv").unlink()
    (root / "annotations" / "EPIC_100_unseen_participant_ids.csv").write_text("participant_id\nP02\n")
    dm = _dm({**e100, "root": str(root)}, test_set="val")
    dm.setup("test")
    assert not next(iter(dm.test_dataloader()))["unseen"].any()  # P01 is seen now
    for name in ("EPIC_100_unseen_participant_ids.csv", "EPIC_100_tail_verbs.csv", "EPIC_100_tail_nouns.csv"):
        (root / "annotations" / name).unlink()
    dm = _dm({**e100, "root": str(root)}, test_set="val")
    dm.setup("test")
    assert "unseen" not in next(iter(dm.test_dataloader())) and dm.metric_subsets() == {}


def test_epic55_many_shot_lists_and_unseen_kitchens(e55):
    dm = _dm(e55)
    assert dm.metric_subsets() == {
        "many_shot_verbs": e55["many_shot_verbs"], "many_shot_nouns": e55["many_shot_nouns"],
        "many_shot_actions": e55["many_shot_actions"],
    }  # fmt: skip
    for split, unseen in (("s1", False), ("s2", True)):
        dm = _dm(e55, test_set=split)
        dm.setup("test")
        batch = next(iter(dm.test_dataloader()))
        assert batch["unseen"].tolist() == [unseen] * len(batch["meta"])


def test_annotations_dir_as_given_then_under_root_and_errors_name_the_flag(e100, tmp_path, monkeypatch):
    import shutil

    root = Path(e100["root"])
    work = tmp_path / "work"
    shutil.copytree(root / "annotations", work / "my-annotations")
    monkeypatch.chdir(work)
    dm = _dm(e100, annotations_dir="my-annotations")  # relative to the working directory
    assert dm.annotations_dir == Path("my-annotations")
    dm.setup("fit")
    assert _dm(e100, annotations_dir="annotations").annotations_dir == root / "annotations"  # under the root
    with pytest.raises(LayoutError, match=r"annotations folder not found: --data\.annotations_dir nowhere \(tried: nowhere, "):
        _dm(e100, annotations_dir="nowhere").setup("fit")
    with pytest.raises(LayoutError, match=r"EPIC-Kitchens root not found: .* \(--data\.root\)"):
        _dm({**e100, "root": str(tmp_path / "none")}).setup("fit")


# ---------------------------------------------------------------------- optical flow
from mmzoo.data.flow_clips import rgb_to_flow_index
from mmzoo.data.synthetic.epic_kitchens import flow_value

FLOW_SMALL = {**SMALL, "source": "frames"}


@pytest.fixture(scope="module")
def f100(tmp_path_factory):
    return write_epic(tmp_path_factory.mktemp("flow100"), version="100", write_videos=False, write_flow=True)


@pytest.fixture(scope="module")
def f55(tmp_path_factory):
    return write_epic(tmp_path_factory.mktemp("flow55"), version="55", write_videos=False, write_flow=True)


def _flow_level(x: torch.Tensor) -> torch.Tensor:
    """Grey level (0..255) back from a normalised flow channel (mean 0.5, std 0.5)."""
    return (x * 0.5 + 0.5) * 255


def test_rgb_to_flow_index_is_the_release_mapping():
    # 2018 videos: flow at stride 2 -> RGB 1, 2 -> flow 1; 3, 4 -> 2; ...
    assert rgb_to_flow_index([1, 2, 3, 4, 89, 90], 2).tolist() == [1, 1, 2, 2, 45, 45]
    # 2020 videos: one flow frame per RGB frame, except the last one (clamped)
    assert rgb_to_flow_index([1, 2, 89, 90], 1, last_flow_frame=89).tolist() == [1, 2, 89, 89]


@pytest.mark.parametrize("test_set, video, stride", [("val", "P01_11", 2), ("test", "P03_101", 1)])
def test_epic100_flow_reads_the_mapped_u_and_v_frames(f100, test_set, video, stride):
    dm = _dm(f100, modality="flow", test_set=test_set, **FLOW_SMALL)
    dm.setup("test")
    ds = dm.datasets["test"]
    sample = ds[0]
    meta = sample["meta"]
    assert meta["video_id"] == video and sample["video"].shape == (2, 8, 48, 48)
    rgb = torch.tensor(meta["frame_indices"])
    flow = torch.tensor(meta["flow_frame_indices"])
    assert flow.tolist() == ((rgb - 1) // stride + 1).tolist()
    for t, j in enumerate(flow.tolist()):
        assert _flow_level(sample["video"][0, t]).mean().item() == pytest.approx(flow_value(j, "u"), abs=1.5)
        assert _flow_level(sample["video"][1, t]).mean().item() == pytest.approx(flow_value(j, "v"), abs=1.5)
    if test_set == "test":  # the test split has no labels
        assert (sample["verb"], sample["noun"], sample["action"]) == (-1, -1, -1)


def test_flow_flip_negates_the_horizontal_component(f100):
    dm = _dm(f100, modality="flow", **FLOW_SMALL)
    dm.setup("fit")
    ds = dm.datasets["train"]
    seen = set()
    for seed in range(40):
        torch.manual_seed(seed)
        s = ds[0]
        flow = torch.tensor(s["meta"]["flow_frame_indices"])
        u = torch.tensor([float(flow_value(j, "u")) for j in flow.tolist()])
        v = torch.tensor([float(flow_value(j, "v")) for j in flow.tolist()])
        got_u = _flow_level(s["video"][0]).mean(dim=(1, 2))
        got_v = _flow_level(s["video"][1]).mean(dim=(1, 2))
        want_u = 255 - u if s["meta"]["flipped"] else u
        torch.testing.assert_close(got_u, want_u, atol=1.5, rtol=0)
        torch.testing.assert_close(got_v, v, atol=1.5, rtol=0)
        seen.add(s["meta"]["flipped"])
        if seen == {True, False}:
            break
    assert seen == {True, False}


def test_epic55_flow_layout_and_missing_folder(f55, tmp_path):
    dm = _dm(f55, modality="flow", test_set="s2", **FLOW_SMALL)
    dm.setup("test")
    s = dm.datasets["test"][0]
    assert "frames_rgb_flow/flow/test/P32/P32_01" in s["meta"]["source"]
    assert s["meta"]["flow_frame_indices"] == [(n - 1) // 2 + 1 for n in s["meta"]["frame_indices"]]
    # a flow folder that is missing is named, with the tar hint
    root = tmp_path / "broken"
    shutil.copytree(f55["root"], root)
    target = root / "frames_rgb_flow" / "flow" / "test" / "P32" / "P32_01"
    shutil.rmtree(target)
    target.with_suffix(".tar").write_bytes(b"")
    with pytest.raises(LayoutError, match=r"flow folder of P32_01 not found.*P32_01\.tar exists: extract it"):
        _dm({**f55, "root": str(root)}, modality="flow", test_set="s2", **FLOW_SMALL).setup("test")


def test_rgb_and_flow_together_share_frames_and_crop(f100):
    dm = _dm(f100, modality="rgb+flow", **FLOW_SMALL)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["video"].shape[1] == 3 and batch["flow"].shape[1] == 2
    assert batch["video"].shape[2:] == batch["flow"].shape[2:]
    dm = _dm(f100, modality="rgb+flow", num_clips=1, num_crops=3, **FLOW_SMALL)
    dm.setup("test")
    s = dm.datasets["test"][0]  # evaluation, first of 3 crops: the left 48x48 square, no flip
    assert s["meta"]["crop_index"] == 0
    numbers = s["meta"]["frame_indices"]
    # the RGB frame's top-left 8x8 block has grey level 4 t (t = frame number - 1), Kinetics-normalised
    rgb_level = (s["video"][:, :, 1:6, 1:6] * 0.225 + 0.45).mean(dim=(0, 2, 3)) * 255
    torch.testing.assert_close(rgb_level, torch.tensor([4.0 * (n - 1) for n in numbers]), atol=3.0, rtol=0)
    flow_level = _flow_level(s["flow"][0]).mean(dim=(1, 2))
    want = torch.tensor([float(flow_value((n - 1) // 2 + 1, "u")) for n in numbers])
    torch.testing.assert_close(flow_level, want, atol=1.5, rtol=0)


def test_flow_modality_comes_from_the_model_input():
    import mmzoo

    flow = EpicKitchensDataModule.defaults_from_input(mmzoo.registry.get_spec("ipl-i3d-flow").input)
    assert flow["modality"] == "flow" and flow["flow_mean"] == (0.5, 0.5) and "mean" not in flow
    both = EpicKitchensDataModule.defaults_from_input(mmzoo.registry.get_spec("ipl-i3d-2stream").input)
    assert both["modality"] == "rgb+flow"
    assert "modality" not in EpicKitchensDataModule.defaults_from_input(mmzoo.registry.get_spec("ipl-i3d-rgb").input)
