"""The HLS C++ kernel library (headers mirroring edgec.numerics) and its code generator."""
