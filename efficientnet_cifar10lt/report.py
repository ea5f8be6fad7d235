"""Seed 000's comparison (paper | ours | diff), every row's per-class precision / recall / F1,
confusion matrices and the per-class recall chart, from one preset's records.

    python -m efficientnet_cifar10lt.report --preset smoke
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from common.report import (_pyplot, bars, budget_label, budget_notes, combine_seeds, comparison_table, figure_footer,
                           legend_outside, model_lines, note_single_point, ours_frame, plot_confusion, plot_curves,
                           save_figure, table_labels, write_table)
from common.runstore import read_records
from common.study import ReportInput, Written, report_main

from .grid import IN_SEED, ROW_LABELS, STUDY

COLUMNS = ["accuracy", "accuracy_body", "weighted_f1"]   # macro F1 is in the summary table
SUMMARY = ["accuracy", "macro_f1", "weighted_f1", "many", "medium", "few", "ece"]
RECALL_ROWS = {"baseline": "Figure 1: baseline", "reweight": "Figure 2: reweight",
               "decoupled_wce": "Figure 3: decoupled, modified CE"}


def cells(name: str, rec: dict) -> list[dict]:
    m = rec["metrics"]["test"]
    values = {"accuracy": m["accuracy"], "accuracy_body": m["accuracy"], "weighted_f1": m["weighted_f1"],
              "macro_f1": m["macro_f1"]}
    return [{"table": "comparison", "row": name, "column": c, "value": 100 * v, "label": budget_label(rec)}
            for c, v in values.items()]


def _label(name: str) -> str:
    return ROW_LABELS[name] + ("" if name in IN_SEED else " [beyond the seed]")


def per_class_table(rec: dict) -> pd.DataFrame:
    m = rec["metrics"]["test"]
    df = pd.DataFrame({"train images": rec["train_counts"], "precision": m["precision"], "recall": m["recall"],
                       "f1": m["f1"], "test images": m["support"]}, index=rec["classes"])
    df.index.name = "class (head to tail)"
    for c in ("precision", "recall", "f1"):
        df[c] = (100 * df[c]).map(lambda v: f"{v:.2f}")
    return df


def recall_figure(records: dict, path: Path, title: str, footer: str):
    """Per-class recall, head to tail, baseline vs reweight vs decoupled modified CE; a row
    without a run is a hatched "no run" slot in every class, never drawn as zero."""
    plt = _pyplot()
    classes = next(iter(records.values()))["classes"] if records else []
    fig, ax = plt.subplots(figsize=(9, 4))
    width = 0.8 / len(RECALL_ROWS)
    for i, name in enumerate(RECALL_ROWS):
        recall = 100 * np.asarray(records[name]["metrics"]["test"]["recall"]) if name in records \
            else np.full(len(classes), np.nan)
        bars(ax, np.arange(len(classes)) + i * width, recall, width, ROW_LABELS[name], color=f"C{i}")
    ax.set_xticks(np.arange(len(classes)) + 0.4 - width / 2, classes, rotation=30, ha="right")
    ax.set_xlabel("class, most to fewest training images")
    ax.set_ylabel("recall (%)")
    ax.set_ylim(0, 105)
    ax.set_title(title, fontsize=9)
    if not records:
        ax.text(0.5, 0.5, "no runs yet", ha="center", va="center", transform=ax.transAxes, gid="missing")
    legend_outside(ax)
    return save_figure(fig, path, footer)


def tau_figure(record: dict, path: Path, footer: str):
    plt = _pyplot()
    taus, accs = [float(t) for t in record["tau_sweep"]], [100 * a for a in record["tau_sweep"].values()]
    fig, ax = plt.subplots(figsize=(5, 3.4))
    ax.plot(taus, accs, marker="o")
    ax.set_xlabel("tau")
    ax.set_ylabel("test top-1 (%)")
    ax.set_title("tau-normalisation of stage 1's classifier", fontsize=9)
    note_single_point(ax, taus, "sweep point")
    return save_figure(fig, path, footer)


def write_tables(inp: ReportInput) -> Written:
    preset, paper, out = inp.preset, inp.paper, inp.out
    by_seed = []
    for root in inp.roots.values():
        found = {Path(r["run_dir"]).name: r for r in read_records(root)}
        by_seed.append({name: found[name] for name in ROW_LABELS if name in found})     # the grid's row order
    ours = combine_seeds([ours_frame([c for name, rec in seed.items() for c in cells(name, rec)]) for seed in by_seed])
    records = by_seed[0]           # per-run tables and figures: the first seed (the configs' own, when run)
    labels = table_labels(ours)
    models = model_lines([r for seed in by_seed for r in seed.values()])
    notes = budget_notes(preset, labels, "seed 000") + models
    footer = figure_footer(preset, [r for seed in by_seed for r in seed.values()], "seed 000", " ".join(models))

    df = comparison_table(paper, ours, "comparison", list(ROW_LABELS), COLUMNS)
    df.index = [_label(r) for r in df.index]
    df.index.name = "row"
    write_table(df, out / "comparison", f"Seed 000: EfficientNet-B0 on CIFAR-10-LT, test set (%) [{preset}]",
                notes + ["accuracy: the abstract's baseline number; accuracy_body: the body's (the seed gives both). "
                         "The seed reports no other numbers: dashes.",
                         "Rows marked [beyond the seed] are Kang et al. 2020's decoupling baselines on the same stage 1."])

    summary = pd.DataFrame([{k: (f"{100 * rec['metrics']['test'][k]:.2f}" if rec["metrics"]["test"][k] is not None
                                 and not np.isnan(rec["metrics"]["test"][k]) else "–") for k in SUMMARY}
                            for rec in records.values()], index=[_label(n) for n in records], columns=SUMMARY)
    summary.index.name = "row"
    write_table(summary, out / "summary", f"Every row: top-1, F1, many / medium / few, ECE (%) [{preset}]",
                notes + ["many > 100, medium 20-100, few < 20 training images; '–' where a group has no class"])

    for name, rec in records.items():
        write_table(per_class_table(rec), out / f"per_class_{name}",
                    f"{_label(name)}: per-class precision / recall / F1 (%) [{preset}]",
                    budget_notes(preset, [budget_label(rec)], "seed 000"))
        plot_confusion(rec["metrics"]["test"]["confusion_matrix"], rec["classes"], out / f"confusion_{name}.png",
                       f"{RECALL_ROWS.get(name, _label(name))}: row-normalised confusion matrix", footer)
    recall_figure(records, out / "recall_per_class.png",
                  "Per-class recall, baseline vs reweight vs decoupled modified CE", footer)
    if "tau_norm_oracle" in records:
        tau_figure(records["tau_norm_oracle"], out / "tau_sweep.png", footer)
    plot_curves({ROW_LABELS[n]: records[n] for n in ("baseline", "reweight", "stage1", "decoupled_wce") if n in records},
                out / "curves.png", "Training curves of the headline rows", footer)
    return Written(f"wrote the comparison, summary, per-class tables and figures from {len(records)} runs", ours,
                   tuple((table, row, column) for row in ROW_LABELS for column in COLUMNS for table in ("comparison",)))


def main(argv=None):
    report_main(STUDY, write_tables, __doc__, argv)


if __name__ == "__main__":
    main()
