"""The zoo-level late-fusion model: weighted mean of the members' softmax scores, member weights
from checkpoints, and its errors."""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

import mmzoo
from mmzoo.models.ensemble import fuse_scores

TINY = {"width_multiplier": 0.125, "frames": 8, "crop_size": 32, "num_verbs": 5, "num_nouns": 6, "top_k": 2}


def test_fuse_scores_is_the_weighted_mean_of_softmaxes():
    a = torch.tensor([[0.0, 0.0]])  # softmax (0.5, 0.5)
    b = torch.tensor([[0.0, torch.log(torch.tensor(3.0))]])  # softmax (0.25, 0.75)
    torch.testing.assert_close(fuse_scores([a, b], [1.0, 3.0]), torch.tensor([[(0.5 + 0.75) / 4, (0.5 + 2.25) / 4]]))
    out = fuse_scores([{"verb": a, "noun": b}, {"verb": b, "noun": a}], [1.0, 1.0])
    torch.testing.assert_close(out["verb"], torch.tensor([[0.375, 0.625]]))
    with pytest.raises(ValueError, match="different shapes"):
        fuse_scores([a, torch.zeros(1, 3)], [1.0, 1.0])
    with pytest.raises(ValueError, match="different outputs"):
        fuse_scores([{"verb": a}, {"noun": a}], [1.0, 1.0])


def test_two_stream_ensemble_fuses_its_members_outputs(tmp_path):
    torch.manual_seed(0)
    ens = mmzoo.create("ensemble", members=["ipl-i3d-rgb", "ipl-i3d-flow"], weights=[2.0, 1.0],
                       member_kwargs=[TINY, TINY]).eval()
    assert [m.hparams.in_channels for m in ens.members] == [3, 2]
    x = ens.example_input(2)
    assert x["video"].shape[1] == 3 and x["flow"].shape[1] == 2
    out = ens(**x)
    rgb, flow = ens.members[0](x["video"]), ens.members[1](x["flow"])
    for k in ("verb", "noun"):
        torch.testing.assert_close(out[k], (2 * rgb[k].softmax(-1) + flow[k].softmax(-1)) / 3)
    with pytest.raises(ValueError, match=r"\['flow'\]"):
        ens(video=x["video"])


def test_members_load_lightning_and_safetensors_checkpoints(tmp_path):
    torch.manual_seed(1)
    rgb = mmzoo.create("ipl-i3d-rgb", **TINY)
    flow = mmzoo.create("ipl-i3d-flow", **TINY)
    torch.save({"state_dict": rgb.state_dict(), "epoch": 3}, tmp_path / "rgb.ckpt")
    save_file({k: v.contiguous() for k, v in flow.state_dict().items()}, str(tmp_path / "model.safetensors"))
    ens = mmzoo.create("ipl-i3d-2stream", member_kwargs=[TINY, TINY],
                       member_checkpoints=[str(tmp_path / "rgb.ckpt"), str(tmp_path / "model.safetensors")])
    for mine, theirs in ((ens.members[0], rgb), (ens.members[1], flow)):
        for (k, v), (k2, v2) in zip(mine.state_dict().items(), theirs.state_dict().items()):
            assert k == k2 and torch.equal(v, v2)


def test_bad_configurations():
    with pytest.raises(ValueError, match="weights has 1 entries for 2 members"):
        mmzoo.create("ensemble", weights=[1.0], member_kwargs=[TINY, TINY])
    with pytest.raises(ValueError, match="at least one member"):
        mmzoo.create("ensemble", members=[], inputs=[])
    ens = mmzoo.create("ensemble", members=["ipl-i3d-rgb"], inputs=["video"], member_kwargs=[TINY])
    with pytest.raises(mmzoo.errors.NotSupportedError, match="not trained"):
        ens.training_step({}, 0)


def test_two_stream_saoa_members_both_read_the_objects():
    """SAOA's two-stream rows: each member gets its clip and the batch's object inputs by name."""
    saoa = {"width_multiplier": 0.125, "frames": 8, "crop_size": 32, "num_verbs": 5, "num_nouns": 6, "object_dim": 16,
            "num_objects": 10}
    torch.manual_seed(2)
    ens = mmzoo.create("ensemble", members=["saoa-i3d-rgb", "saoa-i3d-flow"], inputs=["video", "flow"],
                       member_kwargs=[saoa, saoa]).eval()
    assert ens.extras[0] == ("object_features", "object_boxes", "object_mask", "object_times")
    x = ens.example_input(2)
    assert {"video", "flow", "object_features", "object_boxes"} <= set(x) and x["flow"].shape[1] == 2
    objects = {k: v for k, v in x.items() if k.startswith("object_")}
    with torch.no_grad():
        out = ens(**x)
        rgb, flow = ens.members[0](x["video"], **objects), ens.members[1](x["flow"], **objects)
    for k in ("verb", "noun"):
        torch.testing.assert_close(out[k], (rgb[k].softmax(-1) + flow[k].softmax(-1)) / 2)
    with pytest.raises(ValueError, match="--data.objects"):  # stage-2 members need them: nothing else feeds them
        ens(video=x["video"], flow=x["flow"])
    batch = {**x, "verb": torch.tensor([0, 1]), "noun": torch.tensor([2, 3]), "unrelated": torch.zeros(2)}
    assert set(ens._fields(batch)) == set(x)  # what the eval / predict steps pass on
