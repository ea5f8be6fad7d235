"""Thesis Tables 4.1-4.11 and Figures 4.1-4.6 (paper beside ours) from one preset's records.

    python -m thesis_cifar100lt.report --preset smoke
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from common.report import (_pyplot, bars, budget_label, budget_notes, combine_seeds, comparison_table, figure_footer,
                           legend_outside, line, ours_frame, plot_curves, plot_paper_vs_ours, save_figure, table_labels,
                           write_table)
from common.runstore import read_records
from common.study import ReportInput, Written, report_main

from .grid import LOSSES, STUDY

MODEL_ORDER = ["resnet50", "mobilenet_v2", "vit_base_patch16_224", "convnext_base"]
# (model, training set) -> thesis table; the thesis's key for each model
TABLES = {
    ("resnet50", "balanced"): "4.1", ("resnet50", "long_tailed"): "4.2",
    ("mobilenet_v2", "balanced"): "4.3", ("mobilenet_v2", "long_tailed"): "4.4",
    ("vit_base_patch16_224", "balanced"): "4.5", ("vit_base_patch16_224", "long_tailed"): "4.6",
    ("convnext_base", "balanced"): "4.7", ("convnext_base", "long_tailed"): "4.8",
}
PAPER_MODEL_KEY = {"resnet50": "resnet50", "mobilenet_v2": "mobilenet_v2", "vit_base_patch16_224": "vit_b_16",
                   "convnext_base": "convnext_base"}
FIGURE_OF_MODEL = {"resnet50": "4.2", "mobilenet_v2": "4.3", "vit_base_patch16_224": "4.4", "convnext_base": "4.5"}
LOSS_ROWS = LOSSES                   # Tables 4.1-4.8 list the losses in the grid's order
SUMMARY_MODEL_ROWS = ["mobilenet_v2", "resnet50", "vit_b_16", "convnext_base"]   # the thesis's row orders
SUMMARY_LOSS_ROWS = ["bs", "wce", "ce", "focal", "cb", "ldam", "seql"]
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


def grid_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Per-run long format (model, train_set, loss, column, value) of Tables 4.1-4.8."""
    by_table = {t: k for k, t in TABLES.items()}
    rows = [(*by_table[t], r, c, v) for t, r, c, v in zip(frame["table"], frame["row"], frame["column"], frame["value"])
            if t in by_table]
    return pd.DataFrame(rows, columns=["model", "train_set", "loss", "column", "value"])


def derived_tables(frame: pd.DataFrame, label: str = "") -> pd.DataFrame:
    """Tables 4.9 (best balanced-test accuracy after balanced training, per model), 4.10 (mean /
    population std over losses, per model) and 4.11 (over models, per loss), long-tailed training.
    A cell needs all of its runs (7 losses, or 4 models); with fewer it stays a dash."""
    g = grid_frame(frame)
    g = g[g["loss"].isin(LOSS_ROWS)]           # the thesis's losses; others are rows of Tables 4.1-4.8 only
    cells = []
    bal = g[(g["train_set"] == "balanced") & (g["column"] == "balanced")]
    for model, sub in bal.groupby("model"):
        if sub["loss"].nunique() == len(LOSS_ROWS):
            cells.append(("4.9", PAPER_MODEL_KEY[model], "thesis_result", sub["value"].max()))
    lt = g[g["train_set"] == "long_tailed"]
    for table, key, over, complete in (("4.10", "model", "loss", len(LOSS_ROWS)), ("4.11", "loss", "model", len(MODEL_ORDER))):
        for (who, column), sub in lt.groupby([key, "column"]):
            if sub[over].nunique() < complete:
                continue
            row = PAPER_MODEL_KEY[who] if key == "model" else who
            cells.append((table, row, f"{column}_mean", sub["value"].mean()))
            cells.append((table, row, f"{column}_std", sub["value"].std(ddof=0)))
    return ours_frame([{"table": t, "row": r, "column": c, "value": v, "label": label} for t, r, c, v in cells])


