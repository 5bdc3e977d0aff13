"""``eiex synth xnor``: the XNOR engine's resources from Yosys synthesis, LUTs per lane."""

from __future__ import annotations

from pathlib import Path

from eiex.cli.common import add_folding, describe_folding, engine_subparsers, int_list, log, targets, xnor_engine


def add_parser(sub) -> None:
    engines = engine_subparsers(sub.add_parser("synth", help="FPGA resource estimate from Yosys synthesis"))
    p = engines.add_parser("xnor", help="the XNOR binary engine: whole engine and MVTUs, LUTs per lane")
    p.add_argument("--images", type=Path, help="an XNOR image folder (its folding)")
    p.add_argument("--layers", type=int_list, help="without --images: layer sizes, inputs first (784,512,512,10)")
    add_folding(p)
    p.add_argument("--thr-bits", type=int_list, help="with --layers: threshold width per hidden layer")
    p.add_argument("--targets", type=targets, default=("ecp5", "xilinx"), help="comma list of ecp5,ice40,xilinx "
                   "(default ecp5,xilinx)")
    p.add_argument("--json", type=Path, help="also write the counts to this JSON file")
    p.set_defaults(func=run)


def run(args) -> int:
    import json

    from eiex.sim.tools.synth import xnor_resources
    from eiex.sw.atomic import atomic_write

    _, layers, _ = xnor_engine(args)
    print(f"XNOR engine: {describe_folding(layers)}")
    results = []
    for target in args.targets:
        for datapath_only in (False, True):
            log(f"synthesizing {'the MVTUs' if datapath_only else 'the engine'} for {target}")
            r = xnor_resources(layers, target, datapath_only=datapath_only)
            r.pop("units", None)
            results.append({**r, "part": "mvtus" if datapath_only else "engine"})
            print(f"{target:<7} {'MVTUs only' if datapath_only else 'whole engine':<13} "
                  f"LUTs {r['luts']:>7,}  FFs {r['ffs']:>7,}  BRAM {r['bram']:>5}  LUTRAM {r['lutram']:>5}  "
                  f"DSP {r['dsp']}  {r['luts_per_lane']:.2f} LUTs per lane (FINN-R: {r['finn_r_luts_per_lane']})  "
                  f"{r['seconds']:.0f} s")
    if args.json is not None:
        record = {"layers": [vars(g) for g in layers], "results": results}
        atomic_write(args.json, (json.dumps(record, indent=2) + "\n").encode())
    return 0
