"""The sweep report: the Pareto front against a brute-force dominance check, the recommendations
against sorting, the CSV read back, the figure read back as an image, and the Markdown's content."""

import csv

import matplotlib.image
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eiex.sim.explore.report import (COLUMNS, DPI, FIGURE_INCHES, csv_columns, label, markdown, pareto_front,
                                     plot_pareto, recommend, write_csv)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
META = {"engine": "eie", "images": "data/mnist-100.npz", "part": "ecp5-85k", "device": "LFE5U-85F", "speed": 6,
        "workers": 2, "scheduler": "LocalCluster", "seconds": 812.3, "built": 4, "cached": 2, "failed": 1}


def point(n_pe, queue_depth, status="ok", luts=None, rate=None, seed=1, **extra):
    """An EIE record; an ok point's figures follow from ``luts`` and ``rate``."""
    ok = status == "ok"
    record = {"id": f"eie-pe{n_pe}-q{queue_depth}-s{seed}", "engine": "eie",
              "params": {"n_pe": n_pe, "queue_depth": queue_depth, "seed": seed},
              "part": "ecp5-85k", "device": "LFE5U-85F", "speed": 6, "status": status, "cached": False,
              "cycles": 1000.0 / n_pe, "ideal_cycles": 900.0 / n_pe, "luts": luts, "ffs": None if luts is None
              else luts // 2, "brams": 4 * n_pe if luts is not None else None, "dsps": n_pe if ok else None,
              "lut_percent": None if luts is None else 100 * luts / 83640, "bram_percent": None,
              "fmax_mhz": 80.0 if ok else None, "inferences_per_s": rate if ok else None,
              "inferences_per_s_per_lut": rate / luts if ok and luts and rate else None, "overflow": [], "error": None,
              "seconds": 12.5, "log": f"logs/eie-pe{n_pe}-q{queue_depth}-s{seed}.log"}
    record.update(extra)
    return record


def sweep():
    """Hand-made: pe2 smallest, pe16 fastest, pe8 best per LUT, pe4-q16 dominated by pe4-q8, one unfit, one failed."""
    return [point(8, 8, luts=20000, rate=400000.0),
            point(2, 8, luts=6000, rate=90000.0),
            point(4, 8, luts=11000, rate=200000.0, cached=True),
            point(4, 16, luts=12000, rate=190000.0),
            point(16, 8, luts=45000, rate=600000.0),
            point(32, 8, "unfit", luts=150000, overflow=["BRAM 128 of 208 (62%)", "LUT 150000 of 83640 (179%)"],
                  error="does not fit: LUT 150000 of 83640 (179%)"),
            point(64, 8, "failed", error="nextpnr-ecp5 exited with 137 (killed)", log="logs/eie-pe64-q8-s1.log")]


def brute_force_front(records):
    ok = [r for r in records if r["status"] == "ok"]
    return [r["status"] == "ok" and not any(
        q["luts"] <= r["luts"] and q["inferences_per_s"] >= r["inferences_per_s"]
        and (q["luts"] < r["luts"] or q["inferences_per_s"] > r["inferences_per_s"]) for q in ok)
        for r in records]


def random_records(rng, n):
    """Random points on a coarse grid, so that ties in LUTs, in rate and in both are common."""
    statuses = rng.choice(["ok", "ok", "ok", "unfit", "failed"], size=n)
    records = []
    for i, status in enumerate(statuses):
        luts = int(rng.integers(1, 8)) * 1000
        rate = float(rng.integers(1, 8)) * 1e5
        record = point(i + 1, 8, str(status), luts=luts if status != "failed" else None, rate=rate)
        record["id"] = f"p{i}"
        records.append(record)
    return records


@pytest.mark.parametrize("seed", range(20))
def test_pareto_front_matches_brute_force_dominance(seed):
    rng = np.random.default_rng(seed)
    records = random_records(rng, int(rng.integers(0, 60)))
    assert pareto_front(records) == brute_force_front(records)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["ok", "unfit", "failed"]), st.integers(1, 5), st.integers(1, 5)),
                max_size=25))
