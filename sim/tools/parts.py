"""The FPGA parts ``eiex build`` places and routes for, and how the open toolchain names them.

Capacities are the device datasheets' (Lattice FPGA-DS-02012 for ECP5, FPGA-DS-02008 for iCE40
UltraPlus, DS1040 for iCE40 LP/HX); ``eiex build`` reports the counts nextpnr itself prints, and
uses these only to name a part in messages before nextpnr has run.
"""

from __future__ import annotations

from dataclasses import dataclass

from eiex.errors import EiexError


@dataclass(frozen=True)
class Part:
    """One FPGA part and the flags that select it.

    Parameters
    ----------
    name : str
        eiex's name (``--part``).
    family : str
        ``"ecp5"`` or ``"ice40"``: picks ``synth_<family>`` and ``nextpnr-<family>``.
    device : str
        The vendor's part name.
    nextpnr_args : tuple of str
        Device and package flags for nextpnr.
    speeds : tuple of int
        Speed grades nextpnr models (empty: the family has one timing model per device).
    luts, brams, dsps : int
        LUT4s, block RAMs (ECP5 DP16KD 18 Kb, iCE40 EBR 4 Kb) and multipliers (ECP5 MULT18X18D,
        iCE40 SB_MAC16), from the datasheet.
    """

    name: str
    family: str
    device: str
    nextpnr_args: tuple[str, ...]
    speeds: tuple[int, ...]
    luts: int
    brams: int
    dsps: int

    @property
    def synth_command(self) -> str:
        if self.family == "ecp5":
            return "synth_ecp5 -top top"
        return "synth_ice40 -top top" + (" -dsp" if self.dsps else "")

    @property
    def nextpnr(self) -> str:
        return f"nextpnr-{self.family}"


PARTS = {p.name: p for p in (
    Part("ecp5-85k", "ecp5", "LFE5U-85F", ("--85k", "--package", "CABGA381"), (6, 7, 8), 83_640, 208, 156),
    Part("ecp5-45k", "ecp5", "LFE5U-45F", ("--45k", "--package", "CABGA381"), (6, 7, 8), 43_848, 108, 72),
    Part("ecp5-25k", "ecp5", "LFE5U-25F", ("--25k", "--package", "CABGA381"), (6, 7, 8), 24_288, 56, 28),
    Part("ice40-up5k", "ice40", "iCE40UP5K-SG48", ("--up5k", "--package", "sg48"), (), 5_280, 30, 8),
    Part("ice40-hx8k", "ice40", "iCE40HX8K-CT256", ("--hx8k", "--package", "ct256"), (), 7_680, 32, 0),
)}

#: nextpnr's bel types per resource row of the report (LUT4, FF, block RAM, DSP, IO, LUT RAM)
RESOURCES = {
    "ecp5": {"LUT4": "TRELLIS_COMB", "FF": "TRELLIS_FF", "BRAM": "DP16KD", "DSP": "MULT18X18D",
             "IO": "TRELLIS_IO", "LUTRAM": "TRELLIS_RAMW"},
    "ice40": {"LUT4": "ICESTORM_LC", "BRAM": "ICESTORM_RAM", "DSP": "ICESTORM_DSP", "IO": "SB_IO",
              "SPRAM": "ICESTORM_SPRAM"},
}


def get_part(name: str, speed: int | None = None) -> Part:
    """The part called ``name``; ``speed`` checked against the grades it has."""
    if name not in PARTS:
        raise EiexError(f"unknown part {name!r}; choose from {', '.join(PARTS)}")
    part = PARTS[name]
    if speed is not None and speed not in part.speeds:
        if not part.speeds:
            raise EiexError(f"{name} has no speed grades to choose (nextpnr models one timing per device)")
        raise EiexError(f"{name} has speed grades {', '.join(map(str, part.speeds))}, not {speed}")
    return part
