"""Schema of an experiment configuration (``configs/experiments/<name>.yaml``).

Beams, luminosities, B-pair counts and the per-process cross sections; the detector response
has its own file (``configs/detector/<name>.yaml``).
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Literal

import numpy as np
import pydantic

from belle_rare.configs.loader import StrictModel, config_path, load_config

EXPERIMENTS = ("belle", "belle2")


class Beam(StrictModel):
    particle: Literal["e-", "e+"]
    energy: float = pydantic.Field(gt=0, description="GeV")
    energy_spread: float = pydantic.Field(ge=0, description="GeV, Gaussian sigma")
    angle: float = pydantic.Field(
        description="rad, in the x-z plane: angle from +z of the e- direction, or of the reversed e+ direction"
    )


class BeamSpot(StrictModel):
    sigma_x: float = pydantic.Field(ge=0, description="cm")
    sigma_y: float = pydantic.Field(ge=0, description="cm")
    sigma_z: float = pydantic.Field(ge=0, description="cm")


class Experiment(StrictModel):
    name: Literal["belle", "belle2"]
    label: str
    experiment_number: int = pydantic.Field(ge=0, description="__experiment__ written to ntuples")
    her: Beam
    ler: Beam
    beam_spot: BeamSpot
    sqrt_s_nominal: float = pydantic.Field(gt=0, description="GeV; checked against the beams")
    luminosity_fb: dict[str, float] = pydantic.Field(description="integrated luminosities per data set (/fb)")
    n_bb: dict[str, float] = pydantic.Field(description="B-meson pairs per data set")
    cross_sections_nb: dict[str, float] = pydantic.Field(description="sigma(e+e- -> X) at 10.58 GeV (nb)")
    upsilon4s_charged_fraction: float = pydantic.Field(gt=0, lt=1, description="f(+-) of Upsilon(4S) -> B Bbar")

    @pydantic.model_validator(mode="after")
    def _beams_match_sqrt_s(self) -> "Experiment":
        if abs(self.sqrt_s - self.sqrt_s_nominal) > 0.02:
            raise ValueError(
                f"sqrt_s_nominal={self.sqrt_s_nominal} GeV but the beams give {self.sqrt_s:.4f} GeV"
            )
        return self

    @property
    def beam_four_momenta(self) -> tuple[np.ndarray, np.ndarray]:
        """(E, px, py, pz) of the e- (HER, towards +z) and e+ (LER, towards -z) beams, electron mass neglected."""
        her = self.her.energy * np.array([1.0, math.sin(self.her.angle), 0.0, math.cos(self.her.angle)])
        ler = self.ler.energy * np.array([1.0, -math.sin(self.ler.angle), 0.0, -math.cos(self.ler.angle)])
        return her, ler

    @property
    def total_four_momentum(self) -> np.ndarray:
        her, ler = self.beam_four_momenta
        return her + ler

    @property
    def sqrt_s(self) -> float:
        e, px, py, pz = self.total_four_momentum
        return float(math.sqrt(e * e - px * px - py * py - pz * pz))

    @property
    def boost_vector(self) -> np.ndarray:
        """beta of the CM frame in the laboratory."""
        p = self.total_four_momentum
        return p[1:] / p[0]

    @property
    def beta_gamma(self) -> float:
        p = self.total_four_momentum
        return float(np.linalg.norm(p[1:]) / self.sqrt_s)

    def cross_section(self, process: str) -> float:
        """sigma(e+e- -> process) in nb; errors name the process."""
        try:
            return self.cross_sections_nb[process]
        except KeyError:
            raise KeyError(
                f"no cross section for process '{process}' in configs/experiments/{self.name}.yaml"
            ) from None


@lru_cache(maxsize=None)
def load_experiment(name: str) -> Experiment:
    """The validated configuration of ``belle`` or ``belle2``."""
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment '{name}' (choose from {', '.join(EXPERIMENTS)})")
    return load_config(config_path("experiments", f"{name}.yaml"), Experiment)
