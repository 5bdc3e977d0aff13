"""Compression methods beside Deep Compression: ternary, power-of-two, linear, low-rank, distillation, neurons."""
