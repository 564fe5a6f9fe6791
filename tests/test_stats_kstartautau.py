"""kstartautau statistics (configs/stats/kstartautau.yaml): the Belle E_ECL^extra fit, the Belle II
four-category BDT fit and their combination, on synthetic run outputs booked as the processor books
them (``eecl`` = regular(20, 0, 2), channels ee ... pipi; ``bdt`` = regular(12, 0.4, 1), channels
ll, lpi, rhoX, pipi; region SR; datasets named after the processes), Asimov observation.

The expected limits are checked against the asymptotic expectation computed here independently of
pyhf (the profile-likelihood ratio of the binned Poisson likelihood on Asimov data, the background
normalisations profiled with scipy); independent experiments combine as 1 / L^2 = sum 1 / L_e^2.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import optimize
from scipy.special import ndtri

from belle_rare.configs.experiment import load_experiment
from belle_rare.configs.loader import ConfigError, config_path
from belle_rare.core.histograms import regular
from belle_rare.simulation.production import signal_sample_fraction
from belle_rare.stats import model_config
from belle_rare.stats.combination import combined_limits
from belle_rare.stats.errors import StatsError
from belle_rare.stats.histograms import load_run_output
from belle_rare.stats.limits import hypotest_point, model_and_data, workspace_from_spec
from belle_rare.stats.model_config import read_stats_file
from belle_rare.stats.search_limits import Settings, compute_search_limits
from belle_rare.stats.synthetic import book, write_run_output
from belle_rare.stats.workspace import build_workspace, hypotheses

SEARCH = "kstartautau"
YAML = config_path("stats", "kstartautau.yaml")
BR_REF = 1.0e-3
BELLE_TOPOLOGIES = ("ee", "emu", "mumu", "epi", "mupi", "pipi")
BELLE2_CATEGORIES = ("ll", "lpi", "rhoX", "pipi")
BACKGROUNDS = ("mixed", "charged", "uds", "charm", "tautau")
# the signal simulation is much larger than the backgrounds' (the paper: 50 million signal events); with
# perfect templates (weight 0) no staterror is built and the fits keep a few parameters
SIGNAL_TEMPLATE_WEIGHT = 1e-3
EXPOSURE = {"belle": (711.0, 772.0e6), "belle2": (365.0, 387.0e6)}  # L /fb, N_BB (configs/experiments)


@pytest.fixture(autouse=True)
def stats_file_of_kstartautau(monkeypatch):
    """The search's stats file is this YAML (the Search object is the processor's; this test needs only the file)."""
    real = model_config.stats_config_path
    monkeypatch.setattr(model_config, "stats_config_path", lambda search: YAML if search == SEARCH else real(search))


def _f00(experiment: str) -> float:
    return 1.0 - load_experiment(experiment).upsilon4s_charged_fraction


def _datasets(experiment: str, br_ref: float = BR_REF) -> dict:
    """Metadata as the runner writes it: the signal's sigma x BR includes f00, 2 BR_ref and the forced sub-decays."""
    exp = load_experiment(experiment)
    sigma = exp.cross_section("upsilon4s") * _f00(experiment) * 2 * br_ref * signal_sample_fraction("sig_kstartautau", experiment)
    out = {"sig_kstartautau": {"kind": "signal", "process": "sig_kstartautau", "cross_section_nb": sigma, "parameters": {}}}
    for name in BACKGROUNDS:
        out[name] = {"kind": "background", "process": name, "cross_section_nb": 1.0, "scale": 1 / 3, "parameters": {}}
    return out


def signal_per_br(experiment: str, efficiency: float) -> float:
    """Expected signal events per unit BR: eps x 2 N_BB f00."""
    return efficiency * 2 * EXPOSURE[experiment][1] * _f00(experiment)


# Belle: E_ECL^extra templates (shapes representative: signal at low E_ECL, backgrounds rising)
EECL = regular(20, 0.0, 2.0, "eecl", "E_ECL^extra [GeV]")
X_EECL = EECL.centers
BELLE_EFFICIENCY = 1.23e-5  # the paper's
BELLE_SHAPES = {
    "signal": np.exp(-X_EECL / 0.15),
    "mixed": 0.2 + X_EECL,
    "charged": 0.4 + 0.6 * X_EECL,
    "uds": np.ones_like(X_EECL),
    "charm": 0.5 + 0.5 * X_EECL,
    "tautau": np.ones_like(X_EECL),
}
BELLE_TOTALS = {"mixed": 1500.0, "charged": 900.0, "uds": 300.0, "charm": 300.0, "tautau": 4.0}
TOPOLOGY_SHARE = np.array([0.25, 0.25, 0.15, 0.12, 0.13, 0.10])


