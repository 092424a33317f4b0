"""Video frame-rate up-conversion for ``interpolate.py``: streaming readers (PyAV, raw YUV, image folders), the
2x/4x/8x interpolation engine, tiled inference with seamless blending, and writers that publish only complete
output. Frames travel as (H, W, 3) uint8 RGB arrays between files and the engine, as (1, 3, H, W) tensors in
[0, 1] inside it."""
