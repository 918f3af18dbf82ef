"""`egtea` DataModule on a synthetic EGTEA Gaze+ in the distributed layout (mp4 clips under
cropped_clips/<session>/, action_annotation/ split and class files with 1-based ids)."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from mmzoo.data import get_datamodule
from mmzoo.data.egtea import EgteaDataModule, read_class_index
from mmzoo.data.synthetic.egtea import ACTIONS, NOUNS, VERBS, write_egtea
from mmzoo.data.video_dataset import AnnotationError, LayoutError

SMALL = dict(num_frames=8, stride=2, train_scale=(48, 56), crop_size=40, test_scale=48, test_crop_size=48,
             batch_size=3, num_workers=0, num_clips=2, num_crops=1)  # fmt: skip


@pytest.fixture(scope="module")
def eg(tmp_path_factory):
    return write_egtea(tmp_path_factory.mktemp("egtea"), clips_per_action=2, num_frames=16)


def test_registered_and_reads_every_split(eg):
    assert get_datamodule("egtea") is EgteaDataModule
    for split in (1, 2, 3):
        dm = EgteaDataModule(root=eg["root"], split=split, **SMALL)
        dm.setup("fit")
        got = [r.meta["clip"] for r in dm.datasets["train"].records]
        assert got == eg["splits"][split]["train"]
        assert [r.meta["clip"] for r in dm.datasets["val"].records] == eg["splits"][split]["test"]
    assert (dm.num_verbs, dm.num_nouns) == (len(VERBS), len(NOUNS))
    assert dm.action_pairs == list(ACTIONS)
    assert dm.class_names["action"][2] == "Open fridge"


def test_targets_are_zero_based_and_views_share_the_clip(eg):
    dm = EgteaDataModule(root=eg["root"], split=1, **SMALL)
    dm.setup("test")
    by_name = {c["clip"]: c for c in eg["clips"]}
    batch = next(iter(dm.test_dataloader()))
    assert batch["video"].shape == (3, 3, 8, 48, 48)
    assert batch["video_index"].tolist() == [0, 0, 1]  # 2 clips per video
    for i, m in enumerate(batch["meta"]):
        want = by_name[m["clip"]]
        assert (batch["verb"][i].item(), batch["noun"][i].item(), batch["action"][i].item()) == (
            want["verb"], want["noun"], want["action"])
        assert m["session"] == m["clip"].rsplit("-", 4)[0]
    # the clip's colour encodes its verb: the first two views (same clip) are identical in colour
    torch.testing.assert_close(batch["video"][0].mean(dim=(1, 2, 3)), batch["video"][1].mean(dim=(1, 2, 3)), atol=0.02, rtol=0)


def test_class_file_and_split_file_errors(eg, tmp_path):
    root = tmp_path / "egtea"
    shutil.copytree(eg["root"], root)
    ann = root / "action_annotation"
    # a noun id beyond noun_idx.txt, naming file and line
    lines = (ann / "train_split1.txt").read_text().splitlines()
    clip = lines[1].split()[0]
    lines[1] = f"{clip} 1 1 9"
    (ann / "train_split1.txt").write_text("\n".join(lines) + "\n")
    with pytest.raises(AnnotationError, match=r"train_split1\.txt:2: noun id '9' is not in 1\.\.3"):
        EgteaDataModule(root=str(root), split=1, **SMALL).setup("fit")
    lines[1] = f"{clip} 1 1"
    (ann / "train_split1.txt").write_text("\n".join(lines) + "\n")
    with pytest.raises(AnnotationError, match=r"train_split1\.txt:2: expected '<clip> <action> <verb> <noun>'"):
        EgteaDataModule(root=str(root), split=1, **SMALL).setup("fit")
    (ann / "verb_idx.txt").write_text("Take 1\nPut 3\n")
    with pytest.raises(AnnotationError, match="class ids are not 1..2"):
        read_class_index(ann / "verb_idx.txt")


def test_missing_clip_and_inconsistent_action(eg, tmp_path):
    root = tmp_path / "egtea"
    shutil.copytree(eg["root"], root)
    first = eg["clips"][0]
    Path(root / "cropped_clips" / first["clip"].rsplit("-", 4)[0] / f"{first['clip']}.mp4").unlink()
    split = 1 if first["clip"] in eg["splits"][1]["train"] else 2
    with pytest.raises(LayoutError, match=rf"train_split{split}\.txt:\d+: clip .*{first['clip']}\.mp4 not found"):
        EgteaDataModule(root=str(root), split=split, **SMALL).setup("fit")
    # action 1 listed with another verb in a test file
    ann = root / "action_annotation"
    lines = (ann / "test_split3.txt").read_text().splitlines()
    name, a, v, n = lines[0].split()
    lines[0] = f"{name} {a} {int(v) % 4 + 1} {n}"
    (ann / "test_split3.txt").write_text("\n".join(lines) + "\n")
    with pytest.raises(AnnotationError, match=rf"action {a} is \(verb"):
        _ = EgteaDataModule(root=str(root), split=1, **SMALL).action_pairs
