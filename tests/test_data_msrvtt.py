"""msrvtt DataModule on the synthetic dataset in the official / collaborative-experts layout."""
import json
import os
import pickle

import numpy as np
import pytest
import torch

from mmzoo.data import get_datamodule
from mmzoo.data.msrvtt import MSRVTT_MAX_TOKENS, MSRVTTDataModule, MSRVTTFormatError
from mmzoo.data.synthetic.msrvtt import write_msrvtt


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return write_msrvtt(tmp_path_factory.mktemp("msrvtt"), num_videos=20, num_mp4=0)


def _json_captions(root):
    data = json.loads((root / "MSRVTT_data.json").read_text())
    caps = {}
    for s in sorted(data["sentences"], key=lambda s: s["sen_id"]):
        caps.setdefault(s["video_id"], []).append(s["caption"])
    return data, caps


def _lines(root, name):
    return (root / "structured-symlinks" / name).read_text().split()


def test_registered_and_splits(root):
    assert get_datamodule("msrvtt") is MSRVTTDataModule
    for split, files in {"1k-A": ("train_list_jsfusion.txt", "val_list_jsfusion.txt", "val_list_jsfusion.txt"),
                         "miech": ("train_list_miech.txt", "test_list_miech.txt", "test_list_miech.txt"),
                         "full": ("train_list_full.txt", "val_list_full.txt", "test_list_full.txt")}.items():
        dm = MSRVTTDataModule(str(root), split=split)
        dm.setup()
        for st, f in zip(("train", "val", "test"), files):
            assert dm.split_ids[st] == _lines(root, f)
            assert [dm.datasets[st][i]["video_id"] for i in range(len(dm.datasets[st]))] == _lines(root, f)


def test_protocol_queries(root):
    _, caps = _json_captions(root)
    idx = pickle.load(open(root / "structured-symlinks" / "jsfusion_val_caption_idx.pkl", "rb"))
    dm = MSRVTTDataModule(str(root), split="1k-A", eval_batch_size=50)
    dm.setup()
    b = next(iter(dm.test_dataloader()))
    assert b["text"] == [[caps[v][idx[v]]] for v in b["video_id"]]
    dm = MSRVTTDataModule(str(root), split="1k-B", eval_batch_size=50)
    dm.setup()
    b = next(iter(dm.test_dataloader()))
    assert b["text"] == [[caps[v][0]] for v in b["video_id"]]
    dm = MSRVTTDataModule(str(root), split="full", eval_batch_size=50)
    dm.setup()
    b = next(iter(dm.test_dataloader()))
    assert b["text"] == [caps[v] for v in b["video_id"]]
    assert sorted({len(t) for t in b["text"]}) == [19, 20]  # one test video has 19 captions
    assert b["video_index"].tolist() == list(range(len(b["video_id"])))


def test_training_batch_and_features_exact(root):
    _, caps = _json_captions(root)
    dm = MSRVTTDataModule(str(root), split="full", batch_size=4)
    dm.setup()
    b = next(iter(dm.train_dataloader()))
    assert len(b["text"]) == 4 and all(t in caps[v] for t, v in zip(b["text"], b["video_id"]))
    for e, n in MSRVTT_MAX_TOKENS.items():
        table = pickle.load(open(root / "structured-symlinks" / "mmt_feats" / dm_file(e), "rb"))
        assert b["experts"][e].shape[:2] == (4, n) and b["experts"][e].dtype == torch.float32
        for i, v in enumerate(b["video_id"]):
            x = table[v]
            if isinstance(x, float):
                assert not b["expert_available"][e][i] and not b["expert_masks"][e][i].any()
                assert b["experts"][e][i].abs().sum() == 0
            else:
                k = len(x)
                assert b["expert_available"][e][i]
                assert b["expert_masks"][e][i].tolist() == [True] * k + [False] * (n - k)
                assert torch.equal(b["experts"][e][i, :k], torch.from_numpy(x))
                assert b["experts"][e][i, k:].abs().sum() == 0
    assert {"video_id", "category", "url", "start_time", "end_time", "split", "caption_index"} <= set(b["meta"][0])


def dm_file(e):
    from mmzoo.data.msrvtt import MSRVTT_EXPERT_FILES
    return MSRVTT_EXPERT_FILES[e]


def test_raw_captions_fallback_without_json(tmp_path):
    r = write_msrvtt(tmp_path, num_videos=10, num_mp4=0)
    _, caps = _json_captions(r)
    os.remove(r / "MSRVTT_data.json")
    dm = MSRVTTDataModule(str(r), split="full", experts=["audio"])
    dm.setup()
    assert dm.records["video0"].captions == caps["video0"]


def test_video_mode(tmp_path):
    r = write_msrvtt(tmp_path, num_videos=8, num_mp4=8)
    dm = MSRVTTDataModule(str(r), split="full", input="video", num_frames=4, frame_size=32, batch_size=2)
    dm.setup()
    b = next(iter(dm.train_dataloader()))
    assert b["video"].shape == (2, 3, 4, 32, 32) and "experts" not in b
    assert 0.0 <= float(b["video"].min()) and float(b["video"].max()) <= 1.0


