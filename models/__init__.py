"""Trained model artefacts shipped with the package (``belle-rare train`` writes them; package data)."""