def test_pareto_front_matches_brute_force_dominance_on_any_records(points):
    records = [point(i + 1, 8, status, luts=luts, rate=float(rate)) for i, (status, luts, rate) in enumerate(points)]
    front = pareto_front(records)
    assert front == brute_force_front(records)
    assert not any(on for on, r in zip(front, records) if r["status"] != "ok")
    if any(r["status"] == "ok" for r in records):
        assert any(front)


def test_equal_points_are_both_on_the_front_and_others_never():
    records = [point(4, 8, luts=1000, rate=5e5), point(4, 16, luts=1000, rate=5e5), point(8, 8, luts=1000, rate=4e5),
               point(2, 8, "unfit", luts=10), point(1, 8, "failed")]
    assert pareto_front(records) == [True, True, False, False, False]
    assert pareto_front([]) == []
    assert pareto_front(records[3:]) == [False, False]


def test_recommendations_on_the_hand_made_sweep():
    picks = recommend(sweep())
    assert picks["smallest"]["id"] == "eie-pe2-q8-s1"
    assert picks["fastest"]["id"] == "eie-pe16-q8-s1"
    assert picks["best_per_lut"]["id"] == "eie-pe8-q8-s1"
    assert recommend([r for r in sweep() if r["status"] != "ok"]) == {}
    assert recommend([]) == {}


@pytest.mark.parametrize("seed", range(10))
def test_recommendations_match_sorting(seed):
    records = random_records(np.random.default_rng(seed), 30)
    ok = [r for r in records if r["status"] == "ok"]
    picks = recommend(records)
    if not ok:
        assert picks == {}
        return
    smallest = sorted(ok, key=lambda r: (r["luts"], -r["inferences_per_s"]))[0]
    fastest = sorted(ok, key=lambda r: (-r["inferences_per_s"], r["luts"]))[0]
    best = sorted(ok, key=lambda r: (-r["inferences_per_s_per_lut"], r["luts"]))[0]
    # the tie rules above fix the figures; among full ties any point will do
    assert (picks["smallest"]["luts"], picks["smallest"]["inferences_per_s"]) == (smallest["luts"],
                                                                                 smallest["inferences_per_s"])
    assert (picks["fastest"]["luts"], picks["fastest"]["inferences_per_s"]) == (fastest["luts"],
                                                                               fastest["inferences_per_s"])
    assert (picks["best_per_lut"]["luts"], picks["best_per_lut"]["inferences_per_s_per_lut"]) == (
        best["luts"], best["inferences_per_s_per_lut"])
    assert all(picks[k]["status"] == "ok" for k in picks)


def test_label_uses_short_names_and_falls_back_to_name_equals_value():
    assert label(point(8, 16)) == "pe8 q16 s1"
    assert label(point(8, 16, seed=None)) == "pe8 q16"
    assert label({"params": {"target_interval": 6272, "seed": 3, "simd": 4}}) == "t6272 s3 simd=4"
    assert label({"params": {}}) == ""


def test_csv_round_trip(tmp_path):
    records = sweep()
    records.append({**point(1, 1, luts=500, rate=1e4), "id": "xnor-t6272-s1", "engine": "xnor",
                    "params": {"target_interval": 6272, "seed": 1}})
    path = tmp_path / "explore.csv"
    write_csv(records, path)
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    assert reader.fieldnames == csv_columns(records)
    assert reader.fieldnames[:6] == ["id", "engine", "n_pe", "queue_depth", "seed", "target_interval"]
    assert reader.fieldnames[6:] == list(COLUMNS[2:])
    assert len(rows) == len(records)
    for row, record, on_front in zip(rows, records, pareto_front(records)):
        assert row["pareto"] == str(int(on_front))
        assert row["cached"] == str(int(record["cached"]))
        for key, value in record["params"].items():
            assert row[key] == str(value)
        for key in set(record["params"]) ^ {"n_pe", "queue_depth", "seed", "target_interval"}:
            assert row[key] == ""
        for column in ("id", "engine", "part", "status", "error"):
            assert row[column] == ("" if record[column] is None else record[column])
        for column in ("speed", "cycles", "ideal_cycles", "luts", "ffs", "brams", "dsps", "lut_percent",
                       "bram_percent", "fmax_mhz", "inferences_per_s", "inferences_per_s_per_lut", "seconds"):
            if record[column] is None:
                assert row[column] == ""
            else:
                assert float(row[column]) == record[column]


