"""Late fusion of branch score CSVs, tuned on Val only."""

from mmfer.fusion.ablation import ablate
from mmfer.fusion.fuse import branch_name, fuse
from mmfer.fusion.methods import (
    METHODS,
    ExpWeighted,
    FusionModel,
    MajorityVote,
    MeanFusion,
    PerClassWeights,
    Stacker,
    WeightedMean,
    apply_temperature,
    build_fuser,
    fit_temperature,
)
from mmfer.fusion.tuning import cross_validate, cross_validate_method, stratified_folds

__all__ = [
    "METHODS",
    "ExpWeighted",
    "FusionModel",
    "MajorityVote",
    "MeanFusion",
    "PerClassWeights",
    "Stacker",
    "WeightedMean",
    "ablate",
    "apply_temperature",
    "branch_name",
    "build_fuser",
    "cross_validate",
    "cross_validate_method",
    "fit_temperature",
    "fuse",
    "stratified_folds",
]