def _unit(shape: np.ndarray) -> np.ndarray:
    return shape / shape.sum()


def belle_output(results_dir, template_weight: float = 1 / 3, br_ref: float = BR_REF, signal_scale: float = 1.0):
    """A Belle run: the six topologies of every dataset in ``eecl``; template variances = weight x yield."""
    hists = {}
    h = book(hists, "eecl", EECL)
    s_total = signal_per_br("belle", BELLE_EFFICIENCY) * br_ref * signal_scale
    for share, topology in zip(TOPOLOGY_SHARE, BELLE_TOPOLOGIES):
        s = share * s_total * _unit(BELLE_SHAPES["signal"])
        h.set_bins("sig_kstartautau", topology, "SR", s, SIGNAL_TEMPLATE_WEIGHT * template_weight * s)
        for name in BACKGROUNDS:
            b = share * BELLE_TOTALS[name] * _unit(BELLE_SHAPES[name])
            h.set_bins(name, topology, "SR", b, template_weight * b)
    write_run_output(results_dir, SEARCH, "belle", 711.0, _datasets("belle", br_ref), hists)


# Belle II: BDT output in [0.4, 1], signal towards 1, backgrounds falling
BDT = regular(12, 0.4, 1.0, "bdt", "BDT output")
X_BDT = BDT.centers
BELLE2_EFFICIENCY = {"ll": 2.0e-5, "lpi": 1.5e-5, "rhoX": 1.5e-5, "pipi": 0.5e-5}  # representative
BELLE2_BACKGROUND = {"ll": 150.0, "lpi": 300.0, "rhoX": 400.0, "pipi": 250.0}
BELLE2_SHARES = {"mixed": 0.45, "charged": 0.35, "uds": 0.1, "charm": 0.1, "tautau": 0.0}


def belle2_output(results_dir, template_weight: float = 1 / 3, br_ref: float = BR_REF, no_signal_in: tuple[str, ...] = ()):
    hists = {}
    h = book(hists, "bdt", BDT)
    signal_shape = _unit(np.exp((X_BDT - 1.0) / 0.15))
    for category in BELLE2_CATEGORIES:
        s = signal_per_br("belle2", BELLE2_EFFICIENCY[category]) * br_ref * signal_shape * (category not in no_signal_in)
        h.set_bins("sig_kstartautau", category, "SR", s, SIGNAL_TEMPLATE_WEIGHT * template_weight * s)
        for name, share in BELLE2_SHARES.items():
            slope = 0.15 if name in ("mixed", "charged") else 0.25
            b = share * BELLE2_BACKGROUND[category] * _unit(np.exp(-(X_BDT - 0.4) / slope))
            h.set_bins(name, category, "SR", b, template_weight * b)
    write_run_output(results_dir, SEARCH, "belle2", 365.0, _datasets("belle2", br_ref), hists)


def asimov_expected_limit(signal: list[np.ndarray], backgrounds: list[list[np.ndarray]], norm_groups: list[list[int]],
                          cl: float = 0.90) -> float:
    """The median expected CLs limit on the signal strength in the asymptotic approximation (Cowan,
    Cranmer, Gross, Vitells 2011), computed here without pyhf: on the Asimov background-only data
    n = b, q(mu) = 2 [NLL(mu, theta_hat(mu)) - NLL(0, 1)] with the background normalisations ``theta``
    of ``norm_groups`` profiled (other backgrounds fixed), and the median CLs = 2 (1 - Phi(sqrt(q)))
    equals 1 - cl at sqrt(q) = Phi^-1(1 - (1 - cl) / 2)."""
    s = np.concatenate(signal)
    b = [np.concatenate([bk[k] for bk in backgrounds]) for k in range(len(backgrounds[0]))]
    grouped = [sum(b[k] for k in group) for group in norm_groups]
    fixed = sum(b[k] for k in range(len(b)) if not any(k in g for g in norm_groups))
    n = sum(b)

    def nll(mu: float, theta: np.ndarray) -> float:
        nu = mu * s + fixed + sum(t * g for t, g in zip(theta, grouped))
        return float(np.sum(nu - n * np.log(nu)))

    def q(mu: float) -> float:
        best = optimize.minimize(lambda t: nll(mu, t), np.ones(len(grouped)), method="L-BFGS-B",
                                 bounds=[(1e-6, 10.0)] * len(grouped))
        return 2.0 * (best.fun - nll(0.0, np.ones(len(grouped))))

    target = float(ndtri(1 - (1 - cl) / 2)) ** 2
    return optimize.brentq(lambda mu: q(mu) - target, 1e-6, 1e3, xtol=1e-8)




