# amaranth: UnusedElaboratable=no
"""Both engines synthesize with Yosys ``synth_ecp5`` at their smallest and their default size, and
synthesis keeps them: their memories in block or distributed RAM, one multiplier per EIE PE (none
with the shift MAC), logic for every XNOR lane. (Fmax and run times are benchmarks, not tested: ``eiex bench``.)"""

import re

import pytest

from eiex.hw.eie.engine import EieEngine
from eiex.hw.eie.params import HwParams
from eiex.hw.xnor.engine import XnorEngine
from eiex.hw.xnor.memory_map import engine_for_sizes
from eiex.sim.tools.build_top import ObservableTop
from eiex.sim.tools.synth import synthesize
from eiex.sw.images.eie.image import EngineParams

# the defaults of `eiex verilog eie` / `eiex build eie` without an image, and the smallest sizes it accepts
EIE_DEFAULT = dict(n_pe=8, max_width=1024, max_layers=4, spmat_depth=4096, ptr_depth=2048, bias_depth=512)
EIE_SMALLEST = dict(n_pe=1, max_width=1, max_layers=1, spmat_depth=1, ptr_depth=2, bias_depth=1)
# the BNN MLP at the exporter's default folding, and the smallest network `--layers` accepts
XNOR_DEFAULT = [784, 512, 512, 10]
XNOR_SMALLEST = [1, 1]

RAM = ("DP16KD", "PDPW16KD", "TRELLIS_DPR16X4")
BLOCK_RAM = {"DP16KD", "PDPW16KD"}  # true and pseudo dual port


def eie_engine(n_pe, mac="multiply", **sizes):
    return EieEngine(HwParams(engine=EngineParams(n_pe=n_pe), queue_depth=8, mac=mac, **sizes))


@pytest.fixture(scope="module", params=["smallest", "default"])
def eie_synth(request):
    sizes = EIE_SMALLEST if request.param == "smallest" else EIE_DEFAULT
    return sizes, synthesize(ObservableTop(eie_engine(**sizes)), "ecp5")


@pytest.fixture(scope="module", params=["smallest", "default"])
def xnor_synth(request):
    layers = engine_for_sizes(XNOR_SMALLEST if request.param == "smallest" else XNOR_DEFAULT)
    return layers, synthesize(ObservableTop(XnorEngine(layers)), "ecp5")


#: the EIE image memories of PE p: (path pattern, memories per PE)
EIE_IMAGE_MEMORIES = {"spmat": (r"pe\d+\.spmat", 1), "ptr": (r"pe\d+\.pointers\.(even|odd)", 2),
                      "codebook": (r"pe\d+\.codebook", 1), "bias": (r"pe\d+\.bias", 1)}


def matching(memories: dict, pattern: str) -> dict:
    """The memories whose path (below the top) ends with ``pattern`` (Amaranth may add ``$N`` to a
    name that another signal of the module has)."""
    return {name: cell for name, cell in memories.items() if re.search(rf"(^|\.){pattern}(\$\d+)?$", name)}


def test_eie_keeps_one_multiplier_per_pe(eie_synth):
    sizes, r = eie_synth
    assert r["dsp"] >= sizes["n_pe"]


def test_eie_shift_mac_has_no_multiplier():
    """With ``mac="shift"`` every PE shifts: not one DSP block is left (2 PEs, the smallest sizes)."""
    r = synthesize(ObservableTop(eie_engine(**{**EIE_SMALLEST, "n_pe": 2}, mac="shift")), "ecp5")
    assert r["dsp"] == 0 and r["luts"] > 0


def test_eie_keeps_every_image_memory_in_ram(eie_synth):
    sizes, r = eie_synth
    if sizes is EIE_SMALLEST:  # memories of one or two words rightly become registers
        assert r["ffs"] > 0
        return
    for kind, (pattern, per_pe) in EIE_IMAGE_MEMORIES.items():  # block RAM, even the small codebooks
        mapped = matching(r["memories"], pattern)
        assert len(mapped) == per_pe * sizes["n_pe"] and set(mapped.values()) <= BLOCK_RAM, (kind, mapped)
    assert r["bram"] >= sizes["n_pe"]


def test_xnor_keeps_every_weight_memory_and_the_lanes(xnor_synth):
    layers, r = xnor_synth
    weights = matching(r["memories"], r"mvtu\d+\.datapath\.weights\d+(_\d+)?")
    assert set(weights.values()) <= set(RAM)
    # each PE's weights may be split into columns of one block each: mvtu{l}.datapath.weights{p}_{column}
    owners = {(name.split(".")[-3], name.split(".")[-1].split("_")[0]) for name in weights}
    assert owners == {(f"mvtu{l}", f"weights{p}") for l, g in enumerate(layers) for p in range(g.pe)}
    lanes = sum(g.pe * g.simd for g in layers)
    assert r["luts"] >= lanes  # at least the XNOR of every lane survives
