"""Does it reproduce? Each seed's claims as data, judged from the runs.

A study declares its seed's claims in ``claims.csv`` beside ``paper_numbers.csv``, one row a
claim: ``id, claim, kind, cells, versus, over, tolerance, source``.

- ``cells`` / ``versus``: cells of the study's report tables, ``table/row/column``, several
  separated by ``;`` (``cells`` and ``versus`` pair up term by term; a single term pairs with
  every term of the other). ``{name}`` placeholders expand over ``over``
  (``name=a|b|c; other=x|y``, every combination). A ``versus`` cell written ``paper:table/row/column``
  is the paper's number of that cell (a method the paper prints and we do not run); one side
  of a pair at most.
- ``kind`` (:data:`KINDS`): ``number`` (ours within ``tolerance`` of the paper's number, each
  cell), ``beats`` (each cell above its ``versus``), ``reaches`` (each cell at least its
  ``versus`` minus ``tolerance``).

An ordering the seed states in words (a row the paper gives no number for) has no paper margin.
Verdicts (:func:`judge`), per preset, from the cells the study's report builds (mean, std and n
over the training seeds): holds / fails, within noise (the seeds' spread covers the difference),
not measured (a run is missing: which), not comparable (a number on a preset that is not the
paper's protocol). Smoke presets are not judged.
"""
from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .report import _pyplot, legend_outside, load_paper_numbers, ours_frame, save_figure, table_labels, to_markdown

DEFAULT_TOLERANCE = 1.5          # points
COLUMNS = ("id", "claim", "kind", "cells", "versus", "over", "tolerance", "source")
PAPER_PREFIX = "paper:"
HOLDS, FAILS, NOISE, MISSING, NOT_COMPARABLE = "holds", "fails", "within noise", "not measured", "not comparable"
VERDICT_COLOURS = {HOLDS: "tab:green", FAILS: "tab:red", NOISE: "tab:orange", MISSING: "0.6", NOT_COMPARABLE: "0.6"}

# presets by what a verdict on them means; every other preset is a reduced budget
PRESET_KINDS = {"paper": "the paper's protocol", "lite": "stand-in", "lite_proxy": "stand-in"}
REDUCED = "reduced budget"
NOT_JUDGED = {"smoke"}
SECTION_ORDER = ("the paper's protocol", "stand-in", REDUCED)


class ClaimsError(ValueError):
    """A claims file that cannot be judged as written (a typo must not pass silently)."""


def preset_kind(preset: str) -> str:
    return PRESET_KINDS.get(preset, REDUCED)


@dataclass(frozen=True)
class Cell:
    table: str
    row: str
    column: str
    from_paper: bool = False       # the paper's number stands for ours (a method we do not run)

    def __str__(self) -> str:
        return (PAPER_PREFIX if self.from_paper else "") + f"{self.table}/{self.row}/{self.column}"


@dataclass(frozen=True)
class Claim:
    id: str
    text: str
    kind: str
    pairs: tuple[tuple[Cell, Cell | None], ...]     # (ours, versus); versus None for a number
    tolerance: float
    source: str


def _cell(term: str, where: str) -> Cell:
    from_paper = term.startswith(PAPER_PREFIX)
    parts = term.removeprefix(PAPER_PREFIX).split("/")
    if len(parts) != 3 or not all(parts):
        raise ClaimsError(f"{where}: cell {term!r} is not table/row/column")
    return Cell(*parts, from_paper=from_paper)


def _over(text: str, where: str) -> dict[str, list[str]]:
    values = {}
    for part in filter(None, (p.strip() for p in str(text or "").split(";"))):
        name, sep, options = part.partition("=")
        if not sep or not options:
            raise ClaimsError(f"{where}: 'over' part {part!r} is not name=a|b|c")
        values[name.strip()] = [o.strip() for o in options.split("|")]
    return values


def _terms(text) -> list[str]:
    return [t.strip() for t in str(text or "").split(";") if t.strip()]


def _expand(cells: str, versus: str, over: dict, where: str) -> list[tuple[str, str | None]]:
    mine, theirs = _terms(cells), _terms(versus) or [None]
    if not mine:
        raise ClaimsError(f"{where}: no cells")
    if len(mine) != len(theirs) and 1 not in (len(mine), len(theirs)):
        raise ClaimsError(f"{where}: {len(mine)} cells cannot pair with {len(theirs)} versus cells")
    used = set(re.findall(r"{(\w+)}", f"{cells} {versus}"))
    if used != set(over):
        raise ClaimsError(f"{where}: placeholders {sorted(used)} but 'over' names {sorted(over)}")
    names = sorted(over)
    pairs = []
    for values in itertools.product(*(over[n] for n in names)):
        fill = dict(zip(names, values))
        for a, b in zip(mine * (len(theirs) if len(mine) == 1 else 1), theirs * (len(mine) if len(theirs) == 1 else 1)):
            pairs.append((a.format(**fill), None if b is None else b.format(**fill)))
    return list(dict.fromkeys(pairs))


