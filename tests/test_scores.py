import numpy as np
import pytest

from mmfer.errors import MmferError
from mmfer.labels import EMOTIONS
from mmfer.scores import read_scores, write_scores


def test_round_trip_and_normalisation(tmp_path, rng):
    probs = rng.random((4, 7))
    p = write_scores(tmp_path / "s.csv", ["a", "b", "c", "d"], ["Happy", None, "Sad", "Fear"], probs)
    t = read_scores(p)
    assert t.clip_ids == ["a", "b", "c", "d"]
    assert t.labels == ["Happy", None, "Sad", "Fear"]
    np.testing.assert_allclose(t.probs.sum(1), 1.0, atol=1e-5)
    np.testing.assert_allclose(t.probs, probs / probs.sum(1, keepdims=True), atol=1e-5)
    assert list(t.label_indices) == [3, -1, 5, 2]


def test_columns_are_mapped_by_name(tmp_path):
    # Classes in a different order and an extra column: values must follow the names.
    order = list(reversed(EMOTIONS))
    p = tmp_path / "r.csv"
    p.write_text("note,label,clip_id," + ",".join(order) + "\n" + "x,happy,c1," + ",".join("1" if e == "Happy" else "0" for e in order) + "\n")
    t = read_scores(p)
    assert t.predictions == ["Happy"] and t.labels == ["Happy"]
    assert t.extra == {"note": ["x"]}


def test_bad_files_are_named(tmp_path):
    p = tmp_path / "bad.csv"
    p.write_text("clip_id,label,Angry\n")
    with pytest.raises(MmferError, match="bad.csv: not a score CSV: missing column"):
        read_scores(p)
    p.write_text("clip_id,label," + ",".join(EMOTIONS) + "\nz,,1,0,0,0,0,0,x\n")
    with pytest.raises(MmferError, match=r"bad.csv:2: class scores must be numbers"):
        read_scores(p)


def test_spreadsheet_encodings(tmp_path):
    """A UTF-8 BOM (spreadsheets add one) is read past; Latin-1 bytes are an error naming the file."""
    path = write_scores(tmp_path / "s.csv", ["a", "b"], ["Happy", None], np.full((2, 7), 1 / 7))
    bom = tmp_path / "bom.csv"
    bom.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert read_scores(bom).clip_ids == ["a", "b"]
    latin = tmp_path / "latin.csv"
    latin.write_bytes(path.read_bytes().replace(b"a,Happy", b"caf\xe9,Happy"))
    with pytest.raises(MmferError, match=r"latin[.]csv: not UTF-8 text"):
        read_scores(latin)


def test_formula_like_file_names_get_safe_ids():
    from mmfer.data.cache import clip_id_from_name, clip_id_problem

    for name in ("=cmd|' /C calc'!A0", "+1+2", "@SUM(A1)", "-2+3"):
        # '-' only in names: an id given as "-1" (or cached before) stays valid, so no clip of it is dropped
        assert (clip_id_problem(name) == "") if name[0] == "-" else "formula" in clip_id_problem(name)
        safe = clip_id_from_name(name)
        assert safe.startswith("_") and not clip_id_problem(safe)
    # spaces at the ends (CSV readers strip them) become '_', also where the cut to 200 bytes leaves one
    for name, end in ((" happy ", "_happy_"), ("x" * 199 + " " + "y" * 20, "x_"), ("x" * 198 + " é" + "y" * 30, "x_")):
        safe = clip_id_from_name(name)
        assert safe.endswith(end) and safe == safe.strip() and not clip_id_problem(safe), repr(safe[-5:])


