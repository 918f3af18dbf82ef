"""AVTS (`avts-mc3-vggmel`): MC3-18 parity with torchvision, hard negatives read from real mp4 files
at the stated offset, the curriculum switch inside a real fit, the sync decision rule, learning
synchronisation on synthetic Kinetics whose sound and motion co-occur, and the CLI round trip
(pretext fit on Kinetics, transfer to UCF101)."""
from __future__ import annotations

import json

import pytest
import pytorch_lightning as pl
import torch
import torchvision
from _tiny import AV_CLIP, AV_CLIP_FLAGS, TRAINER_FLAGS, as_flags
from torch.utils.flop_counter import FlopCounterMode

from mmzoo.cli import main
from mmzoo.data.audio import LogMel
from mmzoo.data.decode import read_audio
from mmzoo.data.kinetics import KineticsDataModule
from mmzoo.data.synthetic.kinetics import write_kinetics
from mmzoo.data.synthetic.ucf101 import write_ucf101
from mmzoo.data.video_dataset import collate_clips
from mmzoo.hub.checkpoint import model_from_checkpoint
from mmzoo.models.avts import AVTS, MC3
from mmzoo.nn.av_contrastive import contrastive_loss
from mmzoo.registry import get_spec

TINY = {"video_layers": [1, 1, 1, 1], "video_widths": [8, 8, 8, 16], "audio_widths": [8, 8, 16, 16],
        "audio_convs": [1, 1, 1, 1], "frames": 8, "crop_size": 32, "audio_frames": 98, "mel_bins": 64}


@pytest.fixture(scope="module")
def dense(tmp_path_factory):
    """4-s videos with one event in every 1-s slot: every 1-s audio window holds a different burst."""
    root = tmp_path_factory.mktemp("kin_dense")
    return write_kinetics(root, classes=("drumming", "tapping"), per_class={"train": 1, "val": 1}, num_frames=120,
                          size=(32, 40), av_events=True, event_every=1.0)


def _dm(root, **kw) -> KineticsDataModule:
    """The DataModule with the AVTS audio contract (what `mmzoo fit --model avts-mc3-vggmel` pairs)."""
    args = KineticsDataModule.defaults_from_input(get_spec("avts-mc3-vggmel").input)
    args.update(AV_CLIP, audio_shift_sec=1.0, batch_size=4)
    args.update(kw)
    return KineticsDataModule(root=str(root), **args)


def test_mc3_18_is_torchvisions_layout_and_computation():
    ours = MC3()
    tv = torchvision.models.video.mc3_18()
    state = {k: v for k, v in tv.state_dict().items() if not k.startswith("fc.")}
    ours.load_state_dict(state, strict=True)
    n_tv = sum(p.numel() for name, p in tv.named_parameters() if not name.startswith("fc."))
    assert sum(p.numel() for p in ours.parameters()) == n_tv == 11_490_240
    ours.eval()
    tv.eval()
    x = torch.randn(1, 3, 4, 32, 32)
    with torch.no_grad():
        tv.fc = torch.nn.Identity()
        assert torch.allclose(ours(x).mean(dim=(2, 3, 4)), tv(x), atol=1e-5)


def test_full_size_counts():
    model = AVTS()
    assert model.video_net.out_dim == model.audio_net.out_dim == model.embed_dim == 512
    # MC3-18 11.49 M (11.70 M with torchvision's 400-class classifier) + the VGGish conv trunk with BN 4.50 M
    assert model.num_parameters() == 11_490_240 + 4_501_440
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        model.eval().video_net(torch.randn(1, 3, 16, 112, 112))
    # torchvision's MC3_18 weights table: 43.34 GFLOPs (multiply-adds) at 16 x 112 x 112
    assert fc.get_total_flops() / 2e9 == pytest.approx(43.34, rel=0.01)


