"""Every documented ``mmzoo fit|validate|test --model X --data Y ...`` command parses and runs.

The commands are taken from README.md, docs/*.md and model_cards/*.md (code blocks, with ``\\``
continuations, and inline code spans). Each is first run through the real CLI with
``--print_config`` appended (an unknown flag or an invalid value fails there), then executed:
``--data.root`` points at a tiny synthetic dataset of the command's family, the model gets the
tiny configuration of its class (``TINY`` of tests/_tiny.py as ``--model.*`` flags,
``run_model_flags``; every flag the command sets wins over them), the trainer runs one step on
one CPU device (``--trainer.devices 8 --trainer.strategy ddp`` become one device), a
``--ckpt_path`` is a checkpoint of the same command's model written by a one-step ``fit`` first, and ``--ckpt_path last`` resumes that earlier run. Commands that cannot run
offline (they load the published or the authors' weights) are parsed only, and listed with the
reason by ``test_commands_that_only_parse`` (printed with ``-rA``).
"""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from _tiny import as_flags, tiny_kwargs

from mmzoo.cli import main
from mmzoo.registry import get_spec

REPO = Path(__file__).resolve().parents[1]
DOC_FILES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), *sorted((REPO / "model_cards").glob("*.md"))]
_VERB = re.compile(r"mmzoo\s+(fit|validate|test)\s")


def _logical_lines(text: str) -> list[str]:
    """Lines with ``\\`` continuations joined, plus the contents of inline code spans."""
    lines, buf = [], ""
    for raw in text.splitlines():
        if raw.rstrip().endswith("\\"):
            buf += raw.rstrip()[:-1] + " "
            continue
        lines.append(buf + raw)
        buf = ""
    spans = [s for line in lines for s in re.findall(r"`([^`\n]+)`", line)]
    return lines + spans


def documented_commands() -> list[tuple[str, str]]:
    """``(where, command)`` for every documented Lightning-verb command naming a model and data."""
    found = []
    for path in DOC_FILES:
        for line in _logical_lines(path.read_text()):
            m = _VERB.search(line)
            if m is None:
                continue
            cmd = line[m.start():].split("`")[0]
            if "--model " in cmd and "--data " in cmd and "..." not in cmd.split("--model")[0]:
                item = (path.relative_to(REPO).as_posix(), cmd.strip())
                if item not in found:  # a code span is also seen as part of its line
                    found.append(item)
    return found


def _argv(cmd: str) -> list[str]:
    cmd = re.sub(r"<[^<>]*>", "PLACEHOLDER", cmd)  # <AVE dir>, <checkpoint>
    cmd = re.sub(r"\[(--[^\[\]]*)\]", r"\1", cmd)  # optional flags: [--data.det_list FILE]
    cmd = re.sub(r"\[--hub [^\]]*\]", "", cmd)
    argv = shlex.split(cmd, comments=True)
    assert argv[:1] == ["mmzoo"], cmd
    return argv[1:]


_SYNTHETIC: dict[tuple, Path] = {}
#: Files a documented flag names, relative to --data.root, and the synthetic dataset's equivalent.
_SYNTHETIC_FILES = {"--data.det_list": "ImageSets/DET/train_vid30.txt", "--data.objects": "objects/EPIC_objects.h5"}


def _dataset_key(argv: list[str]) -> tuple:
    """What the synthetic dataset of a command must provide: family, EPIC version, audio."""
    family = _flag_value(argv, "--data")
    version = _flag_value(argv, "--data.version") if family == "epic-kitchens" else None
    audio = _flag_value(argv, "--data.with_audio") == "true"
    return family, version or "100", audio


