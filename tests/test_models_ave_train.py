"""AVE models learn: a few optimisation steps on a tiny synthetic task whose classes are visible
and audible, by hand and through Lightning's Trainer with DataModule-shaped dict batches."""
from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from mmzoo.models.ave import AVEventLocalizer

C = 5  # 4 events + background (index 4)
BG = C - 1
DIM = 16


def make_batch(n: int, seed: int, with_meta: bool = False) -> dict:
    """Videos of 10 segments; an event of class c spans [s, e): its audio carries an audio
    prototype of c and one random region of its frames a visual prototype of c."""
    g = torch.Generator().manual_seed(seed)
    protos = torch.Generator().manual_seed(1234)
    proto_a = torch.randn(BG, DIM, generator=protos) * 2
    proto_v = torch.randn(BG, DIM, generator=protos) * 2
    audio = 0.3 * torch.randn(n, 10, DIM, generator=g)
    visual = 0.3 * torch.randn(n, 10, 49, DIM, generator=g)
    label = torch.full((n, 10), BG, dtype=torch.long)
    for i in range(n):
        c = int(torch.randint(0, BG, (1,), generator=g))
        s = int(torch.randint(0, 6, (1,), generator=g))
        e = int(torch.randint(s + 2, 11, (1,), generator=g))
        label[i, s:e] = c
        for t in range(s, e):
            audio[i, t] += proto_a[c]
            visual[i, t, int(torch.randint(0, 49, (1,), generator=g))] += proto_v[c]
    video_label = torch.nn.functional.one_hot(label, C).float().mean(1)  # the thesis's averaged Y
    batch = {"visual": visual.reshape(n, 10, 7, 7, DIM), "audio": audio, "label": label, "video_label": video_label}
    if with_meta:
        batch["meta"] = [{"row": i} for i in range(n)]
    return batch


def tiny(**kw) -> AVEventLocalizer:
    cfg = dict(visual_dim=DIM, audio_dim=DIM, num_classes=C, region_dim=DIM, attn_dim=DIM, hidden_dim=16,
               inter_hidden=16, add_hidden=16, lr=1e-2, class_names=["a", "b", "c", "d", "background"])
    cfg.update(kw)
    return AVEventLocalizer(**cfg)


def accuracy(model, batch) -> float:
    model.eval()
    with torch.no_grad():
        pred = model(batch["visual"], batch["audio"]).argmax(-1)
    model.train()
    return (pred == batch["label"]).float().mean().item()


@pytest.mark.parametrize("cfg", [
    dict(classifier="avsdn", attention="cmcoatt", intra_v=True, inter_v="mlp"),
    dict(classifier="avel", attention="add", intra_v=False, inter_v="none"),
    dict(classifier="lstm", attention="none", intra_v=False, inter_v="none"),
], ids=["cmcoatt-avsdn", "avel", "lstm"])
def test_supervised_training_learns_the_synthetic_events(cfg):
    torch.manual_seed(0)
    model = tiny(**cfg)
    train, held_out = make_batch(32, seed=1), make_batch(32, seed=2)
    opt = model.configure_optimizers()["optimizer"]
    first = None
    for _ in range(80):
        loss = model.compute_loss(model.forward_with_attention(train["visual"], train["audio"]), train)
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * first
    assert accuracy(model, held_out) > 0.85  # chance (always background) is ~0.5


def test_weak_training_localises_from_video_labels_only():
    torch.manual_seed(0)
    model = tiny(classifier="avsdn", attention="cmcoatt", intra_v=True, inter_v="mlp", supervision="weak")
    train, held_out = make_batch(48, seed=3), make_batch(32, seed=4)
    opt = model.configure_optimizers()["optimizer"]
    for _ in range(100):
        loss = model.compute_loss(model.forward_with_attention(train["visual"], train["audio"]), train)
        opt.zero_grad()
        loss.backward()
        opt.step()
    # evaluation is per segment on m_t: the right event class inside the event span
    model.eval()
    with torch.no_grad():
        pred = model(held_out["visual"], held_out["audio"]).argmax(-1)
    event = held_out["label"] != BG
    # (always-background scores 0 on event segments; a random event class 0.25)
    assert (pred[event] == held_out["label"][event]).float().mean() > 0.65
    assert (pred == held_out["label"]).float().mean() > 0.7


class _Batches(Dataset):
    def __init__(self, n: int, seed: int):
        b = make_batch(n, seed)
        self.items = [{"visual": b["visual"][i], "audio": b["audio"][i], "label": b["label"][i],
                       "video_label": b["video_label"][i], "meta": {"row": i, "video_id": f"v{i}"}} for i in range(n)]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def _collate(items):
    out = {k: torch.stack([it[k] for it in items]) for k in ("visual", "audio", "label", "video_label")}
    out["meta"] = [it["meta"] for it in items]
    return out


def test_lightning_trainer_fit_test_predict_on_dict_batches(tmp_path):
    torch.manual_seed(0)
    model = tiny(classifier="avsdn", attention="cmcoatt", intra_v=True, inter_v="mlp", lr_step_iters=50)
    train = DataLoader(_Batches(64, 5), batch_size=16, shuffle=True, collate_fn=_collate)
    val = DataLoader(_Batches(32, 6), batch_size=16, collate_fn=_collate)
    trainer = pl.Trainer(max_steps=120, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path,
                         check_val_every_n_epoch=10)
    trainer.fit(model, train, val)
    assert trainer.global_step == 120
    # StepLR stepped per iteration: 120 steps past 50 and 100 -> lr 1e-2 * 0.1^2
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(1e-4)
    (result,) = trainer.test(model, val, verbose=False)
    assert set(result) >= {"test/acc", "test/loss"}
    assert result["test/acc"] > 85.0  # percent over all segments
    preds = trainer.predict(model, val)
    assert preds[0]["pred"].shape == (16, 10)
    assert preds[0]["names"][0][0] in {"a", "b", "c", "d", "background"}
    assert preds[0]["meta"][0]["video_id"] == "v0"
    assert preds[0]["attention"].shape == (16, 10, 49)
