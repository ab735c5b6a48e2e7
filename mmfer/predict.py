"""``mmfer predict`` from Python: ``predict`` (the command), ``Predictor`` (one file at a time), their rows and
outputs. The code lives in ``mmfer.inference`` (predictor, result, stream, segments, outputs, run); this module
gathers the public names, as it always has."""

from mmfer.faces.align import FER2013_RIGID, framing_box  # noqa: F401 - their first home was here
from mmfer.inference.inputs import (  # noqa: F401
    AUDIO_HOP_S, AUDIO_WINDOW_S, MIN_AUDIO_SECONDS, SILENCE_PEAK, audio_windows, is_silent, memory_dataset, pool_frames,
)
from mmfer.inference.outputs import (  # noqa: F401
    FRAME_COLUMNS, FrameWriter, frame_rows, frames_dataframe, read_predictions, truths_from_paths,
    write_prediction_report, write_prediction_submission, write_predictions,
)
from mmfer.inference.predictor import (  # noqa: F401
    FORWARD_BATCH, MAX_IMAGE_PIXELS, TIGHT_CROP_ASPECT, TIGHT_CROP_MAX_SIDE, Predictor, check_image_size,
    check_unique_ids, find_inputs,
)
from mmfer.inference.result import PREDICTION_COLUMNS, Prediction, PredictResult  # noqa: F401
from mmfer.inference.run import predict, shard_inputs  # noqa: F401
from mmfer.inference.merge import merge_csvs  # noqa: F401
from mmfer.inference.segments import SEGMENT_COLUMNS, Segment, SegmentSettings, read_segments  # noqa: F401
