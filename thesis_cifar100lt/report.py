"""Thesis Tables 4.1-4.8 (paper | ours | diff) from the run records of one preset.

    python -m thesis_cifar100lt.report --preset smoke
"""
from __future__ import annotations

import argparse
from pathlib import Path

from common.engine import read_records
from common.report import (budget_label, comparison_table, load_paper_numbers, ours_frame,
                           plot_paper_vs_ours, write_table)

HERE = Path(__file__).parent
RESULTS = Path("results/thesis_cifar100lt")
# (model, training set) -> thesis table
TABLES = {
    ("resnet50", "balanced"): "4.1", ("resnet50", "long_tailed"): "4.2",
    ("mobilenet_v2", "balanced"): "4.3", ("mobilenet_v2", "long_tailed"): "4.4",
    ("vit_base_patch16_224", "balanced"): "4.5", ("vit_base_patch16_224", "long_tailed"): "4.6",
    ("convnext_base", "balanced"): "4.7", ("convnext_base", "long_tailed"): "4.8",
}
LOSS_ROWS = ["ce", "focal", "wce", "cb", "bs", "seql", "ldam"]
COLUMNS = ["balanced", "long_tailed", "head", "middle", "tail"]


def cells_from_record(rec: dict) -> list[dict]:
    cfg = rec["config"]
    table = TABLES.get((cfg["model"]["name"], cfg["data"]["train_set"]))
    if table is None:
        return []
    m = rec["metrics"]
    values = {"balanced": m["balanced"]["accuracy"], "long_tailed": m["long_tailed"]["accuracy"],
              "head": m["long_tailed"]["head"], "middle": m["long_tailed"]["middle"], "tail": m["long_tailed"]["tail"]}
    label = budget_label(rec)
    return [{"table": table, "row": cfg["loss"]["name"], "column": c, "value": 100 * v, "label": label}
            for c, v in values.items()]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", required=True)
    args = parser.parse_args(argv)
    paper = load_paper_numbers(HERE / "paper_numbers.csv")
    records = read_records(RESULTS / "runs" / args.preset)
    ours = ours_frame([cell for rec in records for cell in cells_from_record(rec)])
    out = RESULTS / args.preset
    for (model, train_set), table in TABLES.items():
        df = comparison_table(paper, ours, table, LOSS_ROWS, COLUMNS)
        labels = sorted(set(ours.loc[ours["table"] == table, "label"]))
        notes = [f"Thesis Table {table}: {model}, trained on the {train_set.replace('_', '-')} set; top-1 accuracy (%).",
                 f"Ours: preset `{args.preset}`" + ("" if args.preset == "paper" else
                                                    " -- REDUCED BUDGET, not comparable to the thesis"),
                 *(f"run budget: {lab}" for lab in labels or ["no runs yet: every 'ours' cell is a dash"])]
        write_table(df, out / f"table_{table.replace('.', '_')}", f"Table {table} ({args.preset} preset)", notes)
        plot_paper_vs_ours(paper, ours, table, "long_tailed", out / f"table_{table.replace('.', '_')}_long_tailed.png",
                           f"Table {table} long-tailed test: thesis vs ours ({args.preset})", LOSS_ROWS)
    print(f"wrote {len(TABLES)} tables from {len(records)} runs to {out}")


if __name__ == "__main__":
    main()
