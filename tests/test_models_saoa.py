"""SAOA / SAP (thesis ch. 3): the ablation rows of Tables 3.1-3.3 as constructor arguments, which
stream feeds which gate and attention, the local alignment's 4 s window, the two stages (frozen
backbones, stage-1 checkpoint), the recipes and the Eq. 3.14 prior inside the model."""
from __future__ import annotations

import pytest
import torch

import mmzoo

TINY = {"width_multiplier": 0.125, "frames": 8, "crop_size": 32, "num_verbs": 5, "num_nouns": 6, "object_dim": 16, "num_objects": 10}

#: Tables 3.1-3.3: row -> constructor arguments.
ROWS = {
    "SA": {},
    "SA w/o CSG": {"gating": False, "cross_stream": False},
    "SA w/o Gating": {"gating": False},
    "SA w/o Cross-Stream": {"cross_stream": False},
    "SA w/o ARM": {"arm": False},
    "Det Feat + Avg pool": {"noun_mode": "det_avg"},
    "Det Feat + Max pool": {"noun_mode": "det_max"},
    "SA (Det Feat only)": {"noun_mode": "det_only"},
    "Noun + Det Feat": {"noun_mode": "concat"},
    "SA + Local Alignment": {"noun_alignment": "local"},
    "Baseline": {"verb_mode": "baseline", "noun_mode": "baseline"},
    "Verb+Noun Fusion": {"verb_mode": "concat"},
    "SAP": {"verb_alignment": "global"},
}


def _model(model_id="saoa-r50-rgb", **kw):
    torch.manual_seed(0)
    return mmzoo.create(model_id, **{**TINY, **kw}).eval()


