import pandas as pd

from common.report import DASH, combine_seeds, comparison_table, narrow_layout, ours_frame, plot_paper_vs_ours, write_table


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