def load_claims(path) -> list[Claim]:
    """The claims of ``path``; a ClaimsError names the row of any typo (an unknown kind, a
    malformed cell, a placeholder without values)."""
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = set(COLUMNS) - set(df.columns)
    if missing:
        raise ClaimsError(f"{path}: claims file lacks columns {sorted(missing)}")
    claims = []
    for _, row in df.iterrows():
        where = f"{path}, claim {row['id']!r}"
        if row["kind"] not in KINDS:
            raise ClaimsError(f"{where}: unknown kind {row['kind']!r} (known: {', '.join(KINDS)})")
        if not row["source"].strip():
            raise ClaimsError(f"{where}: no source in the seed")
        needs_versus = KINDS[row["kind"]].versus
        if needs_versus != bool(_terms(row["versus"])):
            raise ClaimsError(f"{where}: kind {row['kind']} {'needs' if needs_versus else 'takes no'} versus cells")
        pairs = tuple((_cell(a, where), None if b is None else _cell(b, where))
                      for a, b in _expand(row["cells"], row["versus"], _over(row["over"], where), where))
        if any(a.from_paper and (b is None or b.from_paper) for a, b in pairs):
            raise ClaimsError(f"{where}: a pair needs one cell of ours (paper: on one side only, not in a number)")
        claims.append(Claim(row["id"], row["claim"], row["kind"], pairs,
                            float(row["tolerance"]) if row["tolerance"].strip() else DEFAULT_TOLERANCE, row["source"]))
    if len({c.id for c in claims}) != len(claims):
        raise ClaimsError(f"{path}: claim ids repeat")
    return claims


def check_cells(claims: list[Claim], paper: pd.DataFrame, layout=()) -> None:
    """Fail on a cell whose row or column its table has neither in the paper's numbers nor in
    ``layout`` (``(table, row, column)`` the study's tables lay out): a typo, not a missing run.
    A number claim's cells and a ``paper:`` cell must be printed by the paper."""
    printed = {(str(t), str(r), str(c)) for t, r, c in zip(paper["table"], paper["row"], paper["column"])}
    tables, rows, columns = set(), set(), set()
    for t, r, c in printed | set(layout):
        tables.add(t), rows.add((t, r)), columns.add((t, c))
    for claim in claims:
        for ours, versus in claim.pairs:
            for cell in (ours, versus):
                if cell is None:
                    continue
                problem = ("table" if cell.table not in tables else "row" if (cell.table, cell.row) not in rows
                           else "column" if (cell.table, cell.column) not in columns else None)
                if problem:
                    raise ClaimsError(f"claim {claim.id!r}: unknown {problem} in cell {cell}")
                needs_paper = cell.from_paper or (versus is None)
                if needs_paper and (cell.table, cell.row, cell.column) not in printed:
                    raise ClaimsError(f"claim {claim.id!r}: the paper prints no number for {cell}")


# ---- judging ----

@dataclass(frozen=True)
class Value:
    mean: float
    std: float          # 0 for one seed or a paper number
    n: int


@dataclass(frozen=True)
class Check:
    """One pair of a claim, judged: the margin by which it holds (negative: it fails), the
    seeds' spread it is measured against, and the paper's own margin."""
    what: str
    ours: float | None
    paper: float | None
    margin: float | None
    spread: float
    verdict: str
    missing: tuple[str, ...] = ()      # the cells without a run
    seeds: int = 0                      # the most seeds behind our cells


def _values(frame: pd.DataFrame) -> dict[tuple[str, str, str], Value]:
    if not len(frame):
        return {}
    std = frame["std"] if "std" in frame else pd.Series(np.nan, index=frame.index)
    n = frame["n"] if "n" in frame else pd.Series(1, index=frame.index)
    return {(str(t), str(r), str(c)): Value(float(v), 0.0 if pd.isna(s) else float(s), int(k))
            for t, r, c, v, s, k in zip(frame["table"], frame["row"], frame["column"], frame["value"], std, n)
            if not pd.isna(v)}