def _dataset(key: tuple, tmp_root: Path) -> Path:
    if key in _SYNTHETIC:
        return _SYNTHETIC[key]
    from mmzoo.data import synthetic

    family, version, audio = key
    root = tmp_root / "-".join(map(str, key))
    if family == "ave":
        synthetic.write_ave(root, with_videos=False)
    elif family == "kinetics":
        synthetic.write_kinetics(root, num_frames=40 if audio else 8)
    elif family == "epic-kitchens":
        # EPIC-55: two training videos so that a one-step fit has a full batch (SAOA's stage 2 needs its checkpoint)
        videos = {"train": ["P01_01", "P02_01", "P26_01"], "s1": ["P01_05"], "s2": ["P32_01"]} if version == "55" else None
        synthetic.write_epic(root, version=version, videos=videos, write_videos=audio, segments_per_video=1,
                             num_frames=40, write_flow=True, write_objects=True)
    elif family == "vid":
        synthetic.write_vid(root, num_train=1, num_val=1, num_frames=4, det_images=1)
    elif family == "msrvtt":
        synthetic.write_msrvtt(root, num_videos=8, captions_per_video=2, num_mp4=0)
    elif family == "charades":
        synthetic.write_charades(root, num_videos={"train": 2, "test": 1}, num_frames=24, size=(32, 40))
    elif family == "coco":
        synthetic.write_coco(root)
    elif family in ("davis2017", "jhmdb", "vip"):
        getattr(synthetic, {"davis2017": "write_davis"}.get(family, f"write_{family}"))(root)
    elif family == "video-folder":
        synthetic.write_video_folder(root, num_videos=1, size=256, frame_folders=False)
    elif family == "egtea":
        synthetic.write_egtea(root, clips_per_action=1, num_frames=16)
    elif family == "activitynet":
        synthetic.write_activitynet(root, per_class={"training": 1, "validation": 1}, num_seconds=4)
    elif family == "fcvid":
        synthetic.write_fcvid(root, per_class={"train": 1, "test": 1}, num_seconds=4)
    elif family in ("ucf101", "hmdb51"):
        getattr(synthetic, f"write_{family}")(root, num_frames=8)
    elif family == "something-something":
        from mmzoo.data.synthetic.something_something import write_something_something

        write_something_something(root, "v1", num_videos={"train": 2, "validation": 1}, num_frames=12, size=(32, 40))
    elif family == "arrow-of-time":
        synthetic.write_aot_folder(root, train=2, test=2, num_frames=6)
    elif family == "audioset":
        from mmzoo.data.synthetic.audioset import write_audioset
        write_audioset(root, per_class={"balanced": 2, "eval": 1})
    elif family == "esc50":
        from mmzoo.data.synthetic.esc50 import write_esc50
        write_esc50(root, seconds=2.0)
    elif family == "dcase2014":
        from mmzoo.data.synthetic.dcase2014 import write_dcase2014
        write_dcase2014(root, seconds=2.0)
    else:
        raise AssertionError(f"no synthetic dataset for data {family!r}")
    _SYNTHETIC[key] = root
    return root


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("docs_data")


def _prepare(cmd: str, tmp_root: Path) -> list[str]:
    argv = _argv(cmd)
    root = str(_dataset(_dataset_key(argv), tmp_root))
    ckpt = tmp_root / "some.ckpt"
    ckpt.write_bytes(b"")
    out = []
    it = iter(argv)
    for arg in it:
        if arg in _SYNTHETIC_FILES:
            next(it)
            out += [arg, _SYNTHETIC_FILES[arg]]
        elif arg in ("--data.root", "--ckpt_path"):
            value = next(it)
            if arg == "--ckpt_path" and value == "last":
                out += [arg, value]
            else:
                out += [arg, root if arg == "--data.root" else str(ckpt)]
        else:
            out.append(arg)
    if "--data.root" not in out:
        out += ["--data.root", root]
    return out + ["--print_config"]


COMMANDS = documented_commands()


def test_no_documented_command_sets_a_linked_model_argument():
    """``--data.supervision`` (AVE) etc. fix the model's argument; ``--model.<same>`` is rejected."""
    from mmzoo.data import get_datamodule

    assert len(COMMANDS) >= 30  # the extraction found the docs' commands
    bad = []
    for where, cmd in COMMANDS:
        argv = _argv(cmd)
        links = getattr(get_datamodule(argv[argv.index("--data") + 1]), "model_links", ())
        bad += [f"{where}: {cmd}" for name in links if f"--model.{name}" in argv]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("where,cmd", COMMANDS, ids=[f"{w}:{i}" for i, (w, _) in enumerate(COMMANDS)])
