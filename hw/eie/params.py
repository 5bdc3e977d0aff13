"""What one EIE engine instance is built for: the image's engine parameters plus hardware sizes.

Every width and depth the RTL uses is derived here, in one place, from
:class:`eiex.sw.images.eie.image.EngineParams` and the sizes below; the RTL holds no magic numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from eiex.sw.images.eie.identity import check_identity_codebook
from eiex.sw.images.eie.image import DEFAULT_MAC, EieImage, EngineParams, check_mac
from eiex.sw.images.eie.powers import check_shift_codebook
from eiex.errors import EiexError

#: the layer table's ``weight_frac`` field is this wide (the encoder allows 0..63)
WEIGHT_FRAC_BITS = 6
#: default number of non-zero flags the LNZD tree looks at per cycle (rounded up to whole slots)
DEFAULT_WINDOW = 16
#: the reference configuration of the demo, the benchmarks and the CLI's defaults
DEFAULT_PES = 8
DEFAULT_QUEUE_DEPTH = 8
#: entries of the control unit's column queue between the LNZD scan and the broadcast stages
#: (two keep one column per cycle flowing; the scan then never waits on the broadcast's handshake)
COLUMN_QUEUE_DEPTH = 2


def _check_positive(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise EiexError(f"{name} must be a positive integer, not {value!r}")


def _bits(n: int) -> int:
    """Bits of an unsigned number that counts up to ``n`` inclusive."""
    return max(1, int(n).bit_length())


@dataclass(frozen=True)
class HwParams:
    """An engine instance.

    Parameters
    ----------
    engine : EngineParams
        The image parameters the engine runs (section 1 of ``eie-image.md``).
    queue_depth : int
        Entries of each PE's activation queue (FIFO of broadcast ``(j, a_j)`` pairs).
    max_width : int
        Largest ``rows`` or ``cols`` of any layer.
    max_layers : int
        Rows of the layer table.
    spmat_depth, ptr_depth, bias_depth : int
        Words of each PE's sparse-matrix, pointer and bias memories.
    window_slots : int or None
        Activation slots per PE that the leading-non-zero detector scans per cycle; the window
        is ``window_slots * n_pe`` flags. ``None``: enough slots for at least 16 flags.
    mac : str
        ``"multiply"``: each PE multiplies the activation by the codebook entry (a DSP block).
        ``"shift"``: each PE shifts it (no multiplier); runs only images whose codebook entries
        are all 0 or a signed power of two.
        ``"index"``: each PE multiplies by the weight's code itself, read as a signed ``idx_bits``
        integer (no codebook memory, a narrower multiplier); runs only images whose codebooks are
        the identity on the codes they use.
    """

    engine: EngineParams
    queue_depth: int = DEFAULT_QUEUE_DEPTH
    max_width: int = 64
    max_layers: int = 4
    spmat_depth: int = 256
    ptr_depth: int = 256
    bias_depth: int = 64
    window_slots: int | None = None
    mac: str = DEFAULT_MAC

    def __post_init__(self):
        if not isinstance(self.engine, EngineParams):
            raise EiexError(f"engine must be an EngineParams, not {type(self.engine).__name__}")
        for name in ("queue_depth", "max_width", "max_layers", "spmat_depth", "ptr_depth", "bias_depth"):
            _check_positive(name, getattr(self, name))
        if self.window_slots is not None:
            _check_positive("window_slots", self.window_slots)
        if self.queue_depth < 2:
            raise EiexError(f"queue_depth must be at least 2 (the broadcast sees a PE's queue level one "
                            f"cycle late), not {self.queue_depth}")
        if self.ptr_depth < 2:
            raise EiexError(f"ptr_depth must be at least 2 (one layer's two pointers), not {self.ptr_depth}")
        check_mac(self.mac)
        if self.mac == "index" and self.engine.idx_bits > self.engine.weight_bits:
            raise EiexError(f"mac index takes a code as the weight, so idx_bits ({self.engine.idx_bits}) must not "
                            f"exceed weight_bits ({self.engine.weight_bits})")

    @classmethod
    def for_image(cls, image: EieImage, queue_depth: int = DEFAULT_QUEUE_DEPTH, window_slots: int | None = None,
                  spare_layers: int = 0, mac: str = DEFAULT_MAC) -> "HwParams":
        """The smallest instance that holds ``image`` (depths as the image needs them)."""
        e = image.engine
        n_words = max(1, max(-(-len(pe.v) // e.entries_per_word) for pe in image.pes))
        return cls(
            engine=e, queue_depth=queue_depth,
            max_width=max(max(l.rows, l.cols) for l in image.layers),
            max_layers=len(image.layers) + spare_layers,
            spmat_depth=n_words,
            ptr_depth=max(2, max(len(pe.ptr) for pe in image.pes)),
            bias_depth=max(1, max(len(pe.bias) for pe in image.pes)),
            window_slots=window_slots, mac=mac,
        )

    def check_image(self, image: EieImage) -> None:
        """Raise :class:`EiexError` unless this instance can run ``image``."""
        if image.engine != self.engine:
            raise EiexError(f"the image is encoded for {image.engine}, the engine is built for {self.engine}")
        need = HwParams.for_image(image)
        for name in ("max_width", "max_layers", "spmat_depth", "ptr_depth", "bias_depth"):
            if getattr(need, name) > getattr(self, name):
                raise EiexError(f"the image needs {name} = {getattr(need, name)}, the engine has {getattr(self, name)}")
        if max(l.weight_frac for l in image.layers) >= 1 << WEIGHT_FRAC_BITS:
            raise EiexError(f"weight_frac must be below {1 << WEIGHT_FRAC_BITS}")
        if self.mac == "shift":
            check_shift_codebook(image)
        elif self.mac == "index":
            check_identity_codebook(image)

    # ---- derived sizes -------------------------------------------------------------------

    @property
    def n_pe(self) -> int:
        return self.engine.n_pe

    @property
    def win_slots(self) -> int:
        """Slots per PE in one LNZD window."""
        return self.window_slots or max(1, math.ceil(DEFAULT_WINDOW / self.n_pe))

    @property
    def window(self) -> int:
        """Non-zero flags the LNZD tree scans per cycle."""
        return self.win_slots * self.n_pe

    @property
    def slots(self) -> int:
        """Activation slots per PE and bank, a whole number of LNZD windows."""
        per_pe = math.ceil(self.max_width / self.n_pe)
        return math.ceil(per_pe / self.win_slots) * self.win_slots

    @property
    def n_windows(self) -> int:
        return self.slots // self.win_slots

    @property
    def flag_depth(self) -> int:
        """Words of the non-zero flag memory: one window per word, two banks, and one spare word
        that the scan may prefetch past a bank's last window."""
        return 2 * self.n_windows + 1

    @property
    def flag_bits(self) -> int:
        """Non-zero flags per bank (activation index ``j`` up to ``slots * n_pe``)."""
        return self.slots * self.n_pe

    @property
    def width_bits(self) -> int:
        """Bits of a row or column count or of an activation index (up to ``flag_bits``)."""
        return _bits(self.flag_bits)

    @property
    def slot_bits(self) -> int:
        return _bits(self.slots)

    @property
    def acc_bits(self) -> int:
        """Accumulator width: the exact bias + sum over ``max_width`` products never overflows."""
        e = self.engine
        products = e.act_bits + e.weight_bits - 1 + math.ceil(math.log2(max(2, self.max_width)))
        return max(products, e.bias_bits) + 1

    @property
    def ptr_bank_depth(self) -> int:
        """Words of each of the two pointer banks (even and odd addresses)."""
        return math.ceil(self.ptr_depth / 2)

    @property
    def codebook_depth(self) -> int:
        return self.max_layers * self.engine.codebook_size

    @property
    def ptr_addr_bits(self) -> int:
        return _bits(self.ptr_depth)

    @property
    def bias_addr_bits(self) -> int:
        return _bits(self.bias_depth)

    @property
    def codebook_addr_bits(self) -> int:
        return _bits(self.codebook_depth)

    @property
    def spmat_addr_bits(self) -> int:
        return _bits(self.spmat_depth)

    @property
    def layer_bits(self) -> int:
        return _bits(self.max_layers)
