"""timm backbones follow mmzoo's one offline policy: cache only, no probing, no global mutation."""
from __future__ import annotations

import socket
from pathlib import Path

import huggingface_hub.constants
import pytest
import safetensors.torch
import timm
import torch

from mmzoo.nn.timm_backbone import cached_timm_weights, create_timm_model

NAME = "resnet18"  # its default pretrained config: Hub repo timm/resnet18.a1_in1k


@pytest.fixture
def no_sockets(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a network connection was attempted")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


def _cache_weights(cache: Path, state: dict) -> Path:
    """Write `state` where huggingface_hub would have cached timm/resnet18.a1_in1k's weights."""
    repo = cache / "models--timm--resnet18.a1_in1k"
    snapshot = repo / "snapshots" / ("c" * 40)
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("c" * 40)
    safetensors.torch.save_file({k: v.contiguous() for k, v in state.items()}, str(snapshot / "model.safetensors"))
    return snapshot / "model.safetensors"


def test_offline_loads_cached_weights_without_network(isolated_hub, no_sockets):
    torch.manual_seed(3)
    reference = timm.create_model(NAME, pretrained=False)
    path = _cache_weights(isolated_hub / "hf-home" / "hub", reference.state_dict())
    offline_before = huggingface_hub.constants.HF_HUB_OFFLINE
    assert cached_timm_weights(NAME) == str(path)
    model, loaded = create_timm_model(NAME, pretrained=True)
    assert loaded is True
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), reference.state_dict().values()))
    assert huggingface_hub.constants.HF_HUB_OFFLINE == offline_before  # no other library's globals touched


def test_offline_and_not_cached_warns_and_seeds(no_sockets):
    assert cached_timm_weights(NAME) is None
    with pytest.warns(UserWarning, match="RANDOMLY INITIALISED backbone. use pretrained_backbone=False"):
        model, loaded = create_timm_model(NAME, pretrained=True, seed=0, fallback_hint="use pretrained_backbone=False")
    assert loaded is False
    again, _ = create_timm_model(NAME, pretrained=False, seed=0)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))


def test_online_leaves_the_download_to_timm(monkeypatch, no_sockets):
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    calls = []
    real = timm.create_model

    def recording(name, pretrained=False, **kwargs):
        calls.append((name, pretrained, dict(kwargs)))
        return real(name, pretrained=False, **kwargs)

    monkeypatch.setattr(timm, "create_model", recording)
    _, loaded = create_timm_model(NAME, pretrained=True, num_classes=0)
    assert loaded is True and calls == [(NAME, True, {"num_classes": 0})]  # no probe, no cache detour
