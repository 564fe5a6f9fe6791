"""bkscalar limits: a bump hunt in the reduced mass at every (channel, lifetime, mass) hypothesis.

``belle-rare limit bkscalar --results DIR`` (and ``make run``'s limits) call ``limit`` here through the
search's ``Search.scan`` hook. The stats model is ``configs/stats/bkscalar.yaml`` (schema ``ScanConfig``).

1. Hypotheses per channel and lifetime: m_S over the YAML's range (above 2 m_x, below m_B - m_K(*)), equally
   spaced in the fit variable M_red = sqrt(m_S^2 - 4 m_x^2) at step sigma(m_S) / 2, sigma the M_red
   resolution of the signal grid (``analyses/bkscalar_grid.py``, ``models/bkscalar_signal_grid.json``);
   hypotheses inside the channel's peaking-background vetoes on m_S (the processor's Table I windows, and
   for pi pi the K_S veto) are left out (grey in the plots).
2. The spectrum: the run's ``m_reduced`` histogram of the channel in region ``SR`` (2 MeV bins), summed over
   the data datasets (pseudo-data); without data, the background sum smoothed with a Gaussian of
   ``smoothing_sigmas`` x 5 MeV (an Asimov observation: weighted MC events are no data; the "observed"
   limits are then the expected ones of that background). It is the same for every lifetime: only the
   signal's efficiency and width change with c tau.
3. At every hypothesis ``stats.peak_scan``: a Gaussian peak of width sigma plus a linear background in
   +-5 sigma, asymptotic one-sided CLs (qtilde) limits on the signal yield s (observed and -2..+2 sigma),
   the signed local significance; spectra spread over processes or dask workers (``core.parallel``).
4. BR(B -> K S) x BR(S -> x x) = s / (efficiency x 2 N_BB f), N_BB from configs/experiments/belle2.yaml
   scaled to the run's luminosity, f the Upsilon(4S) -> B+ B- (K) or B0 B0bar (Kst) share, the efficiency
   per produced B -> K S (B0 -> K*0(-> K+ pi-) S) decay from the signal grid.
5. sin^2 theta of the Higgs-mixed scalar (``simulation/generators/higgs_scalar.py``): the smallest mixing
   excluded at each mass with the lifetime that mixing implies (limits interpolated between lifetimes).
6. Outputs under DIR/bkscalar/: ``scan.parquet`` and ``scan.csv`` (``stats.scan_table``), ``limits.json``
   (per curve its most sensitive hypothesis, the largest local excess and its global significance, the
   look-elsewhere calibration, timings), ``plots/`` (the paper's Fig. 2 layout, one Brazil plot per curve,
   the sin theta curve, the local significance), ``hepdata/`` (``analyses.hepdata_record``).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pydantic

from belle_rare.analyses.bkscalar_grid import SignalGrid, kinematic_limit
from belle_rare.analyses.hepdata_record import plot_limit_curve, plot_limit_grid, with_gaps, write_hepdata
from belle_rare.configs.experiment import load_experiment
from belle_rare.configs.loader import StrictModel
from belle_rare.core.atomic import save_figure, write_json
from belle_rare.core.errors import UserError
from belle_rare.core.parallel import parallel_map
from belle_rare.processors.bkscalar import CHANNELS, DAUGHTER_MASS, b_mode_of, decay_of
from belle_rare.processors.registry import get_search
from belle_rare.simulation.generators import higgs_scalar
from belle_rare.stats import model_config
from belle_rare.stats.errors import StatsError
from belle_rare.stats.histograms import load_run_output, run_output_dir
from belle_rare.stats.look_elsewhere import Calibration, rice_calibration, toy_calibration
from belle_rare.stats.mc_bound import mc_bound
from belle_rare.stats.peak_scan import SpectrumScan, scan_spectrum
from belle_rare.stats.scan_table import ScanTable, largest_excess, scan_calibration
from belle_rare.stats.search_limits import SearchLimits, Settings

SIGNAL = "bkscalar"
QUANTITY = "BR(B -> K S) x BR(S -> x x)"
DECAY_LABELS = {"ee": "e^+e^-", "mumu": r"\mu^+\mu^-", "pipi": r"\pi^+\pi^-", "KK": "K^+K^-"}
MODE_LABELS = {"K": r"B^+ \to K^+ S", "Kst": r"B^0 \to K^{*0} S"}


# ---------------------------------------------------------------------------------------------- config
class Normalisation(StrictModel):
    n_bb_key: str


class ScanSettings(StrictModel):
    histogram: str = "m_reduced"
    region: str = "SR"
    step_over_sigma: float = pydantic.Field(0.5, gt=0)
    half_width_sigma: float = pydantic.Field(5.0, gt=0)
    mass_range: tuple[float, float]
    lifetimes_cm: list[float]
    signal_grid: str | None = None
    executor: str = "local"
    workers: int = pydantic.Field(1, ge=1)
    channels: list[str] | None = None  # default: every channel with run output


class LookElsewhere(StrictModel):
    toys: int = pydantic.Field(50, ge=0)
    level: float = 1.0
    seed: int = 1
    smoothing_sigmas: float = pydantic.Field(10.0, gt=0)


class Mixing(StrictModel):
    mass_max: float = higgs_scalar.MASS_MAX


class ScanConfig(StrictModel):
    search: str
    experiment: str
    poi: str
    cl: float = pydantic.Field(gt=0, lt=1)
    normalisation: Normalisation
    scan: ScanSettings
    look_elsewhere: LookElsewhere = LookElsewhere()
    mixing: Mixing = Mixing()


def load_scan_config(path: Path | None = None) -> ScanConfig:
    """The shipped stats YAML of this scan, or ``path`` (a reduced scan)."""
    return model_config.load_scan_config(SIGNAL, ScanConfig, path)


# ---------------------------------------------------------------------------------------------- pieces
def reduced_mass(m_s: np.ndarray, decay: str) -> np.ndarray:
    return np.sqrt(np.maximum(np.asarray(m_s, float) ** 2 - 4.0 * DAUGHTER_MASS[decay] ** 2, 0.0))


def scalar_mass(m_red: np.ndarray, decay: str) -> np.ndarray:
    return np.sqrt(np.asarray(m_red, float) ** 2 + 4.0 * DAUGHTER_MASS[decay] ** 2)


def vetoed_ranges(channel: str) -> list[tuple[float, float]]:
    """m_S windows the selection removes: the peaking-background vetoes of the channel's S decay and, for
    pi pi, the K_S veto (on M(pi pi) = m_S); from configs/searches/bkscalar.yaml."""
    cfg = get_search(SIGNAL).load_config()
    decay = decay_of(channel)
    windows = [tuple(w) for w in cfg.peaking_vetoes[decay]]
    if decay == "pipi":
        windows.append(tuple(cfg.ks_veto))
    return sorted(windows)


def hypotheses(channel: str, lifetime_cm: float, grid: SignalGrid, cfg: ScanConfig) -> dict[str, np.ndarray]:
    """m_S, M_red and sigma of every hypothesis of one curve: equally spaced in N(M_red) = int dM_red /
    (step x sigma), i.e. step x sigma apart, outside the vetoes, with a positive efficiency."""
    decay = decay_of(channel)
    lo = max(cfg.scan.mass_range[0], 2.0 * DAUGHTER_MASS[decay] + 1e-3)
    hi = min(cfg.scan.mass_range[1], kinematic_limit(channel) - 1e-3)
    fine_red = np.linspace(reduced_mass(lo, decay), reduced_mass(hi, decay), 20000)
    fine_s = scalar_mass(fine_red, decay)
    sigma = grid.resolution(channel, lifetime_cm, fine_s)
    count = np.concatenate([[0.0], np.cumsum(np.diff(fine_red) / (cfg.scan.step_over_sigma * 0.5 * (sigma[1:] + sigma[:-1])))])
    m_red = np.interp(np.arange(int(count[-1]) + 1), count, fine_red)
    m_s = scalar_mass(m_red, decay)
    keep = np.ones(len(m_s), dtype=bool)
    for a, b in vetoed_ranges(channel):
        keep &= ~((m_s > a) & (m_s < b))
    eff = grid.efficiency(channel, lifetime_cm, m_s)
    keep &= eff > 0
    return {"m_s": m_s[keep], "m_reduced": m_red[keep], "sigma": grid.resolution(channel, lifetime_cm, m_s[keep]),
            "efficiency": eff[keep]}


def spectrum(run, cfg: ScanConfig, channel: str) -> tuple[np.ndarray, np.ndarray, str]:
    """(edges, counts, source) of the channel's M_red spectrum: data if any, else the background sum."""
    kinds = {name: info.get("kind") for name, info in run.datasets.items()}
    source = "data" if "data" in kinds.values() else "background"
    edges, total, yields = None, None, {}
    for dataset, kind in kinds.items():
        h = run.histograms.get(dataset, {}).get(cfg.scan.histogram)
        if kind != source or h is None:
            continue
        if edges is None:
            edges = h.axes[cfg.scan.histogram].edges
            total = np.zeros(len(edges) - 1)
        yields[dataset] = 0.0
        if channel in h.axes["channel"] and cfg.scan.region in h.axes["region"]:
            cell = h[{"channel": channel, "region": cfg.scan.region}]
            if "variation" in [a.name for a in cell.axes]:
                cell = cell[{"variation": "nominal"}]
            total += cell.values()
            yields[dataset] = float(cell.values().sum())
    if edges is None:
        raise StatsError(f"bkscalar: no {source} dataset has the histogram '{cfg.scan.histogram}'")
    edges = np.asarray(edges, float)
    if source == "background":
        # an empty dataset has not shown the spectrum empty (stats/mc_bound.py): its bound, one event of
        # its largest weight, is spread flat over the M_red range (its shape is unknown; flat is the
        # assumption of least structure, so it raises every window's background alike)
        bound = mc_bound(channel, yields, run.datasets)
        if bound is not None:
            total = total + bound.mean / len(total)
        # weighted MC is no observation (one event of weight 1e4 is a "peak"): without data, the scan's
        # observation is the Asimov spectrum of the background sum smoothed over the toys' kernel
        width = cfg.look_elsewhere.smoothing_sigmas * 0.005 / (edges[1] - edges[0])
        note = "background (Asimov: smoothed background sum"
        if bound is not None:
            note += f"; MC statistical bound {bound.mean:.3g} spread flat from {', '.join(sorted(bound.weights))}"
        return edges, smooth(total, width), note + ")"
    return edges, total, source


