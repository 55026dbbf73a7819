"""Procedural dSprites renderer: binary 64x64 masks from integer factor indices.

The geometry (fitted to the real frames in ``tests/data/reference/``): a pixel (row r,
column c) is on iff its centre (c + 0.5, r + 0.5) lies inside the shape; the shape's centre is
x = 16 + 32 posX, y = 16 + 32 posY; rotation by theta turns it counter-clockwise on screen.

Speed: every pixel centre near the sprite is inverse-rotated into shape coordinates and tested
with a closed-form inside test, for a whole chunk of sprites at once (torch ops, which use every
core). Only a square window around each sprite's centre is evaluated, sized for its scale; the
rest of the image is off by construction.

The heart is exact rather than a polygon: X = 16 sin^3 t is monotone on [0, pi/2], so each
vertical line |X| <= 16 cuts the heart in one segment, bounded above by the curve at
t = asin(cbrt(|X| / 16)) and below by the curve at pi - t. With c = cos t the curve's height is
Y = 13c - 5 cos 2t - 2 cos 3t - cos 4t = -8c^4 - 8c^3 - 2c^2 + 19c + 4, so the upper bound is
P(c) and the lower bound P(-c), with c = sqrt(1 - (|X| / 16)^(2/3)).
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from deft_tune.threads import available_cpus

FACTOR_NAMES: tuple[str, ...] = ("shape", "scale", "orientation", "pos_x", "pos_y")
FACTOR_SIZES: tuple[int, ...] = (3, 6, 40, 32, 32)
SIDE = 64
SHAPE_NAMES = ("square", "ellipse", "heart")

SQUARE_HALF_SIDE = 9.6  # side 19.2 s
ELLIPSE_SEMI_AXES = (12.8, 7.2)  # horizontal, vertical at theta = 0
HEART_X_SCALE = 0.6  # u = 0.6 X s
HEART_Y_SCALE, HEART_Y_SHIFT = -0.6638, -1.45  # v = (-0.6638 Y - 1.45) s
# Largest distance of any shape point from the centre, in units of the scale s (the square's
# half-diagonal 13.58 is the largest; the heart reaches 13.3, the ellipse 12.8). The window
# around a sprite spans this radius plus one pixel of margin on each side.
_MAX_RADIUS = 13.6
_CHUNK = 2048  # sprites per block: its tensors (about 2M floats) stay cache-friendly


def scale_values() -> np.ndarray:
    return np.linspace(0.5, 1.0, FACTOR_SIZES[1])


def orientation_values() -> np.ndarray:
    return np.linspace(0.0, 2 * math.pi, FACTOR_SIZES[2])


def position_values() -> np.ndarray:
    return np.linspace(0.0, 1.0, FACTOR_SIZES[3])


def factor_values(factors: np.ndarray) -> np.ndarray:
    """Integer factor indices (n, 5) -> the real-valued factors (n, 5), in the file's units."""
    factors = np.asarray(factors, dtype=np.int64)
    return np.stack(
        [
            factors[:, 0] + 1.0,  # the real file numbers shapes 1, 2, 3
            scale_values()[factors[:, 1]],
            orientation_values()[factors[:, 2]],
            position_values()[factors[:, 3]],
            position_values()[factors[:, 4]],
        ],
        axis=1,
    )


def window_side(scale: float) -> int:
    """Side of the square window (pixels) that holds every on-pixel of a sprite of ``scale``."""
    return 2 * math.ceil(_MAX_RADIUS * scale) + 2