def _broken(tmp_path, **kw):
    return write_msrvtt(tmp_path, num_videos=10, num_mp4=0, **kw)


def test_strict_errors(tmp_path):
    r = _broken(tmp_path / "a")
    (r / "structured-symlinks" / "train_list_full.txt").write_text("video0\nvideo1\nvideo0\n")
    with pytest.raises(MSRVTTFormatError, match=r"train_list_full.txt:3: duplicate"):
        MSRVTTDataModule(str(r), split="full").setup()
    (r / "structured-symlinks" / "train_list_full.txt").write_text("video0\nvideo999\n")
    with pytest.raises(MSRVTTFormatError, match=r"train_list_full.txt:2: video 'video999' is not in the annotations"):
        MSRVTTDataModule(str(r), split="full").setup()
    os.remove(r / "structured-symlinks" / "train_list_full.txt")
    with pytest.raises(MSRVTTFormatError, match="train_list_full.txt: split list not found"):
        MSRVTTDataModule(str(r), split="full").setup()

    r = _broken(tmp_path / "b")
    os.remove(r / "structured-symlinks" / "jsfusion_val_caption_idx.pkl")
    with pytest.raises(MSRVTTFormatError, match="jsfusion_val_caption_idx.pkl"):
        MSRVTTDataModule(str(r), split="1k-A").setup()
    MSRVTTDataModule(str(r), split="1k-A", test_captions="first").setup()  # explicit alternative works

    r = _broken(tmp_path / "c")
    p = r / "structured-symlinks" / "mmt_feats" / "features.audio.pkl"
    t = pickle.load(open(p, "rb"))
    t["video3"] = np.zeros((2, 127), np.float32)
    pickle.dump(t, open(p, "wb"))
    with pytest.raises(MSRVTTFormatError, match=r"features.audio.pkl: video 'video3': expected \[n_tokens, 128\]"):
        MSRVTTDataModule(str(r), split="full").setup()
    del t["video3"]
    pickle.dump(t, open(p, "wb"))
    with pytest.raises(MSRVTTFormatError, match=r"features.audio.pkl: no entry for video 'video3'"):
        MSRVTTDataModule(str(r), split="full").setup()

    r = _broken(tmp_path / "d")
    data = json.loads((r / "MSRVTT_data.json").read_text())
    data["sentences"][4]["caption"] = ""
    (r / "MSRVTT_data.json").write_text(json.dumps(data))
    with pytest.raises(MSRVTTFormatError, match=r"sentences\[4\].*empty caption"):
        MSRVTTDataModule(str(r), split="full").setup()
    with pytest.raises(ValueError, match="unknown MSR-VTT split"):
        MSRVTTDataModule(str(r), split="7k")


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_feature_pickles_cannot_run_code(tmp_path):
    r = _broken(tmp_path)
    p = r / "structured-symlinks" / "mmt_feats" / "features.audio.pkl"
    pickle.dump({"video0": _Evil()}, open(p, "wb"))
    from mmzoo.safe_pickle import UnsafePickleError

    with pytest.raises(UnsafePickleError, match="refusing to unpickle global"):
        MSRVTTDataModule(str(r), split="full").setup()


def test_mmt_h5_cache_reads_the_same_features(tmp_path):
    r = write_msrvtt(tmp_path, num_videos=10, num_mp4=0, mmt_h5=True)
    assert (r / "vid_feat_files" / "mult_h5" / "v" / "i" / "d" / "video3.h5").is_file()
    a = MSRVTTDataModule(str(r), split="full", eval_batch_size=10)
    b = MSRVTTDataModule(str(r), split="full", eval_batch_size=10, feature_format="mmt_h5")
    a.setup(); b.setup()
    ba, bb = next(iter(a.test_dataloader())), next(iter(b.test_dataloader()))
    for e in ba["experts"]:
        assert torch.equal(ba["experts"][e], bb["experts"][e])
        assert torch.equal(ba["expert_masks"][e], bb["expert_masks"][e])
        assert torch.equal(ba["expert_available"][e], bb["expert_available"][e])
    assert not bb["expert_available"]["face"].all()  # some videos lack faces

    import h5py

    vid = a.split_ids["test"][0]
    path = r / "vid_feat_files" / "mult_h5" / "v" / "i" / "d" / f"{vid}.h5"
    with h5py.File(path, "a") as f:
        del f["features.vggish"]
        f.create_dataset("features.vggish", data=np.zeros((2, 64), np.float32))
    c = MSRVTTDataModule(str(r), split="full", feature_format="mmt_h5")
    c.setup()
    with pytest.raises(MSRVTTFormatError, match=rf"{vid}.h5: dataset 'features.vggish': expected \[n_tokens, 128\]"):
        c.datasets["test"][0]
    path.unlink()
    with pytest.raises(MSRVTTFormatError, match=rf"{vid}.h5: MMT feature file of video '{vid}' not found"):
        MSRVTTDataModule(str(r), split="full", feature_format="mmt_h5").setup()
