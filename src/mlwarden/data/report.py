"""The screening report: reasons, the evidence for each (label flips, triggers, floods), drift and flagged rows."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import polars as pl

from mlwarden.data.screen import PSI_LIMIT


def _drift_chart(drift: dict[str, dict[str, float]]) -> str:
    psis = [(c, v["psi"]) for c, v in drift.items() if "psi" in v]
    if not psis:
        return "<p>No numeric columns to chart.</p>"
    top = max(max(p for _, p in psis), PSI_LIMIT * 1.5)
    width, bar = 420, 16
    height = len(psis) * (bar + 4) + 30
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width + 200}" height="{height}" role="img" aria-label="PSI by column">'
    ]
    limit_x = 140 + PSI_LIMIT / top * width
    out.append(
        f'<line x1="{limit_x:.1f}" y1="18" x2="{limit_x:.1f}" y2="{height}" stroke="#b42318" stroke-dasharray="4"/>'
    )
    out.append(f'<text x="{limit_x + 4:.1f}" y="14" font-size="11" fill="#b42318">PSI limit {PSI_LIMIT}</text>')
    for i, (column, value) in enumerate(psis):
        y = 22 + i * (bar + 4)
        colour = "#b42318" if value > PSI_LIMIT else "#3b6ea5"
        out.append(f'<text x="0" y="{y + 12}" font-size="11">{html.escape(column)}</text>')
        out.append(
            f'<rect x="140" y="{y}" width="{max(1.0, value / top * width):.1f}" height="{bar}" fill="{colour}"/>'
        )
        out.append(f'<text x="{145 + value / top * width:.1f}" y="{y + 12}" font-size="11">{value:.3f}</text>')
    out.append("</svg>")
    return "".join(out)


def _table(headings: list[str], rows: list[list[Any]], css: str) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headings)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in r) + "</tr>" for r in rows)
    return f"<table class='{css}'><tr>{head}</tr>{body}</table>"


def _share_bar(share: float, caption: str) -> str:
    """A one-bar inline SVG: ``share`` of 1, with its caption."""
    width = 300
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width + 220}" height="24" role="img" '
        f'aria-label="{html.escape(caption)}"><rect x="0" y="4" width="{width}" height="16" fill="#eee"/>'
        f'<rect x="0" y="4" width="{max(1.0, share * width):.1f}" height="16" fill="#b42318"/>'
        f'<text x="{width + 6}" y="17" font-size="11">{html.escape(caption)}</text></svg>'
    )


def _flip_section(flips: list[dict[str, Any]]) -> str:
    rows = [
        [f["row"], f["label"], f["neighbourhood_majority"], f"{f['neighbours_agreeing']} of {f['neighbours']}"]
        for f in flips
    ]
    return (
        "<h2 id='evidence-label-flips'>Label flips: flagged rows against their reference neighbourhood</h2>"
        "<p>Each row's label beside the majority label of its nearest reference rows.</p>"
        + _table(["row", "label in batch", "reference neighbourhood majority", "neighbours with this label"], rows,
                 "evidence label-flips")
    )  # fmt: skip


def _trigger_section(triggers: list[dict[str, Any]]) -> str:
    parts = ["<h2 id='evidence-trigger'>Backdoor trigger: a value the reference never holds, labelled alike</h2>"]
    for t in triggers:
        parts.append(
            f"<p>{html.escape(str(t['column']))} = {html.escape(str(t['value']))} in {t['rows']} rows "
            f"(reference range {html.escape(str(t['reference_min']))} to {html.escape(str(t['reference_max']))}); "
            f"{t['label_share']:.0%} labelled {html.escape(str(t['label']))}; rows "
            f"{html.escape(', '.join(str(r) for r in t['example_rows']))}</p>"
            + _share_bar(float(t["label_share"]), f"label share {t['label_share']:.0%} (label {t['label']})")
        )
    rows = [[t["column"], t["value"], t["rows"], t["label"], f"{t['label_share']:.0%}"] for t in triggers]
    parts.append(_table(["column", "trigger value", "rows", "label", "label share"], rows, "evidence trigger"))
    return "".join(parts)


def _duplicate_section(flood: dict[str, Any]) -> str:
    rows = [[g["row"], g["copies"], ", ".join(str(r) for r in g["rows"])] for g in flood["most_repeated"]]
    return (
        "<h2 id='evidence-duplicates'>Duplicate flood</h2>"
        f"<p>{flood['repeated_rows']} rows repeat other rows ({flood['share']:.1%}); "
        f"{flood['distinct_rows']} distinct rows.</p>"
        + _share_bar(float(flood["share"]), f"repeated rows {flood['share']:.1%}")
        + _table(["first row", "copies", "rows"], rows, "evidence duplicates")
    )


def _evidence(evidence: dict[str, Any]) -> str:
    sections = []
    if evidence.get("label_flip"):
        sections.append(_flip_section(evidence["label_flip"]))
    if evidence.get("trigger"):
        sections.append(_trigger_section(evidence["trigger"]))
    if evidence.get("duplicate"):
        sections.append(_duplicate_section(evidence["duplicate"]))
    return "".join(sections)


def write_report(
    outcome: dict[str, Any], drift: dict[str, dict[str, float]], batch: pl.DataFrame, folder: Path
) -> Path:
    """Write ``report.html`` for one batch into ``folder``; returns its path."""
    folder.mkdir(parents=True, exist_ok=True)
    reasons = "".join(f"<li>{html.escape(r)}</li>" for r in outcome["reasons"]) or "<li>none: accepted</li>"
    flagged = outcome["flagged_rows"][:200]
    rows = batch.with_row_index("row").filter(pl.col("row").is_in(flagged)) if flagged else batch.head(0)
    header = "".join(f"<th>{html.escape(c)}</th>" for c in rows.columns[:12])
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in r[:12]) + "</tr>" for r in rows.iter_rows()
    )
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>batch "
        f"{html.escape(outcome['batch'])}</title><style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}"
        "td,th{border:1px solid #ccc;padding:2px 6px;font-size:12px}</style></head><body>"
        f"<h1>Batch {html.escape(outcome['batch'])} of {html.escape(outcome['dataset'])}: {html.escape(outcome['status'])}</h1>"
        f"<h2>Reasons</h2><ul>{reasons}</ul>{_evidence(outcome.get('evidence') or {})}"
        f"<h2>Drift by column (PSI against the reference)</h2>{_drift_chart(drift)}"
        f"<h2>Flagged rows ({len(outcome['flagged_rows'])})</h2><table><tr>{header}</tr>{body}</table></body></html>"
    )
    path = folder / f"batch-{outcome['batch']}.html"
    path.write_text(page, encoding="utf-8")
    return path
