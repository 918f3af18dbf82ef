"""Every (model id, DataModule) pairing produces exactly the input the model expects.

A DataModule paired with a model takes its defaults from the model's ``InputConfig``
(``defaults_from_input``, what ``mmzoo fit --model <id> --data <name>`` applies). For every
pairing a model declares, and every pairing the README / docs / cards show in a command, a test
batch of a tiny dataset in the official layout must have the shapes of the full-size model's
``example_input`` for every field both have (frames, crop, log-mel frames and bins, feature
sizes). Values the CLI links from the data into the model (``model_links``) are linked here too.
"""
from __future__ import annotations

import functools
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mmzoo.data import get_datamodule
from mmzoo.data.constants import AVE_CLASSES
from mmzoo.data.synthetic import (write_activitynet, write_aot_folder, write_ave, write_charades, write_coco, write_davis,
                                  write_egtea, write_epic, write_fcvid, write_hmdb51, write_jhmdb, write_kinetics,
                                  write_msrvtt, write_ucf101, write_vid, write_video_folder, write_vip)
from mmzoo.data.synthetic.something_something import write_something_something as _sth
from mmzoo.data.synthetic.audioset import write_audioset
from mmzoo.data.synthetic.dcase2014 import write_dcase2014
from mmzoo.data.synthetic.esc50 import write_esc50
from mmzoo.registry import all_specs

ROOT = Path(__file__).resolve().parents[1]
DECLARED = sorted((i, d) for i, s in all_specs().items() for d in s.input.datamodules)


def _documented_pairs() -> set[tuple[str, str]]:
    pairs = set()
    for md in [ROOT / "README.md", *(ROOT / "docs").glob("*.md"), *(ROOT / "model_cards").glob("*.md")]:
        for line in md.read_text().splitlines():
            if "mmzoo extract" in line:  # extraction reads any model's inputs: not a training pairing
                continue
            m, d = re.search(r"--model[ =]([a-z0-9-]+)", line), re.search(r"--data[ =]([a-z-]+)\b", line)
            if m and d and m.group(1) in all_specs():
                pairs.add((m.group(1), d.group(1)))
    return pairs


def test_documented_pairings_are_declared_by_the_models():
    documented = _documented_pairs()
    assert documented, "no `--model ... --data ...` command found in the docs"
    assert documented <= set(DECLARED), sorted(documented - set(DECLARED))


def _written(writer, root: Path, **kwargs) -> Path:
    writer(root, **kwargs)
    return root


