"""The HTML report and the ``xr`` figures, on small synthetic tables."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PolyCollection
from matplotlib.figure import Figure

from sim.report import format_value, render_report
from workloads.xr.figures import MAX_CDF_POINTS, latency_cdf_figure, xr_figures

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
FIGURES = {"latency_cdf", "timeline", "energy", "misses"}


def synthetic_tables(seconds: float = 0.5, seed: int = 0) -> dict[str, pd.DataFrame]:
    """Three models on two accelerators; ``depth`` never completes a frame."""
    rng = np.random.default_rng(seed)
    accel_names = ["big<WS>", "small"]
    frames, segments = [], []
    for model, fps, p_done in (("hand", 60, 0.85), ("eye", 30, 0.95), ("depth", 10, 0.0)):
        n = int(seconds * fps)
        for i in range(n):
            arrival = i / fps
            accel = i % 2
            row = dict(
                model=model,
                frame=i,
                arrival_s=arrival,
                deadline_s=arrival + 1 / fps,
                start_s=np.nan,
                finish_s=np.nan,
                status="dropped",
                late=False,
                latency_s=np.nan,
                energy_j=0.0,
                accel=-1,
            )
            if i == n - 1:
                row.update(status="in_flight", start_s=arrival, accel=accel)
            elif rng.random() < p_done:
                start = arrival + rng.uniform(0, 2e-3)
                mid = start + rng.uniform(2e-3, 6e-3)
                finish = mid + rng.uniform(2e-3, 6e-3)
                energy = (finish - start) * (3.0 if accel == 0 else 1.0)
                row.update(
                    status="completed",
                    start_s=start,
                    finish_s=finish,
                    late=finish > row["deadline_s"],
                    latency_s=finish - arrival,
                    energy_j=energy,
                    accel=accel,
                )
                for (b0, b1), (t0, t1) in zip(((0, 4), (4, 9)), ((start, mid), (mid, finish)), strict=True):
                    segments.append(
                        dict(
                            accel=accel,
                            accel_name=accel_names[accel],
                            model=model,
                            frame=i,
                            block_start=b0,
                            block_end=b1,
                            start_s=t0,
                            end_s=t1,
                            energy_j=energy * (t1 - t0) / (finish - start),
                        )
                    )
            else:
                row["finish_s"] = arrival + 1 / fps
            frames.append(row)
    frames_df = pd.DataFrame(frames).astype({"frame": "int64", "accel": "int64"})
    segments_df = pd.DataFrame(segments).astype({"frame": "int64"})

    models = []
    for model, g in frames_df.groupby("model", sort=False):
        n, done = len(g), g[g.status == "completed"]
        dropped = int((g.status == "dropped").sum())
        models.append(
            dict(
                model=model,
                fps=float(round(1 / g.arrival_s.diff().iloc[1])),
                frames=n,
                completed=len(done),
                dropped=dropped,
                late=int(done.late.sum()),
                in_flight=int((g.status == "in_flight").sum()),
                drop_rate=dropped / n,
                deadline_miss_rate=(dropped + done.late.sum()) / n,
                latency_p50_s=done.latency_s.median(),
                latency_p99_s=done.latency_s.quantile(0.99),
                energy_j=g.energy_j.sum(),
                score=float("nan"),
            )
        )
    busy = segments_df.groupby("accel").agg(busy_s=("end_s", "size"), busy_energy_j=("energy_j", "sum"))
    accelerators = pd.DataFrame(
        dict(
            accel=[0, 1],
            name=accel_names,
            num_pes=[1024, 256],
            dataflow=["WS", "OS"],
            busy_s=[0.2, 0.1],
            utilisation=[0.4, 0.2],
            busy_energy_j=busy.busy_energy_j.to_numpy(),
            idle_energy_j=[0.05, 0.02],
        )
    )
    accelerators["energy_j"] = accelerators.busy_energy_j + accelerators.idle_energy_j
    return {
        "frames": frames_df,
        "segments": segments_df,
        "models": pd.DataFrame(models),
        "accelerators": accelerators,
    }


def synthetic_summary(tables: dict[str, pd.DataFrame]) -> dict[str, float]:
    frames = tables["frames"]
    return {
        "frames": float(len(frames)),
        "drop_rate": float((frames.status == "dropped").mean()),
        "deadline_miss_rate": float(((frames.status == "dropped") | frames.late).mean()),
        "latency_p99_s": float(frames.latency_s.quantile(0.99)),
        "energy_j": float(tables["accelerators"].energy_j.sum()),
        "score": float("nan"),
    }


def _render(out: Path, figures: dict[str, Figure], **kw) -> str:
    page = render_report(
        out,
        title="xr <demo> & co",
        summary=kw.pop("summary", {}),
        config_yaml="kind: xr\nnote: a < b & c\n",
        figures=figures,
        **kw,
    )
    assert page == out / "report.html"
    return page.read_text(encoding="utf-8")


def test_report_holds_figures_summary_tables_and_config(tmp_path: Path) -> None:
    tables = synthetic_tables()
    summary = synthetic_summary(tables)
    notes = pd.DataFrame({"note": ["<script>alert(1)</script>", "a & b"], "x": [1.5, np.nan]})
    text = _render(
        tmp_path,
        xr_figures(tables, summary),
        summary=summary,
        tables={"models": tables["models"], "notes": notes},
        links={"parquet <tables>": "tables/frames.parquet?a=1&b=2"},
    )

    for name in FIGURES:
        assert f"<figcaption>{name}</figcaption>" in text
        assert (tmp_path / f"{name}.png").read_bytes().startswith(PNG_MAGIC)
    assert text.count('src="data:image/png;base64,') == len(FIGURES)
    for key in summary:
        assert f">{key}<" in text
    assert "<script>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "a &amp; b" in text
    assert "<title>xr &lt;demo&gt; &amp; co</title>" in text
    assert 'href="tables/frames.parquet?a=1&amp;b=2">parquet &lt;tables&gt;</a>' in text
    assert "<details>" in text and "note: a &lt; b &amp; c" in text
    assert "—" in text  # NaN score and NaN cell


def test_long_table_is_capped(tmp_path: Path) -> None:
    text = _render(tmp_path, {}, tables={"big": pd.DataFrame({"i": range(120)})})
    assert "first 50 of 120 rows" in text
    assert "<td>49</td>" in text and "<td>50</td>" not in text


def test_empty_tables_and_windows_do_not_raise(tmp_path: Path) -> None:
    tables = synthetic_tables()
    empty = {name: df.iloc[:0] for name, df in tables.items()}
    no_frames = {**tables, "frames": tables["frames"].iloc[:0]}
    for i, (tabs, window) in enumerate(
        [
            ({}, None),
            (empty, None),
            (no_frames, None),
            (tables, (100.0, 100.5)),  # past the end: nothing in the window
        ]
    ):
        figures = xr_figures(tabs, {}, gantt_window_s=window)
        assert set(figures) == FIGURES
        _render(tmp_path / str(i), figures)
        assert all((tmp_path / str(i) / f"{n}.png").exists() for n in FIGURES)


def test_cdf_is_downsampled() -> None:
    n = 20 * MAX_CDF_POINTS
    frames = pd.DataFrame(
        {
            "model": "m",
            "status": "completed",
            "arrival_s": 0.0,
            "deadline_s": np.inf,
            "latency_s": np.linspace(1e-3, 2e-2, n),
        }
    )
    (line,) = latency_cdf_figure(frames, {"m": (0, 0, 1, 1)}).axes[0].get_lines()
    x, y = line.get_data()
    assert len(x) <= MAX_CDF_POINTS
    assert x[-1] == pytest.approx(20.0) and y[-1] == 1.0  # the max latency is kept


def test_timeline_draws_one_collection_per_accel_and_model() -> None:
    tables = synthetic_tables()
    seg = tables["segments"]
    window = (0.0, 0.1)
    in_window = seg[(seg.end_s > window[0]) & (seg.start_s < window[1])]
    ax = xr_figures(tables, {}, gantt_window_s=window)["timeline"].axes[0]
    bars = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert len(bars) == len(in_window.groupby(["accel", "model"]))


def test_bad_inputs_are_named() -> None:
    with pytest.raises(ValueError, match="lacks columns"):
        xr_figures({"frames": pd.DataFrame({"model": []})}, {})
    with pytest.raises(ValueError, match="must end after"):
        xr_figures(synthetic_tables(), {}, gantt_window_s=(0.2, 0.1))
    with pytest.raises(ValueError, match="plain file name"):
        render_report(Path("unused"), title="t", summary={}, config_yaml="", figures={"../x": Figure()})


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "—"),
        (math.nan, "—"),
        (3.0, "3"),
        (1234567.0, "1,234,567"),
        (0.012345, "0.01235"),
        (2.5e-7, "2.5e-07"),
        (math.inf, "∞"),
        (7, "7"),
        (True, "True"),
    ],
)
def test_format_value(value: object, text: str) -> None:
    assert format_value(value) == text


def test_report_figures_have_no_offset_tick_labels():
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from sim.report import plain_text

    with plain_text():
        fig = Figure()
        ax = fig.subplots()
        ax.plot([0, 1], [0.0198341, 0.0198342])
        FigureCanvasAgg(fig).draw()
        assert ax.yaxis.get_major_formatter().get_offset() == ""
