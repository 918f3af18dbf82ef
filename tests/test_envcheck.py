"""The environment check run by `make test`: the installed triple loads, and a wrong one is one clear line."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from mmzoo import envcheck

ROOT = Path(__file__).resolve().parents[1]


def test_every_native_extension_loads():
    passed, failed = envcheck.run_checks()
    assert failed == []
    assert len(passed) == len(envcheck.CHECKS)


def test_cli_entry_prints_one_ok_line():
    out = subprocess.run([sys.executable, "-m", "mmzoo.envcheck"], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("mmzoo environment ok: torch ")
    assert len(out.stdout.strip().splitlines()) == 1


def test_triple_mismatch_names_package_and_versions(monkeypatch):
    pins = envcheck._declared_pins()
    monkeypatch.setattr(envcheck, "_declared_pins", lambda: {**pins, "torchaudio": "2.11.1"})
    with pytest.raises(envcheck.CheckFailure, match=r"torchaudio 2\.11\.0 \(mmzoo needs 2\.11\.1\)"):
        envcheck.check_triple()


def _pins(text: str, pattern: str) -> dict[str, str]:
    return {m.group(1): m.group(2) for m in re.finditer(pattern, text, re.M)}


def test_pyproject_and_lock_pin_the_same_exact_triple():
    pyproject = (ROOT / "pyproject.toml").read_text()
    lock = (ROOT / "requirements.lock").read_text()
    declared = _pins(pyproject, r'^\s*"(torch|torchvision|torchaudio)==([0-9.]+)"')
    locked = _pins(lock, r"^(torch|torchvision|torchaudio)==([0-9.]+)")
    assert set(declared) == set(envcheck.TRIPLE)
    assert declared == locked
    assert envcheck._declared_pins() == declared  # the installed metadata is this checkout's


def test_lock_pins_every_package_with_hashes():
    lock = (ROOT / "requirements.lock").read_text()
    reqs = [ln for ln in lock.splitlines() if ln and not ln.startswith((" ", "#"))]
    assert len(reqs) > 50
    bad = [ln for ln in reqs if not re.match(r"^[A-Za-z0-9_.\-]+(\[[^\]]+\])?==[^ ]+ \\$", ln)]
    assert bad == []