def b_mesons(cfg: ScanConfig, luminosity_fb: float, channel: str) -> tuple[float, str]:
    """2 N_BB f of the channel's B mode at the run's luminosity, and how it was obtained."""
    exp = load_experiment(cfg.experiment)
    key = cfg.normalisation.n_bb_key
    if key not in exp.n_bb or key not in exp.luminosity_fb:
        raise StatsError(f"bkscalar: no n_bb / luminosity_fb '{key}' in configs/experiments/{exp.name}.yaml")
    n_bb = exp.n_bb[key] * luminosity_fb / exp.luminosity_fb[key]
    f = exp.upsilon4s_charged_fraction if b_mode_of(channel) == "K" else 1.0 - exp.upsilon4s_charged_fraction
    return 2.0 * n_bb * f, f"2 N_BB f, N_BB = {exp.n_bb[key]:.4g} x {luminosity_fb:g}/{exp.luminosity_fb[key]:g}, f = {f:.3f}"


def smooth(counts: np.ndarray, width_bins: float) -> np.ndarray:
    """The spectrum averaged with a Gaussian kernel of ``width_bins`` (the toys' background-only mean)."""
    half = int(3 * width_bins) + 1
    x = np.arange(-half, half + 1)
    kernel = np.exp(-0.5 * (x / width_bins) ** 2)
    num = np.convolve(counts, kernel, mode="same")
    norm = np.convolve(np.ones_like(counts), kernel, mode="same")
    return num / norm