def test_documented_command_parses(where, cmd, data_dir, capsys):
    argv = _prepare(cmd, data_dir)
    with pytest.raises(SystemExit) as exc:
        main(argv)
    err = capsys.readouterr().err
    assert exc.value.code in (0, None), f"{where}: `{cmd}` is rejected by the CLI:\n{err[-800:]}"


# --------------------------------------------------------------------------- execution
#: What the tiny configurations (tests/_tiny.py) leave to the documented command or its data:
#: label counts come from the data (linked by the DataModule, or set by the command).
_FROM_DATA = {"num_classes", "num_verbs", "num_nouns"}
#: ... and, per model class, arguments whose tiny value would change what the command runs.
_KEEP_DOCUMENTED: dict[str, tuple[str, ...]] = {
    "SlowFast": ("alpha",),  # the command's (or the id's) alpha: `_matched_frames` fits clip and Slow frames to it
    "AVSlowFast": ("alpha",),
    "NonLocalNet": ("nonlocal_placement", "nonlocal_positions"),  # the id's own non-local blocks ("5" of nl-*)
    "TransferModule": ("source",),  # the documented --model.source, else the id's (avslowfast-r50-16x4)
    "STRG": ("proposals_per_frame",),  # the id's K nodes per frame, as these runs have always used
}
#: Flags the runs add to the tiny configuration: STRG's 8-frame tiny clips (RUN_DATA) with the
#: R50 stem give 4 feature frames, so proposals are attached to 4 frames.
_RUN_EXTRA = {"STRG": ["--model.stem_temporal_stride", "1", "--data.proposal_frames", "4"]}


def _without(value, names: set[str]):
    """`value` with the keys in `names` removed from every dict in it (member / source kwargs too)."""
    if isinstance(value, dict):
        return {k: _without(v, names) for k, v in value.items() if k not in names}
    if isinstance(value, list):
        return [_without(v, names) for v in value]
    return value


def run_model_flags(model_id: str, family: str) -> list[str]:
    """Tiny model flags of a documented command: the same code paths as its full-size model."""
    from mmzoo.data import get_datamodule

    cls = get_spec(model_id).cls.__name__
    drop = _FROM_DATA | set(getattr(get_datamodule(family), "model_links", ())) | set(_KEEP_DOCUMENTED.get(cls, ()))
    return as_flags(_without(tiny_kwargs(model_id), drop)) + _RUN_EXTRA.get(cls, [])


_UNTRIMMED = ["--data.num_frames", "4", "--data.crop_size", "32", "--data.train_scale", "[32, 40]", "--data.test_scale",
              "32", "--data.test_crop_size", "32"]
_UCF_HMDB = ["--data.num_frames", "8", "--data.alpha", "4", "--data.crop_size", "32", "--data.train_scale", "[32, 40]",
             "--data.test_scale", "32", "--data.test_crop_size", "32", "--data.num_clips", "1", "--data.num_crops", "1",
             "--data.audio_num_frames", "32", "--data.audio_n_mels", "16"]
