"""The kstartautau control sample B0 -> D- l+ nu, D- -> K*0 pi- (issue 12, item 5): the forced process, the
truth flag of the control signal in generic B Bbar, the template fit that measures BR(B0 -> D- l+ nu)
(analyses/kstartautau_control.py) on synthetic histograms, and a tiny generated sample end to end."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest

from belle_rare.analyses.kstartautau_control import (
    CONTROL_PROCESS, build_templates, fit_templates, generator_branching_fraction, measure_control,
)
from belle_rare.configs.processes import forced_sub_branching_fraction, load_catalogue
from belle_rare.core.histograms import NOMINAL, new_hist, regular
from belle_rare.processors.kstartautau import true_d_lnu
from belle_rare.simulation.generators.pythia import forced_decay_settings
from belle_rare.simulation.detector.tagging import CHI_D
from belle_rare.simulation.production import signal_sample_fraction

EDGES = np.linspace(0.0, 2.0, 21)


def shapes() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Control-like E_ECL^extra templates (events at 711 /fb): signal at low energy, B Bbar rising, other flat."""
    x = 0.5 * (EDGES[1:] + EDGES[:-1])
    signal = 300.0 * np.exp(-x / 0.15) / np.exp(-x / 0.15).sum()
    bb = 150.0 * (0.2 + x) / (0.2 + x).sum()
    other = 40.0 * np.ones_like(x) / len(x)
    return signal, bb, other


def test_fit_recovers_an_injected_branching_fraction_and_its_error():
    """Poisson pseudo-data with the signal scaled by 1.25 (B Bbar x 1.2, other x 0.7): the fitted mu has
    mean 1.25 within its error / sqrt(N) x 4 and the quoted error matches the spread of the fits."""
    signal, bb, other = shapes()
    rng = np.random.default_rng(12)
    mu_true = 1.25
    expected = mu_true * signal + 1.2 * bb + 0.7 * other
    fits = [fit_templates(rng.poisson(expected).astype(float), signal, {"B Bbar": bb, "other": other}) for _ in range(300)]
    mus = np.array([f.mu for f in fits])
    errors = np.array([f.mu_error for f in fits])
    assert all(f.converged for f in fits)
    assert abs(mus.mean() - mu_true) < 4 * errors.mean() / np.sqrt(len(mus))
    assert 0.85 < mus.std() / errors.mean() < 1.15
    # Asimov data: exactly the injected values
    asimov = fit_templates(expected, signal, {"B Bbar": bb, "other": other})
    assert asimov.mu == pytest.approx(mu_true, rel=1e-4)
    assert asimov.background_norms["B Bbar"] == pytest.approx(1.2, rel=1e-3)


def test_template_statistics_widen_the_error_as_barlow_beeston_lite():
    """One bin, signal only, Asimov: the gamma factor and mu are degenerate, so var(mu) / mu^2 = 1 / s + sigma^2
    (data and the template's relative error sigma in quadrature); with zero variance the fit is the data-only one;
    several bins: the error grows with the templates' variance and the Asimov point stays at mu = 1, gamma = 1."""
    s, sigma = np.array([400.0]), 0.1
    fit = fit_templates(s, s, {}, template_variance=(sigma * s) ** 2)
    assert fit.mu == pytest.approx(1.0, rel=1e-6) and fit.converged
    assert fit.mu_error == pytest.approx(np.sqrt(1 / 400 + sigma**2), rel=1e-6)
    signal, bb, other = shapes()
    total = signal + bb + other
    plain = fit_templates(total, signal, {"B Bbar": bb, "other": other})
    none = fit_templates(total, signal, {"B Bbar": bb, "other": other}, template_variance=np.zeros_like(total))
    assert none.mu_error == pytest.approx(plain.mu_error, rel=1e-9) and len(none.template_factors) == 0
    errors = []
    for rel in (0.02, 0.1, 0.3):
        fit = fit_templates(total, signal, {"B Bbar": bb, "other": other}, template_variance=(rel * total) ** 2)
        assert fit.converged and fit.mu == pytest.approx(1.0, abs=1e-4)
        assert np.allclose(fit.template_factors, 1.0, atol=1e-4)
        errors.append(fit.mu_error)
    assert plain.mu_error < errors[0] < errors[1] < errors[2]


def test_an_empty_background_group_is_left_out():
    signal, bb, _ = shapes()
    fit = fit_templates(signal + bb, signal, {"B Bbar": bb, "other": np.zeros_like(bb)})
    assert set(fit.background_norms) == {"B Bbar"} and fit.mu == pytest.approx(1.0, rel=1e-4)


