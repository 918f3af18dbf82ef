"""The vip DataModule reads VIP_Fine as released; part propagation runs end to end."""
from __future__ import annotations

import numpy as np
import pytest
import pytorch_lightning as pl
import torch

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


def test_reads_person_and_instance_part_maps_with_their_tables(tmp_path):
    from mmzoo.data.synthetic.vip import instance_ids_from
    from mmzoo.data.vip import read_id_map

    parts = write_vip(tmp_path, num_frames=3, people=2)["vip-val"]
    dm = get_datamodule("vip")(root=str(tmp_path), frame_size=32, num_workers=0)
    dm.setup("test")
    s = dm.dataset("test")[0]
    assert s["humans"].shape == s["instances"].shape == s["parts"].shape == (3, 64, 96)
    assert s["humans"].dtype == s["instances"].dtype == s["instance_table"].dtype == torch.long
    assert sorted(np.unique(s["humans"].numpy()).tolist()) == [0, 1, 2]
    assert np.array_equal(s["instances"].numpy(), instance_ids_from(parts, s["humans"].numpy()))
    assert sorted(np.unique(s["instances"].numpy()).tolist()) == [0, 2, 4, 13, 22, 24, 33]
    # the .txt table: (instance id, part id) rows, the person column is not kept
    assert s["instance_table"].shape == (3, 6, 2)
    assert s["instance_table"][0].tolist() == [[2, 2], [4, 4], [13, 13], [22, 2], [24, 4], [33, 13]]
    human_png = tmp_path / "Annotations" / "Human_ids" / "vip-val" / "000001.png"
    assert np.array_equal(read_id_map(human_png), s["humans"][0].numpy())
    only_parts = get_datamodule("vip")(root=str(tmp_path), instances=False, num_workers=0)
    only_parts.setup("test")
    assert "instances" not in only_parts.dataset("test")[0]


def test_bad_or_missing_instance_files_are_named(tmp_path):
    from PIL import Image

    write_vip(tmp_path, num_frames=2)
    inst = tmp_path / "Annotations" / "Instance_ids" / "vip-val"
    (inst / "000026.txt").unlink()
    with pytest.raises(DataError, match=r"val_videos.txt:1: video 'vip-val' lacks Instance_ids files.*000026.txt"):
        get_datamodule("vip")(root=str(tmp_path), num_workers=0).setup("test")
    (inst / "000026.txt").write_text("2 2 1\nfour 4 1\n")
    dm = get_datamodule("vip")(root=str(tmp_path), num_workers=0)
    dm.setup("test")
    with pytest.raises(DataError, match=r"000026.txt:2: expected '<instance id> <part id>"):
        dm.dataset("test")[0]
    (inst / "000026.txt").write_text("2 2 1\n2 4 1\n")
    with pytest.raises(DataError, match=r"000026.txt:2: instance id 2 is listed twice"):
        dm.dataset("test")[0]
    (inst / "000026.txt").write_text("2 2 1\n")
    Image.new("RGB", (96, 64)).save(inst / "000026.png")
    with pytest.raises(DataError, match=r"Instance_ids/vip-val/000026.png: a VIP id map must be a single-channel"):
        dm.dataset("test")[0]
    Image.new("L", (10, 10)).save(inst / "000026.png")
    with pytest.raises(DataError, match=r"000026.png: id map \(10, 10\) does not match its frame \(64, 96\)"):
        dm.dataset("test")[0]
    (tmp_path / "Annotations" / "Human_ids" / "vip-val" / "000001.png").unlink()
    with pytest.raises(DataError, match=r"lacks Human_ids files in .*Human_ids/vip-val: \['000001.png'\]"):
        get_datamodule("vip")(root=str(tmp_path), num_workers=0).setup("test")
    get_datamodule("vip")(root=str(tmp_path), instances=False, num_workers=0).setup("test")  # parts only: fine
