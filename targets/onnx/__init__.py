"""ONNX emitters: the qdq profile as an ONNX graph with explicit Q/DQ islands (TensorRT and ONNX Runtime)."""