def mixing_columns(table: ScanTable, cfg: ScanConfig) -> dict[str, np.ndarray]:
    """sin^2 theta limits (observed, expected median) for every row: at the row's mass, with each lifetime's
    limit curve of the channel interpolated there (``higgs_scalar.mixing_limits``); NaN above the model's
    mass range or where the lifetime grid does not hold the implied c tau."""
    frame = table.frame
    out = {"sin2_theta_observed": np.full(len(frame), np.nan), "sin2_theta_expected": np.full(len(frame), np.nan)}
    for channel, rows in frame.groupby("channel"):
        rows = rows[rows["mass"] <= cfg.mixing.mass_max]
        if rows.empty:
            continue
        curves = {lt: r.sort_values("mass") for lt, r in rows.groupby("lifetime_cm")}
        lifetimes = np.array(sorted(curves))
        masses = rows["mass"].to_numpy()
        for column, target in (("observed", "sin2_theta_observed"), ("expected", "sin2_theta_expected")):
            limits = np.array([np.interp(masses, curves[lt]["mass"], curves[lt][column], left=np.nan, right=np.nan)
                               for lt in lifetimes])
            out[target][frame.index.get_indexer(rows.index)] = higgs_scalar.mixing_limits(masses, channel, lifetimes, limits)
    return out


