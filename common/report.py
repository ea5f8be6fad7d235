"""Paper-vs-ours tables and plots from run records and a per-study paper-numbers file.

A paper-numbers file is a CSV ``table,row,column,value,source`` (percent). Our numbers
come as the same long format with a ``label`` saying under which budget they were measured
(``ours_frame``). ``comparison_table`` lays one paper table out as rows x columns with
``paper | ours | diff`` per column; a cell without a run shows a dash, never a number.
``write_table`` writes a comparison wider than 12 columns as two narrow tables (ours with the
diff in parentheses, then the paper). Every figure carries a footer naming its budget and data
(``figure_footer``) and shows a missing run as a marker, never as an empty slot like a zero.
"""
from __future__ import annotations

import argparse
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd

from .cli import ArgumentParser, seed_list
from .data.longtail import GROUP_NAMES
from .models.lite import STANDS_IN_FOR

DASH = "–"


def load_paper_numbers(path) -> pd.DataFrame:
    df = pd.read_csv(path, dtype={"table": str, "row": str, "column": str})
    missing = {"table", "row", "column", "value", "source"} - set(df.columns)
    if missing:
        raise ValueError(f"{path}: paper-numbers file lacks columns {sorted(missing)}")
    return df


def ours_frame(cells: list[dict]) -> pd.DataFrame:
    """``cells``: dicts with table, row, column, value (percent) and label (budget)."""
    cols = ["table", "row", "column", "value", "label"]
    return pd.DataFrame(cells, columns=cols).astype({"table": str, "row": str, "column": str})


def report_parser(doc: str, presets, results: Path | None = None) -> argparse.ArgumentParser:
    """A study report's command line: ``--preset`` (one of ``presets``), ``--results`` (when the
    study takes one; default ``results``) and ``--seeds``."""
    parser = ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--preset", required=True, choices=presets)
    if results is not None:
        parser.add_argument("--results", type=Path, default=results, help="holds runs/<preset>/; tables go to <preset>/")
    parser.add_argument("--seeds", type=seed_list, default=None, help="the training seeds to combine (default: all run)")
    return parser


