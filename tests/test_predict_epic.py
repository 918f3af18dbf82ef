"""EPIC-KITCHENS-100 challenge submission: the official JSON schema, written from `predict`."""
from __future__ import annotations

import json
from zipfile import ZipFile

import pytest
import pytorch_lightning as pl
import torch

import mmzoo
from mmzoo.data.epic_kitchens import EpicKitchensDataModule
from mmzoo.data.synthetic import write_epic
from mmzoo.predict.epic import EpicSubmissionWriter, make_submission, write_submission


def test_submission_schema_and_checks(tmp_path):
    sub = make_submission(torch.tensor([[0.1, 0.2]]), torch.tensor([[0.3, 0.4, 0.5]]), ["P01_101_0"], sls_pt=1)
    assert sub == {"version": "0.2", "challenge": "action_recognition", "sls_pt": 1, "sls_tl": 3, "sls_td": 3,
                   "results": {"P01_101_0": {"verb": {"0": pytest.approx(0.1), "1": pytest.approx(0.2)},
                                             "noun": {"0": pytest.approx(0.3), "1": pytest.approx(0.4),
                                                      "2": pytest.approx(0.5)}}}}
    with ZipFile(write_submission(sub, tmp_path / "s" / "sub.zip")) as zf:
        assert zf.namelist() == ["test.json"] and json.loads(zf.read("test.json"))["results"].keys() == {"P01_101_0"}
    with pytest.raises(ValueError, match="twice"):
        make_submission(torch.zeros(2, 2), torch.zeros(2, 3), ["a", "a"])
    with pytest.raises(ValueError, match="sls_td"):
        make_submission(torch.zeros(1, 2), torch.zeros(1, 3), ["a"], sls_td=7)


def test_writer_averages_the_views_of_each_segment(tmp_path):
    info = write_epic(tmp_path / "epic", version="100", num_frames=90, size=(40, 48), seed=3)
    dm = EpicKitchensDataModule(root=str(info["root"]), version="100", source="frames", num_frames=8, stride=2,
                                train_scale=(48, 56), crop_size=40, test_scale=48, test_crop_size=48, num_clips=2,
                                num_crops=1, batch_size=3, num_workers=0)
    model = mmzoo.create("slowfast-r50-4x16", head="verb_noun", num_verbs=info["num_verbs"], num_nouns=info["num_nouns"],
                         depth=14, width=8, slow_frames=2, alpha=4, crop_size=48).eval()
    out = tmp_path / "sub.zip"
    trainer = pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
                         callbacks=[EpicSubmissionWriter(str(out))])
    preds = trainer.predict(model, dm, return_predictions=True)
    with ZipFile(out) as zf:
        sub = json.loads(zf.read("test.json"))
    ids = [m["narration_id"] for b in dm.predict_dataloader() for m in b["meta"]]
    assert sorted(sub["results"]) == sorted(set(ids)) and len(ids) == 2 * len(set(ids))  # 2 clips per segment
    verb = torch.cat([p["verb"] for p in preds]).double()
    first = [i for i, n in enumerate(ids) if n == ids[0]]
    expected = verb[first].mean(0).log()
    got = torch.tensor([sub["results"][ids[0]]["verb"][str(c)] for c in range(info["num_verbs"])], dtype=torch.float64)
    torch.testing.assert_close(got, expected)
