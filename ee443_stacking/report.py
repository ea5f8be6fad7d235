"""Seed 002's results table, Fig 1 and Fig 2 (paper | ours | diff), the sweeps behind them, the
ensembles' parameter counts and ECE, and Figures 4-6 and the staircase chart.

    python -m ee443_stacking.report --preset smoke
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from common.config import load_config, preset_names
from common.engine import read_records
from common.models import build_model
from common.report import (_pyplot, bars, budget_label, budget_notes, combine_seeds, comparison_table, figure_footer,
                           legend_outside, load_paper_numbers, note_single_point, ours_frame, plot_curves,
                           report_parser, save_figure, seed_roots, write_table)

from .grid import BASE, ENSEMBLES, LEARNED, grid_plan, hp_tag

HERE = Path(__file__).parent
RESULTS = Path("results/ee443_stacking")
DATASETS = ["full", "0.1", "0.02", "0.005"]
COMBINATION = {"mean of softmax outputs": "mean (seed)",
               "logistic regression on out-of-fold member probabilities": "learned (beyond the seed)"}
COLUMNS = ["baseline", "artificial_balancing", "weighted_loss", "bagging_wl", "stacking", "stacking_wl"]


def _acc(rec) -> float:
    return 100 * rec["metrics"]["test"]["accuracy"]


def runs_of(records: dict, ds: str, prefix: str) -> dict:
    """The records of dataset ``ds`` whose run name starts with ``prefix``, by name."""
    return {n.split("/", 1)[1]: r for n, r in records.items() if n.startswith(f"{ds}/{prefix}")}


def result_cells(records: dict, chosen: dict) -> list[dict]:
    """Ours for the results table: baseline = the best sweep point; artificial balancing and
    weighted loss = the best of their sweeps (as the seed swept them); the ensembles as run."""
    cells = []
    for ds, hp in chosen.items():
        tag = hp_tag(hp["batch_size"], hp["lr"])
        values = {"baseline": records.get(f"{ds}/efficientnet_b0__ce__{tag}")}
        for column, prefix in (("artificial_balancing", "efficientnet_b0__ab"), ("weighted_loss", "efficientnet_b0__wl_")):
            found = [r for n, r in runs_of(records, ds, prefix).items() if n.endswith(tag)]
            values[column] = max(found, key=_acc) if found else None
        values.update({row: records.get(f"{ds}/{row}") for row in ENSEMBLES})
        cells += [{"table": "results", "row": ds, "column": c, "value": _acc(r), "label": budget_label(r)}
                  for c, r in values.items() if r is not None]
    by = {(c["row"], c["column"]): c["value"] for c in cells}
    for column in COLUMNS[1:]:
        gains = [by[ds, column] - by[ds, "baseline"] for ds in chosen if ds != "full" and (ds, column) in by
                 and (ds, "baseline") in by]
        if gains and len(gains) == len([d for d in chosen if d != "full"]):
            cells.append({"table": "results", "row": "average_improvement", "column": column,
                          "value": float(np.mean(gains)), "label": ""})
    return cells


def fig_cells(records: dict, chosen: dict, base_hp: tuple) -> list[dict]:
    cells = []
    for name, rec in runs_of(records, "full", "").items():      # Fig 1: the architectures at the fixed point
        model, variant, tag = name.split("__")
        if variant == "ce" and tag == hp_tag(*base_hp):
            cells.append({"table": "fig1", "row": model, "column": "accuracy", "value": _acc(rec),
                          "label": budget_label(rec)})
    for ds, hp in chosen.items():                                 # Fig 2: the best sweep point per dataset
        rec = records.get(f"{ds}/efficientnet_b0__ce__{hp_tag(hp['batch_size'], hp['lr'])}")
        if rec:
            cells.append({"table": "fig2", "row": ds, "column": "accuracy", "value": _acc(rec), "label": budget_label(rec)})
    return cells


def sweep_table(records: dict, ds: str, prefix: str, what: str) -> pd.DataFrame:
    found = runs_of(records, ds, prefix)
    return pd.DataFrame({what: [n.split("__")[1] + " " + n.split("__")[2] for n in found],
                         "test top-1 (%)": [f"{_acc(r):.2f}" for r in found.values()],
                         "ECE (%)": [f"{100 * r['metrics']['test']['ece']:.2f}" for r in found.values()]}
                        ).set_index(what)


def params_millions(models) -> dict:
    return {m: sum(p.numel() for p in build_model(m, 50).parameters()) / 1e6 for m in models}


def staircase(paper, ours, path, footer):
    """Baseline vs stacking / WL per imbalance ratio, paper and ours."""
    plt = _pyplot()
    ratios = DATASETS[1:]
    fig, ax = plt.subplots(figsize=(7, 3.8))
    x = np.arange(len(ratios))
    for i, (source, frame, column) in enumerate((("paper baseline", paper, "baseline"),
                                                 ("paper stacking / WL", paper, "stacking_wl"),
                                                 ("ours baseline", ours, "baseline"),
                                                 ("ours stacking / WL", ours, "stacking_wl"))):
        sub = frame[(frame["table"] == "results") & (frame["column"] == column)] if len(frame) else frame
        vals = dict(zip(sub.get("row", []), sub.get("value", [])))
        bars(ax, x + (i - 1.5) * 0.2, [vals.get(r, np.nan) for r in ratios], 0.2, source,
             missing="no run" if source.startswith("ours") else "not in seed")
    ax.set_xticks(x, ratios)
    ax.set_xlabel("imbalance ratio (dataset)")
    ax.set_ylabel("test top-1 (%)")
    ax.set_title("Baseline vs stacking / WL", fontsize=9)
    legend_outside(ax)
    return save_figure(fig, path, footer)


def loss_curves(records: dict, ds: str, path, footer):
    """Fig 4: training loss per epoch of the weighting schemes, side by side."""
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    epochs = []
    for name, rec in runs_of(records, ds, "efficientnet_b0__wl_").items():
        hist = rec["history"]
        epochs += [h["epoch"] for h in hist]
        ax.plot([h["epoch"] for h in hist], [h["train_loss"] for h in hist], marker="o", label=name.split("__")[1])
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss (weighted)")
    ax.set_title(f"Fig 4: weighted-loss schemes, imbalance {ds}", fontsize=9)
    note_single_point(ax, epochs, "epoch")
    legend_outside(ax)
    return save_figure(fig, path, footer)


def histograms(original, bag, path, threshold, footer):
    """Figs 5 / 6: images per class of the long-tailed set and of one bag."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4), sharey=True)
    for ax, counts, title in ((axes[0], original, "training set"), (axes[1], bag, "bag 0 (one learner)")):
        ax.bar(np.arange(len(counts)), counts)
        ax.axhline(threshold, color="red", linestyle=":", label=f"threshold {threshold}")
        ax.set(xlabel="class (head to tail)", ylabel="training images")
        ax.set_title(title, fontsize=8)
        ax.yaxis.set_tick_params(labelleft=True)
    legend_outside(axes[1])
    fig.suptitle("Figs 5 / 6: balanced bagging", fontsize=9)
    return save_figure(fig, path, footer)


