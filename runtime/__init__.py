"""Interpreters over the IR: the float reference, the int and qdq simulators, value comparisons."""
