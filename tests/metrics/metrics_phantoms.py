"""Closed-form phantoms for the metric tests (no template download, milliseconds to build).

Test modules import the fixtures they use from here (no conftest.py: a second module named
``conftest`` would shadow the top-level one)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

# Tissue intensities of the layered-sphere phantom (T1-like ordering CSF < GM < WM).
LEVELS = {"wm": 800.0, "gm": 550.0, "csf": 250.0, "skull": 40.0, "scalp": 900.0}


@dataclass(frozen=True)
class Phantom:
    image: np.ndarray
    clean: np.ndarray
    labels: dict[str, np.ndarray]
    sigma: float


def magnitude(clean: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Magnitude of clean + complex Gaussian noise (Rician; Rayleigh where clean = 0)."""
    re = clean + rng.normal(0, sigma, clean.shape)
    im = rng.normal(0, sigma, clean.shape)
    return np.sqrt(re * re + im * im).astype(np.float32)


def layered_sphere(shape=(72, 72, 64), radii=(11, 17, 21, 24, 27)) -> dict[str, np.ndarray]:
    """Concentric shells: WM core, GM, CSF, dark skull, bright scalp; air outside."""
    grid = np.indices(shape, dtype=np.float32)
    centre = (np.asarray(shape, np.float32) - 1) / 2
    r = np.sqrt(sum((g - c) ** 2 for g, c in zip(grid, centre)))
    edges = (0,) + tuple(radii)
    names = ("wm", "gm", "csf", "skull", "scalp")
    return {n: (r >= lo) & (r < hi) if lo else r < hi
            for n, lo, hi in zip(names, edges[:-1], edges[1:])}


@pytest.fixture(scope="session")
def sphere_labels() -> dict[str, np.ndarray]:
    return layered_sphere()


@pytest.fixture
def make_sphere(sphere_labels):
    """make_sphere(sigma, seed) -> Phantom with Rician noise of ``sigma``."""

    def _make(sigma: float = 20.0, seed: int = 0, levels: dict | None = None) -> Phantom:
        lv = {**LEVELS, **(levels or {})}
        clean = np.zeros(sphere_labels["wm"].shape, np.float32)
        for name, mask in sphere_labels.items():
            clean[mask] = lv[name]
        rng = np.random.default_rng(seed)
        return Phantom(image=magnitude(clean, sigma, rng), clean=clean, labels=sphere_labels, sigma=sigma)

    return _make
