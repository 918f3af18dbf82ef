"""Protocol records (mmzoo.hub.protocol): `mmzoo test` writes how it evaluated (dataset version,
split, views x crops, resolution, frames / stride, counts, missing videos) into its results JSON;
`mmzoo push --results` stores metrics and protocol in config.json and renders them in the card,
the paper's numbers beside the reproduced ones. Through the real CLI on a synthetic Kinetics."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from mmzoo.cli import main
from mmzoo.hub.protocol import protocol_section

_FLAGS = ["--model.depth", "14", "--model.width", "8", "--model.slow_frames", "2", "--model.alpha", "4", "--model.crop_size", "32",
          "--data.version", "any", "--data.num_frames", "8", "--data.alpha", "4", "--data.crop_size", "32",
          "--data.train_scale", "[32, 40]", "--data.test_scale", "32", "--data.test_crop_size", "32",
          "--data.num_clips", "3", "--data.num_crops", "1", "--data.batch_size", "4", "--data.num_workers", "0",
          "--data.missing_videos", "skip", "--trainer.accelerator", "cpu", "--trainer.logger", "false",
          "--trainer.enable_progress_bar", "false", "--seed_everything", "0"]


@pytest.fixture(scope="module")
def kinetics(tmp_path_factory):
    from mmzoo.data.synthetic import write_kinetics

    root = tmp_path_factory.mktemp("kinetics")
    write_kinetics(root, per_class={"train": 1, "val": 2}, num_frames=8)
    gone = sorted((root / "val" / "tickling").glob("*.mp4"))[0]
    gone.unlink()  # annotated in val.csv, absent on disk: skipped and recorded
    return root, gone


def test_results_json_records_the_protocol_and_push_renders_it(kinetics, tmp_path):
    root, gone = kinetics
    run = tmp_path / "run"
    main(["fit", "--model", "slowfast-r50-4x16", "--data", "kinetics", "--data.root", str(root), *_FLAGS,
          "--data.batch_size", "2", "--trainer.max_steps", "1", "--trainer.limit_val_batches", "1",
          "--trainer.num_sanity_val_steps", "0",
          "--trainer.default_root_dir", str(run)])
    ckpt = sorted(run.rglob("last.ckpt"))[-1]
    results = tmp_path / "results.json"
    with pytest.warns(UserWarning, match="missing and skipped"):
        main(["test", "--model", "slowfast-r50-4x16", "--data", "kinetics", "--data.root", str(root), *_FLAGS,
              "--ckpt_path", str(ckpt), "--results_json", str(results), "--trainer.default_root_dir", str(run)])
    rec = json.loads(results.read_text())
    proto = rec["protocol"]
    assert proto["data"] == "kinetics" and proto["version"] == "any" and proto["split"] == "test"
    assert proto["views"] == {"clips": 3, "crops": 1}
    assert proto["resolution"] == {"short_side": 32, "crop": 32}
    assert proto["num_frames"] == 8 and proto["alpha"] == 4
    assert proto["num_videos"] == 5 and proto["num_samples"] == 15  # 6 annotated, 1 missing; 3 views each
    assert len(proto["missing"]) == 1 and gone.name in proto["missing"][0]

    main(["push", str(ckpt), "someone/tiny-sf", "--results", str(results)])
    folder = Path(os.environ["MMZOO_HUB"]) / "someone" / "tiny-sf"
    config = json.loads((folder / "config.json").read_text())
    assert config["evaluation"]["protocol"] == proto
    assert config["evaluation"]["metrics"] == rec["metrics"]
    card = (folder / "README.md").read_text()
    assert "## Evaluation protocol" in card and "| views | 3 clips x 1 crops |" in card
    assert "| missing videos | 1 |" in card and gone.name in card
    top1 = rec["metrics"]["test/top1"]
    assert f"| top1 | - | {top1:.2f} |" in card  # reproduced, no paper number under this name
    assert "| k400_top1 | 75.60 | - |" in card  # the paper's number beside it


def test_protocol_section_puts_reported_and_reproduced_side_by_side():
    text = protocol_section({"metrics": {"test/top1": 71.234, "test/loss": 1.5},
                             "protocol": {"data": "kinetics", "views": {"clips": 10, "crops": 3}, "missing": ["a.mp4"],
                                          "skipped": []}},
                            {"top1": 75.6, "top5": 92.0})
    assert "| top1 | 75.60 | 71.23 |" in text
    assert "| top5 | 92.00 | - |" in text and "| loss | - | 1.50 |" in text
    assert "| views | 10 clips x 3 crops |" in text and "- a.mp4" in text
