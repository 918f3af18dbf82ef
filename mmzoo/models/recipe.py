"""Training recipes: optimizer, lr scaled to the batch, warm-up, schedule and weight-decay rules.

A :class:`Recipe` is a frozen, typed description of how a paper trains a model; a family's
``configure_optimizers`` builds it from its constructor arguments and returns
``recipe.configure(module, global_batch=..., total_steps=...)`` (what Lightning expects:
``{"optimizer": ..., "lr_scheduler": {"scheduler": ..., "interval": "step"}}``).

The learning rate at optimizer step ``s`` of ``S`` is ``lr(s) = scaled_lr x factor(s)``:

* ``scaled_lr = base_lr x global_batch / base_batch_size`` (the linear scaling rule; thesis ch. 4,
  section 4.3.1: lr 1.6 at batch 1024), ``base_lr`` unchanged when either batch size is unknown;
* ``factor`` is the schedule (half-period cosine ``0.5 (1 + cos(pi s / S))``, steps dividing by
  ``1 / step_factor`` at each fraction of ``lr_steps``, or constant), preceded by a linear warm-up
  from ``warmup_start_factor`` to the schedule's value at the end of the warm-up.

Parameters are split into groups so that normalisation layers (BatchNorm, GroupNorm, LayerNorm)
get ``norm_weight_decay`` (thesis ch. 4: no weight decay on BN) and, when ``bias_weight_decay`` is
set, biases get it too.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal, Optional

import torch
from torch import nn

__all__ = ["Recipe", "param_groups", "global_batch_size", "total_training_steps"]

_NORMS = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm, nn.modules.instancenorm._InstanceNorm)


@dataclass(frozen=True)
class Recipe:
    """One paper's optimisation recipe.

    Args:
        base_lr: learning rate at `base_batch_size`.
        base_batch_size: global batch `base_lr` is stated for; None = no scaling.
        optimizer: "sgd", "adam" or "adamw".
        momentum / nesterov: SGD momentum (Adam's beta1 is left at its default).
        weight_decay: decay of every parameter that is not a normalisation parameter or a bias.
        norm_weight_decay: decay of BatchNorm / GroupNorm / LayerNorm parameters.
        bias_weight_decay: decay of the other biases; None = `weight_decay`.
        schedule: "cosine" (half period, to 0 at the last step), "steps" or "constant".
        lr_steps: fractions of training at which "steps" multiplies the lr by `step_factor`.
        step_factor: that multiplier (0.1).
        warmup_epochs: linear warm-up length in epochs (0 = none), converted to steps with the
            trainer's `max_epochs`, or `epochs` when the trainer has none.
        warmup_start_factor: lr at step 0 as a fraction of the scaled lr.
        epochs: the paper's training length in epochs.
    """

    base_lr: float
    base_batch_size: Optional[int] = None
    optimizer: Literal["sgd", "adam", "adamw"] = "sgd"
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 0.0
    norm_weight_decay: float = 0.0
    bias_weight_decay: Optional[float] = None
    schedule: Literal["cosine", "steps", "constant"] = "constant"
    lr_steps: tuple[float, ...] = ()
    step_factor: float = 0.1
    warmup_epochs: float = 0.0
    warmup_start_factor: float = 0.1
    epochs: int = 1

    def scaled_lr(self, global_batch: Optional[int]) -> float:
        """`base_lr x global_batch / base_batch_size` (`base_lr` when either is unknown)."""
        if not global_batch or not self.base_batch_size:
            return self.base_lr
        return self.base_lr * global_batch / self.base_batch_size

    def warmup_steps(self, total_steps: int, max_epochs: Optional[int] = None) -> int:
        """Warm-up length in steps: `warmup_epochs` of `max_epochs` (or `epochs`) of `total_steps`."""
        epochs = max_epochs if max_epochs and max_epochs > 0 else self.epochs
        return int(round(max(int(total_steps), 1) * min(1.0, self.warmup_epochs / max(epochs, 1))))

    def schedule_factor(self, step: int, total_steps: int) -> float:
        """The schedule alone (no warm-up) at `step` of `total_steps`."""
        total = max(int(total_steps), 1)
        if self.schedule == "cosine":
            return 0.5 * (math.cos(math.pi * step / total) + 1.0)
        if self.schedule == "steps":
            return self.step_factor ** sum(1 for s in self.lr_steps if step >= s * total)
        return 1.0

    def lr_factor(self, step: int, total_steps: int, warmup_steps: int = 0) -> float:
        """Multiplier of the scaled lr at `step`: linear warm-up over `warmup_steps`, then the
        schedule."""
        if warmup_steps > 0 and step < warmup_steps:
            end = self.schedule_factor(warmup_steps, total_steps)
            return self.warmup_start_factor + (end - self.warmup_start_factor) * step / warmup_steps
        return self.schedule_factor(step, total_steps)

    def build_optimizer(self, module: nn.Module, global_batch: Optional[int] = None) -> torch.optim.Optimizer:
        """The optimizer over `module`'s trainable parameters, grouped by weight-decay rule."""
        groups = param_groups(module, self.weight_decay, self.norm_weight_decay, self.bias_weight_decay)
        lr = self.scaled_lr(global_batch)
        if self.optimizer == "sgd":
            return torch.optim.SGD(groups, lr=lr, momentum=self.momentum, nesterov=self.nesterov)
        if self.optimizer == "adam":
            return torch.optim.Adam(groups, lr=lr)
        return torch.optim.AdamW(groups, lr=lr)

    def configure(
        self,
        module: nn.Module,
        global_batch: Optional[int] = None,
        total_steps: Optional[int] = None,
        max_epochs: Optional[int] = None,
    ) -> dict[str, Any]:
        """`configure_optimizers`' return value: the optimizer and a per-step LambdaLR."""
        opt = self.build_optimizer(module, global_batch)
        total = int(total_steps) if total_steps and not math.isinf(total_steps) else 1
        warm = self.warmup_steps(total, max_epochs)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: self.lr_factor(s, total, warm))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def param_groups(
    module: nn.Module, weight_decay: float, norm_weight_decay: float = 0.0, bias_weight_decay: Optional[float] = None
) -> list[dict[str, Any]]:
    """Trainable parameters of `module` in groups of equal weight decay (empty groups dropped):
    the rest, normalisation parameters, and (when `bias_weight_decay` is set) other biases."""
    rest: list[nn.Parameter] = []
    norm: list[nn.Parameter] = []
    bias: list[nn.Parameter] = []
    for m in module.modules():
        for name, p in m.named_parameters(recurse=False):
            if not p.requires_grad:
                continue
            if isinstance(m, _NORMS):
                norm.append(p)
            elif bias_weight_decay is not None and name == "bias":
                bias.append(p)
            else:
                rest.append(p)
    groups = [(rest, weight_decay), (norm, norm_weight_decay), (bias, bias_weight_decay)]
    return [{"params": ps, "weight_decay": wd} for ps, wd in groups if ps]


def total_training_steps(module: Any) -> Optional[int]:
    """The attached trainer's optimizer steps over the whole fit (None without a trainer or when
    it is unbounded)."""
    trainer = getattr(module, "_trainer", None)
    if trainer is None:
        return None
    total = trainer.estimated_stepping_batches
    if not total or math.isinf(total):
        return None
    return int(total)


def global_batch_size(module: Any, per_device: Optional[int] = None) -> Optional[int]:
    """devices x nodes x per-device batch x gradient accumulation. The per-device batch is the
    attached DataModule's `batch_size` (attribute or hparam), else `per_device`; None when both
    are unknown."""
    trainer = getattr(module, "_trainer", None)
    dm = getattr(trainer, "datamodule", None) if trainer is not None else None
    bs = None
    for src in (dm, getattr(dm, "hparams", None)):
        if src is None:
            continue
        value = src.get("batch_size") if isinstance(src, dict) else getattr(src, "batch_size", None)
        if isinstance(value, int) and value > 0:
            bs = value
            break
    bs = bs or per_device
    if bs is None:
        return None
    if trainer is None:
        return bs
    return trainer.world_size * bs * trainer.accumulate_grad_batches
