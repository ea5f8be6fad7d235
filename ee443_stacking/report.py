"""Seed 002's results table, Fig 1 and Fig 2 (paper | ours | diff), the sweeps behind them, the
ensembles' parameter counts and ECE, and Figures 4-6 and the staircase chart.

    python -m ee443_stacking.report --preset smoke
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from common.config import load_config
from common.models import build_model
from common.report import (DASH, _pyplot, bars, budget_label, budget_notes, combine_seeds, comparison_table, figure_footer,
                           legend_outside, model_lines, note_single_point, ours_frame, plot_curves, save_figure,
                           table_labels, write_table)
from common.runstore import read_records
from common.study import ReportInput, Written, report_main

from .grid import BASE, ENSEMBLES, LEARNED, STUDY, best_of, grid_plan, hp_tag

DATASETS = ["full", "0.1", "0.02", "0.005"]
COMBINATION = {"mean of softmax outputs": "mean (seed)",
               "logistic regression on out-of-fold member probabilities": "learned (beyond the seed)"}
PROXIES = ("cpu_proxy", "lite_proxy")     # reconstructed CIFAR-10 stand-ins for CIFAR-50
COLUMNS = ["baseline", "artificial_balancing", "weighted_loss", "bagging_wl", "stacking", "stacking_wl"]


def _acc(rec) -> float:
    return 100 * rec["metrics"]["test"]["accuracy"]


def runs_of(records: dict, ds: str, prefix: str) -> dict:
    """The records of dataset ``ds`` whose run name starts with ``prefix``, by name."""
    return {n.split("/", 1)[1]: r for n, r in records.items() if n.startswith(f"{ds}/{prefix}")}


SWEPT = {"baseline": "__ce__", "artificial_balancing": "__ab", "weighted_loss": "__wl_"}   # run-name infix per column


def swept_runs(records: dict, ds: str, column: str, b0: str, tag: str | None = None) -> dict:
    """The runs a swept column chooses from: the sweep points (baseline), or the thresholds /
    schemes at the chosen point ``tag``."""
    found = runs_of(records, ds, f"{b0}{SWEPT[column]}")
    return found if column == "baseline" else {n: r for n, r in found.items() if n.endswith(f"__{tag}")}


def selections(records: dict, chosen: dict, b0: str) -> dict:
    """``(dataset, column) -> (chosen run, oracle run)`` of every swept column: chosen on the
    validation set where the runs have one (else on the test set), and the test set's best."""
    out = {}
    for ds, hp in chosen.items():
        tag = hp_tag(hp["batch_size"], hp["lr"])
        for column in SWEPT:
            found = swept_runs(records, ds, column, b0, tag)
            if found:
                out[ds, column] = best_of(found), best_of(found, "test")
    return out


def result_cells(records: dict, chosen: dict, b0: str) -> list[dict]:
    """Ours for the results table: the swept columns (baseline = the best sweep point, artificial
    balancing and weighted loss = the best of their sweeps, as the seed swept them) at the run
    :func:`selections` chooses; the ensembles as run."""
    cells = []
    picked = selections(records, chosen, b0)
    for ds in chosen:
        values = {column: records[f"{ds}/{picked[ds, column][0]}"] for column in SWEPT if (ds, column) in picked}
        values.update({row: records.get(f"{ds}/{row}") for row in ENSEMBLES})
        cells += [{"table": "results", "row": ds, "column": c, "value": _acc(r), "label": budget_label(r)}
                  for c, r in values.items() if r is not None]
    by = {(c["row"], c["column"]): c["value"] for c in cells}
    for column in COLUMNS[1:]:
        gains = [by[ds, column] - by[ds, "baseline"] for ds in chosen if ds != "full" and (ds, column) in by
                 and (ds, "baseline") in by]
        if gains and len(gains) == len([d for d in chosen if d != "full"]):
            behind = {c["label"] for c in cells if c["row"] != "full" and c["column"] in (column, "baseline")}
            cells.append({"table": "results", "row": "average_improvement", "column": column,
                          "value": float(np.mean(gains)), "label": "\n".join(sorted(behind))})
    return cells


def fig_cells(records: dict, chosen: dict, base_hp: tuple, b0: str) -> list[dict]:
    cells = []
    for name, rec in runs_of(records, "full", "").items():      # Fig 1: the architectures at the fixed point
        model, variant, tag = name.split("__")
        if variant == "ce" and tag == hp_tag(*base_hp):
            cells.append({"table": "fig1", "row": model, "column": "accuracy", "value": _acc(rec),
                          "label": budget_label(rec)})
    for ds, hp in chosen.items():                                 # Fig 2: the best sweep point per dataset
        rec = records.get(f"{ds}/{b0}__ce__{hp_tag(hp['batch_size'], hp['lr'])}")
        if rec:
            cells.append({"table": "fig2", "row": ds, "column": "accuracy", "value": _acc(rec), "label": budget_label(rec)})
    return cells


