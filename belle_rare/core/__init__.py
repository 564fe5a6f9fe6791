"""The bottom layer: what every other layer shares (errors, provenance, atomic writes, units,
the histogram contract, one parallel map). Nothing here imports from the rest of belle_rare."""
