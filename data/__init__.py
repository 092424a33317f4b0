"""Datasets of ST-MFNet Mini: training sets and their augmentations, the test sets, and a sample builder.

Frames are (3, H, W) float32 RGB tensors in [0, 1]; a sample is the quintuplet of frames 1, 3, 4, 5, 7 in
temporal order, the target (frame 4) in the middle. ``python -m data.make_sample`` writes a small
sample of every layout from a video.
"""
from data.testsets import (
    TEST_SETS,
    Davis90_quintuplet,
    EvalItem,
    QuintupletTestSet,
    Snufilm_easy_quintuplet,
    Snufilm_extreme_quintuplet,
    Snufilm_hard_quintuplet,
    Snufilm_medium_quintuplet,
    Ucf101_quintuplet,
    VFITex_quintuplet,
    build_test_set,
)
from data.sampling import EpochSampler, SeededItems, build_training_loader
from data.training import TRAINING_SETS, BVIDVC_quintuplet, Sampler, Vimeo90k_quintuplet, build_training_set
from data.transforms import NO_AUGMENTATION, Augmentation, AugmentationDraw, item_generator

__all__ = [
    "NO_AUGMENTATION",
    "TEST_SETS",
    "TRAINING_SETS",
    "Augmentation",
    "AugmentationDraw",
    "BVIDVC_quintuplet",
    "Davis90_quintuplet",
    "EpochSampler",
    "EvalItem",
    "QuintupletTestSet",
    "Sampler",
    "SeededItems",
    "Snufilm_easy_quintuplet",
    "Snufilm_extreme_quintuplet",
    "Snufilm_hard_quintuplet",
    "Snufilm_medium_quintuplet",
    "Ucf101_quintuplet",
    "VFITex_quintuplet",
    "Vimeo90k_quintuplet",
    "build_test_set",
    "build_training_loader",
    "build_training_set",
    "item_generator",
]
