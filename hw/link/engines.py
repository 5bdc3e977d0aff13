"""What the host link needs of each engine: the engine, its sample sizes, its descriptor, its load bytes.

:func:`link_for` builds a :class:`~eiex.hw.link.host.HostLink` around an engine sized for an image;
:func:`load_bytes` and :func:`image_hash` are the bytes ``LOAD`` sends and the hash ``COMMIT``
stores (``docs/host-protocol.md``), used alike by the bitstream (``--preload``) and the driver.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass

from amaranth.lib import wiring

from eiex.errors import EiexError

KINDS = ("eie", "xnor")
#: bytes of the image hash
HASH_BYTES = 8
#: the quiet time of a board's link (``docs/host-protocol.md``)
TIMEOUT_SECONDS = 0.01
#: payload buffer of the link when none is asked for
MAX_PAYLOAD_DEFAULT = 4096


@dataclass
class EnginePort:
    """An engine as the link drives it.

    Parameters
    ----------
    kind : "eie" or "xnor"
    engine : wiring.Component
        With ``load`` and ``input`` streams in and an ``output`` stream out.
    in_beats, out_beats : int
        Input beats and results per sample.
    params : dict
        What the engine was built with (the descriptor's ``params``).
    stats : tuple of str
        The engine's 32-bit statistics outputs, by port name.
    image_hash : bytes
        The hash of the image in the engine's initial memories; zeros if none.
    """

    kind: str
    engine: wiring.Component
    in_beats: int
    out_beats: int
    params: dict
    stats: tuple = ()
    image_hash: bytes = bytes(HASH_BYTES)


def eie_params(hw) -> dict:
    return dataclasses.asdict(hw)


def eie_hw(params: dict):
    """The :class:`HwParams` a descriptor's ``params`` describe."""
    from eiex.hw.eie.params import HwParams
    from eiex.sw.images.eie.image import EngineParams

    try:
        return HwParams(**{**params, "engine": EngineParams(**params["engine"])})
    except (TypeError, KeyError) as e:
        raise EiexError(f"the device's EIE parameters are not readable: {e}") from None


def xnor_layers(params: dict):
    """The layer geometries a descriptor's ``params`` describe."""
    from eiex.hw.xnor.mvtu import LayerGeometry

    try:
        return [LayerGeometry(**layer) for layer in params["layers"]]
    except (TypeError, KeyError) as e:
        raise EiexError(f"the device's XNOR parameters are not readable: {e}") from None


def load_words(kind: str, image, params: dict) -> tuple[list[int], int]:
    """The load-interface words writing the whole image into the engine ``params`` describe (zeros
    too: the memories may hold another image), and their width in bits."""
    if kind == "eie":
        from eiex.hw.eie.engine import load_layout
        from eiex.hw.eie.memory_map import load_writes

        hw = eie_hw(params)
        hw.check_image(image)
        layout = load_layout(hw)
        writes = load_writes(image, hw, skip_zero=False)
    elif kind == "xnor":
        from eiex.hw.xnor.engine import load_layout
        from eiex.hw.xnor.memory_map import engine_for, load_writes

        layers = xnor_layers(params)
        if engine_for(image) != layers:
            raise EiexError("the image's layers are not the ones the engine was built for")
        layout = load_layout(layers)
        writes = load_writes(image)
    else:
        raise EiexError(f"engine must be one of {', '.join(KINDS)}, not {kind!r}")
    return [layout.const(w).as_value().value for w in writes], layout.size


def load_bytes(kind: str, image, params: dict) -> bytes:
    """The concatenated payloads of the ``LOAD`` frames writing ``image``: every word little-endian
    in whole bytes."""
    words, bits = load_words(kind, image, params)
    n = (bits + 7) // 8
    return b"".join(w.to_bytes(n, "little") for w in words)


def image_hash(data: bytes) -> bytes:
    """The image hash of the ``LOAD`` bytes ``data``: the first 8 bytes of their SHA-256."""
    return hashlib.sha256(data).digest()[:HASH_BYTES]


def engine_port(kind: str, image, *, preload: bool = False, queue_depth: int = 8,
                mac: str = "multiply") -> EnginePort:
    """An engine sized for ``image`` (its memories holding it with ``preload``); ``queue_depth`` and
    ``mac``: the EIE engine's (:class:`~eiex.hw.eie.params.HwParams`)."""
    if kind == "eie":
        from eiex.hw.eie.engine import EieEngine
        from eiex.hw.eie.memory_map import memory_contents
        from eiex.hw.eie.params import HwParams

        hw = HwParams.for_image(image, queue_depth=queue_depth, mac=mac)
        hw.check_image(image)
        engine = EieEngine(hw, init=memory_contents(image, hw) if preload else None)
        port = EnginePort("eie", engine, image.inputs, image.outputs, eie_params(hw),
                          stats=("cycles", "compute_cycles"))
    elif kind == "xnor":
        from eiex.hw.xnor.engine import XnorEngine
        from eiex.hw.xnor.memory_map import engine_for, memory_contents

        if mac != "multiply":
            raise EiexError(f"the XNOR engine has no multiplier to replace: mac must be multiply, not {mac!r}")
        layers = engine_for(image)
        engine = XnorEngine(layers, memory_contents(image) if preload else None)
        port = EnginePort("xnor", engine, layers[0].sf, layers[-1].out_features,
                          {"layers": [dataclasses.asdict(g) for g in layers]})
    else:
        raise EiexError(f"engine must be one of {', '.join(KINDS)}, not {kind!r}")
    if preload:
        port.image_hash = image_hash(load_bytes(kind, image, port.params))
    return port


def link_for(kind: str, image, *, clock_hz: float, baud: int | None = None, divisor: int | None = None,
             preload: bool = False, queue_depth: int = 8, mac: str = "multiply", max_payload: int | None = None,
             timeout_cycles: int | None = None):
    """A :class:`~eiex.hw.link.host.HostLink` with an engine of ``kind`` sized for ``image``.

    ``divisor`` (clock cycles per bit) defaults to :func:`~eiex.hw.uart.divisor_for` ``clock_hz``
    and ``baud`` (3 Mbaud); ``timeout_cycles`` to 10 ms of the clock."""
    from eiex.hw.link.host import HostLink
    from eiex.hw.uart import BAUD_DEFAULT, divisor_for

    if divisor is None:
        divisor = divisor_for(clock_hz, baud or BAUD_DEFAULT)
    if timeout_cycles is None:
        timeout_cycles = max(1, round(clock_hz * TIMEOUT_SECONDS))
    port = engine_port(kind, image, preload=preload, queue_depth=queue_depth, mac=mac)
    return HostLink(port, clock_hz=int(clock_hz), divisor=divisor, timeout_cycles=timeout_cycles,
                    max_payload=max_payload or MAX_PAYLOAD_DEFAULT)
