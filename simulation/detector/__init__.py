"""Parametric Belle / Belle II detector response tuned to published performance.

Usage::

    from belle_rare.simulation.detector import simulate_detector, load_detector
    params = load_detector("belle2")             # validated model of configs/detector/belle2.yaml
    reco = simulate_detector(truth, params, rng)  # truth as in simulation/truth.py, rng: np.random.Generator

``reco`` maps collection names (``Track``, ``Photon``, ``KLMCluster``, ``Pi0``, ``V0``, ``Btag``) to
jagged record arrays whose fields are the ntuple branch suffixes.
"""

from belle_rare.simulation.detector.params import DetectorParams, load_detector
from belle_rare.simulation.detector.response import COLLECTIONS, simulate_detector

__all__ = ["COLLECTIONS", "DetectorParams", "load_detector", "simulate_detector"]
