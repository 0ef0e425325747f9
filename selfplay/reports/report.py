"""The run report: one self-contained HTML page (`DIR/report/index.html`) with PNG plots beside
it, readable in any browser straight from disk.

It shows pass@k per round per evaluation set, the stage funnel, diversity and the training mix
per round, every round's data card, a few puzzles each round proposed and solved, and the run's
config. Everything model-written is escaped: the page shows code, it never runs it.
"""

from __future__ import annotations

import datetime
import html
import math
from pathlib import Path

from puzzles.errors import SelfplayError
from puzzles.records import atomic_write
from puzzles.store import Store
from selfplay.reports.audit import COMPARED, DIMENSIONS, POPULATIONS, audit_tables
from selfplay.reports.cards import build_card, card_sections, eval_sets, read_card
from selfplay.reports.summaries import Funnel
from selfplay.rundir import RunDir

SAMPLES_SOLVED = 3
"""Solved puzzles shown per round in the samples table."""
SAMPLES_UNSOLVED = 2
"""Unsolved puzzles shown per round beside them."""


def write_report(run_dir: str | Path) -> Path:
    """Write DIR/report/index.html and its plots; returns the page's path.

    Rounds without a card file (a run made before cards existed, or one still in progress) get
    a card built from the store, which is shown but not saved.
    """
    run = RunDir(Path(run_dir))
    config = run.load_config()
    if not run.store_file.exists():
        raise SelfplayError(f"{run.path} has no store yet: start it with `selfplay run "
                            f"{run.path}`")
    out = run.path / "report"
    out.mkdir(parents=True, exist_ok=True)
    with Store(run.store_file) as store:
        rounds = sorted({r for r, _, _ in store.stages() if r > 0})
        # A round stopped before it trained (killed, or running now) has no training set yet:
        # shown as in progress, not as a round that selected nothing.
        trained = {r for r, stage, _ in store.stages() if stage == "train"}
        in_progress = {r for r in rounds if r not in trained}
        cards = {r: read_card(run.cards_dir, r) or build_card(store, config, r) for r in rounds}
        metrics = store.metrics()
        samples = {r: sample_puzzles(store, r) for r in rounds}
    plots = [
        ("pass@k per round", plot_pass_at_k(metrics, out / "pass_at_k.png")),
        ("Stage funnel per round", plot_funnel(cards, out / "funnel.png")),
        ("Diversity and novelty of new puzzles", plot_diversity(cards, out / "diversity.png")),
        ("Training mix per round", plot_mix(cards, out / "mix.png")),
        ("Bias audit: distance from the human seeds per round, and the answer types of the "
         "last round", plot_audit(cards, out / "audit.png")),
    ]
    config_text = run.config_file.read_text(encoding="utf-8")
    headline = config.eval.sets[0] if config.eval.sets else "heldout"
    page = render_page(run.path, cards, metrics, samples, plots, config_text, headline,
                       in_progress)
    index = out / "index.html"
    atomic_write(index, page)
    return index


# -- data ---------------------------------------------------------------------------------

def sample_puzzles(store: Store, round: int) -> list[dict]:
    """A few of the round's new puzzles, solved ones first, each with its shortest verified
    solution and how many of its attempts passed."""
    new = store.puzzles(origin="generated", round=round)
    solved = [sp for sp in new if sp.n_solutions][:SAMPLES_SOLVED]
    unsolved = [sp for sp in new if not sp.n_solutions][:SAMPLES_UNSOLVED]
    out = []
    for sp in solved + unsolved:
        attempts = store.attempts(round, "solve", puzzle_hash=sp.hash)
        solutions = sorted(store.solutions(sp.id), key=lambda s: (len(s.source), s.hash))
        out.append({
            "name": sp.puzzle.name or sp.hash,
            "answer_type": sp.puzzle.answer_type,
            "puzzle": sp.puzzle.source,
            "solution": solutions[0].source if solutions else "",
            "passed": sum(a.verdict == "pass" for a in attempts),
            "attempts": len(attempts),
        })
    return out


# -- plots --------------------------------------------------------------------------------

