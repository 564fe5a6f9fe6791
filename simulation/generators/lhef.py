"""Write Les Houches event files, so that Pythia 8 can decay, shower and hadronise events made elsewhere.

Used for what Pythia cannot start by itself at a B factory: an Upsilon(4S) at rest in the beam
system (then decayed with Pythia's tables), Bhabha scattering and mu mu Z' (then given QED FSR).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

# Per-particle columns of an LHEF event line: id status mother1 mother2 col acol px py pz E m lifetime spin
_PARTICLE_FMT = "%d %d %d %d 0 0 %.10e %.10e %.10e %.10e %.10e 0. 9."


def write_lhef(
    path: Path,
    pdg: np.ndarray,
    status: np.ndarray,
    mothers: np.ndarray,
    p4: np.ndarray,
    beam_energies: tuple[float, float],
    scale: np.ndarray,
) -> None:
    """Write ``n`` events of ``k`` particles each.

    ``pdg``, ``status``: ``(k,)`` (same for every event); ``mothers``: ``(k, 2)`` 1-based LHEF
    mother indices; ``p4``: ``(n, k, 4)`` as (px, py, pz, E); ``scale``: ``(n,)`` event scale (GeV).
    """
    n, k, _ = p4.shape
    mass = np.sqrt(np.clip(p4[..., 3] ** 2 - np.sum(p4[..., :3] ** 2, axis=-1), 0.0, None))
    header = (
        '<LesHouchesEvents version="3.0">\n<init>\n'
        f"11 -11 {beam_energies[0]:.6f} {beam_energies[1]:.6f} 0 0 0 0 3 1\n"
        "1.0 0.0 1.0 1\n</init>\n"
    )
    # one row per event: scale, then each particle's id/status/mothers/momentum/mass
    columns = [scale[:, None]]
    fmt = ["<event>\n%d 1 1.0 %%.6e 0.0078 0.118" % k]
    for j in range(k):
        columns.append(
            np.column_stack(
                [
                    np.full(n, pdg[j]),
                    np.full(n, status[j]),
                    np.full(n, mothers[j, 0]),
                    np.full(n, mothers[j, 1]),
                    p4[:, j, :],
                    mass[:, j],
                ]
            )
        )
        fmt.append(_PARTICLE_FMT)
    table = np.hstack(columns)
    with open(path, "w") as out:
        out.write(header)
        np.savetxt(out, table, fmt="\n".join(fmt) + "\n</event>", delimiter=" ", comments="")
        out.write("</LesHouchesEvents>\n")
