"""The EIE engine's golden model: the bit-exact arithmetic of ``eie-image.md`` section 7.

The arithmetic belongs to the image format, so it lives with it (:mod:`eiex.sw.images.eie.arithmetic`,
where the exporter calibrates ``act_frac`` on it); this module is its name beside the core.
"""

from eiex.sw.images.eie.arithmetic import (  # noqa: F401
    check_inputs, decode_weights, layer_bias, quantize_input, rescale, run, run_layers,
)
