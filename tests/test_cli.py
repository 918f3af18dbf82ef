"""The `mmzoo` command: zoo verbs (list, info, push, pull) and the LightningCLI verbs (fit, test)
on a synthetic AVE dataset in the authors' layout (released-format feature h5 files, no videos).

Most calls go through `mmzoo.cli.main([...])` in-process (the same code the console entry runs);
the error-path and push tests run the real `python -m mmzoo.cli` in a subprocess.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

import mmzoo
from mmzoo.cli import main
from mmzoo.data.ave import AVEDataModule
from mmzoo.data.synthetic.ave import write_ave
from mmzoo.registry import all_specs

AVE_IDS = ("avsdn", "cmcoatt-avsdn", "cmcoatt-lstm", "cmcoatt-avel", "avel", "lstm-ave")
TINY = ["--model.region_dim", "16", "--model.inter_hidden", "16", "--model.hidden_dim", "8"]


def _cli(*args: str, env_extra: dict[str, str] | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", **(env_extra or {}))
    return subprocess.run([sys.executable, "-m", "mmzoo.cli", *args], env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="module")
def ave_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ave-official")
    write_ave(root, with_videos=False, seed=0)  # AVE_Dataset/ + data/ as the two releases unpack
    assert (root / "AVE_Dataset" / "Annotations.txt").is_file()
    assert (root / "data" / "visual_feature.h5").is_file()
    return root



def _common(ave_root: Path, run_dir: Path) -> list[str]:
    return ["--model", "cmcoatt-avsdn", "--data", "ave", "--data.root", str(ave_root),
            "--data.batch_size", "2", "--data.num_workers", "0", *TINY,
            "--trainer.accelerator", "cpu", "--trainer.devices", "1",
            "--trainer.enable_progress_bar", "false", "--trainer.default_root_dir", str(run_dir),
            "--seed_everything", "0"]


@pytest.fixture(scope="module")
def fitted(ave_root, tmp_path_factory) -> dict:
    """One `mmzoo fit --trainer.max_epochs 1` run on the official layout; its checkpoint."""
    run_dir = tmp_path_factory.mktemp("fit-run")
    saved = {k: v for k, v in os.environ.items() if k.startswith("PL_")}
    main(["fit", *_common(ave_root, run_dir), "--model.lr", "0.01", "--trainer.max_epochs", "1"])
    for key in [k for k in os.environ if k.startswith("PL_")]:
        del os.environ[key]
    os.environ.update(saved)
    ckpt = run_dir / "lightning_logs" / "version_0" / "checkpoints" / "last.ckpt"
    assert ckpt.is_file(), f"fit wrote no last.ckpt under {run_dir}"
    return {"ckpt": ckpt, "run_dir": run_dir}


def _model_from_ckpt(path: Path):
    """The checkpoint's model, built here from its hyper-parameters (independently of mmzoo.hub)."""
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    # LightningCLI records its own `_instantiator` entry next to the constructor arguments
    hparams = {k: v for k, v in ckpt["hyper_parameters"].items() if not k.startswith("_")}
    model = all_specs()["cmcoatt-avsdn"].cls(**hparams)
    model.load_state_dict(ckpt["state_dict"], strict=True)
    return model.eval(), ckpt


def _test_batches(ave_root: Path) -> list[dict]:
    dm = AVEDataModule(root=str(ave_root), batch_size=2, num_workers=0)
    dm.setup("test")
    return list(dm.test_dataloader())


