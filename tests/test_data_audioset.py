"""AudioSet read from its distributed segment CSVs over downloaded clips: parsing, multi-hot labels,
clip naming, missing clips reported, broken lines named, the still-frame + 1-s waveform samples."""
from __future__ import annotations

import shutil

import pytest
import torch

from mmzoo.data.audioset import AudioSetDataModule, clip_name, read_segments
from mmzoo.data.decode import read_audio
from mmzoo.data.synthetic.audioset import write_audioset
from mmzoo.data.video_dataset import AnnotationError, LayoutError

TINY = {"num_workers": 0, "crop_size": 32, "train_scale": (32, 40), "test_scale": 32, "test_crop_size": 32, "num_clips": 1,
            "num_crops": 1}


@pytest.fixture(scope="module")
def aset(tmp_path_factory):
    return write_audioset(tmp_path_factory.mktemp("audioset"), per_class={"balanced": 2, "eval": 1})


def test_segment_csv_with_comments_and_quoted_labels(tmp_path):
    p = tmp_path / "eval_segments.csv"
    p.write_text("# Segments csv created Sun Mar  5 10:54:31 2017\n# num_ytids=2\n"
                 "# YTID, start_seconds, end_seconds, positive_labels\n"
                 '--PJHxphWEs, 30.000, 40.000, "/m/09x0r,/t/dd00088"\n'
                 '-0RWZT-miFs, 420.000, 430.000, "/m/03v3yw"\n')
    rows = read_segments(p)
    assert rows[0] == {"line": 4, "ytid": "--PJHxphWEs", "start": 30.0, "end": 40.0, "labels": ["/m/09x0r", "/t/dd00088"]}
    assert rows[1]["line"] == 5 and rows[1]["labels"] == ["/m/03v3yw"]
    assert clip_name("{ytid}_{start_ms}_{end_ms}", "abc", 30.0, 40.0) == "abc_30000_40000"
    assert clip_name("Y{ytid}", "abc", 30.0, 40.0) == "Yabc"
    assert clip_name("{ytid}_{start_s:06d}_{end_s:06d}", "abc", 30.0, 40.0) == "abc_000030_000040"


def test_multi_hot_labels_and_splits(aset):
    dm = AudioSetDataModule(aset["root"], num_frames=2, **TINY)
    dm.setup()
    assert dm.classes == ["Speech", "Male speech, man speaking", "Dog"] and dm.num_classes == 3
    train = dm.datasets["train"]
    assert len(train) == 6 and len(dm.datasets["test"]) == 3
    by_id = {r["ytid"]: r for r in aset["rows"]["balanced"]}
    for i in range(len(train)):
        s = train[i]
        want = torch.zeros(3)
        want[by_id[s["meta"]["youtube_id"]]["labels"]] = 1
        torch.testing.assert_close(s["label"], want)
    assert any(int(train[i]["label"].sum()) == 2 for i in range(len(train)))  # a two-label segment


def test_still_frame_and_centred_one_second_waveform(aset):
    dm = AudioSetDataModule(aset["root"], num_frames=1, stride=1, with_audio=True, audio_format="waveform",
                            audio_sample_rate=48000, audio_waveform_sec=1.0, **TINY)
    dm.setup("test")
    s = dm.datasets["test"][0]
    assert s["video"].shape == (3, 1, 32, 32) and s["audio"].shape == (48000,)
    (f,) = s["meta"]["frame_indices"]  # uniform test clip of one frame at 10 fps
    centre = (f + 0.5) / 10.0
    want = read_audio(s["meta"]["source"], centre - 0.5, centre + 0.5, sample_rate=48000)
    torch.testing.assert_close(s["audio"], want)


def test_missing_clips_counted_and_reported(aset, tmp_path):
    d = write_audioset(tmp_path / "m", per_class={"balanced": 1, "eval": 1}, missing=[("eval", 1)])
    with pytest.raises(LayoutError, match=r"1 video\(s\) of AudioSet eval segments are missing.*eval_segments\.csv:5"):
        AudioSetDataModule(d["root"], **TINY).setup("test")
    dm = AudioSetDataModule(d["root"], missing_videos="skip", **TINY)
    with pytest.warns(UserWarning, match="1 annotated video"):
        dm.setup("test")
    assert len(dm.missing_videos) == 1 and len(dm.datasets["test"]) == 2


def test_other_clip_pattern(aset, tmp_path):
    root = tmp_path / "p"
    shutil.copytree(aset["root"], root)
    for r in aset["rows"]["eval"]:
        src = root / "eval_segments" / f"{r['ytid']}_{int(r['start'] * 1000)}_{int(r['end'] * 1000)}.mp4"
        src.rename(root / "eval_segments" / f"Y{r['ytid']}.mp4")
    with pytest.raises(LayoutError, match="3 video"):
        AudioSetDataModule(str(root), **TINY).setup("test")
    dm = AudioSetDataModule(str(root), clip_pattern="Y{ytid}", **TINY)
    dm.setup("test")
    assert len(dm.datasets["test"]) == 3


@pytest.mark.parametrize("bad,msg", [
    ('abc, 1.000, "/m/09x0r"', "expected 4 fields"),
    ('abc, x, 10.000, "/m/09x0r"', "start_seconds"),
    ('abc, 10.000, 10.000, "/m/09x0r"', "is empty or negative"),
    ('abc, 0.000, 10.000, "/m/nope"', r"not in class_labels_indices\.csv"),
    ('abc, 0.000, 10.000, ""', "no positive label"),
])
def test_broken_segment_line_names_file_and_line(aset, tmp_path, bad, msg):
    root = tmp_path / "b"
    shutil.copytree(aset["root"], root)
    p = root / "eval_segments.csv"
    lines = p.read_text().splitlines()
    lines[4] = bad
    p.write_text("\n".join(lines) + "\n")
    with pytest.raises(AnnotationError, match=rf"eval_segments\.csv:5: .*{msg}"):
        AudioSetDataModule(str(root), **TINY).setup("test")


def test_broken_class_list(aset, tmp_path):
    root = tmp_path / "c"
    shutil.copytree(aset["root"], root)
    p = root / "class_labels_indices.csv"
    p.write_text('index,mid,display_name\n0,/m/09x0r,"Speech"\n2,/m/0bt9lr,"Dog"\n')
    with pytest.raises(AnnotationError, match=r"class_labels_indices\.csv:3: index 2, expected 1"):
        AudioSetDataModule(str(root), **TINY).setup("test")