def booked(values: dict[tuple[str, str], np.ndarray]) -> dict:
    """The processor's ``eecl`` and ``mmiss2`` histograms with ``values`` in (channel, region) at the bin centres."""
    out = {"eecl": new_hist(regular(20, 0.0, 2.0, "eecl"), systematics=True),
           "mmiss2": new_hist(regular(44, -2.0, 20.0, "mmiss2"), systematics=True)}
    for (channel, region), v in values.items():
        for name, h in out.items():
            centres = h.axes[name].centers
            w = np.zeros(len(centres))
            w[: len(v)] = v
            h.fill(channel=channel, region=region, variation=NOMINAL, **{name: centres}, weight=w)
    return out


class FakeProcessor:
    experiment = "belle"

    def __init__(self) -> None:
        from belle_rare.processors.registry import get_search

        s = get_search("kstartautau")
        self.cuts = s.processor("belle", s.load_config()).cuts


def test_measure_control_reports_the_branching_fraction_beside_the_generator_and_the_paper():
    """Histograms booked as the processor books them: ctl_dlnu (signal), generic mixed (true B0 -> D- l+ nu
    in the ``_dlnu`` twin, part of the signal), uds (other) and pseudo-data with the generic signal x 1.3
    (pseudo-data has no forced D- -> K*0 pi-: the template then is the generic part). The E_ECL^extra and
    M_miss^2 rows give 1.3 x the generator's BR(B0 -> D- l+ nu) within their errors; without pseudo-data the
    signal template is both parts and the Asimov fit returns the generator's BR."""
    signal, bb, other = shapes()
    forced, generic_true = 0.3 * signal, 0.7 * signal  # the signal from the forced sample and from generic B0 -> D- l nu
    half = {c: 0.5 for c in ("epi", "mupi")}
    hists = {
        "ctl_dlnu": {c: forced * f for c, f in half.items()},
        "mixed": {c: (bb + generic_true) * f for c, f in half.items()},
        "mixed_true": {c: generic_true * f for c, f in half.items()},
        "uds": {c: other * f for c, f in half.items()},
    }
    rng = np.random.default_rng(3)
    data = rng.poisson(1.3 * generic_true + bb + other).astype(float)

    def regions(per_channel: dict, suffix: str = "") -> dict:
        return {(c, r + suffix): v for c, v in per_channel.items() for r in ("control", "control_low")}

    histograms = {
        "ctl_dlnu": booked({**regions(hists["ctl_dlnu"]), **regions(hists["ctl_dlnu"], "_dlnu")}),
        "mixed": booked({**regions(hists["mixed"]), **regions(hists["mixed_true"], "_dlnu")}),
        "uds": booked(regions(hists["uds"])),
        "data": booked({("epi", r): data for r in ("control", "control_low")}),
    }
    datasets = {"ctl_dlnu": {"kind": "signal", "process": CONTROL_PROCESS}, "mixed": {"kind": "background", "process": "mixed"},
                "uds": {"kind": "background", "process": "uds"}, "data": {"kind": "data", "process": "data"}}
    d, s, b, read, variance = build_templates(histograms, datasets, "eecl", "control_low", ["epi", "mupi"])
    assert np.allclose(s, generic_true) and np.allclose(b["B Bbar"], bb) and np.allclose(b["other"], other) and np.allclose(d, data)
    # one fill per bin and channel with the bin's content as weight: sum w^2 = content^2 / 2 over the two channels
    assert np.allclose(variance, ((bb + generic_true) ** 2 + other**2) / 2)
    rows = measure_control({"processor": FakeProcessor(), "histograms": histograms, "metadata": {"datasets": datasets}})
    assert [r["key"] for r in rows] == ["control_sample", "control_sample"]
    br_gen = generator_branching_fraction()
    assert br_gen == pytest.approx(0.0207)
    for r in rows:
        assert r["generator"] == br_gen and r["paper"] in (0.0245, 0.0237) and r["world_average"] == 0.0231
        assert abs(r["ours"] - 1.3 * br_gen) < 3 * r["ours_error"]
    # without pseudo-data: the Asimov fit returns the generator's value
    del histograms["data"], datasets["data"]
    assert np.allclose(build_templates(histograms, datasets, "eecl", "control_low", ["epi", "mupi"])[1], signal)
    rows = measure_control({"processor": FakeProcessor(), "histograms": histograms, "metadata": {"datasets": datasets}})
    assert all(r["ours"] == pytest.approx(br_gen, rel=1e-4) and "Asimov" in r["note"] for r in rows)


def truth(records: list[list[tuple[int, int]]]) -> ak.Array:
    """A truth collection from per-event lists of (PDG, mother index)."""
    return ak.Array([{"PDG": [p for p, _ in ev], "motherIndex": [m for _, m in ev]} for ev in records])