def test_score_ids_that_are_not_utf8_are_written(tmp_path):
    """Issue 20, class 13: a clip id from a non-UTF-8 file name (as a cache made before the fix holds it)
    is written readably instead of crashing `train` or `scores` after the work."""
    import os

    from mmfer.data.cache import clip_id_from_name

    raw = os.fsdecode(b"caf\xe9")
    assert clip_id_from_name(raw) == "café" and clip_id_from_name(os.fsdecode(b"a\x85b")) == "a_b"
    # a UTF-8 name listed with UTF-8 mode off in the C locale (each byte of 'é' a surrogate): the same id as anywhere
    assert clip_id_from_name("caf\udcc3\udca9") == "café" and clip_id_from_name("caf\udcc3\udca9\udce9") == "caféé"
    assert clip_id_from_name("bad\x9b2J") == "bad_2J"  # a C1 control (CSI) is no id character, as C0 ones are not
    path = write_scores(tmp_path / "s.csv", [raw, "b"], [None, "Sad"], np.eye(7)[[0, 5]],
                        extra={"path": [raw + ".avi", "b.avi"]})
    table = read_scores(path)
    assert table.clip_ids == ["caf\\xe9", "b"] and table.extra["path"][0] == "caf\\xe9.avi"


def test_predictions_are_empty_where_nothing_was_predicted(tmp_path):
    """An error row (NaN, read for evaluation) and a uniform row name no class, as predict's own column has it."""
    path = tmp_path / "p.csv"
    path.write_text("clip_id,label,Angry,Disgust,Fear,Happy,Neutral,Sad,Surprise\n"
                    "a,Sad,0.1,0.1,0.1,0.1,0.1,0.4,0.1\n"
                    "b,Sad,,,,,,,\n"
                    "c,Sad,0.142857,0.142857,0.142857,0.142857,0.142857,0.142857,0.142857\n")
    assert read_scores(path, for_evaluate=True).predictions == ["Sad", "", ""]


def test_a_segments_or_frames_csv_is_not_taken_for_scores(tmp_path):
    """`mmfer evaluate segments.csv` said "clip appears twice" at the file's second segment; it says what the file
    is and which one to give."""
    from mmfer.errors import MmferError
    from mmfer.labels import EMOTIONS
    from mmfer.scores import read_scores

    probs = ",".join(["0.1"] * 6 + ["0.4"])
    for name, head, rows in (("s.csv", "path,clip_id,start,end,predicted", ["a.mp4,a,0,4,Surprise", "a.mp4,a,4,8,Surprise"]),
                             ("f.csv", "path,clip_id,modality,time,face", ["a.mp4,a,face,0,1", "a.mp4,a,face,0.125,1"])):
        (tmp_path / name).write_text(f"{head},{','.join(EMOTIONS)}\n" + "".join(f"{r},{probs}\n" for r in rows))
        with pytest.raises(MmferError, match=r"a (segments|frames) CSV of `mmfer predict`.*predictions CSV"):
            read_scores(tmp_path / name, for_evaluate=True)


def test_score_files_of_other_systems_are_read_right_or_said(tmp_path, caplog):
    """Files from other tools: a shifted row, another separator, class names spelt otherwise, an eighth emotion,
    logits. Each is refused with what to change, or read and said; percentages are read quietly."""
    import logging

    head = "clip_id,label," + ",".join(EMOTIONS)
    one = ",".join(["0.1"] * 6 + ["0.4"])
    cases = {
        "ragged.csv": (f"{head}\na,Happy,{one},0.3\n", r"ragged\.csv:2: 10 cells for 9 columns"),
        "semi.csv": (head.replace(",", ";") + "\n", r"header reads as one column .*separator is ';'"),
        "lower.csv": (head.replace("Angry", "angry").replace("Sad", " Sad") + "\n",
                      r"write 'angry' for 'Angry', ' Sad' for 'Sad'"),
    }
    for name, (text, match) in cases.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(MmferError, match=match):
            read_scores(tmp_path / name)
    (tmp_path / "percent.csv").write_text(f"{head},Contempt\na,Happy,{','.join(['10'] * 6 + ['40'])},0\n")
    (tmp_path / "logits.csv").write_text(f"{head}\na,Happy,{','.join(['21.3'] * 6 + ['25.0'])}\nb,Sad,{one}\n")
    with caplog.at_level(logging.WARNING, logger="mmfer"):
        read_scores(tmp_path / "percent.csv")
        assert "Contempt are emotions outside the seven and are left out" in caplog.text
        assert "do not sum to 1" not in caplog.text  # percentages: scaled, nothing lost
        table = read_scores(tmp_path / "logits.csv")
    assert "logits.csv: the class scores of 1 row(s) do not sum to 1 (sums 1 to 153)" \
        in caplog.text
    assert table.probs.sum(axis=1) == pytest.approx([1.0, 1.0])  # read all the same, as before


