"""Integer and fixed-point arithmetic, lookup tables and Hadamard matrices, each defined once."""
