"""A newcomer's mistakes with the `mmzoo` command: each is one line on stderr, exit status 1, no
traceback (the catalogue), and the fixes around them: checkpoints that record their model id,
`--ckpt_path last` of the same id only, `--version`, where `fit` writes, one metrics table."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch

from mmzoo.cli import main
from mmzoo.data.ave import AVEDataModule
from mmzoo.data.registry import _DATAMODULES, register_datamodule
from mmzoo.data.synthetic.ave import write_ave

TINY = ["--model.region_dim", "16", "--model.inter_hidden", "16", "--model.hidden_dim", "8"]


@pytest.fixture(autouse=True)
def _restore_env():
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture(scope="module")
def ave_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ave")
    write_ave(root, with_videos=False, seed=0)
    return root


def _common(ave_root: Path, run_dir: Path, model: str = "cmcoatt-avsdn") -> list[str]:
    return ["--model", model, "--data", "ave", "--data.root", str(ave_root), "--data.batch_size", "2",
            "--data.num_workers", "0", *TINY, "--trainer.accelerator", "cpu", "--trainer.devices", "1",
            "--trainer.enable_progress_bar", "false", "--trainer.default_root_dir", str(run_dir),
            "--seed_everything", "0"]


@pytest.fixture(scope="module")
def ckpt(ave_root, tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("fit")
    saved = dict(os.environ)
    main(["fit", *_common(ave_root, run_dir), "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "1",
          "--trainer.limit_val_batches", "0"])
    os.environ.clear()
    os.environ.update(saved)
    (path,) = run_dir.rglob("last.ckpt")
    assert torch.load(path, weights_only=True)["mmzoo"]["model_id"] == "cmcoatt-avsdn"
    return path


class _LoggedAVE(AVEDataModule):
    """A DataModule that logs its hparams, one of them (`lr`) also a model argument."""

    def __init__(self, lr: float = 0.5, **kwargs):
        super().__init__(**kwargs)
        self.save_hyperparameters(logger=True)


@pytest.fixture
def logged_ave():
    register_datamodule("ave-logged-test")(_LoggedAVE)
    yield "ave-logged-test"
    _DATAMODULES.pop("ave-logged-test", None)


MISTAKES = {
    "typo --modle": (lambda a: ["fit", "--modle", "avsdn", "--data", "ave"], ("--modle", "--model")),
    "convert another format": (lambda a: ["convert", "slowfast-r50-8x8.k400", str(a["txt"])],
                               ("notes.txt", ".pyth")),
    "test with another model's ckpt": (
        lambda a: ["test", *_common(a["root"], a["tmp"], "avel"), "--ckpt_path", str(a["ckpt"])],
        ("'avel'", "'cmcoatt-avsdn'", "--model cmcoatt-avsdn")),
    "push under another model": (lambda a: ["push", str(a["ckpt"]), "me/x", "--model", "avel"],
                                 ("'avel'", "'cmcoatt-avsdn'")),
    "predict with another model's ckpt": (
        lambda a: ["predict", "--model", "t2vlad", "--input", str(a["tmp"]), "--ckpt_path", str(a["ckpt"])],
        ("'cmcoatt-avsdn'",)),
    "push a folder under another model": (lambda a: ["push", str(a["folder"]), "me/x", "--model", "avel"],
                                          ("'avel'", "'cmcoatt-avsdn'", "--model cmcoatt-avsdn")),
    "push a folder whose config.json model_id was edited": (
        lambda a: ["push", str(a["edited"]), "me/x"], ("'cmcoatt-avel'", "'cmcoatt-avsdn'", "config.json")),
    "model/data hparams conflict": (
        lambda a: ["fit", *_common(a["root"], a["tmp"]), "--data", a["logged"], "--trainer.max_epochs", "1",
                   "--trainer.limit_train_batches", "1", "--trainer.limit_val_batches", "0"],
        ("--model.lr", "--data.lr", "0.5", "0.001")),
}


@pytest.fixture(scope="module")
def folders(ckpt, tmp_path_factory) -> dict[str, Path]:
    """The checkpoint exported as a repo folder, and a copy whose config.json names another id."""
    from mmzoo.hub import model_from_checkpoint, save_pretrained

    root = tmp_path_factory.mktemp("folders")
    folder = save_pretrained(model_from_checkpoint(ckpt), root / "exported")
    edited = root / "edited"
    shutil.copytree(folder, edited)
    config = json.loads((edited / "config.json").read_text())
    config["model_id"] = "cmcoatt-avel"
    (edited / "config.json").write_text(json.dumps(config))
    return {"folder": folder, "edited": edited}


@pytest.mark.parametrize("name", sorted(MISTAKES))
def test_mistake_is_one_line(name, ave_root, ckpt, folders, tmp_path, logged_ave, capsys, monkeypatch):
    monkeypatch.setenv("MMZOO_HUB", str(tmp_path / "hub"))
    txt = tmp_path / "notes.txt"
    txt.write_text("not a checkpoint\n")
    build, needles = MISTAKES[name]
    argv = build({"root": ave_root, "tmp": tmp_path, "ckpt": ckpt, "txt": txt, "logged": logged_ave, **folders})
    if name == "model/data hparams conflict":  # _common's --data ave, overridden by the later --data
        i = argv.index("ave")
        del argv[i - 1:i + 1]
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.endswith("\n"), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, (needle, err)


def test_ckpt_records_its_id_without_model(ave_root, ckpt, tmp_path):
    """`mmzoo test --data ave --ckpt_path x.ckpt` without --model tests the checkpoint's model."""
    argv = _common(ave_root, tmp_path)
    del argv[:2]
    main(["test", *argv, "--ckpt_path", str(ckpt), "--results_json", str(tmp_path / "r.json")])
    assert json.loads((tmp_path / "r.json").read_text())["model"] == "cmcoatt-avsdn"