def test_a_csv_the_csv_module_refuses_is_said_by_name(tmp_path):
    """A field over the csv module's 128-KB limit (or a NUL byte) was a traceback in evaluate, merge, the list
    readers and the truth readers."""
    from mmfer.data.index import list_rows
    from mmfer.inference.merge import merge_csvs
    from mmfer.metrics import truth_from

    huge = "x" * 200_000
    scores = tmp_path / "s.csv"
    scores.write_text("clip_id,label," + ",".join(EMOTIONS) + f"\na,{huge}," + ",".join(["0.1"] * 7) + "\n")
    preds = tmp_path / "p.csv"
    preds.write_text("path,clip_id,predicted," + ",".join(EMOTIONS) + f"\n{huge},a,Angry," + ",".join(["0.1"] * 7) + "\n")
    listed = tmp_path / "l.csv"
    listed.write_text(f"path,label\n{huge}.wav,Angry\n")
    for call, path in ((lambda: read_scores(scores), scores), (lambda: merge_csvs([preds], tmp_path / "m.csv"), preds),
                       (lambda: list(list_rows(listed, columns="path,label")), listed),
                       (lambda: truth_from(str(listed), table=read_scores(tmp_path / "ok.csv")), listed)):
        write_scores(tmp_path / "ok.csv", ["a"], [None], np.full((1, 7), 1 / 7))
        with pytest.raises(MmferError, match=f"{path.name}: not a CSV mmfer can read \\(field larger than field limit"):
            call()


def test_a_csv_in_a_windows_code_page_is_refused_naming_the_file(tmp_path):
    """Excel's plain "CSV" on Windows is cp1252: every CSV reader says so instead of a UnicodeDecodeError."""
    from mmfer.data.index import list_rows
    from mmfer.inference.merge import merge_csvs

    scores = tmp_path / "s.csv"
    scores.write_bytes(("clip_id,label," + ",".join(EMOTIONS) + "\ncaf\xe9,Angry," + ",".join(["0.1"] * 7) + "\n")
                       .encode("cp1252"))
    preds = tmp_path / "p.csv"
    preds.write_bytes(("path,clip_id,predicted," + ",".join(EMOTIONS) + "\ncaf\xe9.avi,a,Angry,"
                       + ",".join(["0.1"] * 7) + "\n").encode("cp1252"))
    listed = tmp_path / "l.csv"
    listed.write_bytes("path,label\nDonn\xe9es/a.wav,Angry\n".encode("cp1252"))
    for call, path in ((lambda: read_scores(scores), scores), (lambda: merge_csvs([preds], tmp_path / "m.csv"), preds),
                       (lambda: list(list_rows(listed, columns="path,label")), listed)):
        with pytest.raises(MmferError, match=f"{path.name}: not UTF-8 text \\(byte 0xe9 at byte \\d+\\): save it as UTF-8"):
            call()


def test_a_score_file_id_that_a_spreadsheet_would_run_is_refused(tmp_path):
    """A received score CSV's ids went on as they were into fused CSVs and submissions; ids made from file names
    never start so (they get a '_'), and ids given explicitly are refused, as docs/preprocessing.md says."""
    header = "clip_id,label," + ",".join(EMOTIONS) + "\n"
    for bad in ("=cmd|calc", "+1", "@SUM(A1)"):
        path = tmp_path / "s.csv"
        path.write_text(header + f"{bad},Happy,{','.join(['0.1'] * 6)},0.4\n", encoding="utf-8")
        with pytest.raises(MmferError, match=r"s\.csv:2: clip id .* starts with .* formula"):
            read_scores(path)
    path.write_text(header + f"-1,Happy,{','.join(['0.1'] * 6)},0.4\n", encoding="utf-8")  # a number's sign
    assert read_scores(path).clip_ids == ["-1"]
