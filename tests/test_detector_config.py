"""Detector YAML: both files validate, published numbers are in place, malformed files fail clearly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from belle_rare.configs.loader import ConfigError, config_path
from belle_rare.simulation.detector import load_detector


@pytest.mark.parametrize("name", ["belle", "belle2"])
def test_shipped_files_validate(name):
    params = load_detector(name)
    assert params.name == name
    assert load_detector(name) is params  # cached


def test_pid_variable_names_follow_each_experiment():
    assert list(load_detector("belle").pid.variables) == ["eIDBelle", "muIDBelle", "atcPIDBelle"]
    assert list(load_detector("belle2").pid.variables) == ["electronID", "muonID", "pionID", "kaonID", "protonID"]


def test_published_numbers_are_configured():
    belle, belle2 = load_detector("belle"), load_detector("belle2")
    assert (belle.tracking.momentum_resolution.pt_term, belle.tracking.momentum_resolution.beta_term) == (0.0019, 0.0030)
    assert (belle2.tracking.momentum_resolution.pt_term, belle2.tracking.momentum_resolution.beta_term) == (0.0011, 0.0025)
    r = belle.calorimeter.energy_resolution
    assert (r.noise, r.stochastic, r.constant) == (0.00066, 0.0081, 0.0134)
    assert (belle.tagging.correct_efficiency.charged, belle.tagging.correct_efficiency.neutral) == (0.0028, 0.0018)
    pid = belle.pid.variables
    assert pid["eIDBelle"].efficiency.e(np.array([2.0]))[0] == 0.924
    assert pid["eIDBelle"].efficiency.pi(np.array([2.0]))[0] == 0.0025
    assert pid["muIDBelle"].efficiency.mu(np.array([2.0]))[0] == 0.89
    assert pid["muIDBelle"].efficiency.pi(np.array([2.0]))[0] == 0.014
    for params in (belle, belle2):
        regions = params.calorimeter.regions_deg
        assert (regions.forward.low, regions.barrel.low, regions.backward.high) == (12.4, 32.2, 155.1)
        assert (params.tracking.theta_range_deg.low, params.tracking.theta_range_deg.high) == (17.0, 150.0)


def _write_modified(tmp_path: Path, edit) -> Path:
    data = yaml.safe_load(config_path("detector", "belle2.yaml").read_text())
    edit(data)
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_unknown_key_names_file_and_key(tmp_path):
    path = _write_modified(tmp_path, lambda d: d["tracking"].update(efficency=0.9))
    with pytest.raises(ConfigError) as err:
        load_detector(path)
    assert str(path) in str(err.value) and "tracking.efficency" in str(err.value)


def test_wrong_type_names_file_and_key(tmp_path):
    path = _write_modified(tmp_path, lambda d: d["calorimeter"]["energy_resolution"].update(constant="small"))
    with pytest.raises(ConfigError) as err:
        load_detector(path)
    assert str(path) in str(err.value) and "calorimeter.energy_resolution.constant" in str(err.value)


def test_missing_key_and_bad_table_are_errors(tmp_path):
    path = _write_modified(tmp_path, lambda d: d["tagging"].pop("correct_efficiency"))
    with pytest.raises(ConfigError, match="tagging.correct_efficiency"):
        load_detector(path)
    path = _write_modified(tmp_path, lambda d: d["pid"]["variables"]["muonID"]["efficiency"]["mu"].update(values=[0.9]))
    with pytest.raises(ConfigError, match="pid.variables.muonID.efficiency.mu"):
        load_detector(path)
    path = _write_modified(tmp_path, lambda d: d["tracking"].update(efficiency=1.5))
    with pytest.raises(ConfigError, match="tracking.efficiency"):
        load_detector(path)


def test_unknown_detector_name():
    with pytest.raises(ValueError, match="unknown detector"):
        load_detector("babar")