def test_version(capsys):
    main(["--version"])
    assert capsys.readouterr().out.strip() == f"mmzoo {__import__('mmzoo').__version__}"


def test_resume_last_only_of_the_same_model(ave_root, ckpt, tmp_path, capsys):
    run_dir = tmp_path / "run"
    fit = ["fit", *_common(ave_root, run_dir), "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "1",
           "--trainer.limit_val_batches", "0", "--ckpt_path", "last"]
    main(fit)  # nothing to resume: said on stderr, trains from scratch
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and "starting from scratch" in captured.err
    assert "resuming" not in captured.out
    # a last.ckpt of another model id in the same logger folder is not resumed
    (other,) = run_dir.rglob("last.ckpt")
    data = torch.load(other, weights_only=True)
    data["mmzoo"]["model_id"] = "avsdn"
    torch.save(data, other)
    main(fit)
    captured = capsys.readouterr()
    assert "resuming" not in captured.out and "no last.ckpt of cmcoatt-avsdn" in captured.err


def test_fit_says_where_and_fast_dev_run_writes_no_checkpoint(ave_root, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    args = _common(ave_root, tmp_path / "run")
    main(["fit", *args, "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "1",
          "--trainer.limit_val_batches", "0"])
    out = capsys.readouterr().out
    assert f"checkpoints -> {tmp_path / 'run' / 'lightning_logs' / 'version_0' / 'checkpoints'}" in out
    assert f"logs -> {tmp_path / 'run' / 'lightning_logs' / 'version_0'}" in out
    i = args.index("--trainer.default_root_dir")
    del args[i:i + 2]
    main(["fit", *args, "--trainer.fast_dev_run", "true"])
    assert "no checkpoints" in capsys.readouterr().out
    assert not list(tmp_path.glob("**/*.ckpt")) or all("run" in p.parts for p in tmp_path.glob("**/*.ckpt"))
    assert not (tmp_path / "checkpoints").exists()


def test_one_metrics_table(ave_root, ckpt, tmp_path, capsys):
    main(["test", *_common(ave_root, tmp_path), "--ckpt_path", str(ckpt)])
    out = capsys.readouterr().out
    assert out.count("test/acc") == 1 and "Test metric" not in out


def _fake_predictor(model, path, output_dir, query=None, top_k=10):
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "ranking.json").write_text("{}")
    return {"ranking": [(f"video{i}", 1.0 / (i + 1)) for i in range(50)]}


def test_predict_input_prints_a_summary_and_returns_none(tmp_path, monkeypatch, capsys):
    """The console runs `sys.exit(main())`: a returned result dict would be printed and exit 1."""
    from mmzoo.predict import PREDICTORS
    from mmzoo.registry import get_spec

    monkeypatch.setitem(PREDICTORS, get_spec("avsdn").family, f"{__name__}:_fake_predictor")
    out_dir = tmp_path / "pred"
    result = main(["predict", "--model", "avsdn", "--input", str(tmp_path), "--output_dir", str(out_dir),
                   "--pretrained", "false"])
    assert result is None
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and str(out_dir) in out and "ranking.json" in out
    assert "video4" not in out


def test_console_test_run_is_quiet_unless_debug(ave_root, tmp_path):
    """The real console: no Lightning device lines, tips, tables or noise warnings on a test run;
    MMZOO_DEBUG=1 brings Lightning's output back."""
    import subprocess
    import sys

    argv = [sys.executable, "-m", "mmzoo.cli", "test", *_common(ave_root, tmp_path), "--pretrained", "false"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("MMZOO_DEBUG", None)
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for noise in ("GPU available", "Tip:", "tensorboardX", "Test metric", "LeafSpec"):
        assert noise not in proc.stdout + proc.stderr, noise
    assert proc.stdout.count("test/acc") == 1
    debug = subprocess.run(argv, env=dict(env, MMZOO_DEBUG="1"), capture_output=True, text=True, timeout=240)
    assert debug.returncode == 0 and "GPU available" in debug.stdout + debug.stderr
    assert "Test metric" in debug.stdout


def test_epic_without_the_verb_noun_head_is_one_line_before_training(tmp_path, capsys):
    from mmzoo.data.synthetic import write_epic

    info = write_epic(tmp_path / "epic", version="100", num_frames=90, size=(40, 48), seed=2)
    argv = ["fit", "--model", "slowfast-r50-4x16", "--data", "epic-kitchens", "--data.root", str(info["root"]),
            "--data.version", "100", "--data.source", "frames", "--data.num_workers", "0", "--model.depth", "14",
            "--model.width", "8", "--trainer.accelerator", "cpu", "--trainer.max_epochs", "1",
            "--trainer.default_root_dir", str(tmp_path / "run"), "--trainer.enable_progress_bar", "false"]
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--model.head verb_noun" in err[0] and "Traceback" not in err[0]
    assert not list((tmp_path / "run").rglob("*.ckpt"))  # refused before any training step
