"""`mmzoo demo`: the whole zoo loop on a tiny synthetic AVE dataset, offline, in a few minutes.

1. write an AVE-format dataset of real mp4 files with audio (each event class has its own colour
   and its own tone, so the classes can be learned from sight and sound);
2. extract per-segment visual and VGGish features from the videos (the `ave` DataModule's video mode);
3. fit `cmcoatt-avsdn` with a Lightning Trainer, then test it with the AVE per-segment accuracy;
4. push it to the local hub, reload it with `mmzoo.load`, and predict the segments of one video.

Everything is written under the demo's folder (`root`): the dataset (`ave/`), the feature cache
(`feature-cache/`), the Trainer's folder (`logs/`) and the local hub (`hub/`, `$MMZOO_HUB` is
pointed there while the demo runs), so `rm -r mmzoo-demo` removes all of it.

The visual backbone is ResNet-18 with random weights (the thesis uses ImageNet ResNet-152, which is
the DataModule's default): no weights can be downloaded offline, and ResNet-18 keeps the demo
within a few minutes on two CPU cores.
"""
from __future__ import annotations

import contextlib
import os
import time
from collections import Counter
from pathlib import Path

import torch

DEMO_CLASSES = ("Church bell", "Bark", "Violin, fiddle", "Helicopter")
DEMO_REPO = "demo/cmcoatt-avsdn-synthetic-ave"


def _say(step: str) -> None:
    print(f"\n==> {step}", flush=True)


@contextlib.contextmanager
def _local_hub_in(folder: Path):
    """Point the local hub (`$MMZOO_HUB`) at `folder` for the duration of the block."""
    old = os.environ.get("MMZOO_HUB")
    os.environ["MMZOO_HUB"] = str(folder.resolve())
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("MMZOO_HUB", None)
        else:
            os.environ["MMZOO_HUB"] = old


def run_demo(root: str | Path = "mmzoo-demo", epochs: int | None = None, seed: int = 0) -> dict:
    """Run the demo under `root` (everything it writes goes there, the local hub `root/hub`
    included); returns test accuracy, chance level and the reload check."""
    with _local_hub_in(Path(root) / "hub"):
        return _run_demo(Path(root), epochs, seed)


def _run_demo(root: Path, epochs: int | None, seed: int) -> dict:
    import pytorch_lightning as pl

    import mmzoo
    from mmzoo.data.ave import AVEDataModule
    from mmzoo.data.synthetic.ave import write_ave

    start = time.time()
    epochs = epochs or 40
    pl.seed_everything(seed, workers=True)

    _say(f"1/5 writing a synthetic AVE dataset ({len(DEMO_CLASSES)} classes, mp4 + AAC) under {root / 'ave'}")
    written = write_ave(root / "ave", num_videos_per_class=6, classes=DEMO_CLASSES, seed=seed,
                        with_features=False, with_videos=True, repeat_video_id=False,
                        degenerate_row=False)
    print(f"    {len(written['rows'])} annotated videos")

    _say("2/5 extracting per-segment features from the videos (ResNet-18 7x7 maps + VGGish, cached)")
    dm = AVEDataModule(root=str(root / "ave"), input_mode="video", visual_backbone="resnet18.tv_in1k",
                       pretrained_backbone=False, batch_size=4,  # num_workers: the machine's default
                       cache_dir=str(root / "feature-cache"))
    dm.prepare_data()
    dm.setup("fit")

    _say(f"3/5 fitting cmcoatt-avsdn (narrow widths) for {epochs} epochs")
    # Narrower than the thesis's widths (K=512 regions, 512-d inter-frame MLP, 128-d LSTMs) so that
    # training takes a minute on a CPU; the architecture is otherwise the registered one.
    model = mmzoo.create("cmcoatt-avsdn", visual_dim=dm.visual_dim, region_dim=64, inter_hidden=64,
                         hidden_dim=32, lr=3e-3, class_names=list(dm.classes) + ["background"])
    trainer = pl.Trainer(max_epochs=epochs, accelerator="cpu", default_root_dir=str(root / "logs"),
                         logger=False, enable_checkpointing=False, log_every_n_steps=1)
    trainer.fit(model, datamodule=dm)
    test = trainer.test(model, datamodule=dm)[0]
    accuracy = float(test["test/acc"])

    labels = torch.cat([batch["label"].flatten() for batch in dm.test_dataloader()])
    majority = Counter(labels.tolist()).most_common(1)[0][1] / labels.numel()
    print(f"    test per-segment accuracy {accuracy:.1f}%  (majority-class chance {100 * majority:.1f}%)")

    _say(f"4/5 pushing to the demo's local hub ({root / 'hub'}) as '{DEMO_REPO}' and reloading with mmzoo.load")
    where = mmzoo.push(model, DEMO_REPO, hub="local")
    reloaded = mmzoo.load(DEMO_REPO)
    batch = next(iter(dm.test_dataloader()))
    model.eval()
    with torch.no_grad():
        same = torch.equal(model(batch["visual"], batch["audio"]), reloaded(batch["visual"], batch["audio"]))
    print(f"    pushed to {where}; reloaded model gives identical logits: {same}")

    _say("5/5 predicting the 10 one-second segments of one test video with the reloaded model")
    pred = reloaded.predict_step(batch, 0)
    meta = batch["meta"][0]
    names = pred["names"][0]
    truth = [reloaded.class_names[i] for i in batch["label"][0].tolist()]
    print(f"    video {meta.get('video_id')} ({meta.get('category')}, event {meta.get('start')}-{meta.get('end')} s)")
    for second, (p, t) in enumerate(zip(names, truth)):
        print(f"    {second:2d}s  predicted {p:<20} true {t:<20} {'ok' if p == t else 'WRONG'}")
    print(f"\ndemo finished in {time.time() - start:.0f} s")
    return {"accuracy": accuracy, "chance": 100 * majority, "reload_identical": same, "repo": str(where)}