# ---------------------------------------------------------------------------------------------- the scan
def compute(results_dir: str | Path, settings: Settings | None = None, cfg: ScanConfig | None = None,
            grid: SignalGrid | None = None) -> tuple[ScanTable, dict]:
    """The scan table and the limits.json document (nothing written)."""
    s = settings or Settings()
    cfg = cfg or load_scan_config(s.scan_config_of(SIGNAL))
    if s.scan_method == "pyhf":
        raise UserError("bkscalar: the scan runs the vectorised fits (stats/peak_scan.py); their pyhf cross-check is "
                        "benchmarks/bench_peak_scan.py")
    grid = grid or (SignalGrid.load(cfg.scan.signal_grid) if cfg.scan.signal_grid else SignalGrid.load())
    run = load_run_output(results_dir, SIGNAL)
    if run.experiment != cfg.experiment:
        raise StatsError(f"run output is for experiment '{run.experiment}', the stats model for '{cfg.experiment}'")
    cl = s.cl or cfg.cl
    start = time.perf_counter()
    channels = cfg.scan.channels or [c for c in CHANNELS if c in grid.channels]
    tasks, meta, notes, sources = [], {}, [], {}
    for channel in channels:
        edges, counts, source = spectrum(run, cfg, channel)
        sources[channel] = (edges, counts, source)
        for lifetime in cfg.scan.lifetimes_cm:
            if lifetime not in grid.lifetimes(channel):
                notes.append(f"{channel}: no signal grid at c tau {lifetime:g} cm; skipped")
                continue
            hyp = hypotheses(channel, lifetime, grid, cfg)
            if len(hyp["m_s"]) == 0:
                continue
            tasks.append(SpectrumScan((channel, lifetime), edges, counts, hyp["m_reduced"], hyp["sigma"], cl, cfg.scan.half_width_sigma))
            meta[(channel, lifetime)] = hyp
    if not tasks:
        raise StatsError("bkscalar: no hypothesis to scan (no channel with both run output and a signal grid)")
    prepared = time.perf_counter()
    results = parallel_map(scan_spectrum, tasks, executor=s.executor or cfg.scan.executor,
                           workers=s.workers or cfg.scan.workers)
    scanned = time.perf_counter()
    tables = []
    for res in results:
        channel, lifetime = res.key
        hyp = meta[res.key]
        n_b, _ = b_mesons(cfg, run.luminosity_fb, channel)
        per_br = hyp["efficiency"] * n_b  # signal events per unit BR x BR
        tables.append(ScanTable.from_arrays(
            channel, hyp["m_s"], res.observed / per_br, res.expected / per_br, res.local_significance, hyp["sigma"],
            lifetime_cm=lifetime, m_reduced=hyp["m_reduced"], efficiency=hyp["efficiency"],
            signal_events_observed=res.observed, signal_events_expected=res.expected[2], signal_yield_fit=res.signal_yield))
    table = ScanTable.concat(tables, metadata={"search": SIGNAL, "poi": cfg.poi, "unit": "", "cl": cl,
                                               "experiment": cfg.experiment, "luminosity_fb": run.luminosity_fb})
    mixing = mixing_columns(table, cfg)
    for k, v in mixing.items():
        table.frame[k] = v
    mixed = time.perf_counter()

    # look-elsewhere: per channel, toys of the fast scan around the smoothed spectrum (or Rice only)
    calibrations: dict[str, Calibration] = {}
    if cfg.look_elsewhere.toys > 0:
        for channel in channels:
            key = next(((c, lt) for c, lt in meta if c == channel), None)
            if key is None:
                continue
            edges, counts, _ = sources[channel]
            hyp = meta[key]
            width = float(np.median(hyp["sigma"])) * cfg.look_elsewhere.smoothing_sigmas / (edges[1] - edges[0])
            cal, _ = toy_calibration(edges, smooth(counts, width), hyp["m_reduced"], hyp["sigma"],
                                     cfg.look_elsewhere.toys, cfg.look_elsewhere.seed, cfg.look_elsewhere.level)
            if cal.n0 > 0:
                calibrations[channel] = cal
            else:  # an (almost) empty spectrum: no toy crosses the level; scan_calibration falls back to Rice
                notes.append(f"{channel}: no upcrossing in {cfg.look_elsewhere.toys} background-only toys (near-empty "
                             "spectrum); its look-elsewhere factor is Rice's")
    excess = largest_excess(table, calibrations or None)
    total_cal = scan_calibration(table, calibrations or None)
    rice = sum((rice_calibration(r.sort_values("mass")["m_reduced"].to_numpy(), r.sort_values("mass")["resolution"].to_numpy())
                for _, r in table.frame[table.frame["lifetime_cm"] == table.frame["lifetime_cm"].min()].groupby("channel")),
               Calibration(0.0, 0.0, "Rice (Gaussian peak)"))
    finished = time.perf_counter()
    h = excess.row
    notes.append(f"largest local excess {excess.local_significance:.2f} sigma at {h['channel']}, m_S = {h['mass']:.4f} GeV, "
                 f"c tau {h['lifetime_cm']:g} cm; global {excess.global_significance:.2f} sigma ({excess.method})")
    table.metadata["look_elsewhere"] = {"calibration": total_cal.to_dict(), "rice": rice.to_dict(),
                                        "per_channel": {c: cal.to_dict() for c, cal in calibrations.items()}}

    entries = []
    for (channel, lifetime), rows in table.curves():
        best = rows.loc[rows["expected"].idxmin()]
        n_b, n_b_label = b_mesons(cfg, run.luminosity_fb, channel)
        entries.append({
            "signal": SIGNAL, "label": f"B -> K S, {channel}", "limit": f"{channel}_ctau{lifetime:g}",
            "channels": [channel], "hypotheses": int(len(rows)),
            "hypothesis": {"mass": float(best["mass"]), "lifetime_cm": lifetime},
            "cl": cl, "calculator": "asymptotics", "method": "vectorised peak scan (stats/peak_scan.py), asymptotic qtilde CLs",
            "poi": cfg.poi,
            "physics": {"quantity": "branching_fraction", "product": QUANTITY, "unit": "", "observed": float(best["observed"]),
                        "expected": [float(best[c]) for c in ("expected_m2", "expected_m1", "expected", "expected_p1", "expected_p2")]},
            "normalisation": {"efficiency": float(best["efficiency"]), "b_mesons": n_b, "label": n_b_label},
            "observed_limit_range": [float(rows["observed"].min()), float(rows["observed"].max())],
            "largest_local_significance": float(rows["local_significance"].max()),
            "published": None, "asimov_observation": sources[channel][2] != "data",
            "background_events": float(sources[channel][1].sum()),
            "background_source": sources[channel][2],
            "background_from_mc_bound": "MC statistical bound" in sources[channel][2],
        })
    document = {
        "search": SIGNAL, "experiment": cfg.experiment, "luminosity_fb": run.luminosity_fb, "cl": cl, "poi": cfg.poi,
        "observations": "pseudo-data" if all(v[2] == "data" for v in sources.values())
        else "Asimov: the background sum smoothed (no data dataset); the 'observed' limits are expected ones",
        "notes": notes,
        "hypotheses": int(len(table)),
        "curves": len(entries),
        "scan_table": "scan.parquet (also scan.csv)",
        "signal_grid": {k: grid.document.get(k) for k in ("schema_version", "command", "code_version", "created", "events_per_sample")}
        | {"path": grid.source},
        "largest_excess": excess.to_dict(),
        "look_elsewhere": table.metadata["look_elsewhere"],
        "seconds": {"prepare": round(prepared - start, 2), "scan": round(scanned - prepared, 2),
                    "scan_cpu_sum": round(float(sum(r.seconds for r in results)), 2), "mixing": round(mixed - scanned, 2),
                    "look_elsewhere": round(finished - mixed, 2)},
        "limits": entries,
    }
    return table, document


