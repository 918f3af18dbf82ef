"""The SlowFast family's EPIC-Kitchens head reports the benchmark's subsets (unseen participants,
tail classes, EPIC-55 many-shot classes) from the DataModule's official list files."""
from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch

import mmzoo
from mmzoo.data.epic_kitchens import EpicKitchensDataModule
from mmzoo.data.synthetic.epic_kitchens import write_epic
from mmzoo.metrics.classification import class_mean_precision_recall

CLIP = dict(num_frames=8, stride=2, alpha=4, crop_size=32, train_scale=(32, 40), test_scale=32, test_crop_size=32,
            batch_size=2, num_workers=0)  # fmt: skip


def _tiny(info):
    torch.manual_seed(0)
    return mmzoo.create("slowfast-r50-4x16", depth=14, width=8, slow_frames=2, alpha=4, crop_size=32, dropout=0.0,
                        head="verb_noun", num_verbs=info["num_verbs"], num_nouns=info["num_nouns"]).eval()  # fmt: skip


def _trainer():
    return pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False)


def test_epic55_test_reports_many_shot_precision_recall(tmp_path):
    info = write_epic(tmp_path / "e55", version="55", num_frames=90, size=(40, 48), seed=3, write_videos=False)
    dm = EpicKitchensDataModule(root=info["root"], version="55", test_set="val", **CLIP)
    model = _tiny(info)
    res = _trainer().test(model, datamodule=dm, verbose=False)[0]
    assert model.test_metric.many_shot is not None  # built from the DataModule's lists in setup
    # the reported numbers are those of the model's own top-1 predictions on the segments
    scores = _trainer().predict(model, dm.test_dataloader())
    verb_pred = torch.cat([s["verb"] for s in scores]).argmax(1)
    val_rows = [r for r in info["rows"]["train"] if r["participant_id"] in ("P26", "P27", "P28", "P29", "P30", "P31")]
    truth = torch.tensor([r["verb_class"] for r in val_rows])
    p, r = class_mean_precision_recall(truth, verb_pred, info["many_shot_verbs"])
    for key, want in (("many_shot_verb_precision", p), ("many_shot_verb_recall", r)):
        got = res[f"test/{key}"]
        assert got == pytest.approx(float(want), nan_ok=True), key
    for task in ("noun", "action"):
        assert f"test/many_shot_{task}_recall" in res


def test_epic100_test_reports_unseen_and_tail_subsets(tmp_path):
    info = write_epic(tmp_path / "e100", version="100", num_frames=90, size=(40, 48), seed=4, write_videos=False)
    dm = EpicKitchensDataModule(root=info["root"], version="100", test_set="val", **CLIP)
    res = _trainer().test(_tiny(info), datamodule=dm, verbose=False)[0]
    for task in ("verb", "noun", "action"):  # the only validation participant (P01) is unseen
        assert res[f"test/unseen_{task}_top1"] == pytest.approx(res[f"test/{task}_top1"])
    val = info["rows"]["val"]
    tail = [r for r in val if r["verb_class"] in info["tail_verbs"] or r["noun_class"] in info["tail_nouns"]]
    assert ("test/tail_action_top1" in res) == bool(tail)
