"""FPGA target: Vitis HLS project for one Mamba decode step, device profiles and the analytic estimate."""
