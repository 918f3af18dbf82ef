"""STRG (thesis ch. 6): Table 6.1 backbone, FLOPs against the thesis, the graph wiring, the
stage-wise schedule, on-the-fly proposals, and `mmzoo propose / fit / test` on synthetic data."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import mmzoo
from mmzoo.cli import main
from mmzoo.errors import MissingKeysError
from mmzoo.info import measure

TINY = {"depth": 14, "width": 8, "frames": 8, "crop_size": 32, "num_classes": 5, "node_dim": 16, "proposals_per_frame": 3,
            "pretrained_backbone": False}
IDS = ["strg-i3d-r50-charades", "strg-nl-i3d-r50-charades", "strg-i3d-r101-charades", "strg-nl-i3d-r101-charades",
       "strg-i3d-r50-sthv1", "strg-nl-i3d-r50-sthv1"]


def test_every_id_is_registered_with_its_dataset():
    assert sorted(i for i in mmzoo.list_models("strg-*")) == sorted(IDS)
    info = mmzoo.model_info("strg-i3d-r50-sthv1")
    assert info["defaults"]["num_classes"] == 174 and info["defaults"]["proposals_per_frame"] == 10
    assert mmzoo.model_info("strg-i3d-r50-charades")["defaults"]["proposals_per_frame"] == 50


def test_table_6_1_backbone_gives_16x14x14_and_the_thesis_flops():
    with torch.device("meta"):
        model = mmzoo.create("strg-i3d-r50-charades", crop_size=224)
        feats = model.forward_features(**model.example_input(1))
    assert tuple(feats["backbone"].shape) == (1, 2048, 16, 14, 14)
    assert tuple(feats["nodes"].shape) == (1, 800, 512) and tuple(feats["pooled"].shape) == (1, 1024)
    i3d = measure("strg-i3d-r50-charades", stage="backbone", crop_size=224)["gflops"]
    joint = measure("strg-i3d-r50-charades", crop_size=224)["gflops"]
    assert abs(i3d - 153.0) / 153.0 < 0.01  # Table 6.2 / section 6.5: I3D 153 G
    assert abs(joint - 158.0) / 158.0 < 0.015  # I3D + joint GCN 158 G
    # the R101 models keep 16 feature frames from 128 input frames
    with torch.device("meta"):
        r101 = mmzoo.create("strg-i3d-r101-charades", crop_size=288)
        assert tuple(r101.forward_features(**r101.example_input(1))["backbone"].shape) == (1, 2048, 16, 18, 18)


def _tiny(model_id="strg-i3d-r50-charades", **kw):
    torch.manual_seed(0)
    return mmzoo.create(model_id, **{**TINY, **kw})


def test_gcn_starts_as_layernorm_relu_of_g_and_sums_the_branches():
    model = _tiny(graphs="joint").eval()
    ex = model.example_input(2)
    ex["boxes"][1, :, -1] = 0.0  # padding proposals
    f = model.forward_features(**ex)
    nodes, valid = f["nodes"], f["node_valid"]
    assert valid[1].view(4, 3)[:, -1].sum() == 0 and nodes[1].view(4, 3, -1)[:, -1].abs().sum() == 0

    def branch(gcn):
        z = gcn.g(nodes)
        for _ in range(3):
            z = F.relu(F.layer_norm(z, (16,)))
        return z

    # zero-initialised GCN weights (section 6.4.1): each branch is LN + ReLU of g(X), three times
    assert torch.allclose(f["gcn"], branch(model.sim_gcn) + branch(model.st_gcn), atol=1e-5)
    mean = (f["gcn"] * valid[..., None]).sum(1) / valid.sum(1, keepdim=True)
    assert torch.allclose(f["pooled"][:, :16], mean, atol=1e-5)
    assert torch.allclose(f["pooled"][:, 16:], f["reduced"].mean(dim=(2, 3, 4)), atol=1e-6)


def test_table_6_2_rows_are_configurations():
    none = _tiny(graphs="none").eval()
    assert none.sim_gcn is None and none.st_gcn is None
    f = none.forward_features(**none.example_input(1))
    assert torch.equal(f["gcn"], f["nodes"])  # proposals + average pool
    assert _tiny(graphs="sim").st_gcn is None and _tiny(graphs="st").sim_gcn is None
    assert len(_tiny(graphs="st").st_gcn.layers[0].weights) == 2  # front and back, separate W


def test_stage_wise_schedule(tmp_path):
    stage1 = _tiny(stage="backbone")
    assert "boxes" not in stage1.example_input(1)
    stage1(**stage1.example_input(2)).sum().backward()
    assert stage1.baseline_head.fc.weight.grad is not None and stage1.head.fc.weight.grad is None
    ckpt = tmp_path / "stage1.ckpt"
    torch.save({"state_dict": stage1.state_dict()}, ckpt)
    stage2 = _tiny(stage="gcn", init_checkpoint=str(ckpt))
    assert all(torch.equal(a, b) for a, b in zip(stage1.backbone.state_dict().values(),
                                                stage2.backbone.state_dict().values()))
    stage2.train()
    assert not stage2.backbone.training  # frozen backbone keeps its BN statistics
    stage2(**stage2.example_input(2)).sum().backward()
    assert all(p.grad is None for p in stage2.backbone.parameters())
    assert stage2.sim_gcn.layers[0].weights[0].weight.grad is not None
    assert stage2.recipe.base_lr == pytest.approx(0.00125)
    stage3 = _tiny(stage="joint", init_checkpoint=str(ckpt))
    assert stage3.recipe.base_lr == pytest.approx(0.000125)  # the reduced lr of the third stage
    assert all(p.requires_grad for n, p in stage3.backbone.named_parameters() if "bn" not in n)
    with pytest.raises(MissingKeysError, match="node_dim"):
        _tiny(stage="gcn", node_dim=8, init_checkpoint=str(ckpt))
    # a pushed stage-2 model reloads without its (now absent) init checkpoint
    mmzoo.push(stage2, "strg/stage2")
    ckpt.unlink()
    loaded = mmzoo.load("strg/stage2")
    assert loaded.hparams.stage == "gcn"
    assert all(torch.equal(a, b) for a, b in zip(stage2.state_dict().values(), loaded.state_dict().values()))


def test_on_the_fly_rpn_proposes_every_other_frame():
    model = _tiny("strg-i3d-r50-sthv1", proposal_source="rpn", rpn_pretrained=False, rpn_min_size=32,
                  rpn_max_size=48).eval()
    video = model.example_input(2)["video"]
    boxes = model.propose(video)
    assert boxes.shape == (2, 4, 3, 4)
    valid = boxes[..., 2] > boxes[..., 0]
    assert valid.any() and float(boxes.max()) <= 32.0 and float(boxes.min()) >= 0.0
    # frame 2t of the clip gives the proposals of feature frame t
    again = model.proposer((video[1:2, :, 4].reshape(1, 3, 32, 32) * 0.225 + 0.45).clamp(0, 1))
    assert torch.allclose(boxes[1, 2], again[0], atol=1e-4)
    assert model(video).shape == (2, 5)
    with pytest.raises(ValueError, match="needs proposals"):
        _tiny().eval()(video)


# --------------------------------------------------------------------------- CLI round trips
_ONE = ["--trainer.accelerator", "cpu", "--trainer.max_steps", "1", "--trainer.limit_train_batches", "1",
        "--trainer.limit_val_batches", "1", "--trainer.num_sanity_val_steps", "0", "--trainer.enable_progress_bar",
        "false", "--trainer.logger", "false", "--data.batch_size", "2", "--data.num_workers", "0",
        "--seed_everything", "0"]
_MODEL = ["--model.depth", "14", "--model.width", "8", "--model.frames", "8", "--model.crop_size", "32",
          "--model.node_dim", "16", "--model.pretrained_backbone", "false"]
_DATA = ["--data.num_frames", "8", "--data.crop_size", "32", "--data.train_scale", "[32, 40]", "--data.test_scale",
         "32", "--data.test_crop_size", "32", "--data.num_clips", "1", "--data.num_crops", "1",
         "--data.proposal_frames", "4"]


def _fit_test(model_id, data, root, run, extra):
    base = ["--model", model_id, "--data", data, "--data.root", str(root), *_ONE, *_MODEL, *_DATA, *extra,
            "--trainer.default_root_dir", str(run)]
    main(["fit", *base])
    ckpt = max(Path(run).rglob("last.ckpt"))
    main(["test", *base, "--ckpt_path", str(ckpt), "--results_json", str(run / "test.json")])
    res = json.loads((run / "test.json").read_text())
    assert res["model"] == model_id and res["data"] == data
    return res["metrics"]


def test_cli_charades_with_precomputed_proposals(tmp_path):
    from mmzoo.data.synthetic.charades import write_charades

    root = tmp_path / "charades"
    write_charades(root, num_videos={"train": 2, "test": 2}, num_frames=24, size=(32, 40))
    props = tmp_path / "charades.safetensors"
    main(["propose", "--data", "charades", "--root", str(root), "--output", str(props), "--proposals_per_frame", "3",
          "--min_size", "48", "--max_size", "64", "--random_init", "--frame_step", "2"])
    res = _fit_test("strg-i3d-r50-charades", "charades", root, tmp_path / "run",
                    ["--data.proposals", str(props), "--data.train_resize", "32"])
    assert set(res) >= {"test/mAP", "test/loss"}


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_cli_something_something(version, tmp_path):
    from mmzoo.data.synthetic.something_something import write_something_something

    root = tmp_path / version
    write_something_something(root, version, num_videos={"train": 2, "validation": 2}, num_frames=12, size=(32, 40))
    if version == "v1":  # precomputed proposals (written by `mmzoo propose`)
        props = tmp_path / "sth.safetensors"
        main(["propose", "--data", "something-something", "--root", str(root), "--output", str(props),
              "--proposals_per_frame", "3", "--min_size", "48", "--max_size", "64", "--random_init",
              "--splits", "train", "val"])
        extra = ["--data.proposals", str(props)]
    else:  # proposals from the model's own RPN
        extra = ["--model.proposal_source", "rpn", "--model.rpn_pretrained", "false", "--model.rpn_min_size", "32",
                 "--model.rpn_max_size", "48", "--model.proposals_per_frame", "3"]
    res = _fit_test("strg-nl-i3d-r50-sthv1" if version == "v1" else "strg-i3d-r50-sthv1", "something-something",
                    root, tmp_path / "run", [*extra, "--model.nonlocal_placement", "custom",
                                             "--model.nonlocal_positions", "[[], [0], [0], []]"])
    assert set(res) >= {"test/top1", "test/top5"}


def test_cli_stage_wise_schedule(tmp_path):
    from mmzoo.data.synthetic.charades import write_charades

    root = tmp_path / "charades"
    write_charades(root, num_videos={"train": 2, "test": 1}, num_frames=24, size=(32, 40))
    base = ["--model", "strg-i3d-r50-charades", "--data", "charades", "--data.root", str(root), *_ONE, *_MODEL, *_DATA,
            "--data.train_resize", "32", "--data.proposals", "strg_proposals.safetensors"]
    main(["fit", *base, "--model.stage", "backbone", "--trainer.default_root_dir", str(tmp_path / "s1")])
    s1 = max((tmp_path / "s1").rglob("last.ckpt"))
    main(["fit", *base, "--model.stage", "gcn", "--model.init_checkpoint", str(s1),
          "--trainer.default_root_dir", str(tmp_path / "s2")])
    first = torch.load(s1, map_location="cpu", weights_only=True)["state_dict"]
    second = torch.load(max((tmp_path / "s2").rglob("last.ckpt")), map_location="cpu", weights_only=True)["state_dict"]
    backbone = [k for k in first if k.startswith("backbone.") and first[k].is_floating_point()]
    changed = [k for k in backbone if not torch.equal(first[k], second[k])]
    assert backbone and not changed, changed  # frozen in stage 2
    assert not torch.equal(first["sim_gcn.layers.0.weights.0.weight"], second["sim_gcn.layers.0.weights.0.weight"])
