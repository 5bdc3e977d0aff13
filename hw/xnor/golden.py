"""The XNOR engine's golden model: the bit-exact arithmetic of ``xnor-image.md`` sections 2, 5, 6 and 7.

The arithmetic belongs to the image format, so it lives with it (:mod:`eiex.sw.images.xnor.arithmetic`,
where the binarizer also measures its folded network); this module is its name beside the core.
"""

from eiex.sw.images.xnor.arithmetic import (  # noqa: F401
    binarize_input, check_bits, convolve, ideal_interval, pool, predict, propagate, run, run_layer, run_layers,
    scores,
)