@pytest.fixture(scope="module")
def roots(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pairing")
    write_vid(tmp / "vid", num_train=1, num_val=1, num_frames=110, det_images=1)  # 10 interleaved sequences of 11 frames
    epic = write_epic(tmp / "epic", version="100", write_flow=True)
    return {
        "kinetics": dict(root=str(write_kinetics(tmp / "kinetics", per_class={"train": 1, "val": 1})["root"]), version="any"),
        "epic-kitchens": dict(root=str(epic["root"]), version=epic["version"]),
        "vid": dict(root=str(tmp / "vid")),
        "msrvtt": dict(root=str(write_msrvtt(tmp / "msrvtt", num_videos=8, num_mp4=0))),
        "ave": dict(root=str(write_ave(tmp / "ave", num_videos_per_class=3, classes=list(AVE_CLASSES[:2]),
                                       with_videos=False)["root"])),
        "charades": dict(root=str(write_charades(tmp / "charades", num_videos={"train": 1, "test": 1})["root"])),
        "coco": dict(root=str(write_coco(tmp / "coco", num_images={"train": 1, "val": 1})["root"])),
        "davis2017": dict(root=str(_written(write_davis, tmp / "davis", num_frames=5))),
        "jhmdb": dict(root=str(_written(write_jhmdb, tmp / "jhmdb", num_frames=5))),
        "vip": dict(root=str(_written(write_vip, tmp / "vip", num_frames=5))),
        "video-folder": dict(root=str(_written(write_video_folder, tmp / "vf", num_videos=1, num_frames=12, size=256,
                                               frame_folders=False))),
        "egtea": dict(root=str(write_egtea(tmp / "egtea", clips_per_action=1)["root"])),
        "activitynet": dict(root=str(write_activitynet(tmp / "anet", per_class={"training": 1, "validation": 1},
                                                       num_seconds=4)["root"])),
        "fcvid": dict(root=str(write_fcvid(tmp / "fcvid", per_class={"train": 1, "test": 1}, num_seconds=4)["root"])),
        "ucf101": dict(root=str(write_ucf101(tmp / "ucf101", num_frames=8)["root"])),
        "hmdb51": dict(root=str(write_hmdb51(tmp / "hmdb51", num_frames=8)["root"])),
        "arrow-of-time": dict(root=str(write_aot_folder(tmp / "aot", train=1, test=1, num_frames=21)["root"]),
                              flow_method="farneback"),
        "something-something": dict(root=str(_written(_sth, tmp / "sth", version="v1", num_frames=12))),
        "audioset": dict(root=str(write_audioset(tmp / "audioset", per_class={"balanced": 1, "eval": 1})["root"])),
        "esc50": dict(root=str(write_esc50(tmp / "esc50", seconds=2.0)["root"])),
        "dcase2014": dict(root=str(write_dcase2014(tmp / "dcase2014", seconds=2.0)["root"])),
    }


def _shapes(x):
    if isinstance(x, torch.Tensor):
        return tuple(x.shape[1:])  # without the batch dimension
    if isinstance(x, dict):
        return {k: _shapes(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_shapes(v) for v in x]
    return None


def _drop_spatial(s):
    if isinstance(s, tuple):
        return s[:-2]
    if isinstance(s, dict):
        return {k: _drop_spatial(v) for k, v in s.items()}
    return [_drop_spatial(v) for v in s]


@functools.cache
def _model_arguments(model_cls: type) -> frozenset[str]:
    """The constructor arguments `mmzoo fit` sees (jsonargparse follows **kwargs to the parents)."""
    from jsonargparse import ArgumentParser

    parser = ArgumentParser()
    parser.add_class_arguments(model_cls, "model")
    return frozenset(a[len("--model."):] for a in parser._option_string_actions if a.startswith("--model."))


@pytest.mark.parametrize("model_id,data", DECLARED)
def test_paired_datamodule_makes_the_models_input(model_id, data, roots):
    spec = all_specs()[model_id]
    cls = get_datamodule(data)
    dm = cls(**roots[data], batch_size=1, num_workers=0, **cls.defaults_from_input(spec.input))
    dm.setup("test")
    batch = next(iter(dm.test_dataloader()))
    linked = {k: getattr(dm, k) for k in cls.model_links if k in _model_arguments(spec.cls)}  # as the CLI does
    with torch.device("meta"):
        example = spec.build(**linked).example_input(1)
    common = [k for k in example if k in batch]
    assert common, f"{model_id} x {data}: the batch has none of forward's inputs {sorted(example)}"
    for key in common:
        want, got = _shapes(example[key]), _shapes(batch[key])
        if spec.input.test_crop is None and key in ("video", "image"):  # frames keep their own size (VID, COCO)
            want, got = _drop_spatial(want), _drop_spatial(got)
        assert got == want, f"{model_id} x {data}: batch[{key!r}] {got} but the model expects {want}"


def test_cli_takes_datamodule_defaults_from_the_model_and_flags_win(roots):
    def config(*extra):
        out = subprocess.run([sys.executable, "-m", "mmzoo.cli", "fit", "--model", "avslowfast-r101nl-16x8", "--data",
                              "kinetics", "--data.root", roots["kinetics"]["root"], *extra, "--print_config"],
                             capture_output=True, text=True, check=True)
        return out.stdout

    text = config()
    assert re.search(r"^\s+audio_num_frames: 256$", text, re.M) and re.search(r"^\s+num_frames: 64$", text, re.M)
    assert re.search(r"^\s+audio_num_frames: 128$", config("--data.audio_num_frames", "128"), re.M)