def _limits(results_dir, **settings) -> dict[str, dict]:
    doc = compute_search_limits(SEARCH, results_dir, Settings(**settings)).document
    return {e["limit"]: e for e in doc["limits"]}


def test_yaml_parts_and_errors(tmp_path):
    stats_file = read_stats_file(YAML)
    assert set(stats_file.parts) == {"belle", "belle2"} and stats_file.combination.experiments == ["belle", "belle2"]
    belle = stats_file.part("belle")
    assert belle.experiment == "belle" and belle.channels[0].channel_values == list(BELLE_TOPOLOGIES)
    assert [c.name for c in stats_file.part("belle2").channels] == list(BELLE2_CATEGORIES)
    with pytest.raises(ConfigError, match="say which"):
        stats_file.part(None)
    # a bad key inside a part names the file, the part and the key
    text = YAML.read_text().replace("calculator: asymptotics        # twelve", "calculater: asymptotics        # twelve")
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    with pytest.raises(ConfigError, match=r"bad.yaml: experiments.belle2: calculater"):
        read_stats_file(bad)


def test_belle_model_sums_topologies_and_shares_the_bb_normalisation(tmp_path):
    belle_output(tmp_path)
    config = read_stats_file(YAML).part("belle")
    run = load_run_output(tmp_path, SEARCH)
    built = build_workspace(config, run, {"kstartautau": hypotheses(config, run, "kstartautau")[0]})
    (channel,) = built.spec["channels"]
    samples = {s["name"]: s for s in channel["samples"]}
    assert channel["name"] == "eecl" and len(samples["mixed"]["data"]) == 20
    assert sum(samples["mixed"]["data"]) == pytest.approx(BELLE_TOTALS["mixed"])  # the six topologies summed
    norms = {s: [m["name"] for m in samples[s]["modifiers"] if m["type"] == "normfactor"] for s in samples}
    assert norms["mixed"] == norms["charged"] == ["bb_norm"]  # one factor: their ratio fixed
    assert norms["continuum"] == ["continuum_norm"] and norms["tautau"] == []
    signal_mods = {m["type"]: m for m in samples["signal"]["modifiers"]}
    assert signal_mods["normsys"]["data"] == {"hi": 1.085, "lo": 0.915}
    assert all(any(m["type"] == "staterror" for m in s["modifiers"]) for s in samples.values())


def test_belle_limit_normalisation_and_asymptotic_expectation(tmp_path):
    """Perfect templates (no template variance) and no efficiency systematic: the expected limit is
    the asymptotic one computed independently; the efficiency and BR conversion are the paper's definitions."""
    belle_output(tmp_path, template_weight=0.0)
    stats_file = read_stats_file(YAML)
    config = stats_file.part("belle")
    signal = config.channels[0].samples[0]
    plain = config.model_copy(update={"channels": [config.channels[0].model_copy(update={
        "samples": [signal.model_copy(update={"modifiers": []}), *config.channels[0].samples[1:]]})]})
    doc = compute_search_limits(SEARCH, tmp_path, config=plain).document
    (entry,) = doc["limits"]
    assert entry["limit"] == "eecl" and entry["published"]["observed"] == 3.1e-3
    norm = entry["normalisation"]
    assert norm["reference_value"] == pytest.approx(BR_REF)
    assert norm["efficiency"] == pytest.approx(BELLE_EFFICIENCY)
    assert norm["exposure"] == pytest.approx(2 * 772.0e6 * _f00("belle"))
    s_per_br = signal_per_br("belle", BELLE_EFFICIENCY)
    signal = [s_per_br * BR_REF * _unit(BELLE_SHAPES["signal"])]
    backgrounds = [[BELLE_TOTALS[n] * _unit(BELLE_SHAPES[n]) for n in BACKGROUNDS]]
    expected = asimov_expected_limit(signal, backgrounds, [[0, 1], [2, 3]])
    assert entry["poi_limit"]["expected"][2] == pytest.approx(expected, rel=0.02)
    assert entry["physics"]["expected"][2] == pytest.approx(entry["poi_limit"]["expected"][2] * BR_REF, rel=1e-6)


