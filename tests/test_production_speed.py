"""The production-speed rewrites (realism issue, item 7) give the same arrays as the code they replaced.

Each fast path is compared with the previous implementation (kept here as the reference) on random
or generated inputs: values, dtypes and awkward types must be identical, so the samples' physics
content is unchanged (tests/test_golden.py checks the histograms of whole productions).
"""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest
import uproot

from belle_rare.simulation.detector.flat import Particles, event_counts, pairs_within_events, to_jagged
from belle_rare.simulation.detector.pdg import _distinct
from belle_rare.simulation.ntuple import MCPARTICLE_FIELDS, mcparticle_collection, write_ntuple
from belle_rare.simulation.truth import MC_FIELDS, MC_INT_FIELDS, flat_mc, make_truth, truth_from_flat


def grouped_events(rng: np.random.Generator, n_events: int, mean: float) -> np.ndarray:
    """Event number of each row, rows grouped by event, Poisson multiplicities (many empty events)."""
    return np.repeat(np.arange(n_events), rng.poisson(mean, n_events))


def same_arrays(a: ak.Array, b: ak.Array) -> bool:
    return str(a.type) == str(b.type) and ak.array_equal(a, b, equal_nan=True)


# ------------------------------------------------------------------ references (the replaced code)
def pairs_reference(event: np.ndarray, n_events: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    counts = event_counts(event, n_events)
    pairs = ak.combinations(ak.unflatten(np.arange(len(event)), counts), 2, fields=["first", "second"])
    n_pairs = counts * (counts - 1) // 2
    return (
        np.repeat(np.arange(n_events), n_pairs),
        ak.to_numpy(ak.flatten(pairs.first)).astype(np.int64),
        ak.to_numpy(ak.flatten(pairs.second)).astype(np.int64),
    )


def to_jagged_reference(columns: dict[str, np.ndarray], event: np.ndarray, n_events: int) -> ak.Array:
    record = ak.zip({name: np.asarray(values) for name, values in columns.items()})
    return ak.unflatten(record, event_counts(event, n_events))


def concatenate_reference(parts: list[Particles]) -> Particles:
    columns = {name: np.concatenate([p.columns()[name] for p in parts]) for name in parts[0].columns()}
    order = np.argsort(columns["event"], kind="stable")
    return Particles.from_columns({name: values[order] for name, values in columns.items()})


def mcparticle_reference(truth: ak.Array) -> ak.Array:
    columns = {}
    for field, name in MCPARTICLE_FIELDS.items():
        dtype = np.int32 if field in ("pdg", "status", "mother") else np.float32
        columns[name] = ak.values_astype(truth.mc[field], dtype)
    return ak.zip(columns)


def random_particles(rng: np.random.Generator, n_events: int, mean: float) -> Particles:
    event = grouped_events(rng, n_events, mean)
    n = len(event)
    floats = {name: rng.normal(size=n) for name in ("charge", "mass", "px", "py", "pz", "E", "x", "y", "z")}
    ints = {name: rng.integers(-300, 300, n).astype(np.int32) for name in ("mc_index", "mc_pdg", "pdg", "mother")}
    return Particles(event=event, background=rng.random(n) < 0.5, **floats, **ints)


def random_truth(rng: np.random.Generator, n_events: int) -> ak.Array:
    counts = rng.poisson(6, n_events)
    mc = {f: ak.unflatten(rng.integers(-20, 20, counts.sum()) if f in MC_INT_FIELDS else rng.normal(size=counts.sum()), counts)
          for f in MC_FIELDS}
    beam = rng.normal(size=(n_events, 4))
    return make_truth(mc, beam, signal_index=rng.integers(-1, 5, n_events), weight=rng.random(n_events))


# ------------------------------------------------------------------ tests
@pytest.mark.parametrize("n_events,mean", [(0, 3.0), (1, 0.0), (7, 1.0), (2000, 3.0), (300, 12.0)])
def test_pairs_within_events_equals_ak_combinations(n_events: int, mean: float) -> None:
    event = grouped_events(np.random.default_rng(n_events), n_events, mean)
    for new, ref in zip(pairs_within_events(event, n_events), pairs_reference(event, n_events)):
        assert new.dtype == ref.dtype
        np.testing.assert_array_equal(new, ref)


@pytest.mark.parametrize("n_events", [0, 5, 1000])
def test_to_jagged_equals_zip_and_unflatten(n_events: int) -> None:
    rng = np.random.default_rng(2)
    event = grouped_events(rng, n_events, 2.5)
    columns = {"px": rng.normal(size=len(event)).astype(np.float32), "charge": rng.integers(-1, 2, len(event)).astype(np.int32),
               "flag": rng.random(len(event)) < 0.5, "E": rng.normal(size=2 * len(event))[::2]}  # a strided column
    assert same_arrays(to_jagged(columns, event, n_events), to_jagged_reference(columns, event, n_events))


def test_to_jagged_rejects_bad_rows() -> None:
    with pytest.raises(ValueError, match="grouped by event"):
        to_jagged({"a": np.zeros(3)}, np.array([0, 2, 1]), 3)
    with pytest.raises(ValueError, match="one value per row"):
        to_jagged({"a": np.zeros(2)}, np.array([0, 1, 1]), 3)


def test_concatenate_equals_stable_sort() -> None:
    rng = np.random.default_rng(3)
    parts = [random_particles(rng, 500, mean) for mean in (4.0, 1.5, 0.3)]
    shuffled = Particles.from_columns({k: v[rng.permutation(len(parts[1]))] for k, v in parts[1].columns().items()})
    for case in (parts, parts[:2], parts[:1], [parts[0], shuffled]):  # the last one takes the sorting fallback
        new, ref = Particles.concatenate(case), concatenate_reference(case)
        for name, values in ref.columns().items():
            assert getattr(new, name).dtype == values.dtype, name
            np.testing.assert_array_equal(getattr(new, name), values, err_msg=name)


@pytest.mark.parametrize("codes", [[22, 211, -211, 11, -11, 13, 2212, -2112, 130, 321], [22, 1000010020, -11], [5]])
def test_distinct_codes_equal_np_unique(codes: list[int]) -> None:
    pdg = np.random.default_rng(4).choice(np.array(codes, dtype=np.int32), 5000)
    ref_codes, ref_inverse = np.unique(pdg, return_inverse=True)
    new_codes, new_inverse = _distinct(pdg)
    assert new_codes.dtype == ref_codes.dtype
    np.testing.assert_array_equal(new_codes, ref_codes)
    np.testing.assert_array_equal(new_inverse, ref_inverse)


def test_truth_from_flat_and_flat_mc_equal_awkward_paths() -> None:
    truth = random_truth(np.random.default_rng(5), 400)
    offsets, columns = flat_mc(truth)
    rebuilt = truth_from_flat(offsets, columns, np.stack([ak.to_numpy(truth[f]) for f in ("beam_E", "beam_px", "beam_py", "beam_pz")], axis=1),
                              signal_index=ak.to_numpy(truth.signal_index), weight=ak.to_numpy(truth.weight))
    assert same_arrays(rebuilt, truth)
    for sample in (truth, truth[ak.to_numpy(truth.weight) < 0.4], truth[3:9], truth[:0]):  # layouts awkward builds on slicing
        offsets, columns = flat_mc(sample)
        np.testing.assert_array_equal(np.diff(offsets), ak.to_numpy(ak.num(sample.mc)))
        for f in MC_FIELDS:
            np.testing.assert_array_equal(columns[f], ak.to_numpy(ak.flatten(sample.mc[f])))
        assert same_arrays(mcparticle_collection(sample), mcparticle_reference(sample))


def prt_to_truth_reference(prt: ak.Array, exp, rng: np.random.Generator, sig_index: np.ndarray) -> ak.Array:
    """The jagged-awkward version that simulation/generators/pythia.py used before."""
    from belle_rare.simulation.beams import nominal_beam, sample_interaction_points
    from belle_rare.simulation.generators.pythia import MM_TO_CM

    ip = sample_interaction_points(exp, len(prt), rng)
    vprod = ak.fill_none(prt.vProd, {"px": 0.0, "py": 0.0, "pz": 0.0, "e": 0.0})
    mc = {
        "pdg": prt.id, "status": prt.status, "mother": ak.where(prt.mother1 > 0, prt.mother1, -1),
        "px": prt.p.px, "py": prt.p.py, "pz": prt.p.pz, "E": prt.p.e, "mass": prt.m,
        "x": vprod.px * MM_TO_CM + ip[:, 0], "y": vprod.py * MM_TO_CM + ip[:, 1], "z": vprod.pz * MM_TO_CM + ip[:, 2],
        "t": vprod.e * MM_TO_CM,
    }
    return make_truth(mc, nominal_beam(exp, len(prt)), signal_index=sig_index)


def test_pythia_record_conversion_and_copied_instances_unchanged() -> None:
    """prt_to_truth equals its awkward predecessor on real Pythia events (K_S and tau vertices
    included), and a Pythia built from the pristine instance's databases gives the same events as
    one that parses them itself."""
    import pythia8mc

    from belle_rare.simulation.generators.pythia import _pristine_pythia, make_pythia, next_batch, prt_to_truth, signal_index
    from belle_rare.simulation.production import Chunk, Request, make_generator

    gen = make_generator(Request("belle2", "sig_taumugamma", 300, 8, None), Chunk(1, 300, 8, 0))  # type: ignore[arg-type]
    copied = make_pythia(gen.settings, "sig_taumugamma")
    parsed = pythia8mc.Pythia("", False)
    for line in gen.settings:
        parsed.readString(line)
    assert copied.init() and parsed.init()
    prt, prt_parsed = next_batch(copied, 300), next_batch(parsed, 300)
    assert same_arrays(prt, prt_parsed)
    assert _pristine_pythia().settings.mode("Random:seed") == -1  # the copies' settings did not leak back
    assert ak.any(ak.is_none(prt.vProd, axis=1)) and ak.any(~ak.is_none(prt.vProd, axis=1))
    sig = signal_index(prt, gen.forced)
    new = prt_to_truth(prt, gen.exp, np.random.default_rng(9), sig)
    assert same_arrays(new, prt_to_truth_reference(prt, gen.exp, np.random.default_rng(9), sig))
    gen.close()


def test_ntuple_is_lz4_and_round_trips(tmp_path) -> None:
    truth = random_truth(np.random.default_rng(6), 50)
    collections = {"MCParticle": mcparticle_collection(truth)}
    events = {"__event__": np.arange(50, dtype=np.int64)}
    path = tmp_path / "x.root"
    write_ntuple(path, events, collections)
    with uproot.open(path) as f:
        assert f.file.fCompress == 404  # ROOT's code for LZ4, level 4 (its kUseAnalysis preset)
        tree = f["tree"]
        np.testing.assert_array_equal(tree["__event__"].array(library="np"), events["__event__"])
        px = tree["MCParticle_px"].array()
        assert ak.array_equal(px, ak.values_astype(truth.mc.px, np.float32))
