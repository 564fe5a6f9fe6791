"""What sets the Belle II kstartautau expected limit of a run (issue 12; README "kstartautau statistics").

    python benchmarks/bench_kstartautau_belle2_limit.py RUN/kstartautau/workspace.json

Prints the Asimov expected limit of the run's workspace (the four-category BDT fit, analytic engine) as run,
without the corrections' histosys, and without histosys and the template statistics (staterror); then the
statistical precision with every background fixed, sigma = 1 / sqrt(sum s_i^2 / b_i), and the one-bin count
equivalent to the fit (stats/validation.py ``PoissonEquivalent``: nu = A^2 / B, A = sum s^2 / b, B = sum s^3 / b^2,
the count with the fit's precision and its growth with the signal), beside the published fit
(-0.15 +- 1.01) x 10^-3 and the nu its 1.8e-3 implies (``belle-rare validate-stats``).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import time
from pathlib import Path

from belle_rare.stats.limits import model_and_data, upper_limit, workspace_from_spec
from belle_rare.stats.validation import validation_rows


def without(spec: dict, kinds: tuple[str, ...]) -> dict:
    """The workspace with the modifiers of these types removed from every sample."""
    out = copy.deepcopy(spec)
    for channel in out["channels"]:
        for sample in channel["samples"]:
            sample["modifiers"] = [m for m in sample["modifiers"] if m["type"] not in kinds]
    return out


def templates(spec: dict) -> tuple[list[float], list[float]]:
    """Signal (at the workspace's reference BR) and total background per bin, every channel."""
    signal, background = [], []
    for channel in spec["channels"]:
        s = [0.0] * len(channel["samples"][0]["data"])
        b = [0.0] * len(s)
        for sample in channel["samples"]:
            target = s if sample["name"] == "signal" else b
            for i, v in enumerate(sample["data"]):
                target[i] += v
        signal += s
        background += b
    return signal, background


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("workspace", type=Path)
    spec = json.loads(parser.parse_args().workspace.read_text())
    for label, kinds in (("as run", ()), ("no histosys", ("histosys",)), ("no histosys, no staterror", ("histosys", "staterror"))):
        start = time.process_time()
        model, data = model_and_data(workspace_from_spec(without(spec, kinds)))
        result = upper_limit(model, data, cl=0.90, calculator="asymptotics", engine="analytic")
        print(f"{label:28s} expected median {result.expected[2]:.3g} x BR_ref  ({time.process_time() - start:.1f} CPU s)")
    s, b = templates(spec)
    a = sum(x * x / y for x, y in zip(s, b) if y > 0)
    bb = sum(x**3 / y**2 for x, y in zip(s, b) if y > 0)
    nu = a * a / bb
    print(f"signal at BR_ref {sum(s):.1f}, background {sum(b):.0f}; backgrounds fixed: sigma = {1 / math.sqrt(a):.3g} x BR_ref, "
          f"expected ~ 1.645 sigma = {1.645 / math.sqrt(a):.3g} x BR_ref")
    print(f"equivalent one-bin count: nu = {nu:.1f} signal events per BR_ref, b = {nu * nu / a:.0f}")
    row = next(r for r in validation_rows() if r["case"] == "kstartautau Belle II (Gaussian likelihood)")
    implied = row["poisson_equivalent_for_published"]
    print(f"published fit (-0.15 +- 1.01) x 10^-3 with 1.8e-3: nu = {implied['signal_events_per_unit_br'] * 1e-3:.2f} per 10^-3, "
          f"b = {implied['background_events']:.0f}")


if __name__ == "__main__":
    main()
