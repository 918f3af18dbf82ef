"""Transfer protocols (mmzoo.models.transfer): what trains under each protocol, the BN handling
of the linear probe (precise / frozen / train), frozen BN and layer-wise lr for fine-tuning,
source weights, config.json and the card of a pushed model, and the mean over the three splits."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

import mmzoo
from mmzoo.errors import MmzooError, NotSupportedError
from mmzoo.models.transfer import PROTOCOL_ROWS, TransferModule
from mmzoo.transfer import load_source_weights, summarise_splits

SRC = {"depth": 14, "width": 8, "slow_frames": 2, "alpha": 4, "crop_size": 32, "audio_frames": 32, "mel_bins": 16, "mode": "ssl"}
AOT = {"flow_frames": 2, "widths": [4, 8, 8, 16, 16], "crop_size": 32}


def _avsf(**kw) -> TransferModule:
    torch.manual_seed(0)
    return mmzoo.create("transfer", source="avslowfast-r50-4x16", source_kwargs=SRC, num_classes=5, **kw)


def _aot(**kw) -> TransferModule:
    torch.manual_seed(0)
    return mmzoo.create("transfer", source="aot-tcam-vgg16", source_kwargs=AOT, num_classes=4, **kw)


def _trainable(m: nn.Module) -> set[str]:
    return {n for n, p in m.named_parameters() if p.requires_grad}


def test_protocols_train_the_right_layers():
    assert _trainable(_avsf(protocol="linear-probe")) == {"fc.weight", "fc.bias"}
    assert _trainable(_aot(protocol="finetune-last")) == {"fc.weight", "fc.bias"}
    after = _trainable(_aot(protocol="finetune-after-fusion"))
    assert after - {"fc.weight", "fc.bias"} and all(n.startswith("source.fusion.") for n in after - {"fc.weight", "fc.bias"})
    every = _trainable(_avsf(protocol="finetune-all"))
    assert any(n.startswith("source.backbone.slow.stem") for n in every)
    assert not any(n.startswith(("source.head.", "source.rotation_head.")) for n in every)  # the source's classifiers
    with pytest.raises(NotSupportedError, match="declares no layers after a fusion"):
        _avsf(protocol="finetune-after-fusion")


def test_frozen_parts_stay_in_eval_mode():
    assert not any(x.training for x in _avsf(protocol="linear-probe").source.modules())  # from construction on
    m = _aot(protocol="finetune-after-fusion").train()
    assert not m.source.vgg.training and m.source.fusion.training
    m = _avsf(protocol="linear-probe").train()
    assert not any(x.training for x in m.source.modules())
    m = _avsf(protocol="linear-probe", bn_mode="train").train()
    bns = [x for x in m.source.modules() if isinstance(x, nn.modules.batchnorm._BatchNorm)]
    assert all(b.training for b in bns)
    m = _avsf(protocol="finetune-all", freeze_bn=True).train()
    assert not any(b.training for b in m.source.modules() if isinstance(b, nn.modules.batchnorm._BatchNorm))
    assert not any(n.endswith(("bn.weight", "bn.bias")) for n in _trainable(m))


def _batches(m, n=3, b=4):
    torch.manual_seed(1)
    return [{k: v for k, v in m.example_input(b).items()} for _ in range(n)]


def test_precise_bn_gives_the_population_statistics_of_the_target_data():
    m = _aot(protocol="linear-probe", precise_bn_batches=2)
    batches = [{"flow": 3.0 + torch.randn(4, 8, 32, 32)} for _ in range(3)]
    first_bn = m.source.vgg[0][2]
    conv_relu = nn.Sequential(m.source.vgg[0][0], m.source.vgg[0][1])
    with torch.no_grad():
        per_batch = [conv_relu(torch.cat([b["flow"][:, :4], b["flow"][:, 4:]], 0)) for b in batches[:2]]
    assert m.recompute_bn_statistics(batches) == 2
    expected_mean = torch.stack([x.mean(dim=(0, 2, 3)) for x in per_batch]).mean(0)
    assert torch.allclose(first_bn.running_mean, expected_mean, atol=1e-4)
    assert first_bn.momentum == 0.1 and not first_bn.training
    frozen = _aot(protocol="linear-probe", bn_mode="frozen")
    before = frozen.source.vgg[0][2].running_mean.clone()
    frozen.train()
    with torch.no_grad():
        frozen(**batches[0])
    assert torch.equal(frozen.source.vgg[0][2].running_mean, before)  # pre-training statistics kept


def test_bn_mode_train_updates_statistics_but_not_weights():
    m = _aot(protocol="linear-probe", bn_mode="train").train()
    bn = m.source.vgg[0][2]
    before, w = bn.running_mean.clone(), m.source.vgg[0][0].weight.clone()
    loss = m(flow=torch.randn(2, 8, 32, 32) + 2).sum()
    loss.backward()
    assert not torch.equal(bn.running_mean, before) and m.source.vgg[0][0].weight.grad is None
    assert torch.equal(m.source.vgg[0][0].weight, w)


def test_layer_wise_lr_decay_and_optimizer_groups():
    m = _aot(protocol="finetune-all", layer_decay=0.5)
    mult = m.lr_multipliers()
    assert mult["fc.weight"] == 1.0
    assert mult["source.fusion.0.weight"] == 0.5  # depth 5 of 5, one below the new head
    assert mult["source.vgg.0.0.weight"] == 0.5 ** 6
    opt = m.configure_optimizers()["optimizer"]
    lrs = {round(g["lr"] / m.hparams.base_lr, 6) for g in opt.param_groups}
    assert lrs == {round(0.5 ** k, 6) for k in range(7)}
    bn_groups = [g for g in opt.param_groups if any(p is m.source.vgg[0][2].weight for p in g["params"])]
    assert bn_groups[0]["weight_decay"] == 0.0
    n_opt = sum(p.numel() for g in opt.param_groups for p in g["params"])
    assert n_opt == sum(p.numel() for p in m.parameters() if p.requires_grad)


def test_video_packed_for_another_alpha_is_repacked_by_the_source():
    m = _avsf().eval()
    ex = m.example_input(2)
    slow, fast = ex["video"]
    wrong = [fast[:, :, ::2], fast]  # alpha 2 instead of 4
    inputs = m.source_inputs({"video": wrong, "audio": ex["audio"], "label": torch.zeros(2)})
    assert inputs["video"] is fast and set(inputs) == {"video", "audio"}
    assert m.source_inputs({"video": [slow, fast], "audio": ex["audio"]})["video"][0] is slow  # right alpha: as given
    with torch.no_grad():
        assert torch.allclose(m(**inputs), m(video=fast, audio=ex["audio"]))


def test_source_weights_load_strictly_from_a_pushed_source(tmp_path):
    torch.manual_seed(3)
    src = mmzoo.create("aot-tcam-vgg16", **AOT)
    folder = mmzoo.push(src, "transfer-tests/aot-src")
    m = mmzoo.create("transfer", source="aot-tcam-vgg16", source_kwargs=AOT, source_weights=str(folder), num_classes=4)
    assert load_source_weights(m) and m.source_weights_loaded
    assert all(torch.equal(a, b) for a, b in zip(m.source.state_dict().values(), src.state_dict().values()))
    assert not load_source_weights(m)  # once


def test_config_json_and_card_record_the_protocol():
    m = _aot(protocol="finetune-after-fusion", layer_decay=0.8)
    folder = Path(mmzoo.push(m, "transfer-tests/aot-ucf"))
    config = json.loads((folder / "config.json").read_text())
    assert config["model_id"] == "transfer"
    assert config["kwargs"]["protocol"] == "finetune-after-fusion" and config["kwargs"]["source"] == "aot-tcam-vgg16"
    assert config["kwargs"]["num_classes"] == 4 and config["kwargs"]["layer_decay"] == 0.8
    card = (folder / "README.md").read_text()
    assert "## Transfer protocol" in card and "`finetune-after-fusion`" in card and "| `layer_decay` | `0.8` |" in card
    loaded = mmzoo.load("transfer-tests/aot-ucf")
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), m.state_dict().values()))


def test_summarise_splits_reports_each_split_and_the_mean(tmp_path):
    p = tmp_path / "r3.json"
    p.write_text(json.dumps({"metrics": {"test/top1": 70.0, "test/clip_top1": 60.0}}))
    out = summarise_splits({1: {"test/top1": 80.0, "test/clip_top1": 75.0}, 2: {"test/top1": 77.0, "test/clip_top1": 66.0}, 3: p})
    assert out["splits"][3] == {"test/top1": 70.0, "test/clip_top1": 60.0}
    assert out["mean"]["test/top1"] == pytest.approx(75.666666, abs=1e-4) and out["mean"]["test/clip_top1"] == 67.0
    with pytest.raises(MmzooError, match="splits 1, 2 and 3"):
        summarise_splits({1: {"test/top1": 1.0, "test/clip_top1": 1.0}})


def test_protocol_rows_are_the_thesis_tables():
    rows = {k: v for k, v in PROTOCOL_ROWS.items()}
    assert rows["Table 4.9 AVSlowFast 4x16 linear"]["ucf101"] == 76.8
    assert rows["Table 4.10 AVSlowFast 16x4 fine-tune UCF101"]["kwargs"]["base_lr"] == 0.005
    assert rows["Table 4.10 AVSlowFast 16x4 fine-tune HMDB51"]["iterations"] == 30_000
    for row in rows.values():
        with torch.device("meta"):
            m = mmzoo.create("transfer", **row["kwargs"])
        assert m.hparams.protocol in ("linear-probe", "finetune-all")