def _heart_inside(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Inside test for the unit-scale heart at shape coordinates (u right, v down)."""
    a = (u / (16 * HEART_X_SCALE)).abs_()
    y = (v - HEART_Y_SHIFT) / HEART_Y_SCALE  # the curve's Y (up)
    c = (1 - a.clamp(max=1) ** (2 / 3)).sqrt_()
    c2 = c * c
    odd = c * (19 - 8 * c2)  # the odd part of P
    even = 4 - 2 * c2 - 8 * c2 * c2  # the even part of P
    return (a <= 1) & (y <= even + odd) & (y >= even - odd)


def _inside(shape: int, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    if shape == 0:
        return (u.abs() <= SQUARE_HALF_SIDE) & (v.abs() <= SQUARE_HALF_SIDE)
    if shape == 1:
        return (u / ELLIPSE_SEMI_AXES[0]) ** 2 + (v / ELLIPSE_SEMI_AXES[1]) ** 2 <= 1
    return _heart_inside(u, v)


def _render_group(shape: int, scale_index: int, rest: np.ndarray) -> torch.Tensor:
    """Masks of one shape and scale; ``rest`` holds (orientation, pos_x, pos_y) indices (n, 3).

    Returns uint8 (n, 64 * 64).
    """
    scale = float(scale_values()[scale_index])
    side = window_side(scale)
    angle = torch.from_numpy(orientation_values()[rest[:, 0]])
    cx = torch.from_numpy(16 + 32 * position_values()[rest[:, 1]])
    cy = torch.from_numpy(16 + 32 * position_values()[rest[:, 2]])
    # Window origin: the window (side pixels) is centred on the sprite and fits in the image
    # because the centre lies in [16, 48] and the radius is at most 14.
    col0 = torch.floor(cx).long() - side // 2 + 1
    row0 = torch.floor(cy).long() - side // 2 + 1
    offsets = torch.arange(side, dtype=torch.float64) + 0.5
    # (n, side): pixel centre - sprite centre, in float64 then float32 for the per-pixel work.
    dx = ((col0[:, None] + offsets - cx[:, None]) / scale).float()
    dy = ((row0[:, None] + offsets - cy[:, None]) / scale).float()
    cos, sin = torch.cos(angle).float()[:, None, None], torch.sin(angle).float()[:, None, None]
    # Inverse rotation: u = cos dx - sin dy, v = sin dx + cos dy; rows index dy, columns dx.
    u = cos * dx[:, None, :] - sin * dy[:, :, None]
    v = sin * dx[:, None, :] + cos * dy[:, :, None]
    on = _inside(shape, u, v).to(torch.uint8).reshape(len(rest), side * side)
    steps = torch.arange(side)
    flat = (row0[:, None] + steps)[:, :, None] * SIDE + (col0[:, None] + steps)[:, None, :]
    out = torch.zeros(len(rest), SIDE * SIDE, dtype=torch.uint8)
    return out.scatter_(1, flat.reshape(len(rest), side * side), on)


def _check_factors(factors: np.ndarray) -> np.ndarray:
    factors = np.asarray(factors)
    if factors.ndim != 2 or factors.shape[1] != len(FACTOR_SIZES):
        raise ValueError(f"factors must have shape (n, 5), got {factors.shape}")
    if not np.issubdtype(factors.dtype, np.integer):
        raise ValueError(f"factors must be integer indices, got dtype {factors.dtype}")
    factors = factors.astype(np.int64, copy=False)
    if factors.size and ((factors < 0).any() or (factors >= np.asarray(FACTOR_SIZES)).any()):
        raise ValueError(f"factors out of range: column j must lie in [0, {FACTOR_SIZES}[j])")
    return factors


def _render_block(factors: np.ndarray, packed: bool) -> np.ndarray:
    """Masks (n, 4096) of a block of checked factors, or bit-packed (n, 512) if ``packed``."""
    out = np.zeros((len(factors), SIDE * SIDE), dtype=np.uint8)
    for shape in range(FACTOR_SIZES[0]):
        for scale_index in range(FACTOR_SIZES[1]):
            rows = np.flatnonzero((factors[:, 0] == shape) & (factors[:, 1] == scale_index))
            if rows.size:
                out[rows] = _render_group(shape, scale_index, factors[rows, 2:]).numpy()
    return np.packbits(out, axis=1) if packed else out


_threads_lock = threading.Lock()
_threads_users = 0  # renders in flight; the first saves torch's thread count, the last restores
_threads_saved = 1


@contextlib.contextmanager
def _one_torch_thread() -> Iterator[None]:
    # Each block's tensors are small (about 1M elements): torch's intra-op threads spend more
    # time waiting than working on them (5-20x the CPU time of one thread on a loaded 2-core
    # machine). Blocks run in parallel Python threads instead (torch ops release the GIL).
    global _threads_users, _threads_saved
    with _threads_lock:
        if _threads_users == 0:
            _threads_saved = torch.get_num_threads()
            torch.set_num_threads(1)
        _threads_users += 1
    try:
        yield
    finally:
        with _threads_lock:
            _threads_users -= 1
            if _threads_users == 0:
                torch.set_num_threads(_threads_saved)


def _render_blocks(
    factors: np.ndarray, packed: bool, progress: Callable[[int, int], None] | None = None
) -> np.ndarray:
    width = SIDE * SIDE // 8 if packed else SIDE * SIDE
    out = np.empty((len(factors), width), dtype=np.uint8)
    starts = range(0, len(factors), _CHUNK)
    workers = max(1, min(len(starts), available_cpus()))  # the cores this process may use
    with _one_torch_thread(), ThreadPoolExecutor(workers) as pool:
        blocks = pool.map(lambda s: _render_block(factors[s : s + _CHUNK], packed), starts)
        for start, block in zip(starts, blocks):
            out[start : start + len(block)] = block
            if progress is not None:
                progress(start + len(block), len(factors))
    return out


def render_masks(factors: np.ndarray) -> np.ndarray:
    """dSprites masks of the given integer factor indices.

    ``factors`` is (n, 5) integer: shape, scale, orientation, pos_x, pos_y (see FACTOR_SIZES).
    Returns uint8 (n, 64, 64) with values in {0, 1}.
    """
    factors = _check_factors(factors)
    return _render_blocks(factors, packed=False).reshape(len(factors), SIDE, SIDE)


def render_packed(
    factors: np.ndarray, progress: Callable[[int, int], None] | None = None
) -> np.ndarray:
    """Like :func:`render_masks`, bit-packed: uint8 (n, 512), ``np.packbits`` of each mask.

    Memory stays at 512 bytes per image (the full grid is 377 MB packed, 3 GB unpacked);
    ``progress(done, total)`` is called as blocks finish.
    """
    return _render_blocks(_check_factors(factors), packed=True, progress=progress)