# ---------------------------------------------------------------------------------------------- outputs
def _panel(channel: str) -> tuple[int, int]:
    decays = ("ee", "mumu", "pipi", "KK")
    return decays.index(decay_of(channel)), ("K", "Kst").index(b_mode_of(channel))


def _title(channel: str) -> str:
    return f"${MODE_LABELS[b_mode_of(channel)]}$, $S \\to {DECAY_LABELS[decay_of(channel)]}$"


def write_plots(table: ScanTable, base: Path, experiment: str, lumi: float) -> list[Path]:
    import matplotlib.pyplot as plt
    import mplhep

    written = []
    ylabel = r"95% CL UL on $\mathcal{B}(B\to K^{(*)}S)\times\mathcal{B}(S\to x^+x^-)$"
    written += plot_limit_grid(table, base / "limits_fig2", ylabel, panel_of=_panel,
                               panel_titles={c: _title(c) for c in table.frame["channel"].unique()},
                               experiment=experiment, lumi_fb=lumi, xlabel=r"$m_S$ [GeV/$c^2$]",
                               shaded={c: vetoed_ranges(c) for c in table.frame["channel"].unique()})
    for (channel, lifetime), rows in table.curves():
        written += plot_limit_curve(rows["mass"].to_numpy(), rows["observed"].to_numpy(),
                                    rows[["expected_m2", "expected_m1", "expected", "expected_p1", "expected_p2"]].to_numpy().T,
                                    base / f"limit_{channel}_ctau{lifetime:g}", ylabel,
                                    f"{_title(channel)}, c$\\tau$ = {lifetime:g} cm", experiment, lumi, xlabel=r"$m_S$ [GeV/$c^2$]")
    plt.style.use(mplhep.style.ROOT)
    for what, column, label in (("sin_theta", "sin2_theta", r"95% CL UL on $\sin\theta$"),
                                ("local_significance", "local_significance", "local significance [$\\sigma$]")):
        fig, ax = plt.subplots(figsize=(9, 6))
        try:
            for channel, rows in table.frame.groupby("channel"):
                if what == "sin_theta":
                    best = rows.groupby("mass")[[f"{column}_observed", f"{column}_expected"]].min().dropna()
                    if best.empty:
                        continue
                    # masses without a solution (NaN) leave gaps: break the lines there
                    x, obs, exp = with_gaps(best.index.to_numpy(), np.sqrt(best[f"{column}_observed"].to_numpy()),
                                            np.sqrt(best[f"{column}_expected"].to_numpy()))
                    line = ax.plot(x, obs, "-", lw=1, label=channel)[0]
                    ax.plot(x, exp, "--", lw=0.7, color=line.get_color())
                else:
                    first = rows[rows["lifetime_cm"] == rows["lifetime_cm"].min()]
                    ax.plot(*with_gaps(first["mass"].to_numpy(), first[column].to_numpy()), "-", lw=0.7, label=channel)
            ax.set_xlabel(r"$m_S$ [GeV/$c^2$]")
            ax.set_ylabel(label)
            if what == "sin_theta":
                ax.set_yscale("log")
                ax.set_title("Higgs-mixed scalar (1904.10447; widths to 2 GeV): solid observed, dashed expected", fontsize=10)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=9, ncol=2)
            else:
                ax.text(0.5, 0.5, "no mass with a solution in the lifetime grid", transform=ax.transAxes, ha="center")
            written += save_figure(fig, base / what)
        finally:
            plt.close(fig)
    return written


