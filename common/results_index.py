"""``results/README.md``: every study's tables and figures per preset, with the budget behind
them and how close ours is to the paper. Rewritten from what is on disk by every study report,
so it is never edited by hand and never older than the tables it lists."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

STUDIES = {"efficientnet_cifar10lt": "seed 000: EfficientNet-B0 on CIFAR-10-LT",
           "thesis_cifar100lt": "seed 001: 4 pretrained models x 7 losses on CIFAR-100(-LT)",
           "ee443_stacking": "seed 002: EfficientNet b0-b2 on CIFAR-50, balancing, bagging, stacking",
           "sla_multiexpert": "seed 003: SLA + LA, three-expert ResNet-32, CIFAR-10/100-LT"}
NOT_RESULTS = {"params_millions"}     # columns compared with the paper that no run measured (model sizes)
_NUMBER = re.compile(r"^[+-]?\d+(\.\d+)?")
_BUDGET = re.compile(r"epochs=(?P<epochs>[^,]*), data=(?P<data>.*), device=(?P<device>.*), date=(?P<date>\S*)$")


def _number(cell) -> float | None:
    match = _NUMBER.match(str(cell))
    return float(match.group()) if match else None


def compared_cells(csv: Path) -> list[tuple[str, str, float, float]]:
    """``(row, column, paper, ours)`` of every cell of a paper-vs-ours table (``*_paper`` /
    ``*_ours`` column pairs) where both are numbers; ours may be a mean ± std."""
    df = pd.read_csv(csv, index_col=0, dtype=str)
    cells = []
    for column in df.columns:
        if column.endswith("_paper") and f"{column[:-6]}_ours" in df.columns and column[:-6] not in NOT_RESULTS:
            for row, paper, ours in zip(df.index, df[column], df[f"{column[:-6]}_ours"]):
                if _number(paper) is not None and _number(ours) is not None:
                    cells.append((str(row), column[:-6], _number(paper), _number(ours)))
    return cells


def _budget(folder: Path) -> tuple[str, list[str]]:
    """The preset's status line ("the paper's protocol" / "REDUCED BUDGET ...") and its runs'
    data, devices, epochs and dates, from the notes of its tables."""
    status, seen = "", {"data": set(), "device": set(), "epochs": set(), "date": set()}
    for md in sorted(folder.glob("*.md")):
        for line in md.read_text().splitlines():
            if line.startswith("- Ours: preset") and not status:
                status = line.split("--", 1)[-1].strip()
            elif line.startswith("- run budget: ") and (match := _BUDGET.search(line)):
                for key in seen:
                    seen[key].add(match[key])
    dates = sorted(d for d in seen["date"] if d)
    lines = [f"data: {'; '.join(sorted(seen['data']))}", f"device: {'; '.join(sorted(seen['device']))}",
             f"epochs per run: {', '.join(sorted(seen['epochs'], key=lambda e: (len(e), e)))}",
             f"trained: {dates[0]} to {dates[-1]}" if len(dates) > 1 else f"trained: {''.join(dates)}"]
    return status or "no runs", lines if dates else ["no runs yet"]


def _closeness(folder: Path) -> str:
    cells = [(csv.stem, *cell) for csv in sorted(folder.glob("*.csv")) for cell in compared_cells(csv)]
    if not cells:
        return "no cell has both a paper number and ours"
    diffs = np.array([ours - paper for *_, paper, ours in cells])
    table, row, column, paper, ours = cells[int(np.argmin(np.abs(diffs)))]
    return (f"{len(cells)} cell{'s' if len(cells) != 1 else ''} with both numbers; median |ours - paper| {np.median(np.abs(diffs)):.2f} points; "
            f"closest: {table}, {row}, {column}: ours {ours:.2f} vs paper {paper:.2f}")


def write_results_index(study_folder: Path) -> Path | None:
    """Rewrite ``README.md`` beside ``study_folder`` (``results/<study>``) from every study folder
    there; nothing when ``study_folder`` is not named as a study (a report into a scratch folder)."""
    study_folder = Path(study_folder)
    if study_folder.name not in STUDIES:
        return None
    results = study_folder.parent
    lines = ["# Results index", "",
             "Written by the study reports (`python -m <study>.report --preset P`); not edited by hand. Per study "
             "and preset: the budget of the runs behind the tables, how close ours is to the paper over every cell "
             "that has both numbers, and the tables and figures. Only a preset marked \"the paper's protocol\" is "
             "comparable to the paper.", ""]
    for study, title in STUDIES.items():
        presets = sorted(p for p in (results / study).glob("*") if p.is_dir() and p.name != "runs")
        if not presets:
            continue
        lines += [f"## {study} ({title})", ""]
        for folder in presets:
            status, budget = _budget(folder)
            link = lambda f: f"[{f.stem}]({f.relative_to(results).as_posix()})"   # noqa: E731
            lines += [f"### `{folder.name}`: {status}", "", *[f"- {b}" for b in budget],
                      f"- {_closeness(folder)}",
                      f"- tables: {', '.join(link(f) for f in sorted(folder.glob('*.md'))) or 'none'}",
                      f"- figures: {', '.join(link(f) for f in sorted(folder.glob('*.png'))) or 'none'}", ""]
    others = sorted(p for p in results.glob("*") if p.is_dir() and p.name not in STUDIES)
    if others:
        lines += ["## Other records", "", *[f"- [{p.name}]({p.name}/README.md)" if (p / "README.md").exists()
                                             else f"- {p.name}/" for p in others], ""]
    path = results / "README.md"
    path.write_text("\n".join(lines))
    return path
