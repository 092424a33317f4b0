"""Running the models outside eager PyTorch: ONNX export, ONNX Runtime sessions and the fast CPU routes."""