def _figure(width: float, height: float, ncols: int = 1):
    # Figure without pyplot: no global backend state, renders through Agg when saved as PNG.
    from matplotlib.figure import Figure
    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    return fig, list(axes)


def _round_axis(ax, rounds: list[int], label: str = "round") -> None:
    ax.set_xticks(rounds)
    ax.set_xlabel(label)
    ax.grid(True, alpha=0.3)


def _empty(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.4")
    ax.set_xticks([])
    ax.set_yticks([])


def _note_if_no_data(*axes) -> None:
    """Write "no data" on a panel (drawn on `axes`, a twin pair counting as one) whose lines
    are all NaN and whose bars are all 0: rounds that made nothing to plot, which would
    otherwise look like a broken picture."""
    for ax in axes:
        if any(math.isfinite(float(y)) for line in ax.get_lines() for y in line.get_ydata()):
            return
        if any(patch.get_height() for patch in ax.patches):
            return
    axes[0].text(0.5, 0.5, "no data", ha="center", va="center", transform=axes[0].transAxes,
                 color="0.4")


def plot_pass_at_k(metrics: dict, path: Path) -> str:
    """One panel per evaluation set, one line per k, over rounds (0 is the base model)."""
    by_set: dict[str, dict[str, dict[int, float]]] = {}
    for r in sorted(metrics):
        for name, entry in eval_sets(metrics[r]).items():
            for k, value in (entry.get("pass_at_k") or {}).items():
                by_set.setdefault(name, {}).setdefault(k, {})[r] = value
    fig, axes = _figure(min(4.2 * max(len(by_set), 1), 12), 3.4, max(len(by_set), 1))
    if not by_set:
        _empty(axes[0], "no evaluation results yet")
    for ax, (name, by_k) in zip(axes, sorted(by_set.items())):
        rounds = sorted({r for points in by_k.values() for r in points})
        top = 0.0
        for k in sorted(by_k, key=_k_order):
            points = by_k[k]
            xs = sorted(points)
            ax.plot(xs, [points[x] for x in xs], marker="o", label=f"pass@{k}")
            top = max(top, *points.values())
        # A file path can be long; its tail is the informative part.
        ax.set_title(name if len(name) <= 40 else "..." + name[-37:], fontsize="medium")
        ax.set_ylim(0, min(1.0, max(0.1, top * 1.25)))
        ax.set_ylabel("pass@k")
        _round_axis(ax, rounds, "round (0 = base model)")
        ax.legend(fontsize="small")
    fig.savefig(path)
    return path.name


def plot_funnel(cards: dict[int, dict], path: Path) -> str:
    """Grouped bars: for each funnel step, one bar per round."""
    fig, (ax,) = _figure(9, 3.6)
    if not cards:
        _empty(ax, "no rounds yet")
    else:
        rounds = sorted(cards)
        width = 0.8 / len(rounds)
        labels = []
        for i, r in enumerate(rounds):
            steps = Funnel.from_dict(cards[r]["funnel"]).rows(only="plot")
            labels = [label for _, label, _ in steps]
            values = [count or 0 for _, _, count in steps]
            xs = [j + (i - (len(rounds) - 1) / 2) * width for j in range(len(steps))]
            bars = ax.bar(xs, values, width, label=f"round {r}")
            if len(rounds) <= 4:
                ax.bar_label(bars, fontsize=7, padding=1)
        ax.set_xticks(range(len(labels)), labels)
        ax.set_ylabel("count")
        ax.grid(True, axis="y", alpha=0.3)
        ax.legend(fontsize="small")
        _note_if_no_data(ax)
    fig.savefig(path)
    return path.name


def plot_diversity(cards: dict[int, dict], path: Path) -> str:
    """Left: shares in [0, 1] (AST shapes per puzzle, mean pairwise similarity, novel share).
    Right: distinct token 3-grams per puzzle and the number of new puzzles."""
    fig, (left, right) = _figure(10, 3.4, 2)
    rounds = sorted(cards)
    if not rounds:
        _empty(left, "no rounds yet")
        _empty(right, "no rounds yet")
    else:
        def series(part, key):
            return [_nan(cards[r][part][key]) for r in rounds]

        left.plot(rounds, series("diversity", "ast_shapes_per_puzzle"), marker="o",
                  label="distinct AST shapes / puzzle")
        left.plot(rounds, series("diversity", "mean_pairwise_similarity"), marker="s",
                  label="mean pairwise similarity")
        left.plot(rounds, series("novelty", "novel_share"), marker="^",
                  label="share novel vs earlier")
        left.set_ylim(0, 1.05)
        _round_axis(left, rounds)
        left.legend(fontsize="small", loc="best")
        right.bar(rounds, series("diversity", "puzzles"), color="0.85", label="new puzzles")
        right.set_ylabel("new puzzles")
        twin = right.twinx()
        twin.plot(rounds, series("diversity", "3grams_per_puzzle"), marker="o", color="C3",
                  label="distinct 3-grams / puzzle")
        twin.set_ylabel("distinct 3-grams / puzzle")
        twin.set_ylim(bottom=0)
        _round_axis(right, rounds)
        handles = right.get_legend_handles_labels()
        twin_handles = twin.get_legend_handles_labels()
        twin.legend(handles[0] + twin_handles[0], handles[1] + twin_handles[1],
                    fontsize="small", loc="best")
        _note_if_no_data(left)
        _note_if_no_data(right, twin)
    fig.savefig(path)
    return path.name


def plot_mix(cards: dict[int, dict], path: Path) -> str:
    """Stacked synthetic and human examples per round, with the synthetic-share bound."""
    fig, (ax,) = _figure(7.5, 3.2)
    rounds = sorted(cards)
    if not rounds:
        _empty(ax, "no rounds yet")
    else:
        synthetic = [cards[r]["training"]["synthetic"] for r in rounds]
        human = [cards[r]["training"]["human"] for r in rounds]
        ax.bar(rounds, synthetic, label="synthetic", color="C0")
        ax.bar(rounds, human, bottom=synthetic, label="human", color="C2")
        bound = cards[rounds[-1]]["training"]["max_synthetic_share"]
        for r, s, h in zip(rounds, synthetic, human):
            if s + h:
                ax.hlines(bound * (s + h), r - 0.4, r + 0.4, colors="C3", linestyles="--")
                ax.text(r, s + h, f"{s / (s + h):.0%} synthetic", ha="center", va="bottom",
                        fontsize=8)
        ax.plot([], [], color="C3", linestyle="--", label=f"most synthetic allowed ({bound:.0%})")
        ax.set_ylabel("training examples")
        ax.margins(y=0.15)
        _round_axis(ax, rounds)
        ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1))
        _note_if_no_data(ax)
    fig.savefig(path)
    return path.name