def _ordering_verdict(margin: float, spread: float) -> str:
    if abs(margin) <= spread:
        return NOISE
    return HOLDS if margin > 0 else FAILS


def _beats(a: Value, b: Value, tolerance: float) -> float:
    return a.mean - b.mean


def _reaches(a: Value, b: Value, tolerance: float) -> float:
    return a.mean - (b.mean - tolerance)


def _number_verdict(diff: float, value: Value, tolerance: float) -> str:
    if abs(diff) <= tolerance:
        return HOLDS
    return NOISE if value.n > 1 and abs(diff) <= 2 * value.std else FAILS


@dataclass(frozen=True)
class Kind:
    versus: bool          # compares two cells (an ordering) rather than ours with the paper's number
    margin: object = None  # (a, b, tolerance) -> how far the ordering holds by


KINDS = {"number": Kind(versus=False), "beats": Kind(versus=True, margin=_beats),
         "reaches": Kind(versus=True, margin=_reaches)}


def _judge_pair(claim: Claim, a: Cell, b: Cell | None, ours: dict, paper: dict) -> Check:
    key = lambda c: (c.table, c.row, c.column)      # noqa: E731
    if b is None:
        mine = ours.get(key(a))
        if mine is None:
            return Check(str(a), None, paper[key(a)].mean, None, 0.0, MISSING, (str(a),))
        diff = mine.mean - paper[key(a)].mean
        return Check(str(a), mine.mean, paper[key(a)].mean, diff, mine.std, _number_verdict(diff, mine, claim.tolerance),
                     seeds=mine.n)
    mine, theirs = (paper[key(c)] if c.from_paper else ours.get(key(c)) for c in (a, b))
    margin = KINDS[claim.kind].margin
    paper_margin = (margin(paper[key(a)], paper[key(b)], claim.tolerance)
                    if key(a) in paper and key(b) in paper else None)     # an ordering the seed states in words
    what = f"{a} vs {b}"
    if mine is None or theirs is None:
        gone = tuple(str(c) for c, v in ((a, mine), (b, theirs)) if v is None)
        return Check(what, None, paper_margin, None, 0.0, MISSING, gone)
    ours_margin = margin(mine, theirs, claim.tolerance)
    spread = max(mine.std, theirs.std)
    return Check(what, ours_margin, paper_margin, ours_margin, spread, _ordering_verdict(ours_margin, spread),
                 seeds=max(mine.n, theirs.n))


def _missing_cells(checks: list[Check]) -> list[str]:
    return list(dict.fromkeys(cell for c in checks for cell in c.missing))


@dataclass(frozen=True)
class Verdict:
    claim: Claim
    verdict: str
    reason: str
    checks: tuple[Check, ...]


def judge(claim: Claim, ours: pd.DataFrame, paper: pd.DataFrame, preset: str) -> Verdict:
    """One claim on one preset's cells (``ours``: :func:`common.report.combine_seeds`'s frame)."""
    paper_values = _values(paper.assign(std=np.nan, n=1))
    mine = _values(ours)
    checks = [_judge_pair(claim, a, b, mine, paper_values) for a, b in claim.pairs]
    if not KINDS[claim.kind].versus and preset_kind(preset) != "the paper's protocol":
        return Verdict(claim, NOT_COMPARABLE, f"a number on preset {preset} ({preset_kind(preset)})", tuple(checks))
    missing = _missing_cells(checks)
    unmeasured = ("; no run for " + ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
                  if missing else "")
    failed = sum(c.verdict == FAILS for c in checks)
    if failed:              # one clear miss settles an 'every' claim, whatever else is missing
        return Verdict(claim, FAILS, f"{failed} of {len(checks)} fail{unmeasured}", tuple(checks))
    if missing:
        return Verdict(claim, MISSING, unmeasured.removeprefix("; "), tuple(checks))
    noisy = sum(c.verdict == NOISE for c in checks)
    if noisy:
        return Verdict(claim, NOISE, f"{noisy} of {len(checks)} within the seeds' spread", tuple(checks))
    return Verdict(claim, HOLDS, f"all {len(checks)} hold", tuple(checks))


# ---- what a verdict is measured on ----

_EPOCHS = re.compile(r"epochs=([^,]*),")
_DATA = re.compile(r"data=(.*?), device=")


