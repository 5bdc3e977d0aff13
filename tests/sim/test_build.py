# amaranth: UnusedElaboratable=no
"""``eiex build``: a real Yosys + nextpnr run of a tiny engine, its report checked against the tools'
own outputs and the cycle model; a design too big for its part; bad command lines."""

import json

import pytest
from amaranth import Module
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from eiex.cli import main
from eiex.hw.xnor.cycles import steady_interval
from eiex.hw.xnor.memory_map import engine_for_sizes
from eiex.sim.tools.build import run_build
from eiex.sim.tools.parts import get_part
from eiex.errors import EiexError

TINY = ["--layers", "16,8,4", "--pe", "2,2", "--simd", "4,4"]


@pytest.fixture(scope="module")
def tiny_build(tmp_path_factory):
    out = tmp_path_factory.mktemp("build") / "tiny"
    assert main(["build", "xnor", *TINY, "--part", "ice40-up5k", "--freq", "20", "--out", str(out)]) == 0
    return out


def test_build_folder_holds_the_verilog_logs_and_reports(tiny_build):
    for name in ("top.il", "yosys.log", "nextpnr.log", "nextpnr-report.json", "build.json", "build.md"):
        assert (tiny_build / name).stat().st_size > 0, name
    assert "module \\top" in (tiny_build / "top.il").read_text()


def test_report_agrees_with_nextpnr_and_the_cycle_model(tiny_build):
    r = json.loads((tiny_build / "build.json").read_text())
    pnr = json.loads((tiny_build / "nextpnr-report.json").read_text())
    assert r["fit"] and r["overflow"] == []
    for name, row in r["utilization"].items():
        if name != "FF":
            assert (row["used"], row["available"]) == (pnr["utilization"][row["bel"]]["used"],
                                                       pnr["utilization"][row["bel"]]["available"])
        assert row["percent"] == pytest.approx(100 * row["used"] / row["available"], abs=0.01)
    assert r["utilization"]["LUT4"]["used"] > 0 and r["utilization"]["IO"]["used"] == 6  # the top's pins
    assert r["utilization"]["FF"]["used"] == sum(n for c, n in r["cells"].items() if c.startswith("SB_DFF"))
    (achieved,) = [v["achieved"] for v in pnr["fmax"].values()]
    assert r["fmax_mhz"] == {"clk": pytest.approx(achieved, abs=0.01)}
    assert r["met"] == {"clk": achieved >= 20}
    path = r["critical_path"]
    assert path["logic_ns"] + path["routing_ns"] == pytest.approx(path["total_ns"], abs=0.01)
    assert path["logic_levels"] >= 1
    interval = steady_interval(engine_for_sizes([16, 8, 4], [2, 2], [4, 4]))
    t = r["throughput"]
    assert t["cycles"] == interval
    assert t["images_per_s"] == pytest.approx(r["fmax_mhz"]["clk"] * 1e6 / interval, rel=1e-6)
    md = (tiny_build / "build.md").read_text()
    assert f"{r['fmax_mhz']['clk']} MHz" in md and "Fits: **yes**" in md


class BigMemory(wiring.Component):
    """128 Kb of RAM (32 block RAMs of 4 Kb): more than the UP5K's 30. No init: Yosys is slow on a
    large one."""

    addr: In(13)
    we: In(1)
    wdata: In(16)
    data: Out(16)

    def elaborate(self, platform):
        m = Module()
        m.submodules.mem = mem = Memory(shape=16, depth=1 << 13, init=[])
        write, read = mem.write_port(), mem.read_port()
        m.d.comb += [write.addr.eq(self.addr), write.en.eq(self.we), write.data.eq(self.wdata),
                     read.addr.eq(self.addr), self.data.eq(read.data)]
        return m


def test_a_design_too_big_names_the_resource_and_keeps_the_report(tmp_path):
    out = tmp_path / "big"
    with pytest.raises(EiexError, match=r"does not fit ice40-up5k \(iCE40UP5K-SG48\): BRAM (\d+) of 30") as e:
        run_build(BigMemory(), get_part("ice40-up5k"), out, log=lambda s: None)
    r = json.loads((out / "build.json").read_text())
    brams = sum(n for cell, n in r["cells"].items() if cell.startswith("SB_RAM40_4K"))
    assert brams > 30 and f"BRAM {brams} of 30" in str(e.value)
    assert r["fit"] is False and r["utilization"]["BRAM"]["used"] == brams
    assert f"Fits: **no** (BRAM {brams} of 30" in (out / "build.md").read_text()


@pytest.mark.parametrize("args, message", [
    (["--part", "ice40-up5k", "--speed", "7"], "ice40-up5k has no speed grades to choose"),
    (["--part", "ecp5-85k", "--freq", "0"], "--freq must be a positive number of MHz, not 0.0"),
    (["--part", "ecp5-85k", "--preload"], "--preload needs --images"),
])
def test_bad_build_requests_fail_in_one_line(args, message, tmp_path, capsys):
    assert main(["build", "xnor", *TINY, *args, "--out", str(tmp_path / "b")]) == 1
    err = capsys.readouterr().err.strip()
    assert err == f"eiex: error: {message}" or message in err and "\n" not in err
    assert not (tmp_path / "b").exists()


def test_an_existing_folder_needs_force(tmp_path, capsys):
    (tmp_path / "b").mkdir()
    assert main(["build", "xnor", *TINY, "--part", "ecp5-25k", "--out", str(tmp_path / "b")]) == 1
    assert "already exists (use --force to replace it)" in capsys.readouterr().err


def test_unknown_part_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as e:
        main(["build", "eie", "--part", "ecp5-12k", "--out", "x"])
    assert e.value.code == 2 and "invalid choice: 'ecp5-12k'" in capsys.readouterr().err