def read_png(path):
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    image = matplotlib.image.imread(path)
    assert image.shape[:2] == (round(FIGURE_INCHES[1] * DPI), round(FIGURE_INCHES[0] * DPI))
    return image


@pytest.mark.parametrize("case", ["normal", "no ok point", "only failed", "empty", "one point"])
def test_plot_writes_a_png_of_the_figure_size(tmp_path, case):
    records = {"normal": sweep(), "no ok point": [r for r in sweep() if r["status"] != "ok"],
               "only failed": [r for r in sweep() if r["status"] == "failed"] * 3, "empty": [],
               "one point": sweep()[:1]}[case]
    path = tmp_path / "pareto.png"
    plot_pareto(records, path, f"eie on ecp5-85k: {case}")
    image = read_png(path)
    assert image.std() > 0  # something was drawn
    assert not list(tmp_path.glob(".*.tmp"))


def test_plot_uses_a_log_axis_only_over_a_wide_range(tmp_path):
    # indirectly: both ranges must render; a wide range with log LUTs would crash on zero LUTs, so check that too
    narrow = [point(2, 8, luts=1000, rate=1e5), point(4, 8, luts=2000, rate=2e5)]
    wide = narrow + [point(64, 8, luts=200000, rate=9e5), point(1, 1, "unfit", luts=0)]
    for name, records in (("narrow", narrow), ("wide", wide)):
        plot_pareto(records, tmp_path / f"{name}.png", name)
        read_png(tmp_path / f"{name}.png")


def test_markdown_names_every_point_the_recommendations_and_what_went_wrong():
    records = sweep()
    text = markdown(records, META)
    assert text.startswith("# Design-space exploration: eie on ecp5-85k (LFE5U-85F)\n")
    for record in records:
        assert record["id"] in text
    recommendations = text.split("## Recommendations")[1].split("## All points")[0]
    lines = {line.split("**")[1]: line for line in recommendations.splitlines() if line.startswith("- **")}
    assert "`eie-pe2-q8-s1`" in lines["Smallest"] and "6,000 LUTs" in lines["Smallest"]
    assert "`eie-pe16-q8-s1`" in lines["Fastest"] and "600,000 inferences/s" in lines["Fastest"]
    assert "`eie-pe8-q8-s1`" in lines["Best per LUT"] and "20.0 inferences/s per LUT" in lines["Best per LUT"]
    assert "80.0 MHz" in lines["Fastest"] and "pe16 q8 s1" in lines["Fastest"]

    table = [line for line in text.split("## All points")[1].split("##")[0].splitlines() if line.startswith("| ")]
    ids = [line.split("|")[1].strip() for line in table[1:]]
    assert ids == ["eie-pe2-q8-s1", "eie-pe4-q8-s1", "eie-pe4-q16-s1", "eie-pe8-q8-s1", "eie-pe16-q8-s1",
                   "eie-pe32-q8-s1", "eie-pe64-q8-s1"]
    pareto = {line.split("|")[1].strip(): line.split("|")[10].strip() for line in table[1:]}
    assert pareto == {r["id"]: "yes" if on else "" for r, on in zip(records, pareto_front(records))}
    assert "| 11,000 |" in table[2] and table[2].rstrip().endswith("| yes |")  # cached

    failed = text.split("## Failed and unfit points")[1]
    assert "`eie-pe64-q8-s1` (failed): nextpnr-ecp5 exited with 137 (killed)" in failed
    assert "`logs/eie-pe64-q8-s1.log`" in failed
    assert "`eie-pe32-q8-s1` (unfit): does not fit: LUT 150000 of 83640 (179%)" in failed
    assert "7 design points" in text and "5 placed and routed, 1 too big for the part, 1 failed" in text
    assert "4 built and 2 read from the cache" in text and "2 Dask workers" in text


def test_markdown_without_any_fitting_point():
    text = markdown([r for r in sweep() if r["status"] == "unfit"], {**META, "speed": None})
    assert "No point fits the part" in text
    assert "## Failed and unfit points" in text and "eie-pe32-q8-s1" in text
    assert "speed grade" not in text
    clean = markdown([r for r in sweep() if r["status"] == "ok"], META)
    assert "## Failed and unfit points" not in clean