def _labels(claim: Claim, ours: pd.DataFrame) -> list[str]:
    if not len(ours):
        return []
    keys = {(c.table, c.row, c.column) for pair in claim.pairs for c in pair if c is not None and not c.from_paper}
    mask = [(str(t), str(r), str(c)) in keys for t, r, c in zip(ours["table"], ours["row"], ours["column"])]
    return [line for joined in ours.loc[mask, "label"] for line in str(joined).split("\n") if line]


def budget(claim: Claim, ours: pd.DataFrame) -> dict[str, str]:
    """The epochs, data and number of seeds behind a claim's cells, from their budget labels."""
    labels = _labels(claim, ours)
    epochs = sorted({m[1] for lab in labels if (m := _EPOCHS.search(lab))}, key=lambda e: (len(e), e))
    data = sorted({m[1].split(" (")[0] for lab in labels if (m := _DATA.search(lab))})
    keys = {(c.table, c.row, c.column) for pair in claim.pairs for c in pair if c is not None and not c.from_paper}
    counts = [int(k) for t, r, c, k in zip(ours.get("table", []), ours.get("row", []), ours.get("column", []),
                                           ours.get("n", [])) if (str(t), str(r), str(c)) in keys]
    return {"epochs": ", ".join(epochs) or "–", "data": "; ".join(data) or "–", "seeds": str(max(counts, default=0))}


def _summary(checks, field: str, kind: str) -> str:
    """The number a row of the scorecard shows: a number claim's value (the worst cell), an
    ordering's smallest margin."""
    values = [getattr(c, field) for c in checks if getattr(c, field) is not None]
    if not values:
        return "–"
    if KINDS[kind].versus:
        return f"margin {min(values):+.2f}" + (f" (min of {len(values)})" if len(values) > 1 else "")
    worst = max(checks, key=lambda c: -1 if c.margin is None else abs(c.margin))
    value = getattr(worst, field)
    if value is None:
        return "–"
    return f"{value:.2f}" + (f" (worst of {len(values)})" if len(values) > 1 else "")


def verdict_rows(verdicts: list[Verdict], ours: pd.DataFrame, preset: str) -> pd.DataFrame:
    rows = []
    for v in verdicts:
        b = budget(v.claim, ours)
        rows.append({"id": v.claim.id, "claim": v.claim.text, "kind": v.claim.kind, "preset": preset,
                     "preset_kind": preset_kind(preset), "paper": _summary(v.checks, "paper", v.claim.kind),
                     "ours": _summary(v.checks, "ours", v.claim.kind), "epochs": b["epochs"], "seeds": b["seeds"],
                     "data": b["data"], "verdict": v.verdict, "reason": v.reason, "source": v.claim.source})
    return pd.DataFrame(rows)


def _fmt(v) -> str:
    return "–" if v is None else f"{v:.2f}"


def claims_markdown(verdicts: list[Verdict], rows: pd.DataFrame, preset: str, study: str) -> str:
    kind = preset_kind(preset)
    lines = [f"# Claims of {study}, preset `{preset}` ({kind})", "",
             "Written by the study report from the run records and the study's `claims.csv`; not edited by hand. "
             f"Orderings: the margin by which each pair holds (ours and the paper's; negative fails), against the "
             f"seeds' spread (std). Numbers: ours against the paper's, tolerance per claim "
             f"(default {DEFAULT_TOLERANCE} points; with several seeds a miss inside 2 std is within noise)."
             + ("" if kind == "the paper's protocol" else f" Preset `{preset}` is not the paper's protocol: "
                                                           "number claims are not comparable."), "",
             to_markdown(rows.set_index("id")[["claim", "paper", "ours", "epochs", "seeds", "data", "verdict"]]), ""]
    for v in verdicts:
        checks = pd.DataFrame([{"cell(s)": c.what, "paper": _fmt(c.paper), "ours": _fmt(c.ours),
                                "seeds' std": f"{c.spread:.2f} (n={c.seeds})" if c.seeds > 1 else "–", "verdict": c.verdict}
                               for c in v.checks]).set_index("cell(s)")
        lines += [f"## {v.claim.id}", "", f"- claim: {v.claim.text} ({v.claim.kind}, tolerance {v.claim.tolerance:g})",
                  f"- source: {v.claim.source}", f"- verdict: **{v.verdict}**: {v.reason}", "", to_markdown(checks), ""]
    return "\n".join(lines)


SEVERITY = (FAILS, NOISE, HOLDS, MISSING, NOT_COMPARABLE)     # a cell judged by several claims shows the first


