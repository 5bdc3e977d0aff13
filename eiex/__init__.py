"""eiex: compressed neural networks on FPGAs.

The model side lives in :mod:`eiex.sw`, the Amaranth cores in :mod:`eiex.hw`, running designs in
:mod:`eiex.sim`; :mod:`eiex.flows` joins them, :mod:`eiex.cli` is the command line. The functions
a Python user calls (:mod:`eiex.api`) are importable from here, loaded on first use so that
``import eiex.errors`` stays cheap::

    import eiex
    image = eiex.export_eie("out/lenet300", n_pe=8)
    outputs, stats = eiex.simulate("eie", image, x, simulator="verilator")
"""

from eiex.errors import EiexError

__version__ = "0.1.0"
__all__ = ["EiexError", "binarize", "build", "compress", "export_eie", "export_xnor", "get_engine", "load_image",
           "simulate", "to_verilog", "write_binarized", "write_compressed", "write_image", "Stats", "ENGINES",
           "BinaryInput", "BinaryLinear", "BinaryConv2d", "BinaryActivation"]
#: the binarized layers a user builds a BNN from (``eiex binarize --model FILE.py:FUNCTION``)
LAYERS = ("BinaryInput", "BinaryLinear", "BinaryConv2d", "BinaryActivation")


def __getattr__(name):
    if name in LAYERS:
        from eiex.sw.binarize import layers

        return getattr(layers, name)
    if name in __all__:
        from eiex import api

        return getattr(api, name)
    raise AttributeError(f"module 'eiex' has no attribute {name!r}")
