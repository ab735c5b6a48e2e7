"""The HTML report of predict and evaluate: content, self-containment, and what a real browser shows."""

from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pytest

from mmfer.labels import EMOTIONS
from mmfer.predict import predict

from predict_helpers import standin_bundle

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# flags for a root, offline, display-less machine (no sandbox, no background network)
HEADLESS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def report(tmp_path_factory, cremad_videos, cremad_audio):
    d = tmp_path_factory.mktemp("report")
    bundle = standin_bundle(d / "bundle")
    inputs = [*cremad_videos[:2], cremad_audio[0], d / "broken.mp4"]
    (d / "broken.mp4").write_bytes(b"\x00" * 100)
    result = predict(inputs, model=bundle, report=d / "report.html", labels_from="cremad", progress=False)
    return result


def test_report_holds_rows_timelines_and_metrics(report, tmp_path):
    page = report.report.read_text()
    assert page.startswith("<!DOCTYPE html><html lang='en'>") and "http://" not in page and "https://" not in page  # self-contained
    body = page[page.index("<table id='predictions'"):]
    rows = re.findall(r"<tr( class=err)?>", body.split("</table>")[0].split("<tbody>")[1])
    assert len(rows) == 4 and sum(1 for r in rows if r) == 1  # the broken file is a marked error row
    assert len(re.findall(r"<img class='timeline'[^>]+src='data:image/png;base64,", page)) == 2  # one per video
    folded = re.findall(r"<details><summary>([^<]+)</summary>", page)  # segments, per video and sound file
    assert sorted(folded) == sorted(f"{p.path}: 1 segment(s)" for p in report.predictions if p.ok)
    assert "id='accuracy'" in page and "id='confusion'" in page and sum(p.ok for p in report.predictions) == 3
    m = re.search(r"id='accuracy'>([0-9.]+)<", page)
    from mmfer.data.index import file_label

    truths = [file_label(p.path, "cremad")[1] for p in report.predictions if p.ok]  # broken.mp4 has no label
    assert [p.truth for p in report.predictions if p.ok] == truths  # the truths in Python too, not only the page
    assert report.predictions[-1].truth is None
    assert report.classes == tuple(EMOTIONS) and report.probs.shape == (4, 7)
    np.testing.assert_array_equal(report.probs[:3], np.stack([p.probs for p in report.predictions[:3]]))
    assert np.isnan(report.probs[3]).all()  # the error row
    from mmfer.predict import read_predictions, write_predictions

    again = read_predictions(write_predictions(tmp_path / "again.csv", report.predictions))  # from Python, no truths
    assert [r["label"] for r in again[:3]] == truths and again[3]["label"] == ""  # given: their own .truth
    expected = np.mean([p.predicted == t for p, t in zip([p for p in report.predictions if p.ok], truths)])
    assert float(m.group(1)) == pytest.approx(expected, abs=1e-4)


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium not installed (Debian package chromium)")
def test_report_in_a_real_browser(report, tmp_path):
    """Chromium opens the page: the DOM after scripts has every row, the timelines and the confusion matrix,
    and the screenshot is not blank."""
    url = report.report.resolve().as_uri()
    dom = subprocess.run([CHROMIUM, *HEADLESS, f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", url],
                         capture_output=True, text=True, timeout=120).stdout
    # predictions (+ header), recall table (+ header, + the "no prediction" row), and a segments table (header
    # + one segment) for each of the two videos and the sound file
    assert dom.count("<tr") == 4 + 1 + 7 + 1 + 1 + 3 * (1 + 1) and 'id="no-prediction"' in dom
    assert dom.count('class="timeline"') == 2 and 'id="confusion"' in dom
    shot = tmp_path / "shot.png"
    subprocess.run([CHROMIUM, *HEADLESS, f"--user-data-dir={tmp_path / 'profile2'}", f"--screenshot={shot}",
                    "--window-size=1200,1600", url], capture_output=True, timeout=120)
    import cv2

    img = cv2.imread(str(shot))
    assert img is not None and img.shape[:2] == (1600, 1200) and img.std() > 20
    # a click sorts the table it is in: the script numbered headers across every sortable table of the page, so
    # a segments table after the inputs' table sorted by a column it does not have (and threw)
    page = report.report.read_text()
    second = ("<table class='sortable segments' id='t2'><thead><tr><th>a</th><th>b</th></tr></thead><tbody>"
              "<tr><td>x</td><td data-v='2'>2</td></tr><tr><td>y</td><td data-v='1'>1</td></tr></tbody></table>")
    click = ("<script>document.querySelectorAll('#t2 th')[1].click(); document.title = Array.from("
             "document.querySelectorAll('#t2 tbody tr')).map(function(r){return r.cells[0].textContent}).join(',');"
             "</script>")
    tried = tmp_path / "sorted.html"
    tried.write_text(page.replace("<script>", second + "<script>", 1).replace("</body>", click + "</body>", 1))
    dom = subprocess.run([CHROMIUM, *HEADLESS, f"--user-data-dir={tmp_path / 'profile3'}", "--dump-dom",
                          tried.resolve().as_uri()], capture_output=True, text=True, timeout=120).stdout
    assert "<title>y,x</title>" in dom  # ascending by column b


def test_evaluate_report(tmp_path, monkeypatch):
    from mmfer.labels import EMOTIONS
    from mmfer.metrics import evaluate_file
    from mmfer.scores import write_scores

    ids = [f"c{i}" for i in range(14)]
    labels = [EMOTIONS[i % 7] for i in range(14)]
    probs = np.eye(7)[[i % 7 for i in range(13)] + [0]]  # the last one wrong
    path = write_scores(tmp_path / "s.csv", ids, labels, probs)
    result = evaluate_file(path, report=tmp_path / "r.html")
    page = (tmp_path / "r.html").read_text()
    assert result["report"] == str(tmp_path / "r.html")
    assert f"id='accuracy'>{13 / 14:.4f}<" in page and page.count("<tr>") == 14 + 1 + 7 + 1
    # the time it states is SOURCE_DATE_EPOCH's where that is set: two runs' reports can match byte for byte
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1767225600")
    evaluate_file(path, report=tmp_path / "r1.html")
    evaluate_file(path, report=tmp_path / "r2.html")
    assert "Written 2026-01-01 00:00 UTC by mmfer" in (tmp_path / "r1.html").read_text()
    assert (tmp_path / "r1.html").read_bytes() == (tmp_path / "r2.html").read_bytes()


def test_report_timelines_are_small_and_capped(tmp_path, cremad_videos, monkeypatch):
    """Each embedded timeline was a 880 px PNG shown at 560 (120 KB a video: 50 MB for 400 videos, held in memory
    until the end): drawn at the size shown, and past a cap the page says how many it left out."""
    import base64

    import cv2

    import mmfer.inference.run as run

    monkeypatch.setattr(run, "REPORT_TIMELINES_MAX", 1)
    bundle = standin_bundle(tmp_path / "bundle")
    done = predict(cremad_videos[:2], model=bundle, report=tmp_path / "r.html", progress=False)
    page = done.report.read_text()
    pngs = re.findall(r"src='data:image/png;base64,([^']+)'", page)
    assert len(pngs) == 1 and "Timelines of the first 1 videos; 1 more are in the table without one" in page
    img = cv2.imdecode(np.frombuffer(base64.b64decode(pngs[0]), np.uint8), cv2.IMREAD_COLOR)
    assert img.shape[1] == 8 * run.REPORT_PLOT_DPI  # 8-inch figure: 560 px, the width the page shows it at
    assert re.search(r"Written \d{4}-\d\d-\d\d \d\d:\d\d UTC by mmfer \d", page)
