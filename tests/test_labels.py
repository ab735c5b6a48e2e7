import pytest

from mmfer.errors import MmferError
from mmfer.labels import EMOTIONS, canonical, cremad_label, index_of, ravdess_actor, ravdess_label


def test_canonical_order_is_fixed():
    assert EMOTIONS == ("Angry", "Disgust", "Fear", "Happy", "Neutral", "Sad", "Surprise")


@pytest.mark.parametrize(
    "alias,expected",
    [("angry", "Angry"), ("ANGER", "Angry"), ("fearful", "Fear"), ("surprised", "Surprise"), ("Neutral", "Neutral"),
     ("Anxiety", "Fear")],
)
def test_aliases_map_by_name(alias, expected):
    assert canonical(alias) == expected


def test_out_of_set_and_unknown():
    assert canonical("calm") is None and canonical(" Boredom") is None  # EmoDB's boredom: left out, not an error
    with pytest.raises(MmferError, match="unknown emotion label 'Angri'.*boredom, calm, .* are left out"):
        canonical("Angri")
    with pytest.raises(MmferError, match="outside the seven"):
        index_of("calm")
    assert index_of("surprised") == 6
    for not_a_name in (None, 6):  # was AttributeError: 'NoneType' / 'int' object has no attribute 'strip'
        with pytest.raises(MmferError, match=f"an emotion label is a name such as 'Angry', got {not_a_name!r}"):
            index_of(not_a_name)


def test_corpus_file_names():
    assert ravdess_label("Actor_12/03-01-05-01-02-01-12.flac") == "Angry"
    assert ravdess_label("03-01-02-01-02-01-12.wav") is None  # calm
    assert ravdess_actor("03-01-08-01-02-01-07.flac") == "07"
    assert cremad_label("1001_DFA_HAP_XX.flv") == "Happy"
    with pytest.raises(MmferError, match="not a CREMA-D file name"):
        cremad_label("clip_0001.avi")
    with pytest.raises(MmferError, match="not a RAVDESS file name"):
        ravdess_label("1001_DFA_HAP_XX.flv")