def _validation(rec) -> str:
    return f"{100 * rec['metrics']['validation']['accuracy']:.2f}" if "validation" in rec["metrics"] else DASH


def sweep_table(records: dict, ds: str, prefix: str, what: str) -> pd.DataFrame:
    found = runs_of(records, ds, prefix)
    return pd.DataFrame({what: [n.split("__")[1] + " " + n.split("__")[2] for n in found],
                         "validation top-1 (%)": [_validation(r) for r in found.values()],
                         "test top-1 (%)": [f"{_acc(r):.2f}" for r in found.values()],
                         "ECE (%)": [f"{100 * r['metrics']['test']['ece']:.2f}" for r in found.values()]}
                        ).set_index(what)


def selection_table(records: dict, picked: dict) -> pd.DataFrame:
    """Per swept column: the run chosen (and on which set) and the test set's best, the oracle."""
    rows = []
    for (ds, column), (name, oracle) in picked.items():
        rec, best = records[f"{ds}/{name}"], records[f"{ds}/{oracle}"]
        rows.append({"dataset, column": f"{ds}, {column}", "chosen on": "validation" if "validation" in rec["metrics"]
                     else "test (as the seed)", "chosen run": name, "its test top-1 (%)": f"{_acc(rec):.2f}",
                     "oracle: best on test": oracle, "oracle test top-1 (%)": f"{_acc(best):.2f}"})
    return pd.DataFrame(rows).set_index("dataset, column") if rows else pd.DataFrame()


def imbalance_notes(records: dict, chosen: dict) -> list[str]:
    """The long-tailed sets as selected: head and tail counts and the real ratio (int() rounding
    makes 0.005 of 500 two images, 0.004)."""
    notes = []
    for ds in chosen:
        rec = next((r for n, r in records.items() if n.startswith(f"{ds}/") and "group_counts" in r), None)
        if rec is not None and ds != "full":
            head, tail = max(rec["group_counts"]), min(rec["group_counts"])
            notes.append(f"dataset {ds}: {head} down to {tail} training images per class, a real ratio of "
                         f"{tail / head:.4g} (LDAM-DRW's int() rounding of {head} x {ds})")
    return notes


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


def loss_curves(records: dict, ds: str, b0: str, path, footer):
    """Fig 4: training loss per epoch of the weighting schemes at the chosen sweep point, side by
    side (the seed draws a pair of schemes per hyper-parameter condition; the schemes are run at
    the chosen point only, so ours is that condition's curves)."""
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    epochs = []
    for name, rec in runs_of(records, ds, f"{b0}__wl_").items():
        hist = rec["history"]
        epochs += [h["epoch"] for h in hist]
        ax.plot([h["epoch"] for h in hist], [h["train_loss"] for h in hist], marker="o", label=name.split("__")[1])
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss (weighted)")
    ax.set_title(f"Fig 4: weighted-loss schemes at the chosen sweep point, imbalance {ds}", fontsize=9)
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


