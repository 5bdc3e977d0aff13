"""Amaranth cores of eiex, each beside its bit-exact golden model."""