def plot_audit(cards: dict[int, dict], path: Path) -> str:
    """Left: total variation from the human seeds per dimension over rounds (generated solid,
    selected dashed) with the warning bound. Right: answer-type shares of the last audited
    round, human beside generated and selected."""
    fig, (left, right) = _figure(11, 3.6, 2)
    # Cards written before the audit existed have none.
    audits = {r: c["audit"] for r, c in cards.items() if c.get("audit")}
    rounds = sorted(audits)
    if not rounds:
        _empty(left, "no audited rounds yet")
        _empty(right, "no audited rounds yet")
        fig.savefig(path)
        return path.name
    for i, (dim, label) in enumerate(DIMENSIONS.items()):
        for who, style in zip(COMPARED, ("-", "--")):
            left.plot(rounds, [_nan(audits[r]["dimensions"][dim]["distance"][who])
                               for r in rounds], linestyle=style, marker="o", color=f"C{i}",
                      label=f"{label}, {who}")
    left.axhline(audits[rounds[-1]]["max_distance"], color="k", linestyle=":",
                 label="warning bound")
    left.set_ylim(0, 1.05)
    left.set_ylabel("total variation from human")
    _round_axis(left, rounds)
    left.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    last = rounds[-1]
    types = audits[last]["dimensions"]["answer_type"]["shares"]
    names = sorted({k for s in types.values() for k in s},
                   key=lambda k: (-types["human"].get(k, 0.0), k))
    width = 0.8 / len(POPULATIONS)
    for i, who in enumerate(POPULATIONS):
        xs = [j + (i - (len(POPULATIONS) - 1) / 2) * width for j in range(len(names))]
        right.bar(xs, [types[who].get(k, 0.0) for k in names], width, label=who)
    right.set_xticks(range(len(names)), names, rotation=30 if len(names) > 4 else 0,
                     fontsize=8)
    right.set_ylabel("share of puzzles")
    right.set_title(f"answer types, round {last}", fontsize="medium")
    right.grid(True, axis="y", alpha=0.3)
    right.legend(fontsize="small")
    fig.savefig(path)
    return path.name