def limit(search: str, results_dir: str | Path, settings: Settings | None = None, make_plots: bool = True,
          cfg: ScanConfig | None = None, grid: SignalGrid | None = None) -> SearchLimits:
    """The ``Search.scan`` hook: compute, then write scan table, plots, HEPData record and limits.json
    (``cfg`` / ``grid``: instead of the shipped stats YAML / signal grid)."""
    if search != SIGNAL:
        raise UserError(f"analyses.bkscalar_scan.limit is bkscalar's scan, not '{search}''s")
    table, document = compute(results_dir, settings, cfg, grid)
    base = run_output_dir(results_dir, search)
    start = time.perf_counter()
    written = [table.write(base / "scan.parquet"), table.write(base / "scan.csv")]
    tabled = time.perf_counter()
    if make_plots:
        written += write_plots(table, base / "plots", document["experiment"], document["luminosity_fb"])
    plotted = time.perf_counter()
    # unvalidated here (hepdata-validator doubles the 1-2 min of YAML writing of 32 curves x ~1600 points);
    # tests/test_scan_table.py validates the same writer's output
    written += write_hepdata(table, base / "hepdata", QUANTITY, cl=document["cl"],
                             comment=f"bkscalar scan (belle-rare): {document['observations']}", validate=False)
    document["seconds"].update(table=round(tabled - start, 2), plots=round(plotted - tabled, 2),
                               hepdata=round(time.perf_counter() - plotted, 2))
    document["files"] = [str(p.relative_to(base)) for p in written] + ["limits.json"]
    write_json(base / "limits.json", document)  # last: its presence means the set is complete
    return SearchLimits(search, document)
