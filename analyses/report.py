"""What every search's report shares: the ours-vs-paper table, validation.json and figure saving."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.4g}"


def comparison_text(rows: list[dict[str, Any]], console: Console, title: str) -> str:
    """Print the rows as a table (with the ours/paper ratio) and return them as report text."""
    table = Table(title=title)
    for col in ("quantity", "ours", "paper", "ratio", "note"):
        table.add_column(col)
    lines = []
    for r in rows:
        ours, paper = r["ours"], r["paper"]
        ratio = ours / paper if (ours not in (None, 0) and paper) else None
        err = f" +- {r['ours_error']:.2g}" if r.get("ours_error") else ""
        table.add_row(r["quantity"], _fmt(ours) + err, _fmt(paper), _fmt(ratio), r["note"])
        lines.append(f"{r['quantity']:<62} ours {_fmt(ours)}{err:<12} paper {_fmt(paper):<10} ratio {_fmt(ratio):<8} {r['note']}")
    console.print(table)
    return "\n".join(lines) + "\n"


def write_comparison(rows: list[dict[str, Any]], out_dir: Path, console: Console, title: str) -> None:
    """``validation.json`` (machine-readable) and ``efficiency_report.txt`` (the same, for people)."""
    (out_dir / "validation.json").write_text(json.dumps(rows, indent=2) + "\n")
    (out_dir / "efficiency_report.txt").write_text(comparison_text(rows, console, title))


def save_figure(fig: Any, plot_dir: Path, name: str) -> list[Path]:
    """Save ``fig`` as PNG and PDF under ``plot_dir`` and close it."""
    import matplotlib.pyplot as plt

    plot_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for ext in ("png", "pdf"):
        path = plot_dir / f"{name}.{ext}"
        fig.savefig(path, bbox_inches="tight")
        paths.append(path)
    plt.close(fig)
    return paths
