"""``results/README.md``: first the scorecard (every claim of the four seeds, with its verdict per
judged preset, from the ``claims.csv`` each report writes beside its tables), then every study's
tables and figures per preset with the budget behind them. Rewritten from what is on disk by
every study report, so it is never edited by hand and never older than the tables it lists."""
from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from .claims import DEFAULT_TOLERANCE, FAILS, HOLDS, MISSING, NOISE, NOT_JUDGED, SECTION_ORDER, judged_without_runs

STUDIES = {"efficientnet_cifar10lt": "seed 000: EfficientNet-B0 on CIFAR-10-LT",
           "thesis_cifar100lt": "seed 001: 4 pretrained models x 7 losses on CIFAR-100(-LT)",
           "ee443_stacking": "seed 002: EfficientNet b0-b2 on CIFAR-50, balancing, bagging, stacking",
           "sla_multiexpert": "seed 003: SLA + LA, three-expert ResNet-32, CIFAR-10/100-LT"}
STUDY_ROOT = Path(__file__).resolve().parents[1]     # each study's folder (its claims.csv) is here
_BUDGET = re.compile(r"epochs=(?P<epochs>[^,]*), data=(?P<data>.*), device=(?P<device>.*), date=(?P<date>\S*)$")


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


def _scorecard_rows(results: Path, study: str) -> list[dict]:
    """The verdicts of every judged preset of ``study`` on disk; the study's declared claims as
    not measured when its paper-protocol preset has no verdicts yet."""
    rows = []
    for csv in sorted((results / study).glob("*/claims.csv")):
        if csv.parent.name in NOT_JUDGED:
            continue
        link = f"{csv.parent.relative_to(results).as_posix()}/claims.md"
        rows += [{**row, "study": study, "link": link} for row in pd.read_csv(csv, dtype=str).to_dict("records")]
    declared = STUDY_ROOT / study / "claims.csv"
    if declared.exists() and not any(r["preset"] == "paper" for r in rows):
        rows += [{**row, "reason": "no runs of preset paper", "seeds": "0", "study": study, "link": None}
                 for row in judged_without_runs(declared, STUDY_ROOT / study / "paper_numbers.csv").to_dict("records")]
    return rows


def _scorecard_line(row: dict) -> str:
    claim = f"[{row['id']}]({row['link']}#{row['id']}): {row['claim']}" if row["link"] else f"{row['id']}: {row['claim']}"
    ours = (f"{row['ours']} (`{row['preset']}`, {row['epochs']} ep, n={row['seeds']}, {row['data']})"
            if row["seeds"] != "0" else f"– (`{row['preset']}`: no run of its cells)")
    verdict = f"**{row['verdict']}**"
    if row["verdict"] in (MISSING, NOISE, FAILS):
        verdict += f": {row['reason']}"
    if row["preset_kind"] != SECTION_ORDER[0]:
        verdict += f" [{row['preset_kind']}]"
    return f"| {row['study']} | {claim} | {row['paper']} | {ours} | {verdict} |"


SECTION_TITLES = {SECTION_ORDER[0]: "The paper's protocol", SECTION_ORDER[1]: "Stand-in presets (lite, lite_proxy)",
                  SECTION_ORDER[2]: "Reduced budgets: orderings only (a number there is not comparable)"}


def scorecard(results: Path) -> list[str]:
    """``## Does it reproduce?``: one row a claim and judged preset, paper-protocol presets first,
    then the stand-ins, then reduced budgets; smoke presets are not judged."""
    rows = [r for study in STUDIES for r in _scorecard_rows(results, study)]
    counts = pd.Series([r["verdict"] for r in rows if r["preset_kind"] == SECTION_ORDER[0]]).value_counts()
    lines = ["## Does it reproduce?", "",
             "Every claim of the four seeds (each study's `claims.csv`, cited to its seed), judged per preset from the "
             "committed run records by `common/claims.py` each time a report is written. holds / fails: an ordering, or "
             f"a number within its tolerance (default {DEFAULT_TOLERANCE} points; with several seeds a miss inside 2 std "
             "is within noise); within noise: the seeds' spread is larger than the difference; not measured: a run it "
             "needs is missing; not comparable: a number on a preset that is not the paper's protocol. Paper / ours: a "
             "number claim's value (the worst cell), an ordering's smallest margin (negative: it does not hold). Each "
             "claim links its numbers. Smoke presets are not judged.", "",
             "Under the paper's protocol: " + (", ".join(f"{counts.get(v, 0)} {v}" for v in (HOLDS, FAILS, NOISE, MISSING))
                                               if len(counts) else "no claims yet") + ".", ""]
    for section in SECTION_ORDER:
        chosen = [r for r in rows if r["preset_kind"] == section]
        if not chosen:
            continue
        lines += [f"### {SECTION_TITLES[section]}", "",
                  "| study | claim | paper | ours (preset, epochs, seeds, data) | verdict |", "|---|---|---|---|---|",
                  *map(_scorecard_line, chosen), ""]
    return lines


def write_results_index(study_folder: Path) -> Path | None:
    """Rewrite ``README.md`` beside ``study_folder`` (``results/<study>``) from every study folder
    there; nothing when ``study_folder`` is not named as a study (a report into a scratch folder)."""
    study_folder = Path(study_folder)
    if study_folder.name not in STUDIES:
        return None
    results = study_folder.parent
    lines = ["# Results index", "",
             "Written by the study reports (`python -m <study>.report --preset P`); not edited by hand. First the "
             "scorecard, then per study and preset: the budget of the runs behind the tables, the verdicts on the "
             "seed's claims, and the tables and figures. Only a preset marked \"the paper's protocol\" is comparable "
             "to the paper.", "", *scorecard(results)]
    for study, title in STUDIES.items():
        presets = sorted(p for p in (results / study).glob("*") if p.is_dir() and p.name != "runs")
        if not presets:
            continue
        lines += [f"## {study} ({title})", ""]
        for folder in presets:
            status, budget = _budget(folder)
            link = lambda f: f"[{f.stem}]({f.relative_to(results).as_posix()})"   # noqa: E731
            lines += [f"### `{folder.name}`: {status}", "", *[f"- {b}" for b in budget],
                      *([f"- claims: [verdicts]({(folder / 'claims.md').relative_to(results).as_posix()})"]
                        if (folder / "claims.md").exists() else []),
                      f"- tables: {', '.join(link(f) for f in sorted(folder.glob('*.md')) if f.stem != 'claims') or 'none'}",
                      f"- figures: {', '.join(link(f) for f in sorted(folder.glob('*.png')) if f.stem != 'claims') or 'none'}", ""]
    others = sorted(p for p in results.glob("*") if p.is_dir() and p.name not in STUDIES)
    if others:
        lines += ["## Other records", "", *[f"- [{p.name}]({p.name}/README.md)" if (p / "README.md").exists()
                                             else f"- {p.name}/" for p in others], ""]
    path = results / "README.md"
    path.write_text("\n".join(lines))
    return path