def test_belle_systematics_and_template_statistics_weaken_the_limit(tmp_path):
    """At a fixed BR the expected CLs rises (the hypothesis is excluded less) once the templates carry
    their simulation statistics (staterror) and the signal its 8.5 % (one hypotest each: fast)."""
    config = read_stats_file(YAML).part("belle")

    def expected_cls(template_weight: float) -> float:
        out = tmp_path / f"w{template_weight}"
        belle_output(out, template_weight=template_weight)
        run = load_run_output(out, SEARCH)
        built = build_workspace(config, run, {"kstartautau": hypotheses(config, run, "kstartautau")[0]})
        model, data = model_and_data(workspace_from_spec(built.spec, "test"), measurement="kstartautau")
        return hypotest_point(model, data, 3.0, "asymptotics", seed=None).cls_exp[2]

    perfect, simulated = expected_cls(0.0), expected_cls(1.0)  # templates as large as the data
    assert 0 < perfect < simulated < 1


def _belle2_per_category():
    """The Belle II model with a limit per category beside the simultaneous fit's (the YAML has the latter only)."""
    return read_stats_file(YAML).part("belle2").model_copy(update={"per_channel_limits": True})


def test_belle2_simultaneous_fit(tmp_path):
    belle2_output(tmp_path, template_weight=0.0)
    assert list(_limits(tmp_path)) == ["combined"]  # the YAML: the paper's simultaneous fit only
    limits = {e["limit"]: e for e in compute_search_limits(SEARCH, tmp_path, config=_belle2_per_category()).document["limits"]}
    assert set(limits) == set(BELLE2_CATEGORIES) | {"combined"}
    combined = limits["combined"]
    assert combined["channels"] == list(BELLE2_CATEGORIES) and combined["published"]["observed"] == 1.8e-3
    assert all(combined["physics"]["expected"][2] < limits[c]["physics"]["expected"][2] for c in BELLE2_CATEGORIES)
    assert combined["normalisation"]["exposure"] == pytest.approx(2 * 387.0e6 * _f00("belle2"))
    assert combined["normalisation"]["efficiency"] == pytest.approx(sum(BELLE2_EFFICIENCY.values()))
    # the asymptotic expectation (the histosys / staterror of perfect templates vanish)
    s_shape = _unit(np.exp((X_BDT - 1.0) / 0.15))
    signal = [signal_per_br("belle2", BELLE2_EFFICIENCY[c]) * BR_REF * s_shape for c in BELLE2_CATEGORIES]
    backgrounds = [[BELLE2_SHARES[n] * BELLE2_BACKGROUND[c] * _unit(np.exp(-(X_BDT - 0.4) / (0.15 if n in ("mixed", "charged") else 0.25)))
                    for n in BACKGROUNDS] for c in BELLE2_CATEGORIES]
    expected = asimov_expected_limit(signal, backgrounds, [[0, 1], [2, 3]])
    assert combined["poi_limit"]["expected"][2] == pytest.approx(expected, rel=0.02)


def test_category_without_simulated_signal(tmp_path):
    """A small signal sample can leave a category empty: that category gets no limit of its own (a
    note says so), the simultaneous fit goes on without its signal."""
    belle2_output(tmp_path, template_weight=0.0, no_signal_in=("pipi",))
    doc = compute_search_limits(SEARCH, tmp_path, config=_belle2_per_category()).document
    assert [e["limit"] for e in doc["limits"]] == ["ll", "lpi", "rhoX", "combined"]
    assert any(n.startswith("pipi: no limit") for n in doc["notes"])
    combined = doc["limits"][-1]
    assert combined["normalisation"]["efficiency"] == pytest.approx(sum(BELLE2_EFFICIENCY.values()) - BELLE2_EFFICIENCY["pipi"])


