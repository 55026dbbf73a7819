import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageSequence

from deft_tune.data.dsprites import render_masks

REFERENCE = Path(__file__).resolve().parents[3] / "shared" / "reference"
FRAMES_GIF = REFERENCE / "dsprites_frames.gif"
FRAMES_CSV = REFERENCE / "dsprites_frames.csv"


def _real_frames() -> tuple[np.ndarray, np.ndarray]:
    if not FRAMES_GIF.exists():
        pytest.skip(f"reference frames not found at {FRAMES_GIF}")
    with Image.open(FRAMES_GIF) as gif:
        frames = [np.asarray(f.convert("L")) > 127 for f in ImageSequence.Iterator(gif)]
    with open(FRAMES_CSV, newline="") as fh:
        names = ("shape", "scale", "orientation", "pos_x", "pos_y")
        factors = [[int(row[k]) for k in names] for row in csv.DictReader(fh)]
    return np.stack(frames).astype(np.uint8), np.asarray(factors, dtype=np.int64)


def test_renderer_matches_the_real_frames():
    frames, factors = _real_frames()
    assert frames.shape == (320, 64, 64) and factors.shape == (320, 5)
    rendered = render_masks(factors)
    differing = int((rendered != frames).sum())
    foreground = int(frames.sum())  # foreground = the real frames' on-pixels
    per_frame = (rendered != frames).reshape(len(frames), -1).sum(axis=1)
    print(
        f"renderer vs real frames: {differing} of {foreground} foreground pixels differ "
        f"({100 * differing / foreground:.3f}%), {int((per_frame == 0).sum())} of "
        f"{len(frames)} frames exact, worst frame off by {int(per_frame.max())}"
    )
    assert differing <= 0.005 * foreground
    assert per_frame.max() <= 8  # no frame is badly off, not only the total


def test_render_masks_is_binary_uint8_and_checks_input():
    masks = render_masks(np.array([[0, 0, 0, 0, 0], [2, 5, 39, 31, 31]]))
    assert masks.dtype == np.uint8 and masks.shape == (2, 64, 64)
    assert set(np.unique(masks)) == {0, 1}
    with pytest.raises(ValueError, match="shape"):
        render_masks(np.zeros((3, 4), dtype=np.int64))
    with pytest.raises(ValueError, match="integer"):
        render_masks(np.zeros((3, 5)))
    with pytest.raises(ValueError, match="range"):
        render_masks(np.array([[3, 0, 0, 0, 0]]))
