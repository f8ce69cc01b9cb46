"""Slice mosaics as PNG: for the reports and as the image the multimodal graders read.

Volumes are in RAS+ (canonical) orientation: axis 0 = left->right, 1 = posterior->anterior,
2 = inferior->superior. Slices are rotated so the top of each tile is anterior (axial) or
superior (sagittal, coronal), as radiologists expect.
"""
from __future__ import annotations

import io

import numpy as np
from PIL import Image
from scipy import ndimage as ndi

VIEWS = ("axial", "sagittal", "coronal")


def _slice(vol: np.ndarray, view: str, frac: float) -> np.ndarray:
    if view == "axial":
        k = int(round(frac * (vol.shape[2] - 1)))
        return np.rot90(vol[:, :, k])
    if view == "sagittal":
        k = int(round(frac * (vol.shape[0] - 1)))
        return np.rot90(vol[k, :, :])
    k = int(round(frac * (vol.shape[1] - 1)))
    return np.rot90(vol[:, k, :])


def to_uint8(img: np.ndarray, low: float, high: float) -> np.ndarray:
    scaled = (img - low) / max(high - low, 1e-12)
    return (np.clip(scaled, 0, 1) * 255).astype(np.uint8)


def window(vol: np.ndarray, head: np.ndarray | None = None) -> tuple[float, float]:
    """Display window: 0.5th..99.5th percentile of the head (of the whole volume without one)."""
    values = vol[head] if head is not None and head.any() else vol[vol > 0]
    if values.size > 200_000:
        values = values[:: values.size // 200_000]
    return float(np.percentile(values, 0.5)), float(np.percentile(values, 99.5))


def _tile(img: np.ndarray, size: int) -> np.ndarray:
    """Pad to square and resize to ``size`` pixels (aspect kept)."""
    h, w = img.shape
    side = max(h, w)
    canvas = np.zeros((side, side), dtype=img.dtype)
    canvas[(side - h) // 2:(side - h) // 2 + h, (side - w) // 2:(side - w) // 2 + w] = img
    return np.asarray(Image.fromarray(canvas).resize((size, size), Image.BILINEAR))


def grid(vol: np.ndarray, views: tuple[str, ...], fracs: tuple[float, ...], tile: int,
         low: float, high: float) -> np.ndarray:
    rows = []
    for view in views:
        rows.append(np.concatenate([_tile(to_uint8(_slice(vol, view, f), low, high), tile)
                                    for f in fracs], axis=1))
    return np.concatenate(rows, axis=0)


def png_bytes(img: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def mllm_mosaic(vol: np.ndarray, head: np.ndarray, size: int = 384) -> bytes:
    """The image the multimodal graders read: 3x3 tiles (axial, sagittal, coronal at 35/50/65%),
    ``size`` x ``size`` pixels in all (one 384 px image ~ 1,485 tokens in LLaVA-OneVision-0.5B)."""
    low, high = window(vol, head)
    tile = size // 3
    return png_bytes(grid(vol, VIEWS, (0.35, 0.5, 0.65), tile, low, high))


def report_mosaic(vol: np.ndarray, head: np.ndarray, view: str, n: int = 7,
                  tile: int = 160) -> bytes:
    """A row of ``n`` slices through the head in one view, for the individual report."""
    low, high = window(vol, head)
    fracs = tuple(np.linspace(0.2, 0.8, n))
    return png_bytes(grid(vol, (view,), fracs, tile, low, high))


def background_mosaic(vol: np.ndarray, head: np.ndarray, n: int = 7, tile: int = 160) -> bytes:
    """Noise view: the window is set on the air so that noise, ghosts and wrap-around show."""
    air = vol[~ndi.binary_dilation(head, iterations=2)]
    if air.size == 0:
        air = vol.ravel()
    low, high = float(np.percentile(air, 1)), float(np.percentile(air, 99.5)) * 4
    fracs = tuple(np.linspace(0.2, 0.8, n))
    return png_bytes(grid(vol, ("axial",), fracs, tile, low, high))