def test_hard_negative_is_the_same_videos_audio_one_second_later(dense):
    dm = _dm(dense["root"])
    dm.setup("fit")
    ds = dm.datasets["val"]
    batch = collate_clips([ds[0], ds[1]])
    model = AVTS(**TINY, negatives="hard").eval()
    easy, hard = model.negative_plan(batch, epoch=0)
    assert hard.tolist() == [True, True]
    lm = LogMel(**dm.audio_frontend)
    n = lm.num_samples() / 16000
    for i, meta in enumerate(batch["meta"]):
        idx = meta["frame_indices"]
        t0, t1 = idx[0] / 30, (idx[-1] + 4) / 30
        a0 = 0.5 * (t0 + t1) - 0.5 * n
        aligned = lm(read_audio(meta["source"], a0, a0 + n))
        assert torch.allclose(batch["audio"][i], aligned, atol=1e-4)
        # the shifted window is the one 1 s later (evaluation: later when it fits), of all offsets;
        # a few frames differ slightly because the DataModule decodes it with the reader that read the
        # aligned window (AAC decoding after a seek), so compare mean differences
        offsets = (-1.0, -0.5, 0.0, 0.5, 1.0, 1.5)
        err = [(lm(read_audio(meta["source"], a0 + o, a0 + o + n)) - batch["audio_shifted"][i]).abs().mean().item()
               for o in offsets]
        assert offsets[err.index(min(err))] == 1.0 and min(err) < 0.02
        assert sorted(err)[1] > 0.5  # every other offset is far off: the windows hold different events
    with torch.no_grad():
        d, y = model.pair_distances(batch, easy, hard)
        v = model.embed_video(batch["video"])
        expected = model.loss_fn.distance(v, model.embed_audio(batch["audio_shifted"]))
    assert y.tolist() == [1, 1, 0, 0]
    assert torch.allclose(d[2:], expected, atol=1e-6)
    # easy negatives: the other clip (the other video) of the batch
    assert easy.tolist() == [1, 0] and batch["meta"][0]["youtube_id"] != batch["meta"][1]["youtube_id"]


def test_hard_negatives_without_shifted_audio_name_the_flag(av_events):
    dm = _dm(av_events["root"], audio_shift_sec=None)
    dm.setup("fit")
    batch = collate_clips([dm.datasets["val"][0], dm.datasets["val"][1]])
    model = AVTS(**TINY)
    model.negative_plan(batch, epoch=49)  # easy-only stage: no shifted audio needed
    with pytest.raises(ValueError, match="audio_shift_sec"):
        model.negative_plan(batch, epoch=50)


class _HardShare(pl.Callback):
    def __init__(self) -> None:
        self.per_epoch: list[float] = []

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.per_epoch.append(float(trainer.callback_metrics["train/hard_share"]))


def test_curriculum_switches_at_the_stated_epoch_in_a_fit(av_events):
    pl.seed_everything(0)
    dm = _dm(av_events["root"], batch_size=4)
    model = AVTS(**TINY, switch_epoch=2, stage2="mixed")
    cb = _HardShare()
    trainer = pl.Trainer(accelerator="cpu", max_epochs=4, limit_train_batches=1, limit_val_batches=0, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, callbacks=[cb])
    trainer.fit(model, datamodule=dm)
    assert cb.per_epoch == [0.0, 0.0, 0.25, 0.25]  # 1 of 4 clips after the switch


def test_sync_accuracy_follows_the_decision_rule(av_events):
    dm = _dm(av_events["root"])
    dm.setup("fit")
    batch = collate_clips([dm.datasets["val"][i] for i in range(4)])
    torch.manual_seed(0)
    model = AVTS(**TINY, sync_threshold=0.3).eval()
    with torch.no_grad():
        d = model.validation_step(batch, 0)
    want = ((d[:4] < 0.3).sum() + (d[4:] >= 0.3).sum()).item() / 8
    assert model.val_acc.compute().item() == pytest.approx(want)
    assert AVTS(**TINY).threshold == pytest.approx(0.495)  # default: margin / 2


