"""The Charades DataModule on tiny datasets in both official layouts (``Charades_v1_480`` mp4s and
``Charades_v1_rgb`` JPEG frames): multi-hot targets from the action intervals overlapping the
sampled clip (training) or the whole video (test), PySlowFast's test-clip spacing, the rescaled
training crop of the non-local recipe, and errors naming the file and line of broken input."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from mmzoo.data.charades import CharadesDataModule, parse_actions, read_charades_classes
from mmzoo.data.synthetic.charades import write_charades
from mmzoo.errors import DataError
from mmzoo.registry import InputConfig

SMALL = dict(num_frames=4, stride=2, crop_size=24, train_scale=(28, 32), train_resize=None, test_scale=32,
             test_crop_size=32, num_clips=3, num_crops=1, batch_size=3, num_workers=0)  # fmt: skip


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    root = tmp_path_factory.mktemp("charades")
    truth = write_charades(root, num_videos={"train": 3, "test": 2}, layout="both", num_frames=30, fps=30.0,
                           size=(32, 40), no_actions=[("test", 1)], seed=5)  # fmt: skip
    return root, truth


def _overlap(actions, t0, t1):
    return sorted({c for c, s, e in actions if s <= t1 and e >= t0})


@pytest.mark.parametrize("layout", ["video", "frames"])
def test_training_targets_are_the_actions_overlapping_the_clip(both, layout):
    root, truth = both
    torch.manual_seed(0)
    dm = CharadesDataModule(root=str(root), layout=layout, **SMALL)
    dm.setup("fit")
    assert dm.num_classes == 157
    rows = {r["id"]: r for r in truth["rows"]["train"]}
    fps, first = (30.0, 0) if layout == "video" else (24.0, 1)  # mp4 at 30 fps; frames at 24 fps, numbered from 1
    seen = 0
    for _ in range(4):
        batch = next(iter(dm.train_dataloader()))
        assert batch["video"].shape == (3, 3, 4, 24, 24) and batch["label"].dtype == torch.float32
        for label, meta in zip(batch["label"], batch["meta"]):
            idx = meta["frame_indices"]
            t0, t1 = (min(idx) - first) / fps, (max(idx) - first) / fps
            assert meta["time_span"] == pytest.approx((t0, t1))
            want = _overlap(rows[meta["id"]]["actions"], t0, t1)
            assert label.nonzero().view(-1).tolist() == want
            seen += len(want) < len({c for c, _, _ in rows[meta["id"]]["actions"]})
    assert seen, "no clip ever missed an action of its video: the clip-level targets were not exercised"


@pytest.mark.parametrize("layout", ["video", "frames"])
def test_test_views_carry_video_level_labels_and_pyslowfast_clip_spacing(both, layout):
    root, truth = both
    dm = CharadesDataModule(root=str(root), layout=layout, **SMALL)
    dm.setup("test")
    batches = list(dm.test_dataloader())
    vid = torch.cat([b["video_index"] for b in batches])
    assert vid.tolist() == [0, 0, 0, 1, 1, 1]  # 3 clips x 1 crop per video, in CSV order
    labels = torch.cat([b["label"] for b in batches])
    for i, row in enumerate(truth["rows"]["test"]):
        assert labels[3 * i:3 * i + 3].nonzero()[:, 1].unique().tolist() == sorted({c for c, _, _ in row["actions"]})
    assert labels[3:].sum() == 0  # the video with an empty 'actions' field
    # clip k of K starts at round(k (N - span) / (K - 1)): N frames, span 7
    n = 30 if layout == "video" else 24
    first = 0 if layout == "video" else 1
    starts = [m["frame_indices"][0] - first for b in batches for m in b["meta"]][:3]
    assert starts == [0, round((n - 7) / 2), n - 7]
    assert batches[0]["video"].shape[-2:] == (32, 32)


def test_train_crop_is_rescaled_and_defaults_follow_the_model(both):
    root, _ = both
    dm = CharadesDataModule(root=str(root), layout="video", **{**SMALL, "train_resize": 36})
    dm.setup("fit")
    assert next(iter(dm.train_dataloader()))["video"].shape[-2:] == (36, 36)
    nl = CharadesDataModule.defaults_from_input(InputConfig(shapes={}, train_crop=288, short_side=320, test_crop=320))
    assert (nl["crop_size"], nl["train_resize"], nl["test_scale"], nl["test_crop_size"]) == (224, 288, 320, 320)
    sf = CharadesDataModule.defaults_from_input(InputConfig(shapes={}, train_crop=224))
    assert (sf["crop_size"], sf["train_resize"]) == (224, 224)
    # the non-local recipe is the DataModule's own default
    d = CharadesDataModule(root=str(root))
    assert (d.hparams.crop_size, d.hparams.train_resize, d.hparams.test_scale, d.hparams.train_scale) == (224, 288, 320, (256, 320))


def _copy(both, tmp_path) -> Path:
    root, _ = both
    dst = tmp_path / "c"
    shutil.copytree(root, dst)
    return dst


def _replace_line(path: Path, line: int, old: str, new: str) -> None:
    lines = path.read_text().splitlines(keepends=True)
    assert old in lines[line - 1]
    lines[line - 1] = lines[line - 1].replace(old, new)
    path.write_text("".join(lines))


@pytest.mark.parametrize("bad,match", [
    ("c0x1 0.10 0.50", "is not 'cNNN <start> <end>'"),
    ("c199 0.10 0.50", "not in the class list"),
    ("c001 0.90 0.50", "needs 0 <= start <= end"),
    ("c001 abc 0.50", "start / end are not numbers"),
])
def test_broken_action_fields_name_the_csv_line(both, tmp_path, bad, match):
    _, truth = both
    dst = _copy(both, tmp_path)
    csv = dst / "Charades_v1_train.csv"
    row = truth["rows"]["train"][1]
    _replace_line(csv, row["line"], row["actions_text"], bad)
    with pytest.raises(DataError, match=rf"Charades_v1_train.csv:{row['line']}: .*{match}"):
        CharadesDataModule(root=str(dst), layout="video", **SMALL).setup("fit")


def test_csv_length_duplicates_and_field_count_errors(both, tmp_path):
    root, truth = both
    dst = _copy(both, tmp_path)
    csv = dst / "Charades_v1_test.csv"
    row = truth["rows"]["test"][0]
    _replace_line(csv, row["line"], f"{row['length']:.2f}", "long")
    with pytest.raises(DataError, match=rf"Charades_v1_test.csv:{row['line']}: column 'length'"):
        CharadesDataModule(root=str(dst), layout="video", **SMALL).setup("test")
    text = (root / "Charades_v1_test.csv").read_text().splitlines()
    csv.write_text("\n".join([*text[:2], text[1], "x,y"]) + "\n")
    with pytest.raises(DataError, match=r"Charades_v1_test.csv:3: video \w+ already listed at line 2"):
        CharadesDataModule(root=str(dst), layout="video", **SMALL).setup("test")
    csv.write_text("\n".join([text[0], "x,y"]) + "\n")
    with pytest.raises(DataError, match=r"Charades_v1_test.csv:2: expected 11 fields"):
        CharadesDataModule(root=str(dst), layout="video", **SMALL).setup("test")


def test_missing_videos_frames_and_class_list_errors(both, tmp_path):
    _, truth = both
    dst = _copy(both, tmp_path)
    row = truth["rows"]["train"][2]
    (dst / "Charades_v1_480" / f"{row['id']}.mp4").unlink()
    with pytest.raises(DataError, match=rf"Charades_v1_train.csv:{row['line']}: .*{row['id']}.mp4"):
        CharadesDataModule(root=str(dst), layout="video", **SMALL).setup("fit")
    with pytest.warns(UserWarning, match="1 annotated video"):
        dm = CharadesDataModule(root=str(dst), layout="video", missing_videos="skip", **SMALL)
        dm.setup("fit")
    assert len(dm.datasets["train"].records) == 2 and len(dm.missing_videos) == 1
    (dst / "Charades_v1_rgb" / row["id"] / f"{row['id']}-000005.jpg").unlink()
    with pytest.raises(DataError, match=rf"lacks frame .*{row['id']}-000005.jpg"):
        CharadesDataModule(root=str(dst), layout="frames", **SMALL).setup("fit")
    classes = dst / "Charades_v1_classes.txt"
    _replace_line(classes, 4, "c003", "c004")
    with pytest.raises(DataError, match=r"Charades_v1_classes.txt:4: class id c004 out of order"):
        read_charades_classes(classes)
    assert parse_actions("", 157, "x.csv", 2) == []
    with pytest.raises(DataError, match="not found"):
        CharadesDataModule(root=str(tmp_path / "nowhere"), **SMALL).setup("fit")


def test_frame_layout_takes_audio_from_the_mp4_when_there_is_one(both, tmp_path):
    root, _ = both
    audio = dict(with_audio=True, audio_num_frames=16, audio_n_mels=8)
    dm = CharadesDataModule(root=str(root), layout="frames", **SMALL, **audio)
    dm.setup("test")
    batch = next(iter(dm.test_dataloader()))
    assert batch["audio"].shape == (3, 1, 16, 8) and bool(batch["has_audio"].all())
    assert batch["audio"].abs().sum() > 0
    dst = tmp_path / "frames_only"
    shutil.copytree(root, dst, ignore=shutil.ignore_patterns("Charades_v1_480"))
    dm = CharadesDataModule(root=str(dst), **SMALL, **audio)  # auto: frames
    dm.setup("test")
    batch = next(iter(dm.test_dataloader()))
    assert not bool(batch["has_audio"].any()) and batch["audio"].abs().sum() == 0
    assert batch["meta"][0]["source"].endswith(batch["meta"][0]["id"])
