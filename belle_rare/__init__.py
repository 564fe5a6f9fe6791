"""belle-rare: columnar coffea analyses of rare tau, B and dark-sector searches at Belle / Belle II.

Everything lives under this one namespace (``belle_rare.processors``, ``belle_rare.stats``, ...).
For notebooks: ``belle_rare.open_run(DIR)`` returns a finished run's histograms, cutflow,
metadata, validation and limits as one object.
"""

from __future__ import annotations

from belle_rare.core.provenance import package_version

__version__ = package_version()


def open_run(directory, search=None):
    """A run's outputs (``belle-rare run`` / ``make run``) as one object; see ``belle_rare.analyses.run_output``."""
    from belle_rare.analyses.run_output import open_run as _open_run

    return _open_run(directory, search)


__all__ = ["open_run", "__version__"]
