"""eiex: compressed neural networks on FPGAs.

The software half lives in :mod:`eiex.sw`, the Amaranth cores in :mod:`eiex.hw` and the
simulation tooling in :mod:`eiex.sim`. The command line is :mod:`eiex.cli`.
"""

__version__ = "0.1.0"
