"""Target emitters (orin, fpga, cpu) and device profiles; each target lowers a QuantizedModel."""
