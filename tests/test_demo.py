"""`mmzoo demo` end to end, with its default number of epochs (about a minute on one CPU core):
synthetic AVE mp4 files -> extracted features -> fit -> test -> push to the local hub -> reload."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

import mmzoo
from mmzoo.data.ave import AVEDataModule
from mmzoo.demo import DEMO_CLASSES, DEMO_REPO, run_demo


def test_demo_learns_above_chance_and_reloads_identically(tmp_path, capsys):
    user_hub = Path(os.environ["MMZOO_HUB"])  # the conftest's stand-in for ~/.cache/mmzoo/hub
    result = run_demo(root=tmp_path / "demo", seed=0)
    assert os.environ["MMZOO_HUB"] == str(user_hub)  # restored
    assert not user_hub.exists() or not any(user_hub.iterdir()), "the demo wrote outside its folder"
    out = capsys.readouterr().out
    for step in range(1, 6):
        assert f"==> {step}/5" in out  # progress is shown

    assert result["reload_identical"] is True
    # 4 classes with partial events: the majority class (background) is a real baseline, not 1/5
    assert 20.0 < result["chance"] < 80.0
    assert result["accuracy"] > result["chance"] + 20.0, result

    repo = (tmp_path / "demo" / "hub" / DEMO_REPO).resolve()
    assert Path(result["repo"]) == repo
    assert (repo / "config.json").is_file() and (repo / "model.safetensors").is_file()

    # independently of the demo: the pushed weights reproduce the accuracy the demo reported,
    # on the features it cached (the same DataModule settings, so nothing is re-extracted)
    model = mmzoo.load(repo)
    assert model.zoo_id == "cmcoatt-avsdn"
    assert model.class_names[-1] == "background" and set(DEMO_CLASSES) <= set(model.class_names)
    dm = AVEDataModule(root=str(tmp_path / "demo" / "ave"), input_mode="video", visual_backbone="resnet18.tv_in1k",
                       pretrained_backbone=False, batch_size=4, num_workers=0,
                       cache_dir=str(tmp_path / "demo" / "feature-cache"), progress=False)
    dm.prepare_data()
    dm.setup("test")
    correct = total = 0
    with torch.no_grad():
        for batch in dm.test_dataloader():
            pred = model(batch["visual"], batch["audio"]).argmax(-1)
            correct += int((pred == batch["label"]).sum())
            total += batch["label"].numel()
    assert total == 40  # 4 test videos x 10 segments
    assert 100.0 * correct / total == pytest.approx(result["accuracy"], abs=1e-3)