def main(argv=None):
    args = report_parser(__doc__, preset_names(BASE), RESULTS).parse_args(argv)
    paper = load_paper_numbers(HERE / "paper_numbers.csv")
    base = load_config(BASE, args.preset).train
    per_seed = []
    for runs in seed_roots(args.results / "runs", args.preset, args.seeds, base.seed).values():
        chosen = json.loads((runs / "chosen.json").read_text()) if (runs / "chosen.json").exists() else {}
        per_seed.append(({str(Path(r["run_dir"]).relative_to(runs)): r for r in read_records(runs)}, chosen))
    fixed_point = (base.batch_size, base.lr)
    ours = combine_seeds([ours_frame(result_cells(records, chosen) + fig_cells(records, chosen, fixed_point))
                          for records, chosen in per_seed])
    records, chosen = per_seed[0]   # per-run tables and figures: the first seed (the configs' own, when run)
    out = args.results / args.preset
    out.mkdir(parents=True, exist_ok=True)
    labels = sorted({lab for lab in ours["label"] if lab}) if len(ours) else []
    notes = budget_notes(args.preset, labels, "seed 002")
    if args.preset == "cpu_proxy":
        notes.append("PROXY: reconstructed CIFAR-10 (10 classes), random init, 32 px -- it checks the seed's "
                     "orderings, not its numbers")
    footer = figure_footer(args.preset, [r for recs, _ in per_seed for r in recs.values()], "seed 002",
                           "PROXY: random init, 32 px." if args.preset == "cpu_proxy" else "")

    write_table(comparison_table(paper, ours, "results", DATASETS + ["average_improvement"], COLUMNS),
                out / "results", f"Seed 002 results table: test top-1 (%) [{args.preset}]",
                notes + ["baseline: the best point of the batch-size / learning-rate sweep; artificial balancing and "
                         "weighted loss: the best of their sweeps (the seed swept both; selection on the test set, as "
                         "the seed, since CIFAR-50 has no validation split); ensembles: mean of the members' softmax.",
                         f"average_improvement: mean over the long-tailed sets of this preset "
                         f"({', '.join(d for d in chosen if d != 'full') or 'none'}; the seed's: 0.1, 0.02, 0.005) "
                         f"of (column - baseline)."])
    write_table(comparison_table(paper, ours, "fig1", None, ["accuracy"]), out / "fig1",
                f"Fig 1: architectures on the full CIFAR-50, fixed batch size and learning rate (%) [{args.preset}]", notes)
    write_table(comparison_table(paper, ours, "fig2", DATASETS, ["accuracy"]), out / "fig2",
                f"Fig 2: baseline (best sweep point) per dataset (%) [{args.preset}]", notes)
    for ds in chosen:
        for prefix, what, stem in (("efficientnet_b0__ce__", "sweep point", "sweep"),
                                   ("efficientnet_b0__ab", "threshold", "artificial_balancing"),
                                   ("efficientnet_b0__wl_", "scheme", "weighted_loss")):
            table = sweep_table(records, ds, prefix, what)
            if len(table):
                single = [] if len(table) > 1 else ["a single point: nothing was swept in this preset"]
                write_table(table, out / f"{stem}_{ds}", f"{stem.replace('_', ' ')} sweep, dataset {ds} [{args.preset}]",
                            notes + single)
    ens = {f"{ds}/{row}": records[f"{ds}/{row}"] for ds in chosen for row in (*ENSEMBLES, *LEARNED.values())
           if f"{ds}/{row}" in records}
    if ens:
        table = pd.DataFrame({"combination": [COMBINATION[r["config"]["ensemble"]] for r in ens.values()],
                              "members": [len(r["config"]["members"]) for r in ens.values()],
                              "test top-1 (%)": [f"{_acc(r):.2f}" for r in ens.values()],
                              "ECE (%)": [f"{100 * r['metrics']['test']['ece']:.2f}" for r in ens.values()]},
                             index=list(ens))
        table.index.name = "ensemble"
        write_table(table, out / "ensembles", f"Ensembles: accuracy and ECE [beyond the seed: ECE, learned stackers] "
                    f"[{args.preset}]", notes + [
                        "mean: the seed's equal-weight mean of the members' softmax outputs. learned (beyond the seed): "
                        "multinomial logistic regression on the members' concatenated softmax outputs, fitted on "
                        "out-of-fold probabilities of the training set (each member re-trained once per fold without "
                        "that fold; class weights balanced), applied to the test outputs of the members trained on "
                        "the whole set; test labels only score it."])
    sizes = params_millions(["efficientnet_b0", "efficientnet_b1", "efficientnet_b2", "resnet50d"])
    table = pd.DataFrame({"parameters (M, 50 classes)": [f"{sum(sizes[m] for m in ms):.2f}" for ms in (
        ["efficientnet_b0", "efficientnet_b1", "efficientnet_b2"], ["efficientnet_b0"] * 4, ["resnet50d"])]},
        index=["stacking: b0 + b1 + b2", "bagging: 4 x b0", "resnet50d (the seed's comparison)"])
    table.index.name = "model"
    write_table(table, out / "parameters", "Parameter counts: the ensembles against resnet50d",
                ["counted from the models as built here (timm / torchvision), 50-way classifiers"])
    staircase(paper, ours, out / "staircase.png", footer)
    for ds in chosen:
        if runs_of(records, ds, "efficientnet_b0__wl_"):
            loss_curves(records, ds, out / f"fig4_weighted_loss_{ds}.png", footer)
        bag = next((r for n, r in runs_of(records, ds, "efficientnet_b0__bag0_").items()), None)
        if bag is not None:
            histograms(bag["group_counts"], bag["train_counts"], out / f"fig5_6_bagging_{ds}.png",
                       grid_plan(args.preset).bag_threshold, footer)
    for ds, hp in chosen.items():
        tag = hp_tag(hp["batch_size"], hp["lr"])
        members = {f"{m} {v}": records.get(f"{ds}/{m}__{v}__{tag}") for v in ("ce", "wl_ins") for m in grid_plan(args.preset).stack}
        plot_curves({k: r for k, r in members.items() if r}, out / f"curves_{ds}.png",
                    f"Training curves of the stacking members, dataset {ds} (CE and INS-weighted)", footer)
    print(f"wrote the results table, Figs 1 / 2, sweeps, ensembles and figures from {len(records)} runs to {out}")


if __name__ == "__main__":
    main()
