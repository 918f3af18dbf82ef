"""Every documented ``mmzoo fit|validate|test --model X --data Y ...`` command parses.

The commands are taken from README.md, docs/*.md and model_cards/*.md (code blocks, with ``\\``
continuations, and inline code spans). Each is run through the real CLI with ``--print_config``
appended, ``--data.root`` pointed at a tiny synthetic dataset of the command's family and any
checkpoint path replaced by a real file, so an unknown flag or an invalid value fails here.
"""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from mmzoo.cli import main

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


_SYNTHETIC = {}


def _dataset(family: str, tmp_root: Path) -> Path:
    if family in _SYNTHETIC:
        return _SYNTHETIC[family]
    from mmzoo.data import synthetic

    root = tmp_root / family
    if family == "ave":
        synthetic.write_ave(root, with_videos=False)
    elif family == "kinetics":
        synthetic.write_kinetics(root, num_frames=8)
    elif family == "epic-kitchens":
        synthetic.write_epic(root, write_videos=False, segments_per_video=1, num_frames=40)
    elif family == "vid":
        synthetic.write_vid(root, num_train=1, num_val=1, num_frames=4)
    elif family == "msrvtt":
        synthetic.write_msrvtt(root, num_videos=8, captions_per_video=2, num_mp4=0)
    else:
        raise AssertionError(f"no synthetic dataset for data {family!r}")
    _SYNTHETIC[family] = root
    return root


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("docs_data")


def _prepare(cmd: str, tmp_root: Path) -> list[str]:
    argv = _argv(cmd)
    family = argv[argv.index("--data") + 1]
    root = str(_dataset(family, tmp_root))
    ckpt = tmp_root / "some.ckpt"
    ckpt.write_bytes(b"")
    out = []
    it = iter(argv)
    for arg in it:
        if arg in ("--data.root", "--ckpt_path"):
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
