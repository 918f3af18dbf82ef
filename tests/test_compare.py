"""`mmzoo compare`: a reported metric against GFLOPs, as a table and an SVG chart, from the
catalogue (the same records as `mmzoo info`)."""
from __future__ import annotations

import math
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from mmzoo.catalog import load_index
from mmzoo.cli import main
from mmzoo.compare import reported_numbers

SVG = "{http://www.w3.org/2000/svg}"


def _expected(metric: str) -> dict[str, tuple[float, float]]:
    out = {}
    for model_id, rec in load_index().items():
        values = dict(reported_numbers(rec["reported"]))
        if metric in values and rec["gflops"]:
            out[model_id] = (rec["gflops"], values[metric])
    return out


def test_chart_has_one_point_per_reporting_id_placed_by_gflops_and_value(tmp_path, capsys):
    out = tmp_path / "chart.svg"
    main(["compare", "--metric", "k400_top1", "--output", str(out)])
    expected = _expected("k400_top1")
    assert len(expected) >= 10  # SlowFast, AVSlowFast, C2D / I3D / NL, AudioNet
    circles = ET.parse(out).getroot().findall(f"{SVG}circle")
    placed = {c.get("data-id"): (float(c.get("cx")), float(c.get("cy"))) for c in circles}
    assert placed.keys() == expected.keys()
    by_gflops = sorted(expected, key=lambda i: expected[i][0])
    assert [placed[i][0] for i in by_gflops] == sorted(placed[i][0] for i in by_gflops)  # x grows with GFLOPs
    by_value = sorted(expected, key=lambda i: expected[i][1])
    assert [placed[i][1] for i in by_value] == sorted((placed[i][1] for i in by_value), reverse=True)  # y: up
    # log axis: equal GFLOPs ratios are equal distances
    a, b = by_gflops[0], by_gflops[-1]
    per_decade = (placed[b][0] - placed[a][0]) / math.log10(expected[b][0] / expected[a][0])
    mid = by_gflops[len(by_gflops) // 2]
    assert placed[mid][0] - placed[a][0] == pytest.approx(per_decade * math.log10(expected[mid][0] / expected[a][0]),
                                                          rel=1e-3)
    table = capsys.readouterr().out
    assert all(i in table for i in expected) and "avslowfast-r50-4x16" in table


def test_pattern_selects_ids_and_an_unknown_metric_is_one_line(capsys):
    main(["compare", "--metric", "k400_top1", "--pattern", "slowfast*"])
    rows = [line.split()[0] for line in capsys.readouterr().out.splitlines()[1:]]
    assert rows and all(r.startswith("slowfast") for r in rows)
    with pytest.raises(SystemExit) as e:
        main(["compare", "--metric", "k400_top2"])
    assert e.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "k400_top2" in err[0] and "k400_top1" in err[0]


def test_compare_does_not_import_torch():
    code = ("import sys; from mmzoo.cli import main; main(['compare', '--metric', 'k400_top1']); "
            "print('torch' in sys.modules)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert res.stdout.strip().splitlines()[-1] == "False"