def test_combination_of_belle_and_belle2(tmp_path):
    """One POI across the two runs: the combined expected limit is (sum 1 / L_e^2)^-1/2 of the single
    ones (Gaussian asymptotics); written into limits.json with its workspace."""
    belle_output(tmp_path / "belle", template_weight=0.0)
    belle2_output(tmp_path / "belle2", template_weight=0.0, br_ref=2.0e-3)  # another reference: the POI is rescaled
    result = compute_search_limits(SEARCH, tmp_path / "belle", Settings(combine_with=(tmp_path / "belle2",)))
    limits = {e["limit"]: e for e in result.document["limits"]}
    both = limits["belle+belle2"]
    belle2 = _limits(tmp_path / "belle2")["combined"]
    l1, l2 = limits["eecl"]["physics"]["expected"][2], belle2["physics"]["expected"][2]
    assert both["physics"]["expected"][2] == pytest.approx((l1 ** -2 + l2 ** -2) ** -0.5, rel=0.05)
    assert both["physics"]["expected"][2] < min(l1, l2)
    per = both["normalisation"]["per_experiment"]
    assert per["belle2"]["signal_scale"] == pytest.approx(0.5) and per["belle"]["signal_scale"] == 1.0
    assert both["normalisation"]["exposure"] == pytest.approx(per["belle"]["exposure"] + per["belle2"]["exposure"])
    spec = result.workspaces[both["workspace"]]
    assert [c["name"] for c in spec["channels"]] == ["belle_eecl", *(f"belle2_{c}" for c in BELLE2_CATEGORIES)]
    params = {m["name"] for c in spec["channels"] for s in c["samples"] for m in s["modifiers"]}
    assert {"mu_kstartautau", "belle_bb_norm", "belle2_bb_norm", "belle_signal_efficiency"} <= params


def test_combination_needs_every_experiment(tmp_path):
    belle_output(tmp_path / "belle", template_weight=0.0)
    belle_output(tmp_path / "other", template_weight=0.0)
    stats_file = read_stats_file(YAML)
    with pytest.raises(StatsError, match="no run for belle2"):
        combined_limits(SEARCH, stats_file, {"belle": tmp_path / "belle"}, 0.9)
    with pytest.raises(StatsError, match="second run on 'belle'"):
        compute_search_limits(SEARCH, tmp_path / "belle", Settings(combine_with=(tmp_path / "other",)))


def test_limit_command_writes_the_combination(tmp_path, capsys):
    from belle_rare.analyses.cli import main

    belle_output(tmp_path / "belle", template_weight=0.0)
    belle2_output(tmp_path / "belle2", template_weight=0.0)
    assert main(["limit", SEARCH, "--results", str(tmp_path / "belle"), "--combine-with", str(tmp_path / "belle2")]) == 0
    assert "belle+belle2" in capsys.readouterr().out
    out = tmp_path / "belle" / SEARCH
    doc = json.loads((out / "limits.json").read_text())
    assert [e["limit"] for e in doc["limits"]] == ["eecl", "belle+belle2"]
    assert (out / "workspaces" / "kstartautau_belle+belle2.json").is_file()
    for stem in ("cls_kstartautau_eecl", "cls_kstartautau_belle+belle2", "postfit_kstartautau_eecl"):
        assert (out / "plots" / f"{stem}.png").is_file(), stem


def test_postfit_yields_background_only_fit(tmp_path):
    """The post-fit stack is the background-only fit: on Asimov background data it returns the simulated
    backgrounds (the floating factors at 1) and the signal at POI = 1."""
    from belle_rare.stats.plots import postfit_yields

    belle_output(tmp_path, template_weight=0.0)
    config = read_stats_file(YAML).part("belle")
    run = load_run_output(tmp_path, SEARCH)
    built = build_workspace(config, run, {"kstartautau": hypotheses(config, run, "kstartautau")[0]})
    post = postfit_yields(built.spec, "kstartautau", "mu_kstartautau")["eecl"]
    for name in ("mixed", "charged"):
        assert post[name].sum() == pytest.approx(BELLE_TOTALS[name], rel=1e-3)
    assert post["signal"].sum() == pytest.approx(signal_per_br("belle", BELLE_EFFICIENCY) * BR_REF, rel=1e-6)


