"""The vip DataModule reads VIP_Fine as released; part propagation runs end to end."""
from __future__ import annotations

import numpy as np
import pytest
import pytorch_lightning as pl

import mmzoo
from mmzoo.data import get_datamodule
from mmzoo.data.synthetic.vip import write_vip
from mmzoo.errors import DataError


@pytest.fixture(scope="module")
def vip(tmp_path_factory):
    root = tmp_path_factory.mktemp("vip")
    return root, write_vip(root, num_frames=5)


def test_reads_videos_and_part_maps(vip):
    root, parts = vip
    dm = get_datamodule("vip")(root=str(root), frame_size=48, num_workers=0)
    dm.setup("test")
    s = dm.dataset("test")[0]
    assert s["video_id"] == "vip-val" and s["video"].shape == (3, 5, 48, 48)
    assert np.array_equal(s["parts"].numpy(), parts["vip-val"])
    assert sorted(np.unique(parts["vip-val"]).tolist()) == [0, 2, 4, 13]
    assert dm.context == 1 and "context" in dm.model_links  # two reference frames (thesis)


def test_missing_part_map_and_list_are_named(tmp_path):
    write_vip(tmp_path, num_frames=3)
    (tmp_path / "Annotations" / "Category_ids" / "vip-val" / "000026.png").unlink()
    with pytest.raises(DataError, match=r"val_videos.txt:1: video 'vip-val' lacks part annotations.*000026.png"):
        get_datamodule("vip")(root=str(tmp_path), num_workers=0).setup("test")
    with pytest.raises(DataError, match=r"lists/test_videos.txt"):
        get_datamodule("vip")(root=str(tmp_path), split="test", num_workers=0).setup("test")


def test_pixel_features_propagate_parts_of_a_known_pan(vip):
    root, _ = vip
    dm = get_datamodule("vip")(root=str(root), frame_size=None, num_workers=0)
    model = mmzoo.create("labelprop-identity", context=dm.context)
    trainer = pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False)
    res = trainer.test(model, datamodule=dm, verbose=False)[0]
    assert res["test/mIoU"] > 80.0, res
