"""The training recipe on its own (`mmzoo.models.recipe`): linear lr scaling, warm-up and
schedule values, and no weight decay on BatchNorm (thesis ch. 4, section 4.3.1)."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from mmzoo.models.recipe import Recipe, param_groups

THESIS = Recipe(base_lr=1.6, base_batch_size=1024, weight_decay=1e-4, schedule="cosine", warmup_epochs=34.0,
                warmup_start_factor=0.1, epochs=256)  # fmt: skip


def test_lr_scales_linearly_with_the_global_batch():
    assert THESIS.scaled_lr(1024) == pytest.approx(1.6)
    assert THESIS.scaled_lr(64) == pytest.approx(0.1)
    assert THESIS.scaled_lr(None) == pytest.approx(1.6)  # unknown batch: base lr


def test_warmup_then_cosine_values():
    total = 2560
    warm = THESIS.warmup_steps(total)  # 34 of 256 epochs
    assert warm == 340
    assert THESIS.lr_factor(0, total, warm) == pytest.approx(0.1)
    end = 0.5 * (math.cos(math.pi * warm / total) + 1)
    assert THESIS.lr_factor(warm // 2, total, warm) == pytest.approx(0.1 + (end - 0.1) / 2)
    assert THESIS.lr_factor(warm, total, warm) == pytest.approx(end)
    assert THESIS.lr_factor(total // 2, total, warm) == pytest.approx(0.5)
    assert THESIS.warmup_steps(total, max_epochs=68) == 1280  # the trainer's epochs win
    steps = Recipe(base_lr=0.01, schedule="steps", lr_steps=(0.5, 0.75))
    assert [steps.lr_factor(s, 100) for s in (0, 49, 50, 75)] == pytest.approx([1, 1, 0.1, 0.01])


def test_bn_parameters_get_no_weight_decay_and_the_scheduler_steps():
    net = nn.Sequential(nn.Conv3d(3, 4, 1), nn.BatchNorm3d(4), nn.Flatten(), nn.Linear(4, 2))
    groups = param_groups(net, 1e-4, 0.0)
    bn = {id(p) for p in net[1].parameters()}
    assert [g["weight_decay"] for g in groups] == [1e-4, 0.0]
    assert {id(p) for p in groups[1]["params"]} == bn and not bn & {id(p) for p in groups[0]["params"]}
    no_bias = param_groups(net, 1e-4, 0.0, bias_weight_decay=0.0)
    assert len(no_bias) == 3 and all(p.dim() == 1 for p in no_bias[2]["params"])
    conf = THESIS.configure(net, global_batch=64, total_steps=100)
    opt = conf["optimizer"]
    assert isinstance(opt, torch.optim.SGD) and opt.param_groups[0]["momentum"] == 0.9
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1 * 0.1)  # warm-up start at the scaled lr
