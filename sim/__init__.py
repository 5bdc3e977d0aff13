"""Verilog generation, simulator runners and cocotb benches of eiex."""
