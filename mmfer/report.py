"""One self-contained HTML page of results: ``mmfer predict --report`` and ``mmfer evaluate --report``.

Why one file: a researcher mails it or opens it from a cluster's disk; images are embedded (base64 PNG),
the table sorts by clicking a header with a few lines of inline script, and nothing is fetched from a
network. Rows are the predictions (or score rows); when true labels are known the page opens with
accuracy, mean class accuracy, per-class recall and the confusion matrix.
"""

from __future__ import annotations

import base64
import html
import tempfile
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

from mmfer import __version__
from mmfer.labels import EMOTIONS
from mmfer.outputs import source_date

_STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;font-size:13px}th,td{border:1px solid #ccc;padding:3px 7px;text-align:left}
th{background:#eef}table.sortable th{cursor:pointer;user-select:none}table.sortable th:after{content:" \\2195";color:#99a}
td.num{text-align:right;font-variant-numeric:tabular-nums}tr.err td{background:#fee}
.figs{display:flex;flex-wrap:wrap;gap:12px}figure{margin:0}figcaption{font-size:12px}
.metrics td{min-width:4em}
"""

_SORT = """
document.querySelectorAll('table.sortable th').forEach(function(th){
  var col = th.cellIndex;  // within its own table: a page holds several sortable tables
  th.addEventListener('click', function(){
    var body = th.closest('table').tBodies[0], rows = Array.from(body.rows);
    var asc = th.dataset.dir !== 'asc'; th.dataset.dir = asc ? 'asc' : 'desc';
    rows.sort(function(a, b){
      var x = a.cells[col].dataset.v || a.cells[col].textContent, y = b.cells[col].dataset.v || b.cells[col].textContent;
      var nx = parseFloat(x), ny = parseFloat(y);
      var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
      return asc ? c : -c;
    });
    rows.forEach(function(r){ body.appendChild(r); });
  });
});
"""


def png_data(render) -> str:
    """A data: URI of the PNG that ``render(path)`` writes (the plot functions of ``mmfer.plots``)."""
    with tempfile.TemporaryDirectory(prefix="mmfer-report-") as tmp:
        path = Path(tmp) / "figure.png"
        render(path)
        return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _metrics_html(metrics: Mapping[str, Any]) -> str:
    from mmfer.plots import plot_confusion

    recall = metrics.get("per_class_recall", {})
    cells = "".join(f"<tr><td>{html.escape(e)}</td><td class='num'>"
                    f"{'' if recall.get(e) is None else f'{recall[e]:.3f}'}</td>"
                    f"<td class='num'>{metrics.get('support', {}).get(e, 0)}</td></tr>" for e in EMOTIONS)
    confusion = png_data(lambda p: plot_confusion(metrics["confusion"], p, title="confusion (rows: truth)",
                                                  no_prediction=metrics.get("no_prediction")))
    none = metrics.get("no_prediction")
    cells += (f"<tr id='no-prediction'><td>no prediction (counted wrong)</td><td></td>"
              f"<td class='num'>{sum(none)}</td></tr>" if none is not None else "")
    excluded = f", {metrics['excluded']} excluded (no label, or one outside the seven)" if metrics.get("excluded") else ""
    missing = f", {len(metrics['missing'])} without a prediction (counted wrong)" if metrics.get("missing") else ""
    return (f"<h2>Metrics</h2><p id='summary'>{metrics['n']} labelled inputs{excluded}{missing}: "
            f"accuracy <b id='accuracy'>{metrics['accuracy']:.4f}</b>, mean class accuracy (uar) "
            f"<b id='uar'>{metrics['uar']:.4f}</b>, macro-F1 {metrics['macro_f1']:.4f}</p>"
            f"<div class='figs'><table class='metrics'><thead><tr><th>class</th><th>recall</th><th>clips</th></tr>"
            f"</thead><tbody>{cells}</tbody></table>"
            f"<figure><img id='confusion' alt='confusion matrix' src='{confusion}' width='480'></figure></div>")


SEGMENT_FIELDS = (("start", "start (s)"), ("end", "end (s)"), ("predicted", "predicted"), ("confidence", "confidence"),
                  ("face_ratio", "face share"), ("modalities", "modalities"), ("track", "track"))


def _segments_html(segments: Mapping[str, Sequence[Mapping[str, Any]]]) -> str:
    """One folded, sortable table of segments per file (an hour is 900 rows: folded until asked for)."""
    if not any(segments.values()):
        return ""
    head = "".join(f"<th>{html.escape(name)}</th>" for _, name in SEGMENT_FIELDS)
    parts = []
    for cid, rows in segments.items():
        body = []
        for r in rows:
            cells = []
            for k, _ in SEGMENT_FIELDS:
                v = r.get(k)
                if isinstance(v, float):
                    text = f"{v:.1f}" if k in ("start", "end") else f"{v:.3f}"
                    cells.append(f"<td class='num' data-v='{v:.6f}'>{text}</td>")
                else:
                    cells.append(f"<td>{html.escape('' if v is None else str(v))}</td>")
            body.append(f"<tr>{''.join(cells)}</tr>")
        parts.append(f"<details><summary>{html.escape(cid)}: {len(rows)} segment(s)</summary>"
                     f"<table class='sortable segments'><thead><tr>{head}</tr></thead>"
                     f"<tbody>{''.join(body)}</tbody></table></details>")
    return f"<h2>Segments</h2>{''.join(parts)}"


def write_report(
    out: str | Path,
    rows: Sequence[Mapping[str, Any]],
    *,
    title: str,
    metrics: Mapping[str, Any] | None = None,
    timelines: Mapping[str, str] | None = None,
    segments: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
    note: str = "",
) -> Path:
    """Write the page. ``rows``: dicts with ``clip_id`` (and optionally ``path``), ``predicted`` (the predicted class, empty for none),
    ``confidence`` and optionally ``truth``, ``kind``, ``modalities``, ``warning``, ``error`` (bool: no
    prediction); ``timelines``: clip id or path -> PNG data URI; ``segments``: clip id or path -> its segments' rows (``start``,
    ``end``, ``predicted``, ``confidence``, ``face_ratio``, ``modalities``, ``track``), shown folded per file."""
    columns = [("clip_id", "clip_id"), ("path", "path"), ("kind", "kind"), ("predicted", "predicted"), ("truth", "label"),
               ("confidence", "confidence"), ("modalities", "modalities"), ("warning", "warning")]
    columns = [(k, name) for k, name in columns if any(k in r for r in rows)]
    head = "".join(f"<th>{html.escape(name)}</th>" for _, name in columns)
    body = []
    for r in rows:
        cells = []
        for k, _ in columns:
            v = r.get(k)
            if k == "confidence" and v is not None:
                cells.append(f"<td class='num' data-v='{v:.6f}'>{v:.3f}</td>")
            else:
                cells.append(f"<td>{html.escape('' if v is None else str(v))}</td>")
        body.append(f"<tr{' class=err' if r.get('error') else ''}>{''.join(cells)}</tr>")
    figs = "".join(f"<figure><img class='timeline' alt='timeline of {html.escape(cid)}' src='{uri}' width='560'>"
                   f"<figcaption>{html.escape(cid)}</figcaption></figure>" for cid, uri in (timelines or {}).items())
    page = (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>"
            f"<p>{html.escape(note)} Written {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(source_date()))} by mmfer {__version__}. Click a column to sort.</p>"
            + (_metrics_html(metrics) if metrics else "")
            + f"<h2>Inputs ({len(rows)})</h2><table id='predictions' class='sortable'><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table>"
            + (f"<h2>Timelines</h2><div class='figs'>{figs}</div>" if figs else "")
            + _segments_html(segments or {})
            + f"<script>{_SORT}</script></body></html>\n")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    from mmfer.outputs import write_file

    return write_file(out, page)  # a link at ``out`` is replaced, never written through
