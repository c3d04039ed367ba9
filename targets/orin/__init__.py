"""Orin target: JetPack -> TensorRT version table, static TensorRT compatibility lint and trtexec build recipe."""