def test_true_d_lnu_flags_b0_to_d_lepton_neutrino_only():
    ups = (300553, -1)
    events = [
        [ups, (511, 0), (-511, 0), (12, 1), (-11, 1), (-411, 1), (-321, 2)],          # B0 -> D- e+ nu
        [ups, (511, 0), (-511, 0), (-413, 1), (-13, 1), (14, 1)],                       # D*- mu+ nu
        [ups, (511, 0), (-511, 0), (-411, 1), (211, 1)],                                 # D- pi+
        [ups, (511, 0), (-511, 0), (-411, 1), (-11, 1), (12, 1), (111, 1)],              # D- e+ nu pi0
        [ups, (521, 0), (-521, 0), (-421, 1), (-11, 1), (12, 1)],                        # B+ -> D0bar e+ nu
        [ups, (511, 0), (-511, 0), (-413, 1), (-11, 1), (12, 1), (411, 2), (13, 2), (-14, 2)],  # B0bar -> D+ mu- nu
        [],
    ]
    assert true_d_lnu(truth(events)).tolist() == [True, False, False, False, False, True, False]


def test_control_process_forces_both_lepton_channels_and_its_sub_decays_in_one_place():
    proc = load_catalogue().get(CONTROL_PROCESS)
    assert forced_decay_settings(proc.forced_decay, False) == [
        "511:onMode = 3", "511:addChannel = 2 1.0 22 12 -11 -411", "511:addChannel = 2 1.0 22 14 -13 -411"]
    assert forced_decay_settings(proc.forced_decay, True)[0] == "511:onMode = 2"
    # the D- -> K*0 pi- and K*0 -> K+ pi- shares are divided out where every forced sub-decay is
    assert signal_sample_fraction(CONTROL_PROCESS, "belle") == forced_sub_branching_fraction(CONTROL_PROCESS) == 0.0104
    # the signal sample is unchanged: one channel, phase space
    sig = load_catalogue().get("sig_kstartautau").forced_decay
    assert forced_decay_settings(sig, False) == ["511:onMode = 3", "511:addChannel = 2 1.0 0 313 -15 15"]


@pytest.fixture(scope="module")
def control_sample(tmp_path_factory):
    from belle_rare.simulation.production import Request, produce

    out = tmp_path_factory.mktemp("ctl_samples")
    produce(Request("belle", CONTROL_PROCESS, 4000, 17, out), progress=False)
    return out


def test_generated_control_sample_end_to_end(control_sample, tmp_path):
    """Generated B0 -> D- l+ nu (D- -> K*0 pi-): e and mu each about half, the signal B found; through the
    kstartautau selection its events land in the control region (l pi topologies), mostly below
    M_miss^2 = 0.5 GeV^2, all truth-matched; the report has the two control rows (Asimov: the generator's BR)."""
    import uproot

    from belle_rare.analyses.runner import RunOptions, run_search

    files = sorted(control_sample.glob("belle_ctl_dlnu_*.root"))
    arrays = [uproot.open(f)["tree"].arrays(["mcSignalIndex", "MCParticle_PDG", "MCParticle_motherIndex"]) for f in files]
    a = ak.concatenate(arrays)
    assert ak.all(a.mcSignalIndex >= 0)
    mc = ak.zip({"PDG": a.MCParticle_PDG, "motherIndex": a.MCParticle_motherIndex})
    assert true_d_lnu(mc).mean() > 0.99  # the forced B0 (the tag side may add a second one)
    electrons = ak.sum((abs(a.MCParticle_PDG) == 11) & (a.MCParticle_motherIndex == a.mcSignalIndex), axis=1)
    assert 0.45 < float(ak.mean(electrons)) < 0.55
    # coherent Upsilon(4S) mixing (simulation/detector/tagging.py): the tag B0 has the signal B0's flavour in chi_d
    tags = ak.concatenate([uproot.open(f)["tree"].arrays(["Btag_flavour"]) for f in files])
    signal_flavour = np.sign(ak.to_numpy(a.MCParticle_PDG[ak.singletons(a.mcSignalIndex)][:, 0]))
    same = np.mean(ak.to_numpy(ak.firsts(tags.Btag_flavour)) == signal_flavour)
    assert CHI_D == pytest.approx(0.186, abs=0.001)
    assert abs(same - CHI_D) < 4 * np.sqrt(CHI_D * (1 - CHI_D) / len(a)), same

    result = run_search(RunOptions(search="kstartautau", experiment="belle", samples=control_sample, out=tmp_path, progress=False))
    y = result["histograms"][CONTROL_PROCESS]["yields"]

    def count(region: str) -> float:
        return sum(float(y[{"channel": c, "region": region, "variation": NOMINAL}].values().sum())
                   for c in ("epi", "mupi") if region in y.axes["region"])

    assert count("control") > 0
    assert count("control_dlnu") == pytest.approx(count("control"))
    assert count("control_low") > 0.8 * count("control")
    rows = measure_control(result)
    assert len(rows) == 2 and all(r["ours"] == pytest.approx(0.0207, rel=1e-3) for r in rows)
