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
