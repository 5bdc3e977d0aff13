"""The binary XNOR accelerator: its image golden model (and, beside it, its gateware)."""