def combine_seeds(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """One 'ours' frame per seed -> one frame: ``value`` the mean over the seeds that have the
    cell, ``std`` their sample standard deviation (NaN for one), ``n`` how many, ``label`` their
    budget labels (one per line)."""
    frames = [f for f in frames if len(f)]
    if not frames:
        return ours_frame([]).assign(std=[], n=[])
    cells = pd.concat(frames, ignore_index=True)
    grouped = cells.groupby(["table", "row", "column"], sort=False)
    out = grouped["value"].agg(value="mean", std="std", n="count").reset_index()
    out["label"] = grouped["label"].agg(lambda labels: "\n".join(sorted(set(labels)))).to_numpy()
    return out


def budget_label(record: dict) -> str:
    """One line naming how a run was measured: preset, epochs, data, device, date."""
    return (f"preset={record.get('preset') or 'custom'}, epochs={record.get('epochs')}, "
            f"data={record.get('data')}, device={device_label(record)}, "
            f"date={str(record.get('finished') or record.get('evaluated', ''))[:10]}")


def device_label(record: dict) -> str:
    """``cpu (Intel(R) Xeon(R) ..., bf16)`` / ``cuda (NVIDIA H200, bf16)``; ``cpu (AMD EPYC)`` for
    a record that trained nothing (a post-hoc row) or was written before numerics were kept;
    records written before the processor was kept say what they kept. A run trained in parts
    (resumed on other machines) names each part, and "mixed numerics" where they differ."""
    env = record.get("environment", {})
    kind, name = env.get("device"), env.get("device_name")
    segments = record.get("segments") or []
    if len(segments) > 1:
        mixed = "mixed numerics: " if len({s["numerics"] for s in segments}) > 1 else ""
        return f"{kind} ({mixed}" + ", ".join(map(_segment, segments)) + ")"
    if name in (None, kind):
        return kind
    numerics = record.get("numerics")
    precision = "" if numerics is None else f", {'bf16' if numerics.get('bf16') else 'fp32'}"
    return f"{kind} ({name}{precision})"


def training_hours(record: dict) -> float | None:
    """Hours spent training: each logged epoch's training images over its throughput, summed
    (evaluation and start-up not counted); None for a run that trained nothing."""
    images = sum(record.get("train_counts") or [])
    rates = [row["images_per_s"] for row in record.get("history", []) if row.get("images_per_s")]
    return round(sum(images / rate for rate in rates) / 3600, 2) if images and rates else None


def _segment(segment: dict) -> str:
    """``epochs 1-117 bf16 on cpu (Intel(R) Xeon(R) Processor)``."""
    first, last = segment["epochs"]
    precision = "bf16" if segment["numerics"].startswith("bf16") else "fp32"
    return f"epochs {first}-{last} {precision} on {segment['device'] or 'an unrecorded machine'}"


def model_lines(records) -> list[str]:
    """One line per distinct model behind ``records``: its weights (ImageNet-pretrained, and from
    where, or random initialisation), what it stands in for, and its input size. Records without
    a model (ensembles, post-hoc rows) add none."""
    lines = set()
    for rec in records:
        if "model" not in rec.get("config", {}):
            continue
        model, size = rec["config"]["model"], rec["config"]["train"].get("size") or 32
        name = model["name"]
        stand_in = f" (stand-in for {STANDS_IN_FOR[name]})" if name in STANDS_IN_FOR else ""
        source = (rec.get("pretrained_weights") or {}).get("weights")
        weights = (f"pretrained {name}{stand_in}, ImageNet weights" + (f" of {source}" if source else "")
                   if model.get("pretrained") else f"{name}{stand_in} from random initialisation")
        lines.add(f"model: {weights}, {size} px")
    return sorted(lines)


def table_labels(ours: pd.DataFrame, table: str | None = None) -> list[str]:
    """The distinct budget labels behind ``table``'s 'ours' cells (every table's with ``None``)."""
    if not len(ours):
        return []
    labels = ours["label"] if table is None else ours.loc[ours["table"] == str(table), "label"]
    return sorted({line for joined in labels for line in str(joined).split("\n") if line})


def budget_notes(preset: str, labels, compared_to: str = "the paper",
                 empty: str = "no runs yet: every 'ours' cell is a dash") -> list[str]:
    """Notes under a table: our preset, flagged as a reduced budget unless ``paper``, then one
    line per run budget behind the numbers (``empty`` when there are none)."""
    budget = " -- the paper's protocol" if preset == "paper" else f" -- REDUCED BUDGET, not comparable to {compared_to}"
    return [f"Ours: preset `{preset}`{budget}", *(f"run budget: {lab}" for lab in labels or [empty])]


def _fmt(v) -> str:
    return DASH if v is None or (isinstance(v, float) and np.isnan(v)) else f"{v:.2f}"


def percent(fraction, digits: int = 2) -> str:
    """``fraction`` as a percentage; a dash for a metric with nothing to measure (None, or the
    nan of a group with no class, such as few-shot on CIFAR-10 at ratio 100)."""
    return DASH if fraction is None or np.isnan(fraction) else f"{100 * fraction:.{digits}f}"


def _fmt_seeds(mean, std, n, with_n: bool) -> str:
    if mean is None or (isinstance(mean, float) and np.isnan(mean)):
        return DASH
    spread = f" ± {std:.2f}" if n and n > 1 else ""
    return f"{mean:.2f}{spread}" + (f" (n={n})" if with_n else "")


def comparison_table(paper: pd.DataFrame, ours: pd.DataFrame, table: str, rows=None, columns=None) -> pd.DataFrame:
    """Rows x (column, paper/ours/diff) for one paper table, as display strings. With seeds
    combined (:func:`combine_seeds`) 'ours' is mean ± std and, where a cell of the table has
    more than one seed, every cell says how many it has; the diff is to the mean."""
    p = paper[paper["table"] == str(table)]
    o = ours[ours["table"] == str(table)] if len(ours) else ours
    rows = list(rows) if rows is not None else list(dict.fromkeys(p["row"]))
    columns = list(columns) if columns is not None else list(dict.fromkeys(p["column"]))
    pv = {(r, c): v for r, c, v in zip(p["row"], p["column"], p["value"])}
    ov = {(r, c): v for r, c, v in zip(o["row"], o["column"], o["value"])} if len(o) else {}
    spread = {(r, c): (sd, int(k)) for r, c, sd, k in zip(o["row"], o["column"], o["std"], o["n"])} \
        if len(o) and "n" in o else {}
    with_n = any(k > 1 for _, k in spread.values())
    data = {}
    for c in columns:
        paper_vals = [pv.get((r, c)) for r in rows]
        ours_vals = [ov.get((r, c)) for r in rows]
        diffs = [None if a is None or b is None else b - a for a, b in zip(paper_vals, ours_vals)]
        data[(c, "paper")] = [_fmt(v) for v in paper_vals]
        data[(c, "ours")] = [_fmt_seeds(v, *spread.get((r, c), (None, 1)), with_n) for r, v in zip(rows, ours_vals)]
        data[(c, "diff")] = [DASH if d is None else f"{d:+.2f}" for d in diffs]
    df = pd.DataFrame(data, index=rows)
    df.columns = pd.MultiIndex.from_tuples(df.columns)
    df.index.name = "row"
    return df


def to_markdown(df: pd.DataFrame) -> str:
    """A GitHub table; two-level columns are joined as ``column paper``."""
    headers = [df.index.name or ""] + [" ".join(c) if isinstance(c, tuple) else str(c) for c in df.columns]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for idx, *values in df.itertuples():      # not iterrows: it casts a row of ints and floats to floats
        lines.append("| " + " | ".join(map(str, [idx, *values])) + " |")
    return "\n".join(lines)


NARROW_ABOVE = 12     # a comparison with more columns than this is written as two narrow tables
NARROW_COLUMNS = 6    # ... each split into blocks of at most this many columns


def _with_diff(ours: str, diff: str) -> str:
    """``41.20 (+1.30)``; with seeds ``41.20 ± 0.50 (+1.30, n=2)``; a dash stays a dash."""
    if ours == DASH or diff == DASH:
        return ours
    if ours.endswith(")"):
        value, n = ours[:-1].rsplit(" (", 1)
        return f"{value} ({diff}, {n})"
    return f"{ours} ({diff})"


def narrow_layout(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A :func:`comparison_table` as two tables of its columns: ours, each cell with its diff to
    the paper in parentheses, and the paper."""
    columns = list(dict.fromkeys(c for c, _ in df.columns))
    ours = pd.DataFrame({c: [_with_diff(o, d) for o, d in zip(df[(c, "ours")], df[(c, "diff")])] for c in columns},
                        index=df.index)
    paper = pd.DataFrame({c: list(df[(c, "paper")]) for c in columns}, index=df.index)
    return ours, paper


def _is_comparison(df: pd.DataFrame) -> bool:
    return isinstance(df.columns, pd.MultiIndex) and set(df.columns.get_level_values(1)) == {"paper", "ours", "diff"}


def write_table(df: pd.DataFrame, path_stem, title: str, notes: list[str] = ()) -> None:
    """``path_stem.md`` (title, notes, table) and ``path_stem.csv`` (always every column). A
    comparison wider than ``NARROW_ABOVE`` columns goes to the Markdown in :func:`narrow_layout`."""
    path_stem = Path(path_stem)
    path_stem.parent.mkdir(parents=True, exist_ok=True)
    if _is_comparison(df) and len(df.columns) > NARROW_ABOVE:
        ours, paper = narrow_layout(df)
        blocks = np.array_split(np.arange(len(ours.columns)), -(-len(ours.columns) // NARROW_COLUMNS))
        tables = ["## Ours (ours - paper in parentheses; a dash where no run)", ""]
        tables += [line for b in blocks for line in (to_markdown(ours.iloc[:, b]), "")]
        tables += ["## Paper", ""] + [line for b in blocks for line in (to_markdown(paper.iloc[:, b]), "")]
        tables.pop()
    else:
        tables = [to_markdown(df)]
    body = [f"# {title}", ""] + [f"- {n}" for n in notes] + ["", *tables, ""]
    Path(f"{path_stem}.md").write_text("\n".join(body))     # not with_suffix: a stem may hold a dot ("sweep_0.02")
    flat = df.copy()
    if isinstance(flat.columns, pd.MultiIndex):
        flat.columns = ["_".join(c) for c in flat.columns]
    flat.to_csv(f"{path_stem}.csv")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def figure_footer(preset: str, records=(), compared_to: str = "the paper", extra: str = "") -> str:
    """The footer of every figure: the budget (REDUCED unless ``paper``) and the data the
    ``records`` were trained and tested on."""
    budget = "paper protocol" if preset == "paper" else f"REDUCED BUDGET, not comparable to {compared_to}"
    data = "; ".join(sorted({r["data"] for r in records if r.get("data")})) or "no runs"
    devices = "; ".join(sorted({device_label(r) for r in records if r.get("environment")}))
    return (f"preset {preset}: {budget}. Data: {data}." + (f" Device: {devices}." if devices else "")
            + (f" {extra}" if extra else ""))


def save_figure(fig, path, footer: str = "", rect=(0, 0, 1, 1)):
    """Tight layout (inside ``rect``), the footer under everything, then save at 120 dpi and
    close. Returns the figure: its artists stay readable after closing (the tests look at them)."""
    fig.tight_layout(rect=rect)
    if footer:
        fig.text(0.01, 0, textwrap.fill(footer, int(fig.get_figwidth() * 15)), ha="left", va="top", fontsize=7,
                 gid="footer")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")      # "tight" grows the image to hold the footer and legends
    _pyplot().close(fig)
    return fig


def legend_outside(ax, **kw) -> None:
    """The legend right of the axes, where it cannot cover a bar or a line."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=7, frameon=False, **kw)


def bars(ax, x, values, width, label, missing: str = "no run", **kw):
    """Bars; a NaN is a missing cell, drawn as a hatched slot saying ``missing`` (an empty slot
    would read as zero)."""
    values = np.asarray(values, dtype=float)
    ax.bar(x, values, width, label=label, **kw)
    for xi in np.asarray(x, dtype=float)[np.isnan(values)]:
        ax.axvspan(xi - width / 2, xi + width / 2, fill=False, hatch="///", edgecolor="0.8", linewidth=0, zorder=0,
                   gid="missing")
        ax.text(xi, 0.02, missing, transform=ax.get_xaxis_transform(), rotation=90, ha="center", va="bottom",
                fontsize=7, color="0.4", gid="missing")


def line(ax, x, values, style="-", label=None, missing: str = "no run", **kw):
    """A line with markers; a NaN point is an x on the x axis (one legend entry says what it
    means), not a silent gap."""
    values = np.asarray(values, dtype=float)
    (drawn,) = ax.plot(list(x), values, style, marker="o", label=label, **kw)
    gone = [xi for xi, v in zip(x, values) if np.isnan(v)]
    if gone:
        said = any(m.get_gid() == "missing" and m.get_label() == f"{missing} (x on the axis)" for m in ax.lines)
        ax.plot(gone, [0] * len(gone), "x", color=drawn.get_color(), transform=ax.get_xaxis_transform(),
                clip_on=False, gid="missing", label="_nolegend_" if said else f"{missing} (x on the axis)")
    return drawn


def note_single_point(ax, xs, what: str = "point") -> None:
    """Say under the x label that the plot holds a single ``what`` (else a lone dot or bar is
    unexplained); call it after ``set_xlabel``."""
    xs = list(dict.fromkeys(xs))
    if len(xs) == 1:
        ax.set_xlabel(f"{ax.get_xlabel()}\n(a single {what}: {xs[0]})")
        if isinstance(xs[0], (int, float)):
            ax.set_xticks(xs)          # else the locator spreads fractional ticks around the lone point


def plot_paper_vs_ours(paper: pd.DataFrame, ours: pd.DataFrame, table: str, column: str, path,
                       title: str, rows=None, ylabel: str | None = None, xlabel: str = "row", footer: str = ""):
    """Grouped bars, paper against ours, for one column of one table."""
    plt = _pyplot()
    p = paper[(paper["table"] == str(table)) & (paper["column"] == column)]
    o = ours[(ours["table"] == str(table)) & (ours["column"] == column)] if len(ours) else ours
    rows = list(rows) if rows is not None else list(dict.fromkeys(p["row"]))
    pv = dict(zip(p["row"], p["value"]))
    ov = dict(zip(o["row"], o["value"])) if len(o) else {}
    x = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(max(5, 0.9 * len(rows) + 2), 3.6))
    bars(ax, x - 0.2, [pv.get(r, np.nan) for r in rows], 0.4, "paper", missing="not in paper")
    bars(ax, x + 0.2, [ov.get(r, np.nan) for r in rows], 0.4, "ours")
    ax.set_xticks(x, rows, rotation=30, ha="right")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel or f"{column} (%)")
    ax.set_title(title, fontsize=9)
    note_single_point(ax, rows, xlabel)
    legend_outside(ax)
    return save_figure(fig, path, footer)