def _cell_verdicts(verdicts: list[Verdict]) -> dict[tuple[str, str, str], str]:
    """Each of our cells the claims are judged on -> the most severe verdict of the pairs it is in
    (a number on a preset that is not the paper's protocol: not comparable)."""
    found = {}
    for v in verdicts:
        for pair, check in zip(v.claim.pairs, v.checks):
            verdict = NOT_COMPARABLE if v.verdict == NOT_COMPARABLE else check.verdict
            for c in (c for c in pair if c is not None and not c.from_paper):
                key = (c.table, c.row, c.column)
                found[key] = min(found.get(key, verdict), verdict, key=SEVERITY.index)
    return found


def claims_figure(verdicts: list[Verdict], ours: pd.DataFrame, paper: pd.DataFrame, path, footer: str):
    """Ours against the paper for every judged cell the paper prints: one panel, both on the same
    axis (the diagonal is exact reproduction), the seeds' std as error bars, colour the most
    severe verdict of the comparisons the cell is in."""
    plt = _pyplot()
    mine, printed = _values(ours), _values(paper.assign(std=np.nan, n=1))
    fig, ax = plt.subplots(figsize=(6.5, 5))
    points = {}          # cells with the same numbers (one run filling several tables) share a point
    for key, verdict in _cell_verdicts(verdicts).items():
        if key in printed and key in mine:
            at = (printed[key].mean, mine[key].mean, mine[key].std)
            cells, worst = points.get(at, ([], verdict))
            points[at] = (cells + ["/".join(key)], min(worst, verdict, key=SEVERITY.index))
    seen = set()
    for (x, y, std), (cells, verdict) in points.items():
        ax.errorbar([x], [y], yerr=[std], fmt="o", color=VERDICT_COLOURS[verdict], ecolor="0.3", capsize=2,
                    alpha=0.85, label="_nolegend_" if verdict in seen else verdict)
        seen.add(verdict)
        ax.annotate("\n".join(cells), (x, y), fontsize=6, xytext=(4, -3), textcoords="offset points", va="top")
    lo, hi = (min(*ax.get_xlim(), *ax.get_ylim()), max(*ax.get_xlim(), *ax.get_ylim())) if seen else (0, 100)
    ax.plot([lo, hi], [lo, hi], "--", color="0.5", linewidth=0.8, label="ours = paper")
    if not seen:
        ax.text(0.5, 0.5, "no judged cell has a run", ha="center", va="center", transform=ax.transAxes, gid="missing")
    ax.set(xlabel="paper (%)", ylabel="ours (%)")
    ax.set_title("Cells the claims are judged on: ours against the paper, coloured by verdict", fontsize=9)
    legend_outside(ax)
    return save_figure(fig, path, footer)


def judged_without_runs(claims_file: Path, paper_numbers: Path) -> pd.DataFrame:
    """The verdict rows of the paper's protocol before any of its runs: every claim not measured,
    beside the paper's own numbers and margins."""
    paper, nothing = load_paper_numbers(paper_numbers), ours_frame([]).assign(std=[], n=[])
    return verdict_rows([judge(c, nothing, paper, "paper") for c in load_claims(claims_file)], nothing, "paper")


def _footer(preset: str, ours: pd.DataFrame) -> str:
    labels = table_labels(ours)
    data = sorted({m[1] for lab in labels if (m := _DATA.search(lab))}) or ["no runs"]
    epochs = sorted({m[1] for lab in labels if (m := _EPOCHS.search(lab))}, key=lambda e: (len(e), e))
    return (f"preset {preset} ({preset_kind(preset)}); epochs per run: {', '.join(epochs) or '–'}. "
            f"Data: {'; '.join(data)}. Error bars: std over the training seeds (none with one seed).")


def write_claims(claims_file: Path, study: str, preset: str, paper: pd.DataFrame, ours: pd.DataFrame, out: Path,
                 layout=()) -> pd.DataFrame | None:
    """``claims.csv``, ``claims.md`` and ``claims.png`` of one preset into ``out``; nothing for
    a study without a claims file or a preset not judged (smoke)."""
    if not Path(claims_file).exists() or preset in NOT_JUDGED:
        return None
    claims = load_claims(claims_file)
    check_cells(claims, paper, layout)
    verdicts = [judge(c, ours, paper, preset) for c in claims]
    rows = verdict_rows(verdicts, ours, preset)
    out = Path(out)
    rows.to_csv(out / "claims.csv", index=False)
    (out / "claims.md").write_text(claims_markdown(verdicts, rows, preset, study))
    claims_figure(verdicts, ours, paper, out / "claims.png", _footer(preset, ours))
    return rows