def write_tables(inp: ReportInput) -> Written:
    preset, paper, out = inp.preset, inp.paper, inp.out
    base, plan = load_config(BASE, preset).train, grid_plan(preset)
    b0 = plan.base_model
    per_seed = []
    for runs in inp.roots.values():
        chosen = json.loads((runs / "chosen.json").read_text()) if (runs / "chosen.json").exists() else {}
        per_seed.append(({str(Path(r["run_dir"]).relative_to(runs)): r for r in read_records(runs)}, chosen))
    fixed_point = (base.batch_size, base.lr)
    sizes = params_millions(sorted(set(paper.loc[paper["table"] == "fig1", "row"]) | {*plan.stack, "resnet50d"}))
    size_cells = [{"table": "fig1", "row": m, "column": "params_millions", "value": v, "label": ""}
                  for m, v in sizes.items()]
    ours = combine_seeds([ours_frame(result_cells(records, chosen, b0) + fig_cells(records, chosen, fixed_point, b0)
                                     + size_cells) for records, chosen in per_seed])
    records, chosen = per_seed[0]   # per-run tables and figures: the first seed (the configs' own, when run)
    labels = table_labels(ours)
    notes = budget_notes(preset, labels, "seed 002")
    models = model_lines([r for recs, _ in per_seed for r in recs.values()])
    proxy = preset in PROXIES
    if proxy:
        notes.append("PROXY: reconstructed CIFAR-10 (10 classes) -- it checks the seed's orderings, not its numbers")
    notes += models
    footer = figure_footer(preset, [r for recs, _ in per_seed for r in recs.values()], "seed 002",
                           ("PROXY. " if proxy else "") + " ".join(models))
    picked = selections(records, chosen, b0)
    chosen_on = sorted({"validation" if "validation" in records[f"{ds}/{name}"]["metrics"] else "test"
                        for (ds, _), (name, _) in picked.items()})
    selection_note = ("swept columns chosen on the validation set (the last images of each training class, held "
                      "out: data.val_per_class); the test set's best, an oracle, is in `selection`"
                      if chosen_on == ["validation"] else
                      "swept columns chosen on the TEST set, as the seed did (these runs held out no validation "
                      "images): an optimistic oracle" if chosen_on == ["test"] else
                      "swept columns chosen on the validation set where the runs have one, else on the test set")

    write_table(comparison_table(paper, ours, "results", DATASETS + ["average_improvement"], COLUMNS),
                out / "results", f"Seed 002 results table: test top-1 (%) [{preset}]",
                notes + ["baseline: the best point of the batch-size / learning-rate sweep; artificial balancing and "
                         "weighted loss: the best of their sweeps (the seed swept both); ensembles: mean of the "
                         f"members' softmax. {selection_note}."] + imbalance_notes(records, chosen) + [
                         f"average_improvement: mean over the long-tailed sets of this preset "
                         f"({', '.join(d for d in chosen if d != 'full') or 'none'}; the seed's: 0.1, 0.02, 0.005) "
                         f"of (column - baseline)."])
    if picked:
        write_table(selection_table(records, picked), out / "selection",
                    f"Swept columns: the run chosen and the test set's best (oracle) [{preset}]", notes)
    write_table(comparison_table(paper, ours, "fig1", None, ["accuracy", "params_millions"]), out / "fig1",
                f"Fig 1: architectures on the full CIFAR-50, fixed batch size and learning rate (%) [{preset}]",
                notes + ["params_millions, ours: counted from each model as built here with a 50-way classifier "
                         "(the seed prints rounded millions)"])
    write_table(comparison_table(paper, ours, "fig2", DATASETS, ["accuracy"]), out / "fig2",
                f"Fig 2: baseline (best sweep point) per dataset (%) [{preset}]", notes)
    for ds in chosen:
        for prefix, what, stem in ((f"{b0}__ce__", "sweep point", "sweep"),
                                   (f"{b0}__ab", "threshold", "artificial_balancing"),
                                   (f"{b0}__wl_", "scheme", "weighted_loss")):
            table = sweep_table(records, ds, prefix, what)
            if len(table):
                single = [] if len(table) > 1 else ["a single point: nothing was swept in this preset"]
                write_table(table, out / f"{stem}_{ds}", f"{stem.replace('_', ' ')} sweep, dataset {ds} [{preset}]",
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
                    f"[{preset}]", notes + [
                        "mean: the seed's equal-weight mean of the members' softmax outputs. learned (beyond the seed): "
                        "multinomial logistic regression on the members' concatenated softmax outputs, fitted on "
                        "out-of-fold probabilities of the training set (each member re-trained once per fold without "
                        "that fold; class weights balanced), applied to the test outputs of the members trained on "
                        "the whole set; test labels only score it."])
    table = pd.DataFrame({"parameters (M, 50 classes)": [f"{sum(sizes[m] for m in ms):.2f}" for ms in (
        plan.stack, [b0] * 4, ["resnet50d"])]},
        index=[f"stacking: {' + '.join(plan.stack)}", f"bagging: 4 x {b0}", "resnet50d (the seed's comparison)"])
    table.index.name = "model"
    write_table(table, out / "parameters", "Parameter counts: the ensembles against resnet50d",
                ["counted from the models as built here (timm / torchvision), 50-way classifiers"])
    staircase(paper, ours, out / "staircase.png", footer)
    for ds in chosen:
        if runs_of(records, ds, f"{b0}__wl_"):
            loss_curves(records, ds, b0, out / f"fig4_weighted_loss_{ds}.png", footer)
        bag = next((r for n, r in runs_of(records, ds, f"{b0}__bag0_").items()), None)
        if bag is not None:
            histograms(bag["group_counts"], bag["train_counts"], out / f"fig5_6_bagging_{ds}.png",
                       plan.bag_threshold, footer)
    for ds, hp in chosen.items():
        tag = hp_tag(hp["batch_size"], hp["lr"])
        members = {f"{m} {v}": records.get(f"{ds}/{m}__{v}__{tag}") for v in ("ce", "wl_ins") for m in plan.stack}
        plot_curves({k: r for k, r in members.items() if r}, out / f"curves_{ds}.png",
                    f"Training curves of the stacking members, dataset {ds} (CE and INS-weighted)", footer)
    return Written(f"wrote the results table, Figs 1 / 2, sweeps, ensembles and figures from {len(records)} runs", ours)


def main(argv=None):
    report_main(STUDY, write_tables, __doc__, argv)


if __name__ == "__main__":
    main()