def plot_confusion(cm, classes, path, title: str, footer: str = ""):
    """Row-normalised confusion matrix heat map (seaborn)."""
    plt = _pyplot()
    import seaborn as sns

    cm = np.asarray(cm, dtype=float)
    cm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    size = max(4, 0.45 * len(classes) + 2)
    fig, ax = plt.subplots(figsize=(size, size * 0.85))
    sns.heatmap(cm, ax=ax, cmap="Blues", vmin=0, vmax=1, annot=len(classes) <= 12, fmt=".2f",
                xticklabels=classes, yticklabels=classes, cbar=True)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    return save_figure(fig, path, footer)


def plot_group_lines(series: dict, groups, path, title: str, ylabel: str = "accuracy (%)", xlabel: str = "group",
                     footer: str = ""):
    """One line per entry of ``series`` (name -> values per group, NaN where missing), e.g. a
    sweep; paper series dashed."""
    plt = _pyplot()
    groups = list(groups)
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    for name, values in series.items():
        paper = name.startswith("paper")
        line(ax, groups, values, "--" if paper else "-", name, missing="not in paper" if paper else "no run")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    note_single_point(ax, groups, "sweep point")
    legend_outside(ax)
    return save_figure(fig, path, footer)


def plot_curves(records: dict, path, title: str, footer: str = ""):
    """Training curves of a study's headline runs (label -> record): training loss, and the
    validation accuracy where a run validated, per epoch (from the record's history)."""
    plt = _pyplot()
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(11, 3.8))
    validated, epochs_seen = False, []
    for label, rec in records.items():
        history = rec.get("history") or []
        epochs = [h["epoch"] for h in history]
        epochs_seen += epochs
        loss_ax.plot(epochs, [h["train_loss"] for h in history], marker=".", label=label)
        val = [(h["epoch"], 100 * h["val_accuracy"]) for h in history if "val_accuracy" in h]
        if val:
            validated = True
            acc_ax.plot(*zip(*val), marker=".", label=label)
    from matplotlib.ticker import MaxNLocator
    loss_ax.set(xlabel="epoch", ylabel="training loss", title="training loss")
    acc_ax.set(xlabel="epoch", ylabel="validation top-1 (%)", title="validation accuracy")
    for ax in (loss_ax, acc_ax):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        note_single_point(ax, epochs_seen, "epoch")
    if not records:
        loss_ax.text(0.5, 0.5, "no runs", ha="center", va="center", transform=loss_ax.transAxes, gid="missing")
    if not validated:
        acc_ax.text(0.5, 0.5, "these runs do not validate per epoch\n(final test results are in the tables)",
                    ha="center", va="center", transform=acc_ax.transAxes, fontsize=8)
    handles, labels = loss_ax.get_legend_handles_labels()
    if handles:
        # anchored in figure coordinates: a tight save moves fig.bbox, the default anchor, onto the footer
        fig.legend(handles, labels, loc="lower center", bbox_to_anchor=(0.5, 0), bbox_transform=fig.transFigure,
                   ncol=min(4, len(labels)), fontsize=7)
    fig.suptitle(title, fontsize=9)
    return save_figure(fig, path, footer, rect=(0, 0.06 + 0.04 * ((len(labels) - 1) // 4), 1, 1))


def per_class_summary(record: dict) -> str:
    """Each test set's top-1 / ECE / group accuracies, then recall and precision per class."""
    classes, counts = record.get("classes", []), record.get("train_counts", [])
    width = max([8, *(len(str(c)) for c in classes)])
    lines = []
    for name, m in record["metrics"].items():
        groups = "  ".join(f"{g} {percent(m[g])}%" for names in GROUP_NAMES.values() for g in names if g in m)
        lines += [f"{name} ({m['n']} images): top-1 {100 * m['accuracy']:.2f}%  ECE {100 * m['ece']:.2f}%  {groups}",
                  f"  {'class':{width}s} {'train':>6s} {'test':>5s} {'recall':>7s} {'precision':>9s}"]
        for c, cls in enumerate(classes):
            lines.append(f"  {str(cls):{width}s} {counts[c]:6d} {m['support'][c]:5d} {100 * m['recall'][c]:6.2f}% "
                         f"{100 * m['precision'][c]:8.2f}%")
    return "\n".join(lines)


def save_confusion(record: dict, folder: Path, title: str) -> list[Path]:
    """``confusion_<test set>.png`` (row-normalised) in ``folder`` for each test set."""
    paths = []
    for name, m in record["metrics"].items():
        path = Path(folder) / f"confusion_{name}.png"
        plot_confusion(m["confusion_matrix"], record["classes"], path,
                       f"{title}: {name} set (top-1 {100 * m['accuracy']:.2f}%)", footer=budget_label(record))
        paths.append(path)
    return paths


def report_run(record: dict, folder: Path, title: str) -> None:
    print(per_class_summary(record))
    for path in save_confusion(record, folder, title):
        print(f"confusion matrix: {path}")
