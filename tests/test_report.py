import pandas as pd

from common.report import DASH, comparison_table, ours_frame, plot_paper_vs_ours, write_table


def _paper():
    return pd.DataFrame({"table": ["1"] * 4, "row": ["ce", "ce", "bs", "bs"],
                         "column": ["all", "few", "all", "few"], "value": [50.0, 20.0, 55.0, 30.0],
                         "source": ["fake test table"] * 4})


def test_comparison_table_paper_ours_diff_and_dashes(tmp_path):
    ours = ours_frame([{"table": "1", "row": "ce", "column": "all", "value": 48.5, "label": "smoke"}])
    df = comparison_table(_paper(), ours, "1")
    assert df.loc["ce", ("all", "paper")] == "50.00" and df.loc["ce", ("all", "ours")] == "48.50"
    assert df.loc["ce", ("all", "diff")] == "-1.50"
    assert df.loc["bs", ("all", "ours")] == DASH and df.loc["bs", ("all", "diff")] == DASH
    write_table(df, tmp_path / "t1", "Table 1", ["fake numbers, test only"])
    md = (tmp_path / "t1.md").read_text()
    assert "| row | all paper | all ours | all diff |" in md and DASH in md
    assert (tmp_path / "t1.csv").exists()
    plot_paper_vs_ours(_paper(), ours, "1", "all", tmp_path / "t1.png", "fake")
    assert (tmp_path / "t1.png").stat().st_size > 0


def test_table_stems_may_hold_a_dot(tmp_path):
    """Seed 002's datasets are named by their ratio ("0.02"): the stem must not lose it."""
    df = pd.DataFrame({"a": [1]}, index=["x"])
    for ds in ("0.1", "0.02"):
        write_table(df, tmp_path / f"sweep_{ds}", "t")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sweep_0.02.csv", "sweep_0.02.md", "sweep_0.1.csv", "sweep_0.1.md"]
