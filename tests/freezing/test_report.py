"""Parquet tables and the IFP figure from hand-made results."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from deft_tune.errors import DataError
from deft_tune.freezing.annealing import AnnealingResult, LatentFreezing
from deft_tune.freezing.ifp_table import read_ifp_table
from deft_tune.freezing.loop import Curve
from deft_tune.freezing.report import write_report, write_unsupervised_report

PNG = b"\x89PNG\r\n\x1a\n"


def result(factor, draw, ifp, step):
    steps = np.arange(10)
    kl = np.where(steps >= step, 1.0, 0.0)[:, None] if step >= 0 else np.zeros((10, 1))
    curve = Curve(steps, 71.0 - 7 * steps, kl, np.full(10, 100.0))
    return AnnealingResult(
        "bars", factor, draw, 100 + draw, ifp, step, 10, float(kl[-1, 0]), curve, {"width": 2}
    )


def test_write_report_round_trips(tmp_path):
    results = [result("x", 0, 29.0, 6), result("x", 1, 36.0, 5), result("width", 0, math.nan, -1)]
    paths = write_report(results, tmp_path / "out", title="bars")
    rows = read_ifp_table(tmp_path / "out")
    assert [(r["factor"], r["draw"], r["seed"], r["ifp_step"]) for r in rows] == [
        ("x", 0, 100, 6),
        ("x", 1, 101, 5),
        ("width", 0, 100, -1),
    ]
    assert (
        rows[0]["ifp"] == 29.0
        and math.isnan(rows[2]["ifp"])
        and rows[0]["fixed"] == ('{"width": 2}')
    )
    curves = pq.read_table(paths["curves"])
    assert curves.num_rows == 30
    assert curves.column("kl").to_pylist()[:10] == [0.0] * 6 + [1.0] * 4
    assert paths["plot"].read_bytes()[:8] == PNG
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "curves.parquet",
        "ifp.parquet",
        "ifp.png",
    ]  # no temporary files left behind


def test_unsupervised_report(tmp_path):
    curve = Curve(
        np.arange(4),
        np.array([9.0, 5, 3, 2]),
        np.array([[0, 0], [1, 0], [1, 0], [1, 0.0]]),
        np.zeros(4),
    )
    freezings = [LatentFreezing(0, 5.0, 1, 1.0), LatentFreezing(1, math.nan, -1, 0.0)]
    paths = write_unsupervised_report(freezings, curve, tmp_path)
    assert pq.read_table(paths["table"]).column("latent").to_pylist() == [0, 1]
    assert paths["plot"].read_bytes()[:8] == PNG


def test_read_ifp_table_errors(tmp_path):
    with pytest.raises(DataError, match="no IFP table"):
        read_ifp_table(tmp_path)
    pq.write_table(pa.table({"factor": ["a"]}), tmp_path / "ifp.parquet")
    with pytest.raises(DataError, match="lacks column"):
        read_ifp_table(tmp_path)
    (tmp_path / "bad.parquet").write_text("not parquet")
    with pytest.raises(DataError, match="not a readable Parquet"):
        read_ifp_table(tmp_path / "bad.parquet")


def test_the_ifp_axis_is_log_over_a_decade_and_plain_within_one():
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from deft_tune.freezing.report import plot_ifp

    # The smoke test's IFPs on dsprites_full: 1.0012 to 1.030, every one at the annealing's end.
    close = [result("x", 0, 1.0019, 6), result("x", 1, 1.030, 5), result("y", 0, math.nan, -1)]
    wide = [result("x", 0, 2.0, 6), result("y", 0, 60.0, 5)]
    for results, scale in ((close, "linear"), (wide, "log")):
        figure = plot_ifp(results)
        FigureCanvasAgg(figure).draw()
        left, right = figure.axes
        assert left.get_yscale() == scale
        for labels in (left.get_yticklabels(), right.get_xticklabels()):
            texts = [t.get_text() for t in labels if t.get_text()]
            assert len(texts) >= 2
            assert not any("times" in t or "^" in t for t in texts), texts  # no 1.03x10^0, 10^1
        assert left.yaxis.get_offset_text().get_text() == ""
    # Within a decade: from beta 1 (the annealing's floor) to at least 2, so that 1.0019 and
    # 1.030 sit together at the foot instead of at the panel's bottom and top.
    low, high = plot_ifp(close).axes[0].get_ylim()
    assert low <= 1.0 and high >= 2.0
    figure = plot_ifp(wide)
    FigureCanvasAgg(figure).draw()
    assert [t.get_text() for t in figure.axes[0].get_yticklabels()] == ["2", "10", "50"]
    # The beta axis (71 falling to 8 in these curves) in round, plain numbers.
    assert [t.get_text() for t in figure.axes[1].get_xticklabels()] == ["10", "20", "50"]
