"""`bash benchmarks/run_gpu.sh --smoke` runs every family's benchmark script on CPU at toy sizes
(issue 14), so the GPU sweep does not rot between the rare runs on a lent GPU."""
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    proc = subprocess.run(["bash", str(ROOT / "benchmarks" / "run_gpu.sh"), "--smoke", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=900)
    return out, proc


def test_every_benchmark_runs_in_smoke_mode(smoke):
    out, proc = smoke
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def _bench_names():
    import importlib.util

    spec = importlib.util.spec_from_file_location("run_all", ROOT / "benchmarks" / "run_all.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return list(mod.BENCHMARKS)


def test_summary_lists_every_benchmark_ok(smoke):
    out, proc = smoke
    summary = (out / "summary.md").read_text()
    rows = dict(re.findall(r"^\| (\S+) \| (.+?) \| [\d.]+ \|$", summary, flags=re.M))
    assert sorted(rows) == sorted(_bench_names()), summary
    assert set(rows.values()) == {"ok"}, summary
    for name in rows:
        assert (out / f"{name}.md").is_file(), f"{name} wrote no table"


def test_avslowfast_overhead_smoke_table(smoke):
    """The overhead table has the three rows, the before/after logits agree, the inference FLOPs
    of the AVSlowFast rows are the same before and after the fixes (they change no arithmetic) and
    the training forward costs less with the shared easy-negative pass."""
    out, _ = smoke
    text = (out / "avslowfast_overhead.md").read_text()
    rows = [line.split(" | ") for line in text.splitlines() if line.startswith("| slowfast") or line.startswith("| avslowfast")]
    assert [r[0] for r in rows] == ["| slowfast", "| avslowfast (before: conv3d audio, 2B audio pass)",
                                    "| avslowfast (now)"]
    assert rows[1][2] == rows[2][2] and float(rows[1][2]) > float(rows[0][2])  # GFLOPs/view: audio adds, fix does not
    # training forward: the easy negatives' shared audio pass removes the second audio pass
    assert float(rows[0][6]) < float(rows[2][6]) < float(rows[1][6])
    diff = float(re.search(r"Max \|logit difference\| .*?: ([0-9.e+-]+)\.", text).group(1))
    assert diff < 1e-5