#: Tiny data flags per DataModule (small crops and clips; one worker-free batch of two).
RUN_DATA: dict[str, list[str]] = {
    "ave": [],
    "kinetics": ["--data.version", "any", "--data.num_frames", "8", "--data.crop_size", "32", "--data.train_scale", "[32, 40]",
                 "--data.test_scale", "32", "--data.test_crop_size", "32", "--data.num_clips", "1", "--data.num_crops", "1"],
    "epic-kitchens": ["--data.num_frames", "8", "--data.crop_size", "32", "--data.train_scale", "[32, 40]",
                      "--data.test_scale", "32", "--data.test_crop_size", "32", "--data.num_clips", "1",
                      "--data.num_crops", "1"],
    "vid": ["--data.short_side", "64", "--data.max_side", "96", "--data.num_frames", "2", "--data.eval_window", "2"],
    "msrvtt": [],
    "charades": ["--data.num_frames", "8", "--data.crop_size", "32", "--data.train_resize", "32",
                 "--data.train_scale", "[32, 40]", "--data.test_scale", "32", "--data.test_crop_size", "32",
                 "--data.num_clips", "1", "--data.num_crops", "1"],
    "coco": [],
    "davis2017": ["--data.frame_size", "32"],
    "jhmdb": ["--data.frame_size", "32"],
    "vip": ["--data.frame_size", "32"],
    "video-folder": ["--data.short_side", "80", "--data.crop_size", "72"],
    "activitynet": _UNTRIMMED,
    "fcvid": _UNTRIMMED,
    "ucf101": _UCF_HMDB,
    "hmdb51": _UCF_HMDB,
    "something-something": ["--data.num_frames", "8", "--data.crop_size", "32", "--data.train_scale", "[32, 40]",
                            "--data.test_scale", "32", "--data.test_crop_size", "32", "--data.num_clips", "1"],
    "arrow-of-time": ["--data.flow_frames", "2", "--data.short_side", "32", "--data.crop_size", "32",
                      "--data.flow_method", "farneback"],
}
RUN_DATA["egtea"] = RUN_DATA["epic-kitchens"]
RUN_DATA["audioset"] = ["--data.crop_size", "32", "--data.train_scale", "[32, 40]", "--data.test_scale", "32",
                        "--data.test_crop_size", "32", "--data.num_clips", "1", "--data.num_crops", "1"]
RUN_DATA["esc50"] = []
RUN_DATA["dcase2014"] = ["--data.num_windows", "2"]
#: Flags of a documented command replaced here: a machine this test does not have, a run's length.
_MACHINE = {"--trainer.devices": "1", "--trainer.strategy": "auto", "--data.num_workers": "0", "--trainer.num_nodes": "1",
            "--trainer.max_steps": "1", "--trainer.max_epochs": "1"}
_ONE_STEP = ["--trainer.accelerator", "cpu", "--trainer.max_steps", "1", "--trainer.limit_train_batches", "1",
             "--trainer.limit_val_batches", "1", "--trainer.limit_test_batches", "1", "--trainer.num_sanity_val_steps",
             "0", "--trainer.enable_progress_bar", "false", "--trainer.logger", "false", "--data.batch_size", "2",
             "--data.num_workers", "0", "--seed_everything", "0"]


def _flag_value(argv: list[str], flag: str) -> str | None:
    return argv[argv.index(flag) + 1] if flag in argv else None


def parse_only_reason(cmd: str) -> str | None:
    """Why a documented command cannot be executed here, or None when it can."""
    argv = _argv(cmd)
    if argv[0] in ("test", "validate") and "--ckpt_path" not in argv and _flag_value(argv, "--pretrained") != "false":
        return "evaluates published / authors' weights, which need a download (offline here)"
    return None


def _model_class(argv: list[str]) -> str:
    return get_spec(_flag_value(argv, "--model")).cls.__name__