def _summary_figure(paper, ours, table, rows, path, title, footer):
    """Figures 4.1 / 4.6: mean +- std per category, one bar group per row, thesis and ours."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 3.8), sharey=True)
    for ax, (source, frame) in zip(axes, (("thesis", paper), ("ours", ours))):
        sub = frame[frame["table"] == table] if len(frame) else frame
        vals = {(r, c): v for r, c, v in zip(sub.get("row", []), sub.get("column", []), sub.get("value", []))}
        width = 0.8 / len(rows)
        for i, row in enumerate(rows):
            means = [vals.get((row, f"{c}_mean"), np.nan) for c in COLUMNS]
            stds = [vals.get((row, f"{c}_std"), np.nan) for c in COLUMNS]
            bars(ax, np.arange(len(COLUMNS)) + i * width, means, width, row,
                 missing="no run" if source == "ours" else "not in thesis", yerr=stds, capsize=2,
                 color=f"C{i}")
        ax.set_xticks(np.arange(len(COLUMNS)) + 0.4 - width / 2, COLUMNS)
        ax.set(xlabel="test category", ylabel="top-1 accuracy (%)", title=source)
        ax.yaxis.set_tick_params(labelleft=True)
    legend_outside(axes[1])
    fig.suptitle(title, fontsize=9)
    return save_figure(fig, path, footer)


def _loss_lines_figure(paper, ours, table, path, title, footer):
    """Figures 4.2-4.5: accuracy per test category, one line per loss; thesis dashed, ours solid."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, loss in enumerate(LOSS_ROWS):
        for source, frame, style in (("thesis", paper, "--"), ("ours", ours, "-")):
            sub = frame[(frame["table"] == table) & (frame["row"] == loss)] if len(frame) else frame
            vals = dict(zip(sub.get("column", []), sub.get("value", [])))
            line(ax, COLUMNS, [vals.get(c, np.nan) for c in COLUMNS], style, f"{loss} ({source})",
                 missing="no run" if source == "ours" else "not in thesis", color=colors[i % len(colors)], alpha=0.8)
    ax.set(xlabel="test category", ylabel="top-1 accuracy (%)")
    ax.set_title(title, fontsize=9)
    legend_outside(ax, ncol=2)
    return save_figure(fig, path, footer)


def _notes(preset, labels, what):
    return [what, *budget_notes(preset, labels, "the thesis")]


def write_tables(inp: ReportInput) -> Written:
    preset, paper, out = inp.preset, inp.paper, inp.out
    frames, every, first = [], [], None
    for root in inp.roots.values():
        records = read_records(root)
        first = records if first is None else first
        every += records
        per_run = ours_frame([cell for rec in records for cell in cells_from_record(rec)])
        frames.append(pd.concat([per_run, derived_tables(per_run, "\n".join(table_labels(per_run)))], ignore_index=True))
    ours = combine_seeds(frames)      # mean ± std over seeds (a derived cell: within each seed first)
    labels = table_labels(ours)
    footer = figure_footer(preset, every, "the thesis")

    for (model, train_set), table in TABLES.items():
        rows = LOSS_ROWS + sorted(set(ours.loc[ours["table"] == table, "row"]) - set(LOSS_ROWS)) if len(ours) \
            else LOSS_ROWS                      # a loss beyond the thesis's seven: its own row, no paper value
        df = comparison_table(paper, ours, table, rows, COLUMNS)
        tab_labels = table_labels(ours, table)
        what = f"Thesis Table {table}: {model}, trained on the {train_set.replace('_', '-')} set; top-1 accuracy (%)."
        stem = f"table_{table.replace('.', '_')}"
        write_table(df, out / stem, f"Table {table} ({preset} preset)", _notes(preset, tab_labels, what))
        plot_paper_vs_ours(paper, ours, table, "long_tailed", out / f"{stem}_long_tailed.png",
                           f"Table {table} long-tailed test: thesis vs ours ({preset})", rows,
                           "top-1 accuracy (%)", "loss", footer)

    models = [PAPER_MODEL_KEY[m] for m in MODEL_ORDER]
    incomplete = " A dash where any of those runs is missing."
    for table, rows, what in (
            ("4.9", models, "Best balanced-test accuracy over the 7 losses after balanced training, per model (%); "
                            "the thesis's published-benchmark column has no 'ours'." + incomplete),
            ("4.10", SUMMARY_MODEL_ROWS, "Mean and population std over the 7 losses, long-tailed training (%)." + incomplete),
            ("4.11", SUMMARY_LOSS_ROWS, "Mean and population std over the 4 models, long-tailed training (%)." + incomplete)):
        df = comparison_table(paper, ours, table, rows)
        write_table(df, out / f"table_{table.replace('.', '_')}", f"Table {table} ({preset} preset)",
                    _notes(preset, labels, what))

    _summary_figure(paper, ours, "4.10", SUMMARY_MODEL_ROWS, out / "figure_4_1.png",
                    f"Figure 4.1: mean +- std over losses per model, CIFAR-100-LT ({preset})", footer)
    for model, figure in FIGURE_OF_MODEL.items():
        _loss_lines_figure(paper, ours, TABLES[(model, "long_tailed")], out / f"figure_{figure.replace('.', '_')}.png",
                           f"Figure {figure}: {model}, long-tailed training, per test category ({preset})",
                           footer)
    _summary_figure(paper, ours, "4.11", SUMMARY_LOSS_ROWS, out / "figure_4_6.png",
                    f"Figure 4.6: mean +- std over models per loss, CIFAR-100-LT ({preset})", footer)
    headline = {Path(r["run_dir"]).name: r for r in first if r["config"]["data"]["train_set"] == "long_tailed"
                and r["config"]["loss"]["name"] in ("ce", "bs")}
    plot_curves(dict(sorted(headline.items())), out / "curves.png",
                f"Training curves, long-tailed training, CE and Balanced Softmax ({preset}; first seed)", footer)
    return Written(f"wrote Tables 4.1-4.11 and Figures 4.1-4.6 from {len(every)} runs", ours)


def main(argv=None):
    report_main(STUDY, write_tables, __doc__, argv)


if __name__ == "__main__":
    main()