def test_limit_all_combines_what_it_is_told(tmp_path):
    from belle_rare.stats.summary import limit_all

    belle_output(tmp_path / "belle", template_weight=0.0)
    belle2_output(tmp_path / "belle2", template_weight=0.0)
    rows = limit_all(tmp_path / "belle", searches=[SEARCH], combine_with={SEARCH: [tmp_path / "belle2"]})
    assert [r["channel"] for r in rows] == ["eecl", "belle+belle2"]


def test_an_empty_background_in_the_binned_fit_carries_its_mc_bound_flat(tmp_path):
    """A background dataset with no event in the fitted E_ECL^extra spectrum is not b = 0: its weight per event
    (the MC statistical bound, stats/mc_bound.py) is spread over the 20 bins with one log-normal factor 2."""
    belle_output(tmp_path)
    run = load_run_output(tmp_path, SEARCH)
    meta = json.loads((tmp_path / SEARCH / "metadata.json").read_text())
    for h in run.histograms["tautau"].values():  # empty the tau-pair dataset
        h.reset()
    run.datasets["tautau"]["max_event_weight"] = 40.0
    config = read_stats_file(YAML).part("belle")
    built = build_workspace(config, run, {"kstartautau": hypotheses(config, run, "kstartautau")[0]})
    samples = {s["name"]: s for s in built.spec["channels"][0]["samples"]}
    bound = samples["tautau_mc_bound"]
    assert bound["data"] == pytest.approx([2.0] * 20)  # 40 / 20 bins
    assert bound["modifiers"] == [{"name": "mc_bound_eecl_tautau", "type": "normsys", "data": {"hi": 2.0, "lo": 0.5}}]
    assert "tautau" not in samples and meta["datasets"]["tautau"]["kind"] == "background"
    assert any("no simulated event of tautau" in n for n in built.notes)


@pytest.mark.parametrize("experiment", ["belle", "belle2"])
def test_report_stack_draws_the_signal_at_the_branching_fraction_it_names(experiment):
    """The report's stacked plots scale the signal histograms (made at the sample's BR_ref) to the
    published limit: the BR a dataset stands for is read back from its metadata as the stats layer's reference."""
    from belle_rare.analyses.kstartautau import simulated_branching_fraction

    meta = {"experiment": experiment, "datasets": _datasets(experiment, br_ref=2.5e-3)}
    assert simulated_branching_fraction(meta, "sig_kstartautau") == pytest.approx(2.5e-3, rel=1e-12)
    assert simulated_branching_fraction({"experiment": experiment, "datasets": {}}, "sig_kstartautau") is None


def test_combination_postfit_plot_is_written(tmp_path):
    """`belle-rare limit --combine-with` writes the post-fit stack of the Belle + Belle II combination: one
    panel per experiment channel (Belle's E_ECL^extra, each Belle II BDT category), the backgrounds after the
    background-only fit of the combined workspace; on Asimov background data those are the simulated ones."""
    from belle_rare.analyses.cli import main
    from belle_rare.stats.plots import postfit_yields

    belle_output(tmp_path / "belle", template_weight=0.0)
    belle2_output(tmp_path / "belle2", template_weight=0.0)
    assert main(["limit", SEARCH, "--results", str(tmp_path / "belle"), "--combine-with", str(tmp_path / "belle2")]) == 0
    out = tmp_path / "belle" / SEARCH
    for suffix in ("png", "pdf"):
        path = out / "plots" / f"postfit_kstartautau_belle+belle2.{suffix}"
        assert path.is_file() and path.stat().st_size > 1000, path
    spec = json.loads((out / "workspaces" / "kstartautau_belle+belle2.json").read_text())
    post = postfit_yields(spec, SEARCH, "mu_kstartautau")
    assert sorted(post) == sorted(["belle_eecl", *(f"belle2_{c}" for c in BELLE2_CATEGORIES)])
    assert post["belle_eecl"]["mixed"].sum() == pytest.approx(BELLE_TOTALS["mixed"], rel=1e-3)
    assert post["belle2_ll"]["mixed"].sum() > 0 and post["belle_eecl"]["signal"].sum() > 0
