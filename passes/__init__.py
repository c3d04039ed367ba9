"""IR -> IR passes: fold norms, rotate, calibrate, quantize. Pipelines are explicit lists."""