def _k_order(k: str) -> tuple:
    return (0, int(k)) if str(k).isdigit() else (1, str(k))


def _nan(value) -> float:
    return math.nan if value is None else value


# -- HTML ---------------------------------------------------------------------------------

CSS = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1d2228;
       max-width: 1180px; margin: 2em auto; padding: 0 1.2em; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { font-size: 1.25em; border-bottom: 1px solid #d6dbe0; padding-bottom: 0.2em;
     margin-top: 2em; }
h3 { font-size: 1.05em; margin: 1.4em 0 0.4em; }
.meta { color: #5b6670; margin-top: 0; }
table { border-collapse: collapse; margin: 0.4em 0 1em; font-size: 0.92em; }
th, td { border: 1px solid #d6dbe0; padding: 0.3em 0.6em; text-align: left;
         vertical-align: top; }
th { background: #f2f4f6; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
pre { background: #f6f8fa; border: 1px solid #e1e5e9; padding: 0.6em 0.8em; overflow-x: auto;
      font: 12.5px/1.4 ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace;
      margin: 0; white-space: pre-wrap; overflow-wrap: anywhere; }
figure { margin: 1em 0 1.6em; }
figure img { max-width: 100%; border: 1px solid #e1e5e9; }
figcaption { color: #5b6670; font-size: 0.9em; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(350px, 1fr));
         gap: 0 1.4em; }
.card table { width: 100%; table-layout: fixed; }
.card td { overflow-wrap: anywhere; }
.card td:first-child { width: 42%; color: #3d4650; }
.warn { background: #fff4e5; border-left: 4px solid #e08a00; padding: 0.4em 0.8em;
        margin: 0.4em 0; }
.ok { color: #2f7d32; }
.samples td pre { max-width: 480px; }
"""


def render_page(path: Path, cards: dict[int, dict], metrics: dict, samples: dict,
                plots: list[tuple[str, str]], config_text: str, headline: str,
                in_progress: set[int] = frozenset()) -> str:
    """The page; `headline` names the evaluation set whose pass@k the rounds table shows;
    rounds in `in_progress` have not trained yet."""
    e = html.escape
    now = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    warnings = sum(len(c["warnings"]) for c in cards.values())
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>selfplay report: {e(path.name)}</title>", f"<style>{CSS}</style></head><body>",
        f"<h1>selfplay report: {e(path.name)}</h1>",
        f'<p class="meta">{e(str(path))} &middot; {len(cards)} round(s) &middot; '
        f"{warnings} warning(s) &middot; written {now}</p>",
        "<h2>Rounds</h2>", _summary_table(cards, metrics, headline, in_progress),
        "<h2>Plots</h2>",
    ]
    for caption, name in plots:
        parts.append(f'<figure><img src="{e(name)}" alt="{e(caption)}">'
                     f"<figcaption>{e(caption)}</figcaption></figure>")
    parts.append("<h2>Data cards</h2>")
    if not cards:
        parts.append("<p>No rounds have run yet.</p>")
    for r in sorted(cards):
        parts.append(_card_html(cards[r]))
    parts.append("<h2>Sample puzzles</h2>")
    parts.append("<p>A few new puzzles of each round, solved ones first, with the shortest "
                 "verified solution. Model-written code, shown as text.</p>")
    for r in sorted(samples):
        parts.append(_samples_html(r, samples[r]))
    parts += ["<h2>Configuration</h2>", f"<pre>{e(config_text)}</pre>", "</body></html>", ""]
    return "\n".join(parts)


def _summary_table(cards: dict[int, dict], metrics: dict, headline: str,
                   in_progress: set[int] = frozenset()) -> str:
    e = html.escape
    default = {r: metrics.get(r, {}).get("pass_at_k") or {} for r in set(metrics) | set(cards)}
    ks = sorted({k for v in default.values() for k in v}, key=_k_order)
    head = ["round", "new puzzles", "train examples (syn / hum)", "synthetic share",
            "AST shapes / puzzle", "mean similarity", "novel share"] \
        + [f"{headline} pass@{k}" for k in ks] + ["warnings"]
    rows = ["<table><tr>" + "".join(f"<th>{e(h)}</th>" for h in head) + "</tr>"]
    for r in sorted(default):
        c = cards.get(r)
        if r in in_progress:
            cells = ["in progress"] + ["-"] * 5
        elif c:
            t, d, n = c["training"], c["diversity"], c["novelty"]
            cells = [d["puzzles"], f"{t['examples']} ({t['synthetic']} / {t['human']})",
                     _fmt(t["synthetic_share"]), _fmt(d["ast_shapes_per_puzzle"]),
                     _fmt(d["mean_pairwise_similarity"]), _fmt(n["novel_share"])]
        else:
            cells = ["base model" if r == 0 else "-"] + ["-"] * 5
        cells += [_fmt(default[r].get(k)) for k in ks]
        cells.append(len(c["warnings"]) if c else "-")
        rows.append(f"<tr><td>{r}</td>" + "".join(f'<td class="num">{e(str(x))}</td>'
                                                   for x in cells) + "</tr>")
    rows.append("</table>")
    return "\n".join(rows)


def _card_html(card: dict) -> str:
    e = html.escape
    out = [f'<h3>Round {card["round"]}</h3>']
    if card["warnings"]:
        out += [f'<div class="warn">&#9888; {e(w)}</div>' for w in card["warnings"]]
    else:
        out.append('<p class="ok">No warnings.</p>')
    out.append('<div class="cards">')
    for title, rows in card_sections(card):
        out.append(f'<div class="card"><table><tr><th colspan="2">{e(title)}</th></tr>')
        out += [f"<tr><td>{e(label)}</td><td>{e(value)}</td></tr>" for label, value in rows]
        out.append("</table></div>")
    out.append("</div>")
    # The audit's tables have a column per population, too wide for the two-column grid.
    for title, header, rows in audit_tables(card["audit"]) if card.get("audit") else []:
        out.append(f'<table class="audit"><tr><th colspan="{len(header)}">{e(title)}</th></tr>'
                   "<tr>" + "".join(f"<th>{e(h)}</th>" for h in header) + "</tr>")
        out += ["<tr>" + "".join(f"<td>{e(cell)}</td>" for cell in row) + "</tr>"
                for row in rows]
        out.append("</table>")
    return "\n".join(out)


def _samples_html(round: int, samples: list[dict]) -> str:
    e = html.escape
    out = [f"<h3>Round {round}</h3>"]
    if not samples:
        return out[0] + "\n<p>No new puzzles this round.</p>"
    out.append('<table class="samples"><tr><th>puzzle</th><th>attempts passed</th>'
               "<th>shortest verified solution</th></tr>")
    for s in samples:
        solution = f"<pre>{e(s['solution'])}</pre>" if s["solution"] else "unsolved"
        out.append(f"<tr><td><b>{e(s['name'])}</b> &middot; {e(s['answer_type'])}"
                   f"<pre>{e(s['puzzle'])}</pre></td>"
                   f'<td class="num">{s["passed"]} / {s["attempts"]}</td>'
                   f"<td>{solution}</td></tr>")
    out.append("</table>")
    return "\n".join(out)


def _fmt(value) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" if isinstance(value, float) else str(value)
