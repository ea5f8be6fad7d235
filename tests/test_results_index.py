"""results/README.md: the index every study report rewrites."""
import pandas as pd

from common.report import write_table
from common.results_index import write_results_index


def test_index_lists_each_preset_with_its_budget_and_closest_cell(tmp_path):
    folder = tmp_path / "results" / "sla_multiexpert" / "paper"
    table = pd.DataFrame({"top1_paper": ["70.40", "86.70"], "top1_ours": ["69.90", "–"], "top1_diff": ["-0.50", "–"],
                          "params_millions_paper": ["5", "5"], "params_millions_ours": ["5.00", "5.00"]},
                         index=pd.Index(["ce", "ours"], name="row"))
    write_table(table, folder / "table_2", "Table 2", [
        "Ours: preset `paper` -- the paper's protocol",
        "run budget: preset=paper, epochs=200, data=reconstructed cifar10 (labels exact), device=cpu (Xeon, bf16), "
        "date=2026-12-03"])
    (folder / "curves.png").write_bytes(b"png")
    index = write_results_index(folder.parent).read_text()
    assert "### `paper`: the paper's protocol" in index and "- epochs per run: 200" in index
    assert "- device: cpu (Xeon, bf16)" in index and "- trained: 2026-12-03" in index
    assert "1 cell with both numbers" in index and "closest: table_2, ce, top1: ours 69.90 vs paper 70.40" in index
    assert "[table_2](sla_multiexpert/paper/table_2.md)" in index and "[curves](sla_multiexpert/paper/curves.png)" in index
    assert write_results_index(tmp_path / "scratch") is None          # a report into a scratch folder writes none
