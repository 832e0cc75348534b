"""Quality results of a run, for the console (``bubbles show``) and the HTML report.

Both read the run store's ``quality_results`` and ``quarantines`` tables (their examples are
masked before they are stored: ``pii`` columns by their mask, secrets by the run's registry).
"""

from __future__ import annotations

import html
import json
from typing import Any

__all__ = ["report_quality", "show_quality"]

_OUTCOME_CLASS = {"passed": "ok", "warned": "warn", "quarantined": "warn", "dropped": "warn", "failed": "bad"}


def _examples(row: dict[str, Any]) -> list[str]:
    try:
        return list(json.loads(row.get("examples") or "[]"))
    except ValueError:
        return []


def show_quality(store: Any, run_id: str) -> list[str]:
    """Lines for the console: per contract and task, each rule's counts and outcome; then the quarantine appends.

    Empty when the run checked no contract.
    """
    rows = store.quality_results(run_id)
    lines: list[str] = []
    if rows:
        lines.append("data quality:")
        width = max(len(r["rule"]) for r in rows)
        group = None
        for r in rows:
            if (r["task"], r["contract"]) != group:
                group = (r["task"], r["contract"])
                source = f", source {r['source']}" if r.get("source") else ""
                lines.append(f"  contract {r['contract']} in task {r['task']}{source}")
                lines.append(f"    {'rule':<{width}}  {'action':<10} {'checked':>11} {'failed':>9} {'quarantined':>11}  outcome")
            shown = _examples(r)
            extra = f"  e.g. {shown[0]}" if shown and r["outcome"] != "passed" else ""
            if r.get("observed") and r["outcome"] != "passed":
                extra = f"  ({r['observed']})" + extra
            lines.append(f"    {r['rule']:<{width}}  {r['action']:<10} {r['rows_checked']:>11,} {r['rows_failed']:>9,} "
                         f"{r['rows_quarantined']:>11,}  {r['outcome']}{extra}")
    appends = store.quarantines(run_id)
    for q in appends:
        lines.append(f"quarantine: {q['rows']:,} rows from task {q['task']} ({q.get('contract') or 'bad lines'}) -> {q['sink']}")
    return lines


def report_quality(store: Any, run_id: str) -> str:
    """An HTML fragment (a ``<section>``) with the run's quality results; empty when there are none."""
    rows = store.quality_results(run_id)
    appends = store.quarantines(run_id)
    if not rows and not appends:
        return ""
    e = html.escape
    out = ['<section class="quality"><h2>Data quality</h2>']
    if rows:
        out.append("<table><thead><tr><th>task</th><th>contract</th><th>rule</th><th>action</th><th>checked</th>"
                   "<th>failed</th><th>quarantined</th><th>outcome</th><th>examples</th></tr></thead><tbody>")
        for r in rows:
            css = _OUTCOME_CLASS.get(r["outcome"], "")
            examples = "<br>".join(e(x) for x in _examples(r)[:3])
            observed = f" <small>{e(r['observed'])}</small>" if r.get("observed") else ""
            out.append(
                f'<tr class="{css}"><td>{e(r["task"])}</td><td>{e(r["contract"])}</td><td>{e(r["rule"])}</td>'
                f'<td>{e(r["action"])}</td><td>{r["rows_checked"]:,}</td><td>{r["rows_failed"]:,}</td>'
                f'<td>{r["rows_quarantined"]:,}</td><td>{e(r["outcome"])}{observed}</td><td><code>{examples}</code></td></tr>'
            )
        out.append("</tbody></table>")
    if appends:
        out.append("<h3>Quarantine</h3><ul>")
        for q in appends:
            out.append(f"<li>{q['rows']:,} rows from task {e(q['task'])} ({e(q.get('contract') or 'bad lines')}) "
                       f"in <code>{e(q['sink'])}</code></li>")
        out.append("</ul>")
    out.append("</section>")
    return "".join(out)