def _objects(m, b=2, frames=12):
    """Objects of ``frames`` detection frames at 2 fps around the centre, 5 boxes each."""
    g = torch.Generator().manual_seed(3)
    n = frames * 5
    xy = torch.rand(b, n, 2, generator=g) * 16
    return {"video": torch.randn(b, m.hparams.in_channels, 8, 32, 32, generator=g),
                "object_features": torch.randn(b, n, m.hparams.object_dim, generator=g),
                "object_boxes": torch.cat([xy, xy + 16], -1), "object_mask": torch.ones(b, n, dtype=torch.bool),
                "object_times": ((torch.arange(n) // 5 - (frames - 1) / 2) / 2).expand(b, n).clone()}


@pytest.mark.parametrize("row", list(ROWS))
def test_every_ablation_row_builds_and_runs(row):
    m = _model(**ROWS[row])
    out = m(**_objects(m))
    assert out["verb"].shape == (2, 5) and out["noun"].shape == (2, 6)
    # every trainable parameter takes part in the loss (DDP without find_unused_parameters), nothing else trains
    (out["verb"].logsumexp(-1).sum() + out["noun"].logsumexp(-1).sum()).backward()
    idle = [n for n, p in m.named_parameters() if p.requires_grad and p.grad is None]
    assert idle == []
    assert not any(p.requires_grad for p in m.verb_net.parameters())
    kw = ROWS[row]
    vb, nb = m.verb_branch, m.noun_branch
    if kw.get("verb_mode", "sa") == "sa":
        assert (vb.gate is None) == (not kw.get("gating", True))
        assert (vb.arm is None) == (not kw.get("arm", True))
        assert vb.local == (kw.get("verb_alignment", "local") == "local")
    else:
        assert vb is None
    if kw.get("noun_mode", "sa") in ("sa", "det_only"):
        assert nb.local == (kw.get("noun_alignment", "global") == "local")
        assert (nb.align.video is None) == (kw.get("noun_mode") == "det_only")
    else:
        assert nb is None


def _perturb_noun_net(m):
    with torch.no_grad():
        for p in m.noun_net.parameters():
            p.add_(0.5 * torch.randn_like(p))


@pytest.mark.parametrize("kw,crosses", [({}, True), ({"gating": False}, True), ({"cross_stream": False}, False),
                                        ({"gating": False, "cross_stream": False}, False)])
def test_the_verb_branch_is_gated_and_attended_by_the_noun_stream_only_across_streams(kw, crosses):
    m = _model(**kw)
    x = _objects(m)
    before = m(**x)["verb"]
    _perturb_noun_net(m)
    after = m(**x)["verb"]
    assert torch.allclose(before, after) != crosses


def test_local_alignment_reads_the_central_4s_and_global_the_whole_6s():
    m = _model()
    x = _objects(m)
    base = m(**x)
    y = dict(x)
    far = x["object_times"].abs() > 2.0  # the 2 outer frames on each side of the 12
    assert int(far[0].sum()) == 20
    y["object_features"] = x["object_features"].masked_fill(far[..., None], 7.0)
    out = m(**y)
    assert torch.allclose(out["verb"], base["verb"])  # local (4 s): unchanged
    assert not torch.allclose(out["noun"], base["noun"])  # global (6 s): changed


def test_padding_objects_are_ignored():
    m = _model()
    x = _objects(m)
    x["object_mask"][:, 30:] = False
    base = m(**x)
    x["object_features"] = x["object_features"].clone()
    x["object_features"][:, 30:] = 100.0
    x["object_boxes"][:, 30:] = 0.0
    out = m(**x)
    assert torch.allclose(out["verb"], base["verb"]) and torch.allclose(out["noun"], base["noun"])


def test_forward_features_names_and_shapes():
    m = _model()
    f = m.forward_features(**_objects(m))
    c = m.verb_net.out_channels
    assert c == 256  # the tiny R-50-3D: 8 x 4 x 8
    for side in ("verb", "noun"):
        assert f[f"{side}_global"].shape == (2, c)
        assert f[f"{side}_aligned"].shape == f[f"{side}_gated"].shape == (2, 60, c)
        assert f[f"{side}_attended"].shape == (2, c)
    # the gate is one C-vector per clip broadcast over the 60 objects: the ratio is the same in every row
    ratio = f["noun_gated"] / f["noun_aligned"]
    ok = f["noun_aligned"].abs() > 1e-4
    gate = torch.sigmoid(m.noun_branch.gate.fc(f["verb_global"]))
    assert torch.allclose(ratio[ok], gate[:, None, :].expand_as(ratio)[ok], atol=1e-5)


def test_stage2_freezes_the_backbones_and_trains_the_sa_blocks():
    m = _model()
    m.train()
    assert not m.verb_net.training and not m.noun_net.training and m.verb_branch.training
    assert not any(p.requires_grad for p in m.verb_net.parameters())
    x = _objects(m)
    out = m(**x)
    (out["verb"].sum() + out["noun"].sum()).backward()
    assert all(p.grad is None for p in m.noun_net.parameters())
    assert m.verb_branch.arm.w_a.weight.grad.abs().sum() > 0
    assert m.noun_branch.gate.fc.weight.grad.abs().sum() > 0


def test_stage1_trains_each_backbone_with_its_own_head(tmp_path):
    m = _model(stage=1).train()
    x = _objects(m)
    out = m(video=x["video"])  # no objects needed
    assert not any(p.requires_grad for p in m.noun_branch.parameters())  # unused in stage 1
    out["verb"].sum().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in m.verb_net.parameters())
    assert all(p.grad is None for p in m.noun_net.parameters())  # the verb loss does not reach NounNet
    path = tmp_path / "stage1.ckpt"
    torch.save({"state_dict": m.state_dict()}, path)
    m2 = _model(stage1_checkpoint=str(path))
    assert torch.equal(m2.verb_net.conv1.weight, m.verb_net.conv1.weight)
    assert torch.equal(m2.noun_fc.weight, m.noun_fc.weight)
    torch.save({"state_dict": {"verb_fc.weight": m.verb_fc.weight}}, tmp_path / "bad.ckpt")
    with pytest.raises(ValueError, match="not a stage-1 checkpoint"):
        _model(stage1_checkpoint=str(tmp_path / "bad.ckpt"))


def test_stage2_without_objects_says_what_to_do():
    m = _model()
    with pytest.raises(ValueError, match="--data.objects"):
        m(video=torch.randn(1, 3, 8, 32, 32))
    b = _model(verb_mode="baseline", noun_mode="baseline")
    assert b(video=torch.randn(1, 3, 8, 32, 32))["verb"].shape == (1, 5)


@pytest.mark.parametrize("model_id,stage,lr,steps,epochs", [
    ("saoa-r50-rgb", 1, 0.003, (30 / 35,), 35), ("saoa-i3d-rgb", 2, 0.001, (10 / 15,), 15),
    ("saoa-r50-rgb", 2, 1e-4, (), 15)])
def test_recipe_per_stage_and_backbone(model_id, stage, lr, steps, epochs):
    r = _model(model_id, stage=stage).recipe
    assert (r.base_lr, r.lr_steps, r.epochs, r.base_batch_size, r.weight_decay, r.momentum) == (lr, steps, epochs, 32, 1e-4, 0.9)
    assert r.schedule == ("steps" if steps else "constant")


def test_id_defaults():
    specs = {i: mmzoo.registry.get_spec(i).defaults for i in mmzoo.list_models("saoa-*") + mmzoo.list_models("sap-*")}
    assert set(specs) == {"saoa-r50-rgb", "saoa-r50-flow", "saoa-i3d-rgb", "saoa-i3d-flow", "sap-r50-rgb"}
    assert specs["saoa-i3d-flow"] == {"backbone": "i3d", "in_channels": 2, "normalize_features": True}
    assert specs["sap-r50-rgb"] == {"verb_alignment": "global"}
    assert _model("saoa-i3d-flow").verb_net.out_channels == 128  # tiny I3D: 1024 / 8


def test_action_scores_use_the_training_prior():
    m = _model()
    out = {"verb": torch.zeros(1, 5), "noun": torch.zeros(1, 6)}
    uniform = m.action_scores(out)
    assert torch.allclose(uniform, torch.full((1, 5, 6), 1 / 30))  # no counts yet: mu = 1
    m.action_counts.zero_()
    m.action_counts[1, 2], m.action_counts[4, 0] = 3, 1
    s = m.action_scores(out)
    assert torch.allclose(s[0, 1, 2], torch.tensor(0.75 / 30)) and torch.allclose(s[0, 4, 0], torch.tensor(0.25 / 30))
    assert int((s > 0).sum()) == 2  # every unseen pair is zero (prior_unseen = 0)


def test_cli_detector_path_then_both_stages_and_test(tmp_path, monkeypatch, capsys):
    """`mmzoo objects` (random-init detector) writes the objects file; stage 1 and stage 2 fit and
    `mmzoo test` run on synthetic EPIC-55 through the real CLI; stage 2 starts from stage 1."""
    from mmzoo.cli import main
    from mmzoo.data.synthetic import write_epic

    monkeypatch.chdir(tmp_path)
    root = write_epic(tmp_path / "epic", version="55", videos={"train": ["P01_01", "P02_01", "P26_01"],
                                                                "s1": ["P01_05"], "s2": ["P32_01"]},
                      write_videos=False, segments_per_video=1, num_frames=40)["root"]
    torch.manual_seed(0)
    main(["objects", "--root", root, "--output", "det.h5", "--backbone", "resnet18", "--min_size", "48",
          "--max_size", "64", "--video_fps", "30"])
    assert "objects written to det.h5" in capsys.readouterr().out
    common = ["--model", "saoa-r50-rgb", "--data", "epic-kitchens", "--data.version", "55", "--data.root", root,
              "--model.width_multiplier", "0.125", "--model.frames", "8", "--model.crop_size", "32",
              "--model.object_dim", "256", "--data.num_frames", "8", "--data.crop_size", "32",
              "--data.train_scale", "[32, 40]", "--data.test_scale", "32", "--data.test_crop_size", "32",
              "--data.batch_size", "2", "--data.num_workers", "0", "--trainer.accelerator", "cpu",
              "--trainer.max_steps", "1", "--trainer.limit_val_batches", "1", "--trainer.num_sanity_val_steps", "0",
              "--trainer.enable_progress_bar", "false", "--trainer.logger", "false", "--seed_everything", "0"]
    main(["fit", *common, "--model.stage", "1", "--trainer.default_root_dir", "s1"])
    ckpt1 = max((tmp_path / "s1").rglob("last.ckpt"))
    main(["fit", *common, "--model.stage1_checkpoint", str(ckpt1), "--data.objects", "det.h5",
          "--trainer.default_root_dir", "s2"])
    ckpt2 = max((tmp_path / "s2").rglob("last.ckpt"))
    s1 = torch.load(ckpt1, map_location="cpu", weights_only=True)["state_dict"]
    s2 = torch.load(ckpt2, map_location="cpu", weights_only=True)["state_dict"]
    assert torch.equal(s1["verb_net.conv1.weight"], s2["verb_net.conv1.weight"])  # frozen in stage 2
    assert not torch.equal(s1["noun_branch.fc.weight"], s2["noun_branch.fc.weight"])  # trained in stage 2
    assert s2["action_counts"].sum() == 2  # the two training segments (Eq. 3.14's counts)
    capsys.readouterr()
    main(["test", *common, "--data.objects", "det.h5", "--ckpt_path", str(ckpt2)])
    out = capsys.readouterr().out
    assert "action_prior_top1" in out and "verb_top1" in out
