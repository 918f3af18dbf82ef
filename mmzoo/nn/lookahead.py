"""Lookahead (Zhang, Lucas, Hinton, Ba, "Lookahead Optimizer: k steps forward, 1 step back", 2019).

Wrapped around RAdam it is the Ranger optimiser T2VLAD trains with (Wang, thesis ch. 6, implementation details).
"""
from __future__ import annotations

from typing import Any

import torch

__all__ = ["Lookahead"]


class Lookahead(torch.optim.Optimizer):
    """Lookahead (Zhang et al., 2019) around any optimizer: every ``k`` steps the slow weights
    move ``alpha`` of the way to the fast weights and the fast weights restart from them.
    ``Lookahead(RAdam(...))`` is the Ranger optimiser T2VLAD uses.

    ``param_groups`` are the inner optimizer's (so LR schedulers act on it); ``state_dict``
    holds the inner state and the slow weights.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, k: int = 6, alpha: float = 0.5):
        if k < 1 or not 0.0 < alpha <= 1.0:
            raise ValueError("Lookahead needs k >= 1 and 0 < alpha <= 1")
        self.optimizer = optimizer
        self.k, self.alpha = k, alpha
        super().__init__(optimizer.param_groups, optimizer.defaults)
        self.param_groups = optimizer.param_groups  # share the inner groups (and their lr)
        self.lookahead_steps = 0

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:  # slow weights start at the initial parameters
            for p in group["params"]:
                if "slow" not in self.state[p]:
                    self.state[p]["slow"] = p.detach().clone()
        loss = self.optimizer.step(closure)
        self.lookahead_steps += 1
        if self.lookahead_steps % self.k == 0:
            for group in self.param_groups:
                for p in group["params"]:
                    slow = self.state[p]["slow"]
                    slow.add_(p - slow, alpha=self.alpha)
                    p.copy_(slow)
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.optimizer.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict[str, Any]:
        slow = {i: self.state[p]["slow"] for i, p in enumerate(p for g in self.param_groups for p in g["params"]) if "slow" in self.state[p]}
        return {"inner": self.optimizer.state_dict(), "slow": slow, "lookahead_steps": self.lookahead_steps, "k": self.k, "alpha": self.alpha}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state_dict["inner"])
        self.param_groups = self.optimizer.param_groups
        params = [p for g in self.param_groups for p in g["params"]]
        for i, t in state_dict["slow"].items():
            self.state[params[int(i)]]["slow"] = t.to(params[int(i)].device).clone()
        self.lookahead_steps = int(state_dict["lookahead_steps"])
