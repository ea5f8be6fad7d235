import numpy as np
import pandas as pd

from common.report import (DASH, NARROW_COLUMNS, combine_seeds, comparison_table, figure_footer, narrow_layout, ours_frame,
                           training_hours,
                           plot_confusion, plot_curves, plot_group_lines, plot_paper_vs_ours, write_table)


def _paper():
    return pd.DataFrame({"table": ["1"] * 4, "row": ["ce", "ce", "bs", "bs"],
                         "column": ["all", "few", "all", "few"], "value": [50.0, 20.0, 55.0, 30.0],
                         "source": ["fake test table"] * 4})


def _cell(row, value, column="all"):
    return {"table": "1", "row": row, "column": column, "value": value, "label": "smoke"}


def test_comparison_table_paper_ours_diff_and_dashes(tmp_path):
    ours = ours_frame([_cell("ce", 48.5)])
    df = comparison_table(_paper(), ours, "1")
    assert df.loc["ce", ("all", "paper")] == "50.00" and df.loc["ce", ("all", "ours")] == "48.50"
    assert df.loc["ce", ("all", "diff")] == "-1.50"
    assert df.loc["bs", ("all", "ours")] == DASH and df.loc["bs", ("all", "diff")] == DASH
    write_table(df, tmp_path / "t1", "Table 1", ["fake numbers, test only"])
    md = (tmp_path / "t1.md").read_text()
    assert "| row | all paper | all ours | all diff |" in md and DASH in md     # narrow enough: one table
    assert (tmp_path / "t1.csv").exists()
    plot_paper_vs_ours(_paper(), ours, "1", "all", tmp_path / "t1.png", "fake")
    assert (tmp_path / "t1.png").stat().st_size > 0


def test_table_stems_may_hold_a_dot(tmp_path):
    """Seed 002's datasets are named by their ratio ("0.02"): the stem must not lose it."""
    df = pd.DataFrame({"a": [1]}, index=["x"])
    for ds in ("0.1", "0.02"):
        write_table(df, tmp_path / f"sweep_{ds}", "t")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sweep_0.02.csv", "sweep_0.02.md", "sweep_0.1.csv", "sweep_0.1.md"]


def _wide_paper(n_columns=5):
    cols = [f"c{i}" for i in range(n_columns)]
    return pd.DataFrame({"table": "w", "row": ["ce"] * n_columns + ["bs"] * n_columns, "column": cols * 2,
                         "value": [40.0 + i for i in range(2 * n_columns)], "source": "fake"})


def test_a_wide_comparison_is_written_as_two_narrow_tables(tmp_path):
    ours = ours_frame([{"table": "w", "row": "ce", "column": "c0", "value": 41.3, "label": "smoke"}])
    df = comparison_table(_wide_paper(), ours, "w")
    assert len(df.columns) == 15                                  # 5 columns x paper / ours / diff
    write_table(df, tmp_path / "w", "Wide", ["fake"])
    md = (tmp_path / "w.md").read_text()
    rows = [line for line in md.splitlines() if line.startswith("|")]
    assert rows and max(line.count("|") - 1 for line in rows) == 6      # row label + 5 columns, never 16
    ours_part, paper_part = md.split("## Paper")
    assert "| ce | 41.30 (+1.30) | – |" in ours_part and "40.00" not in ours_part
    assert "| ce | 40.00 | 41.00 | 42.00 | 43.00 | 44.00 |" in paper_part
    csv = pd.read_csv(tmp_path / "w.csv", index_col=0)                   # the CSV keeps every column
    assert list(csv.columns)[:3] == ["c0_paper", "c0_ours", "c0_diff"] and len(csv.columns) == 15
    assert csv.loc["ce", "c0_diff"] == "+1.30"


def test_narrow_layout_with_seeds_keeps_the_spread_and_count():
    seeds = [ours_frame([{"table": "w", "row": "ce", "column": "c0", "value": v, "label": "smoke"}]) for v in (41, 43)]
    ours, paper = narrow_layout(comparison_table(_wide_paper(), combine_seeds(seeds), "w"))
    assert ours.loc["ce", "c0"] == "42.00 ± 1.41 (+2.00, n=2)" and ours.loc["bs", "c0"] == DASH
    assert paper.loc["bs", "c4"] == "49.00"


def _texts(fig):
    return [t.get_text() for ax in fig.axes for t in ax.texts]


def test_a_missing_bar_differs_from_a_zero_bar(tmp_path):
    missing = plot_paper_vs_ours(_paper(), ours_frame([_cell("ce", 48.5)]), "1", "all", tmp_path / "a.png", "t")
    zero = plot_paper_vs_ours(_paper(), ours_frame([_cell("ce", 48.5), _cell("bs", 0.0)]), "1", "all",
                              tmp_path / "b.png", "t")
    assert "no run" in _texts(missing) and "no run" not in _texts(zero)
    hatched = [p for p in missing.axes[0].patches if p.get_gid() == "missing"]
    assert len(hatched) == 1 and not [p for p in zero.axes[0].patches if p.get_gid() == "missing"]


