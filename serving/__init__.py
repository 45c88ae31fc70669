"""Inference service (Litestar + ONNX Runtime)."""