def _matched_frames(argv: list[str], cls: str) -> list[str]:
    """SlowFast: clip length and Slow frames that agree with the documented (or the id's) alpha."""
    if cls not in ("SlowFast", "AVSlowFast"):
        return []
    alpha = int(_flag_value(argv, "--data.alpha") or get_spec(_flag_value(argv, "--model")).defaults.get("alpha", 8))
    frames = int(_flag_value(argv, "--data.num_frames") or 2 * alpha)
    return ["--data.num_frames", str(frames), "--model.slow_frames", str(frames // alpha)]


def _runnable(argv: list[str], tmp_root: Path, run_dir: Path) -> list[str]:
    """The documented argv made tiny and one-step, documented flags winning where they are set."""
    argv = argv[:-1] if argv[-1] == "--print_config" else list(argv)
    verb, rest = argv[0], argv[1:]
    for flag, value in _MACHINE.items():
        if flag in rest:
            rest[rest.index(flag) + 1] = value
    family = _flag_value(rest, "--data")
    cls = _model_class(rest)
    assert family in RUN_DATA, f"add tiny flags for data {family!r} to RUN_DATA"
    documented = {a for a in rest if a.startswith("--")}
    model_flags = run_model_flags(_flag_value(rest, "--model"), family)
    extra = [*_ONE_STEP, *_matched_frames(rest, cls), *model_flags, *RUN_DATA[family]]
    if cls == "AVSlowFast":
        extra += ["--data.audio_num_frames", "32", "--data.audio_n_mels", "16"]
    kept: list[str] = []
    for i in range(0, len(extra), 2):  # the first of a repeated flag wins
        if extra[i] not in documented and extra[i] not in kept[::2]:
            kept += extra[i:i + 2]
    head = ["--model", _flag_value(rest, "--model"), "--data", family]
    for flag in ("--model", "--data"):
        i = rest.index(flag)
        del rest[i:i + 2]
    return [verb, *head, *kept, *rest, "--trainer.default_root_dir", str(run_dir)]


def _fit_checkpoint(argv: list[str], run_dir: Path) -> Path:
    """A one-step `fit` of the command's model and data (its flags but not the checkpoint), in
    `run_dir`; returns its last.ckpt."""
    fit = ["fit", *argv[1:]]
    if "--ckpt_path" in fit:
        i = fit.index("--ckpt_path")
        del fit[i:i + 2]
    if "--pretrained" in fit:
        i = fit.index("--pretrained")
        del fit[i:i + 2]
    main(fit)
    found = sorted(run_dir.rglob("last.ckpt"))
    assert found, f"the one-step fit wrote no last.ckpt under {run_dir}"
    return found[-1]


RUNNABLE = [(w, c) for w, c in COMMANDS if parse_only_reason(c) is None]


def test_commands_that_only_parse():
    """The documented commands that are parsed but not executed, with why (an explicit list)."""
    only = [(w, c, parse_only_reason(c)) for w, c in COMMANDS if parse_only_reason(c)]
    for where, cmd, why in only:
        print(f"parse only: {where}: `{cmd}` ({why})")
    assert all(re.search(r"\s(test|validate)\s", c) for _, c, _ in only)  # every fit command runs
    assert len(RUNNABLE) >= 0.9 * len(COMMANDS)


@pytest.mark.parametrize("where,cmd", RUNNABLE, ids=[f"{w}:{i}" for i, (w, _) in enumerate(RUNNABLE)])
def test_documented_command_runs(where, cmd, data_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # documented relative paths (lightning_logs/...) land here
    monkeypatch.setenv("MMZOO_HUB", str(tmp_path / "hub"))
    argv = _prepare(cmd, data_dir)
    run = _runnable(argv, data_dir, tmp_path / "run")
    if "--ckpt_path" in run:
        i = run.index("--ckpt_path")
        ckpt = _fit_checkpoint(run, tmp_path / "run")
        if run[i + 1] != "last":
            run[i + 1] = str(ckpt)
    if "--model.stage1_checkpoint" in run:  # SAOA stage 2 starts from a one-step stage-1 fit of the same command
        i = run.index("--model.stage1_checkpoint")
        stage1 = ["fit", *run[1:i], *run[i + 2:], "--model.stage", "1"]
        stage1[stage1.index("--trainer.default_root_dir") + 1] = str(tmp_path / "stage1")
        run[i + 1] = str(_fit_checkpoint(stage1, tmp_path / "stage1"))
    try:
        main(run)
    except SystemExit as exc:
        err = capsys.readouterr().err
        raise AssertionError(f"{where}: `{cmd}` fails when run as\n  mmzoo {' '.join(run)}\n{err[-1500:]}") from exc
    out = capsys.readouterr().out
    if run[0] == "fit":
        assert "checkpoints" in out or "fast_dev_run" in out, out[-800:]
    else:
        assert re.search(r"\d\.\d", out), f"{where}: `{cmd}` printed no metrics:\n{out[-800:]}"