# ------------------------------------------------------------------------------ zoo verbs
def test_list_table_json_pattern_and_pretrained(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")  # rich wraps cells at 80 columns when not on a terminal
    main(["list"])
    table = capsys.readouterr().out
    for model_id in AVE_IDS:
        assert re.search(rf"\b{re.escape(model_id)}\b", table), f"{model_id} missing from `mmzoo list`"
    assert "audio-visual event localization" in table
    assert "ave (not published)" in table

    main(["list", "--json"])
    ids = json.loads(capsys.readouterr().out)
    assert ids == sorted(all_specs()) and set(AVE_IDS) <= set(ids)

    main(["list", "*avsdn", "--json"])
    assert json.loads(capsys.readouterr().out) == ["avsdn", "cmcoatt-avsdn"]
    main(["list", "cmcoatt-*", "--json"])
    assert json.loads(capsys.readouterr().out) == ["cmcoatt-avel", "cmcoatt-avsdn", "cmcoatt-lstm"]

    main(["list", "--pretrained", "--json"])
    tags = json.loads(capsys.readouterr().out)
    expected = sorted(f"{s.id}.{w.tag}" for s in all_specs().values() for w in s.weights
                      if w.hub_repo is not None or (w.original_url and w.converter))
    assert sorted(tags) == expected
    assert not any(t.split(".")[0] in AVE_IDS for t in tags)  # AVE weights are not published
    main(["list", "--pretrained"])
    table = capsys.readouterr().out
    assert "pretrained tags" in table
    assert "cmcoatt-avsdn" not in table
    for tag in tags:
        assert tag in table


def test_list_and_info_answer_without_importing_the_model_stack():
    """`mmzoo list` / `info` read the catalogue (mmzoo/zoo_index.json): no torch, no model module."""
    code = ("import sys; from mmzoo.cli import main; main(['list', '--pretrained']); main(['info', 'slowfast-r50-8x8']); "
            "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'lightning', 'pytorch_lightning', "
            "'transformers', 'timm') or m.startswith('mmzoo.models')); print('HEAVY', heavy)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, COLUMNS="250"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "HEAVY []" in proc.stdout, proc.stdout[-500:]
    assert "slowfast-r50-8x8.k400 (converts on first use)" not in proc.stdout  # a row per tag, its status beside it
    assert "k400 (converts on first use)" in proc.stdout and ".k400: converts on first use" in proc.stdout


def test_info_json_params_and_gflops(capsys):
    main(["info", "cmcoatt-avsdn", "--json"])
    info = json.loads(capsys.readouterr().out)
    model = mmzoo.create("cmcoatt-avsdn")
    assert info["id"] == "cmcoatt-avsdn"
    assert info["params"] == sum(p.numel() for p in model.parameters())
    assert info["gflops"] is not None and info["gflops"] > 0
    assert info["defaults"]["classifier"] == "avsdn" and info["defaults"]["attention"] == "cmcoatt"
    assert info["tags"]["ave"]["published"] is False
    assert info["reported"]["acc_full (Tables 4.3/4.6/4.8, best)"] == 77.86

    main(["info", "avsdn"])  # the human-readable form
    text = capsys.readouterr().out
    assert f"{sum(p.numel() for p in mmzoo.create('avsdn').parameters()) / 1e6:.2f} M" in text
    assert ".ave: not published" in text


def test_unknown_id_exits_1_with_suggestions(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["info", "cmcoat-avsdn"])
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert "Unknown model id 'cmcoat-avsdn'" in err and "Did you mean" in err and "cmcoatt-avsdn" in err

    # the real console entry, on the LightningCLI path: a message, no traceback
    proc = _cli("fit", "--model", "cmcoatt-avsd", "--data", "ave", "--trainer.max_epochs", "1")
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert "Did you mean" in proc.stderr and "cmcoatt-avsdn" in proc.stderr


def test_installed_console_script(tmp_path):
    """The `mmzoo` script pyproject installs (`mmzoo.cli:main` under sys.exit) exits 0 on success."""
    script = Path(sys.executable).parent / "mmzoo"
    assert script.is_file(), f"{script} missing: install the package (pip install -e .)"
    proc = subprocess.run([str(script), "list", "cmcoatt-*", "--json"], capture_output=True, text=True,
                          timeout=180, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout) == ["cmcoatt-avel", "cmcoatt-avsdn", "cmcoatt-lstm"]


# ------------------------------------------------------------------------------ LightningCLI verbs
def _print_config(model_id: str, ave_root: Path, tmp_path: Path, capsys) -> dict:
    args = _common(ave_root, tmp_path)
    args[args.index("cmcoatt-avsdn")] = model_id
    with pytest.raises(SystemExit) as exc:
        main(["fit", *args, "--print_config"])
    assert exc.value.code in (0, None)
    return yaml.safe_load(capsys.readouterr().out)


def test_print_config_has_the_ids_defaults(ave_root, tmp_path, capsys):
    cfg = _print_config("cmcoatt-avsdn", ave_root, tmp_path, capsys)
    m = cfg["model"]
    assert (m["classifier"], m["attention"], m["intra_v"], m["inter_v"]) == ("avsdn", "cmcoatt", True, "mlp")
    assert (m["region_dim"], m["inter_hidden"], m["hidden_dim"]) == (16, 16, 8)  # the overrides
    assert m["lr_step_iters"] == 15000 and m["num_classes"] == 29
    # visual_dim and supervision are linked from the DataModule at instantiation (the feature files
    # decide the width), so they are not free model keys in the printed config
    assert "visual_dim" not in m and "supervision" not in m
    assert cfg["data"]["root"] == str(ave_root) and cfg["data"]["supervision"] == "full"
    assert cfg["seed_everything"] == 0 and cfg["pretrained"] is None

    other = _print_config("avsdn", ave_root, tmp_path, capsys)["model"]
    assert (other["classifier"], other["attention"], other["intra_v"], other["inter_v"]) == ("avsdn", "none", False, "none")


def _table_value(stdout: str, key: str) -> str:
    """The value printed for `key` in mmzoo's own metrics table (after Lightning's)."""
    tail = stdout[stdout.rindex("mmzoo test:"):]
    match = re.search(rf"{re.escape(key)}\s*\S\s*(-?\d+\.\d{{4}})\s", tail)
    assert match, f"no {key} row in:\n{tail}"
    return match.group(1)


def test_fit_on_official_layout_then_test_with_ckpt(fitted, ave_root, tmp_path, capsys):
    model, ckpt = _model_from_ckpt(fitted["ckpt"])
    assert ckpt["mmzoo"]["model_id"] == "cmcoatt-avsdn"
    assert ckpt["epoch"] == 0 and ckpt["global_step"] == 4  # 8 training rows, batch 2, one epoch
    hp = ckpt["hyper_parameters"]
    assert hp["visual_dim"] == 512  # linked from the released 512-d feature files (default 2048)
    assert (hp["classifier"], hp["attention"], hp["region_dim"], hp["hidden_dim"]) == ("avsdn", "cmcoatt", 16, 8)

    out_json = tmp_path / "results" / "test.json"
    capsys.readouterr()
    main(["test", *_common(ave_root, tmp_path / "test-run"), "--ckpt_path", str(fitted["ckpt"]),
          "--results_json", str(out_json)])
    stdout = capsys.readouterr().out
    result = json.loads(out_json.read_text())
    assert result["model"] == "cmcoatt-avsdn" and result["data"] == "ave"
    acc = result["metrics"]["test/acc"]
    assert _table_value(stdout, "test/acc") == f"{acc:.4f}"
    assert _table_value(stdout, "test/loss") == f"{result['metrics']['test/loss']:.4f}"
    assert f"metrics written to {out_json}" in stdout

    # the reported accuracy is the checkpoint's per-segment accuracy (%) on the test split
    correct = total = 0
    with torch.no_grad():
        for batch in _test_batches(ave_root):
            pred = model(batch["visual"], batch["audio"]).argmax(-1)
            correct += int((pred == batch["label"]).sum())
            total += batch["label"].numel()
    assert total == 30  # 3 test videos x 10 segments
    assert acc == pytest.approx(100.0 * correct / total, abs=1e-4)


def test_test_needs_published_weights_or_a_flag(ave_root, tmp_path, capsys):
    args = _common(ave_root, tmp_path / "run")
    with pytest.raises(SystemExit) as exc:
        main(["test", *args])
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert "'cmcoatt-avsdn.ave' has no published weights" in err
    assert "--pretrained false" in err and "--ckpt_path" in err

    main(["test", *args, "--pretrained", "false"])
    stdout = capsys.readouterr().out
    written = re.search(r"metrics written to (\S+)", stdout)
    assert written, stdout[-2000:]
    path = Path(written.group(1))
    assert path.name == "results_test.json" and str(tmp_path / "run") in str(path)
    metrics = json.loads(path.read_text())["metrics"]
    assert _table_value(stdout, "test/acc") == f"{metrics['test/acc']:.4f}"


# ------------------------------------------------------------------------------ push / pull
def test_push_ckpt_then_load_and_pull(fitted, ave_root, capsys):
    hub = Path(os.environ["MMZOO_HUB"])  # the autouse fixture's fresh local hub
    proc = _cli("push", str(fitted["ckpt"]), "tester/ave-tiny")  # inherits MMZOO_HUB
    assert proc.returncode == 0, proc.stderr[-3000:]
    repo = hub / "tester" / "ave-tiny"
    assert f"to {repo}" in proc.stdout
    assert {"config.json", "model.safetensors", "README.md"} <= {p.name for p in repo.iterdir()}

    original, _ = _model_from_ckpt(fitted["ckpt"])
    loaded = mmzoo.load("tester/ave-tiny")
    assert loaded.zoo_id == "cmcoatt-avsdn" and not loaded.training
    batch = _test_batches(ave_root)[0]
    torch.manual_seed(0)
    visual, audio = torch.randn(3, 10, 7, 7, 512), torch.randn(3, 10, 128)
    with torch.no_grad():
        for v, a in ((batch["visual"], batch["audio"]), (visual, audio)):
            assert torch.equal(original(v, a), loaded(v, a))

    main(["pull", "tester/ave-tiny"])
    assert Path(capsys.readouterr().out.strip()) == repo

    with pytest.raises(SystemExit) as exc:
        main(["pull", "tester/not-pushed"])
    assert exc.value.code == 1
    assert "tester/not-pushed" in capsys.readouterr().err


def test_predict_input_on_a_model_without_file_prediction_fails_clearly(tmp_path):
    """TimeCycle predicts from a DataModule only: `--input` must say so, without a traceback."""
    res = _cli("predict", "--model", "timecycle-r18", "--input", str(tmp_path), "--pretrained", "false")
    assert res.returncode == 1
    assert "does not predict from --input" in res.stderr and "--data" in res.stderr
    assert "Traceback" not in res.stderr


def test_unknown_data_name_is_one_line_naming_the_close_match(capsys):
    """`--data avee`: one line on stderr naming `ave`, exit 1, no traceback (in-process and console)."""
    with pytest.raises(SystemExit) as exc:
        main(["fit", "--model", "avsdn", "--data", "avee"])
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("mmzoo fit: error: Unknown data 'avee'.")
    assert "Did you mean: ave" in err
    proc = _cli("fit", "--model", "avsdn", "--data", "avee")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and "Did you mean: ave" in proc.stderr


def test_data_errors_are_one_line_naming_the_path(tmp_path):
    missing = tmp_path / "no-such-ave"
    res = _cli("fit", "--model", "avsdn", "--data", "ave", "--data.root", str(missing), "--trainer.max_epochs", "1")
    assert res.returncode == 1
    assert "mmzoo fit: error:" in res.stderr and str(missing) in res.stderr
    assert "Traceback" not in res.stderr
