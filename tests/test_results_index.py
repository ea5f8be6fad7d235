"""results/README.md: the index every study report rewrites."""
import pandas as pd

from common.report import write_table
from common.results_index import write_results_index


def test_index_opens_with_the_scorecard_and_lists_each_preset_with_its_budget(tmp_path):
    folder = tmp_path / "results" / "sla_multiexpert" / "paper"
    table = pd.DataFrame({"top1_paper": ["70.40", "86.70"], "top1_ours": ["69.90", "–"], "top1_diff": ["-0.50", "–"],
                          "params_millions_paper": ["5", "5"], "params_millions_ours": ["5.00", "5.00"]},
                         index=pd.Index(["ce", "ours"], name="row"))
    write_table(table, folder / "table_2", "Table 2", [
        "Ours: preset `paper` -- the paper's protocol",
        "run budget: preset=paper, epochs=200, data=reconstructed cifar10 (labels exact), device=cpu (Xeon, bf16), "
        "date=2026-12-03"])
    (folder / "curves.png").write_bytes(b"png")
    pd.DataFrame([{"id": "m1-headline", "claim": "the method: 86.7", "kind": "number", "preset": "paper",
                   "preset_kind": "the paper's protocol", "paper": "86.70", "ours": "80.62", "epochs": "200",
                   "seeds": "1", "data": "reconstructed cifar10", "verdict": "fails", "reason": "1 of 1 fail",
                   "source": "Table 2"}]).to_csv(folder / "claims.csv", index=False)
    (folder / "claims.md").write_text("# Claims\n")
    lite = tmp_path / "results" / "efficientnet_cifar10lt" / "lite"
    lite.mkdir(parents=True)
    pd.DataFrame([{"id": "e5-reweight-beats-baseline", "claim": "reweight beats the baseline", "kind": "beats",
                   "preset": "lite", "preset_kind": "stand-in", "paper": "margin +1.59", "ours": "margin +3.00",
                   "epochs": "30", "seeds": "1", "data": "reconstructed cifar10", "verdict": "holds",
                   "reason": "all 1 hold", "source": "reweight section"}]).to_csv(lite / "claims.csv", index=False)
    index = write_results_index(folder.parent).read_text()
    first_screen = index.split("## efficientnet_cifar10lt")[0]
    assert first_screen.index("## Does it reproduce?") < first_screen.index("### The paper's protocol") \
        < first_screen.index("### Stand-in presets")
    assert ("| sla_multiexpert | [m1-headline](sla_multiexpert/paper/claims.md#m1-headline): the method: 86.7 | 86.70 | "
            "80.62 (`paper`, 200 ep, n=1, reconstructed cifar10) | **fails**: 1 of 1 fail |") in first_screen
    assert "**holds** [stand-in]" in first_screen
    # a study whose paper preset has no runs yet: its declared claims, not measured, beside the paper's numbers
    assert "| thesis_cifar100lt | t1-bs-tail-resnet50: " in first_screen and "no runs of preset paper" in first_screen
    assert "median" not in index and "- claims: [verdicts](sla_multiexpert/paper/claims.md)" in index
    assert "### `paper`: the paper's protocol" in index and "- epochs per run: 200" in index
    assert "- device: cpu (Xeon, bf16)" in index and "- trained: 2026-12-03" in index
    assert "[table_2](sla_multiexpert/paper/table_2.md)" in index and "[curves](sla_multiexpert/paper/curves.png)" in index
    assert write_results_index(tmp_path / "scratch") is None          # a report into a scratch folder writes none