def test_a_missing_point_is_marked_on_a_line(tmp_path):
    gone = plot_group_lines({"ours": [1.0, np.nan, 3.0]}, ["a", "b", "c"], tmp_path / "a.png", "t")
    zero = plot_group_lines({"ours": [1.0, 0.0, 3.0]}, ["a", "b", "c"], tmp_path / "b.png", "t")
    marks = [m for m in gone.axes[0].lines if m.get_gid() == "missing"]
    assert len(marks) == 1 and list(marks[0].get_xdata()) == ["b"]
    assert not [m for m in zero.axes[0].lines if m.get_gid() == "missing"]


def test_every_plot_carries_the_budget_footer(tmp_path):
    footer = figure_footer("smoke", [{"data": "synthetic cifar10 (not real images)"}, {"data": None}])
    assert "REDUCED BUDGET" in footer and "synthetic cifar10" in footer
    assert "REDUCED" not in figure_footer("paper", []) and "no runs" in figure_footer("paper", [])
    record = {"history": [{"epoch": 1, "train_loss": 2.0}, {"epoch": 2, "train_loss": 1.5}]}
    figures = [plot_paper_vs_ours(_paper(), ours_frame([]), "1", "all", tmp_path / "a.png", "t", footer=footer),
               plot_confusion([[3, 1], [0, 2]], ["x", "y"], tmp_path / "b.png", "t", footer=footer),
               plot_group_lines({"ours": [1.0, 2.0]}, ["a", "b"], tmp_path / "c.png", "t", footer=footer),
               plot_curves({"run": record}, tmp_path / "d.png", "t", footer=footer)]
    for fig in figures:
        texts = [t.get_text().replace("\n", " ") for t in fig.texts if t.get_gid() == "footer"]
        assert texts == [footer], texts
        assert all(ax.get_xlabel() and ax.get_ylabel() for ax in fig.axes if ax.get_label() != "<colorbar>")


def test_a_single_sweep_point_says_so(tmp_path):
    one = plot_group_lines({"ours": [52.0]}, ["0.2"], tmp_path / "a.png", "t", xlabel="mixup alpha")
    two = plot_group_lines({"ours": [52.0, 50.0]}, ["0.2", "0.4"], tmp_path / "b.png", "t", xlabel="mixup alpha")
    assert "single sweep point: 0.2" in one.axes[0].get_xlabel()
    assert two.axes[0].get_xlabel() == "mixup alpha"
    curves = plot_curves({"run": {"history": [{"epoch": 1, "train_loss": 2.0}]}}, tmp_path / "c.png", "t")
    assert "single epoch: 1" in curves.axes[0].get_xlabel()


def test_a_very_wide_comparison_is_split_into_blocks(tmp_path):
    """37 columns (SLA Table 7's size): blocks of at most NARROW_COLUMNS, every column kept once."""
    df = comparison_table(_wide_paper(12), ours_frame([]), "w")
    write_table(df, tmp_path / "w", "Very wide")
    md = (tmp_path / "w.md").read_text()
    headers = [line for line in md.splitlines() if line.startswith("| row |")]
    assert len(headers) == 4 and all(line.count("|") - 1 <= 1 + NARROW_COLUMNS for line in headers)
    ours_part = md.split("## Paper")[0]
    assert [c.strip() for line in headers[:2] for c in line.strip("|").split("|")[1:]] == [f"c{i}" for i in range(12)] \
        and "c11" in ours_part


def test_paper_protocol_runs_say_so_with_their_data_device_and_precision():
    from common.report import budget_label, budget_notes

    record = {"preset": "paper", "epochs": 200, "data": "reconstructed cifar10 (labels exact, pixels mostly from JPEG copies)",
              "environment": {"device": "cpu", "device_name": "Intel(R) Xeon(R) Processor"},
              "numerics": {"bf16": True, "channels_last": True, "compiled": False}, "finished": "2026-12-02T10:00:00"}
    label = budget_label(record)
    assert "preset=paper" in label and "data=reconstructed cifar10" in label
    assert "device=cpu (Intel(R) Xeon(R) Processor, bf16)" in label and "date=2026-12-02" in label
    assert budget_notes("paper", [label])[0] == "Ours: preset `paper` -- the paper's protocol"
    footer = figure_footer("paper", [record])
    assert footer.startswith("preset paper: paper protocol. Data: reconstructed cifar10") and "Device: cpu (" in footer
    older = {**record, "numerics": None, "environment": {"device": "cpu", "device_name": "cpu"}}
    assert "device=cpu," in budget_label(older)
    post_hoc = {**record, "numerics": None, "environment": {"device": "cpu", "device_name": "AMD EPYC"}}
    assert "device=cpu (AMD EPYC)," in budget_label(post_hoc)             # trained nothing: no precision


def test_training_hours_sum_each_epochs_images_over_its_throughput():
    record = {"train_counts": [600, 300, 100],        # 1000 images an epoch
              "history": [{"epoch": 1, "images_per_s": 500.0}, {"epoch": 2, "images_per_s": 250.0},
                          {"epoch": 3}]}              # an epoch without throughput (older log) adds nothing
    assert training_hours({**record, "history": record["history"] * 1200}) == round(1200 * (2 + 4) / 3600, 2)
    assert training_hours({"train_counts": [], "history": []}) is None     # a post-hoc row trained nothing