def test_in_sync_pairs_end_closer_than_out_of_sync_after_training(av_events):
    torch.manual_seed(0)
    dm = _dm(av_events["root"])
    dm.setup("fit")
    ds = dm.datasets["train"]
    samples = [ds[i % len(ds)] for i in range(96)]
    # training items leave scale / crop / flip to the DataModule: finish them as on_after_batch_transfer does
    train = [dm.finish_batch(collate_clips(samples[i:i + 8])) for i in range(0, 64, 8)]
    held = dm.finish_batch(collate_clips(samples[64:]))
    differ = (held["audio"] - held["audio_shifted"]).flatten(1).abs().amax(1) > 1e-3
    model = AVTS(**TINY, negatives="hard")
    opt = torch.optim.Adam(model.parameters(), 3e-3)

    def gap() -> tuple[float, float]:
        model.eval()
        with torch.no_grad():
            v = model.embed_video(held["video"])
            d_in = model.loss_fn.distance(v, model.embed_audio(held["audio"]))
            d_out = model.loss_fn.distance(v, model.embed_audio(held["audio_shifted"]))
        model.train()
        return (d_out - d_in)[differ].mean().item(), (d_in < d_out)[differ].float().mean().item()

    before = gap()
    for step in range(80):
        b = train[step % len(train)]
        d, y = model.pair_distances(b, *model.negative_plan(b, epoch=0))
        loss = contrastive_loss(d, y, model.hparams.margin, 2)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = gap()
    print("gap, share in-sync closer: before", before, "after", after)
    assert int(differ.sum()) >= 24
    assert after[0] > 0.05 and after[0] > before[0] + 0.05
    assert after[1] > 0.6


def test_cli_pretext_on_kinetics_then_finetune_on_ucf101(av_events, tmp_path):
    tiny, clip, trainer = as_flags(TINY), AV_CLIP_FLAGS, TRAINER_FLAGS
    run = tmp_path / "pretext"
    main(["fit", "--model", "avts-mc3-vggmel", *tiny, "--model.negatives", "mixed", "--data", "kinetics",
          "--data.root", av_events["root"], "--data.version", "any", "--data.audio_shift_sec", "1.0", *clip, *trainer,
          "--trainer.default_root_dir", str(run)])
    ckpt = next(run.rglob("last.ckpt"))
    main(["test", "--model", "avts-mc3-vggmel", *tiny, "--data", "kinetics", "--data.root", av_events["root"],
          "--data.version", "any", *clip, *trainer, "--ckpt_path", str(ckpt), "--results_json", str(run / "test.json"),
          "--trainer.default_root_dir", str(run)])
    res = json.loads((run / "test.json").read_text())
    assert res["model"] == "avts-mc3-vggmel" and "test/sync_acc" in res["metrics"]
    pretext = torch.load(ckpt, map_location="cpu", weights_only=False)["state_dict"]

    root = write_ucf101(tmp_path / "ucf", num_frames=40)["root"]
    ft = tmp_path / "ft"
    src = json.dumps({k: v for k, v in TINY.items()})
    main(["fit", "--model", "transfer", "--model.source", "avts-mc3-vggmel", "--model.source_kwargs", src,
          "--model.source_weights", str(ckpt), "--model.protocol", "finetune-all", "--data", "ucf101",
          "--data.root", root, "--data.split", "1", *clip, *trainer, "--trainer.limit_train_batches", "1",
          "--trainer.default_root_dir", str(ft)])
    model = model_from_checkpoint(next(ft.rglob("last.ckpt")), "transfer")
    assert model.hparams.source == "avts-mc3-vggmel" and model.fc.out_features == 3  # the synthetic UCF101 classes
    # the fine-tuned network started from the pretext weights: it moved by one SGD step only
    w0, w1 = pretext["video_net.layer4.0.conv2.0.weight"], model.source.video_net.layer4[0].conv2[0].weight.detach()
    assert w0.shape == w1.shape and (w1 - w0).abs().max() < 0.05 * w0.abs().max() + 1e-3
