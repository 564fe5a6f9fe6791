"""The processors' four-vector hot path: hand-written components vs coffea's vector behaviours.

Run: ``.venv/bin/python benchmarks/bench_fourvectors.py [--events 50000] [--repeat 11] [--samples DIR]``

On one chunk of Belle II tau pairs (generated once, seed 2026, into
``$XDG_CACHE_HOME/belle-rare/bench_fourvectors`` unless ``--samples`` names a directory holding a
belle2 tautau manifest), loaded eagerly so that only the arithmetic is timed, both conventions
compute the same things (timed per step and together):

1. the CM boost of every track and photon (beta from the event's beam four-momentum),
2. the invariant mass of every track pair (CM),
3. the thrust-input momenta: CM tracks and photons concatenated per event, with |p|.

``hand``: ``belle_rare.processors.kinematics`` (``P4(px, py, pz, E)`` components of awkward arrays).
``vector``: the ``LorentzVector`` behaviour ``processors/schema.py`` attaches (``.boost``, ``+``,
``.mass``, ``.p``). The results are checked to agree (float32 tolerance); best and median of
``--repeat`` alternating runs are reported.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import awkward as ak
import numpy as np


def load_events(samples: Path | None, events: int):
    from coffea.nanoevents import NanoEventsFactory

    from belle_rare.processors.schema import BelleSchema
    from belle_rare.simulation.manifest import read_manifest
    from belle_rare.simulation.production import Request, produce

    if samples is None:
        cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
        samples = cache / "belle-rare" / "bench_fourvectors"
    manifest = samples / "belle2_tautau.json"
    if not manifest.exists() or read_manifest(manifest)["events"] < events:
        print(f"generating {events} belle2 tautau events into {samples}", flush=True)
        produce(Request("belle2", "tautau", events, 2026, samples, events_per_file=events), workers=2, progress=False)
    path = samples / read_manifest(manifest)["files"][0]["path"]
    factory = NanoEventsFactory.from_root({str(path): "tree"}, schemaclass=BelleSchema, mode="eager", entry_stop=events)
    ev = factory.events()
    # materialise what is timed (eager mode already reads; this drops the unused collections)
    return ev[["Track", "Photon", "beamE", "beamPx", "beamPy", "beamPz"]]


def hand_boost(events):
    from belle_rare.processors import kinematics as kin

    trk, pho = events.Track, events.Photon
    beta = kin.cm_boost(events.beamE, events.beamPx, events.beamPy, events.beamPz)
    return kin.to_cm(trk.px, trk.py, trk.pz, trk.E, *beta), kin.to_cm(pho.px, pho.py, pho.pz, pho.E, *beta)


def hand_pairs(t):
    from belle_rare.processors import kinematics as kin

    i, j = ak.unzip(ak.argcombinations(t.px, 2))
    return kin.invariant_mass(kin.P4(*(c[i] for c in t)), kin.P4(*(c[j] for c in t)))


def hand_thrust_inputs(t, g):
    from belle_rare.processors import kinematics as kin

    px, py, pz = (ak.concatenate([a, b], axis=1) for a, b in zip(t[:3], g[:3]))
    return px, kin.momentum(px, py, pz)


def vector_boost(events):
    from coffea.nanoevents.methods import vector

    beam = ak.zip({"x": events.beamPx, "y": events.beamPy, "z": events.beamPz, "t": events.beamE},
                  with_name="LorentzVector", behavior=vector.behavior)
    beta = -beam.boostvec
    return events.Track.boost(beta), events.Photon.boost(beta)


def vector_pairs(t):
    pairs = ak.combinations(t, 2, fields=["a", "b"])
    return (pairs.a + pairs.b).mass


def vector_thrust_inputs(t, g):
    p3 = ak.concatenate([t.pvec, g.pvec], axis=1)
    return p3.x, p3.p


IMPLEMENTATIONS = {
    "hand": (hand_boost, hand_pairs, hand_thrust_inputs),
    "vector": (vector_boost, vector_pairs, vector_thrust_inputs),
}


def hot_path(name: str, events) -> dict[str, ak.Array]:
    boost, pairs, thrust_inputs = IMPLEMENTATIONS[name]
    t, g = boost(events)
    thrust_px, thrust_p = thrust_inputs(t, g)
    if name == "hand":
        track_E, photon_pz = t.E, g.pz
    else:
        track_E, photon_pz = t.t, g.z
    return {"track_E": track_E, "photon_pz": photon_pz, "m_pair": pairs(t), "thrust_px": thrust_px, "thrust_p": thrust_p}


def _materialise(out) -> None:
    for v in (out.values() if isinstance(out, dict) else out if isinstance(out, tuple) else (out,)):
        if isinstance(v, tuple):
            _materialise(v)
        elif isinstance(v, ak.Array) and v.fields:  # boosted collections: the four-momentum (other fields ride along)
            for f in ("x", "y", "z", "t"):
                ak.to_numpy(ak.flatten(v[f], axis=None))
        else:
            ak.to_numpy(ak.flatten(v, axis=None))


def timed(fns: dict, repeat: int) -> dict[str, tuple[float, float]]:
    """Best and median seconds of each function; the implementations alternate (order flipped every
    round) so that a shared machine's load drifts onto both alike."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for r in range(repeat):
        for name in (list(fns) if r % 2 == 0 else list(fns)[::-1]):
            start = time.perf_counter()
            _materialise(fns[name]())
            times[name].append(time.perf_counter() - start)
    return {name: (min(t), statistics.median(t)) for name, t in times.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=11)
    parser.add_argument("--samples", type=Path)
    args = parser.parse_args()
    events = load_events(args.samples, args.events)
    n_trk, n_pho = int(ak.sum(ak.num(events.Track))), int(ak.sum(ak.num(events.Photon)))
    a, b = hot_path("hand", events), hot_path("vector", events)
    # the branches are float32: hand-written arithmetic stays float32, so may vector's
    for key in a:
        x, y = (np.asarray(ak.flatten(v, axis=None), dtype=np.float64) for v in (a[key], b[key]))
        if x.shape != y.shape or not np.allclose(x, y, rtol=1e-5, atol=1e-4):
            raise SystemExit(f"hand and vector disagree on {key}: {x.shape} {y.shape}, max |diff| {np.max(np.abs(x - y))}")
    dtypes = {name: str(ak.flatten(r["track_E"]).type.content) for name, r in (("hand", a), ("vector", b))}
    pairs = len(ak.flatten(a["m_pair"], axis=None))
    boosted = {name: IMPLEMENTATIONS[name][0](events) for name in IMPLEMENTATIONS}
    steps = {
        "hot path": {name: (lambda name=name: hot_path(name, events)) for name in IMPLEMENTATIONS},
        "CM boost": {name: (lambda fns=fns: fns[0](events)) for name, fns in IMPLEMENTATIONS.items()},
        "pair masses": {name: (lambda fns=fns, name=name: fns[1](boosted[name][0])) for name, fns in IMPLEMENTATIONS.items()},
        "thrust inputs": {name: (lambda fns=fns, name=name: fns[2](*boosted[name])) for name, fns in IMPLEMENTATIONS.items()},
    }
    for fns in steps.values():  # warm-up
        timed(fns, 1)
    results = {step: timed(fns, args.repeat) for step, fns in steps.items()}
    print(f"{len(events)} belle2 tautau events: {n_trk} tracks, {n_pho} photons, {pairs} track pairs; "
          f"best (median) of {args.repeat}, ms; hand {dtypes['hand']}, vector {dtypes['vector']}")
    print(f"  {'':<14}{'hand':>18}{'vector':>18}{'vector / hand':>16}")
    for step, r in results.items():
        h, v = r["hand"], r["vector"]
        print(f"  {step:<14}{h[0] * 1e3:9.1f} ({h[1] * 1e3:6.1f}){v[0] * 1e3:9.1f} ({v[1] * 1e3:6.1f}){v[0] / h[0]:10.2f} ({v[1] / h[1]:.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
