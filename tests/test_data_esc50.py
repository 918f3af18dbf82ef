"""ESC-50 / ESC-10 read from the release layout (meta/esc50.csv + audio/*.wav), folds, windows, errors."""
from __future__ import annotations

import shutil

import pytest
import torch

from mmzoo.data.decode import read_audio
from mmzoo.data.esc50 import ESC50DataModule
from mmzoo.data.synthetic.esc50 import class_hz, write_esc50
from mmzoo.data.video_dataset import AnnotationError, LayoutError
from mmzoo.registry import AudioInput, InputConfig


@pytest.fixture(scope="module")
def esc(tmp_path_factory):
    root = tmp_path_factory.mktemp("esc50")
    return write_esc50(root, seconds=5.0)


def _peak_hz(x: torch.Tensor, sr: int) -> float:
    spec = torch.fft.rfft(x.double()).abs()
    return float(spec.argmax()) * sr / x.numel()


def test_fold_split_labels_and_windows(esc):
    dm = ESC50DataModule(esc["root"], fold=2, num_workers=0)
    dm.setup()
    assert dm.classes == ["dog", "rooster", "rain"] and dm.num_classes == 3
    test = dm.datasets["test"]
    train = dm.datasets["train"]
    assert sorted(r.meta["video_id"] for r in test.records) == sorted(
        r["filename"] for r in esc["rows"] if r["fold"] == 2)
    assert {r.meta["fold"] for r in train.records} == {1, 3, 4, 5} and len(train) == 12
    assert len(test) == 3 * 5  # five 1-s windows per 5-s clip
    items = [test[i] for i in range(5)]
    assert [it["meta"]["start_sec"] for it in items] == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert {it["video_index"] for it in items} == {0}
    whole = read_audio(test.records[0].path, sample_rate=48000)
    for k, it in enumerate(items):
        assert it["audio"].shape == (48000,)
        torch.testing.assert_close(it["audio"], whole[k * 48000:(k + 1) * 48000])
    rec = test.records[1]
    hz = _peak_hz(test[5]["audio"], 48000)
    assert abs(hz - class_hz(rec.label)) <= 1.0 and test[5]["label"] == rec.label


def test_esc10_subset_reindexes(esc):
    dm = ESC50DataModule(esc["root"], subset="esc10", fold=1, num_workers=0)
    dm.setup("test")
    assert dm.classes == ["dog", "rain"]
    labels = sorted(r.label for r in dm.datasets["test"].records)
    assert labels == [0, 1]
    rain = [r for r in dm.datasets["test"].records if r.meta["video_id"].endswith("-2.wav")]
    assert rain[0].label == 1  # ESC-50 target 2 is ESC-10 index 1


def test_logmel_front_end_from_model_input(esc):
    cfg = InputConfig(shapes={}, audio=AudioInput(kind="logmel", sample_rate=16000, window_ms=25, hop_ms=10,
                                                  n_mels=40, num_frames=96))
    kw = ESC50DataModule.defaults_from_input(cfg)
    assert kw["audio_format"] == "logmel" and kw["window_sec"] == pytest.approx(0.975)
    dm = ESC50DataModule(esc["root"], num_workers=0, **kw)
    dm.setup("test")
    assert dm.datasets["test"][0]["audio"].shape == (1, 96, 40)


def _copy(esc, tmp_path):
    root = tmp_path / "esc"
    shutil.copytree(esc["root"], root)
    return root


@pytest.mark.parametrize("row,bad,msg", [
    (3, "{fn},9,{t},{c},False,1,A", "fold 9 is not in 1..5"),
    (2, "{fn},{f},{t},{c},maybe,1,A", "esc10"),
    (4, "{fn},{f},7,{c},False,1,A", "disagrees with fold"),
    (5, "{fn},{f},{t},cat,False,1,A", "is 'cat' here"),
    (3, "{fn},{f},{t}", "expected 7 fields"),
])
def test_broken_csv_line_names_file_and_line(esc, tmp_path, row, bad, msg):
    root = _copy(esc, tmp_path)
    csv = root / "meta" / "esc50.csv"
    lines = csv.read_text().splitlines()
    r = esc["rows"][row - 2]
    lines[row - 1] = bad.format(fn=r["filename"], f=r["fold"], t=r["target"], c=r["category"])
    csv.write_text("\n".join(lines) + "\n")
    with pytest.raises(AnnotationError, match=rf"esc50\.csv:{row}: .*{msg}"):
        ESC50DataModule(str(root), num_workers=0).setup("test")


def test_missing_audio_reported_not_dropped(tmp_path):
    d = write_esc50(tmp_path / "m", seconds=1.0, missing=("1-100007-A-0.wav",))
    with pytest.raises(LayoutError, match=r"1 video\(s\) of ESC-50 fold 1 test are missing.*1-100007-A-0\.wav"):
        ESC50DataModule(d["root"], num_workers=0).setup("test")
    dm = ESC50DataModule(d["root"], num_workers=0, missing_videos="skip")
    with pytest.warns(UserWarning, match="1 annotated video"):
        dm.setup("test")
    assert len(dm.missing_videos) == 1 and len(dm.datasets["test"].records) == 2


def test_training_window_is_a_random_second_of_the_clip(esc):
    dm = ESC50DataModule(esc["root"], fold=1, num_workers=0)
    dm.setup("fit")
    train = dm.datasets["train"]
    starts = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        item = train[4]
        starts.append(item["meta"]["start_sec"])
        assert item["audio"].shape == (48000,) and 0.0 <= starts[-1] <= 4.0
        rec = train.records[4]
        assert abs(_peak_hz(item["audio"], 48000) - class_hz(rec.label)) <= 1.0  # this clip's tone
        assert float(item["audio"].abs().max()) > 0.4  # all of the second lies inside the 5-s clip
    assert starts[0] != starts[1]
