import csv
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageSequence

from deft_tune.data import dsprites
from deft_tune.data.dsprites import (
    DSprites,
    factor_values,
    render_masks,
    render_packed,
    unpack_masks,
)
from deft_tune.errors import DataError
from tests import scaled

REFERENCE = Path(__file__).resolve().parent / "reference"  # the real frames (README.md there)
FRAMES_GIF = REFERENCE / "dsprites_frames.gif"
FRAMES_CSV = REFERENCE / "dsprites_frames.csv"


def _real_frames() -> tuple[np.ndarray, np.ndarray]:
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


# --- the renderer against an independent per-pixel oracle ------------------------------


def _oracle_mask(shape: int, scale: int, orientation: int, pos_x: int, pos_y: int) -> np.ndarray:
    """render.py's geometry, pixel by pixel in float64; the heart as a 4,000-gon."""
    from matplotlib.path import Path as Polygon

    s = np.linspace(0.5, 1, 6)[scale]
    theta = np.linspace(0, 2 * np.pi, 40)[orientation]
    x, y = 16 + 32 * pos_x / 31, 16 + 32 * pos_y / 31
    rows, cols = np.mgrid[0:64, 0:64]
    dx, dy = cols + 0.5 - x, rows + 0.5 - y
    u = (np.cos(theta) * dx - np.sin(theta) * dy) / s  # invert the on-screen rotation
    v = (np.sin(theta) * dx + np.cos(theta) * dy) / s
    if shape == 0:
        return ((np.abs(u) <= 9.6) & (np.abs(v) <= 9.6)).astype(np.uint8)
    if shape == 1:
        return ((u / 12.8) ** 2 + (v / 7.2) ** 2 <= 1).astype(np.uint8)
    t = np.linspace(0, 2 * np.pi, 4000, endpoint=False)
    hx = 16 * np.sin(t) ** 3
    hy = 13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t)
    heart = Polygon(np.stack([0.6 * hx, -0.6638 * hy - 1.45], axis=1))
    inside = heart.contains_points(np.stack([u.ravel(), v.ravel()], axis=1))
    return inside.reshape(64, 64).astype(np.uint8)


def test_renderer_agrees_with_a_per_pixel_oracle():
    rng = np.random.default_rng(7)
    factors = np.stack([rng.integers(0, n, size=24) for n in (3, 6, 40, 32, 32)], axis=1)
    factors[:, 0] = np.arange(24) % 3  # every shape, eight times
    rendered = render_masks(factors)
    for f, mask in zip(factors, rendered):
        oracle = _oracle_mask(*f)
        # float32 vs float64 and the heart's polygon may flip a pixel on the boundary
        assert (mask != oracle).sum() <= 2, f"factors {f.tolist()}"
        assert mask.sum() > 0


def test_hand_computed_square_and_ellipse():
    square, ellipse = render_masks(np.array([[0, 0, 0, 0, 0], [1, 5, 0, 0, 0]]))
    # square of side 19.2 * 0.5 = 9.6 centred on (16, 16): centres 11.5 ... 20.5 are inside
    expected = np.zeros((64, 64), dtype=np.uint8)
    expected[11:21, 11:21] = 1
    assert (square == expected).all()
    # ellipse 12.8 x 7.2 centred on (16, 16): row 16 (dy = 0.5) reaches |dx| <= 12.769,
    # columns 3 ... 28; rows 9 ... 22 (|dy| <= 6.5 < 7.2) are the only rows with pixels.
    assert np.flatnonzero(ellipse[16]).tolist() == list(range(3, 29))
    assert np.flatnonzero(ellipse.any(axis=1)).tolist() == list(range(9, 23))


def test_turning_by_two_pi_gives_the_same_image():
    factors = np.array([[s, 3, o, 10, 20] for s in range(3) for o in (0, 39)])
    masks = render_masks(factors)
    assert (masks[0::2] == masks[1::2]).all()


def test_render_packed_is_packbits_of_render_masks():
    factors = np.array([[2, 4, 17, 5, 30], [1, 1, 3, 31, 0]])
    packed = render_packed(factors)
    assert packed.shape == (2, 512)
    assert (packed == np.packbits(render_masks(factors).reshape(2, -1), axis=1)).all()


# --- the DSprites data set on a small grid -----------------------------------------------


def test_stored_rows_decode_to_the_rendered_masks(small_dsprites):
    data = DSprites()
    assert data.cache_path.parent == small_dsprites
    stored = data.stored_images()
    assert stored.shape == (288, 512) and stored.dtype == np.uint8
    assert not stored.flags.writeable  # memory-mapped from the cache
    indices = np.arange(data.num_samples)
    expected = render_masks(data.index_to_factors(indices))
    assert (data.images(indices)[:, 0] == expected).all()
    decoded = data.decode_batch(torch.from_numpy(stored[[5, 7]].copy()))
    assert decoded.dtype == torch.float32 and decoded.shape == (2, 1, 64, 64)


def test_second_instance_reads_the_cache_without_rendering(small_dsprites, monkeypatch):
    first = DSprites().stored_images()

    def no_render(*args, **kwargs):
        raise AssertionError("rendered although the cache exists")

    monkeypatch.setattr(dsprites, "render_packed", no_render)
    assert (DSprites().stored_images() == first).all()


def test_corrupt_cache_is_rerendered_with_a_warning(small_dsprites, caplog):
    data = DSprites()
    data.build_cache()
    data.cache_path.write_bytes(data.cache_path.read_bytes()[:-200])
    with caplog.at_level(logging.WARNING):
        stored = DSprites().stored_images()
    assert "is corrupt; re-rendering" in caplog.text
    assert stored.shape == (288, 512)


def test_unpack_masks_checks_its_input():
    with pytest.raises(ValueError, match="raw"):
        unpack_masks(torch.zeros(3, 511, dtype=torch.uint8))


def test_unpack_masks_gives_each_bit_most_significant_first():
    raw = np.random.default_rng(0).integers(0, 256, size=(5, 512), dtype=np.uint8)
    raw[0] = 0b10000000  # pixel 0 of each byte is its highest bit
    masks = unpack_masks(torch.from_numpy(raw))
    assert masks.dtype == torch.float32 and masks.shape == (5, 1, 64, 64)
    expected = [[(byte >> (7 - b)) & 1 for byte in row for b in range(8)] for row in raw.tolist()]
    assert masks.reshape(5, -1).tolist() == expected
    assert masks[0, 0, 0, :16].tolist() == [1.0] + [0.0] * 7 + [1.0] + [0.0] * 7


_RACER = """
import sys
import numpy as np
from deft_tune.data.dsprites import DSprites
DSprites.factor_sizes = (3, 2, 3, 4, 4)
stored = DSprites(cache_dir=sys.argv[1]).stored_images()
print(int(stored.astype(np.int64).sum()))
"""


@pytest.mark.slow
def test_two_processes_rendering_at_once_both_end_with_a_valid_file(tmp_path):
    racers = [
        subprocess.Popen([sys.executable, "-c", _RACER, str(tmp_path)], stdout=subprocess.PIPE)
        for _ in range(2)
    ]
    sums = [int(r.communicate(timeout=scaled(120))[0]) for r in racers]
    assert [r.returncode for r in racers] == [0, 0]
    small = type("Small", (DSprites,), {"factor_sizes": (3, 2, 3, 4, 4)})(cache_dir=tmp_path)
    stored = small.stored_images()
    assert sums[0] == sums[1] == int(stored.astype(np.int64).sum())
    assert [p.name for p in tmp_path.iterdir()] == [small.cache_path.name]


# --- the real file --------------------------------------------------------------------------


def _write_real_npz(path, data: DSprites, **overrides) -> None:
    """A file in the exact format of dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz."""
    factors = data.index_to_factors(np.arange(data.num_samples))
    classes = np.concatenate([np.zeros((len(factors), 1), np.int64), factors], axis=1)
    values = np.concatenate([np.ones((len(factors), 1)), factor_values(factors)], axis=1)
    metadata = np.array({"description": "fake", "latents_sizes": (1, 3, 6, 40, 32, 32)})
    arrays = {
        "imgs": render_masks(factors),
        "latents_classes": classes,
        "latents_values": values,
        "metadata": metadata,
    }
    arrays.update(overrides)
    np.savez_compressed(path, **{k: v for k, v in arrays.items() if v is not None})


def test_real_npz_matches_the_renderer_in_factor_order(small_dsprites, tmp_path):
    rendered = DSprites()
    path = tmp_path / "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"
    _write_real_npz(path, rendered)
    for where in (path, tmp_path):  # the file, or the folder that holds it
        real = DSprites(path=where)
        assert real.path == path and path.name in real.description
        assert real.cache_path != rendered.cache_path
        assert (real.stored_images() == rendered.stored_images()).all()


def test_real_hdf5_twin_is_read_too(small_dsprites, tmp_path):
    h5py = pytest.importorskip("h5py")
    rendered = DSprites()
    factors = rendered.index_to_factors(np.arange(rendered.num_samples))
    path = tmp_path / "dsprites.hdf5"
    with h5py.File(path, "w") as fh:
        fh["imgs"] = render_masks(factors)
        fh["latents/classes"] = np.concatenate([np.zeros((len(factors), 1), int), factors], 1)
        fh["latents/values"] = factor_values(factors)
    assert (DSprites(path=path).stored_images() == rendered.stored_images()).all()


def _classes(data: DSprites) -> np.ndarray:
    factors = data.index_to_factors(np.arange(data.num_samples))
    return np.concatenate([np.zeros((len(factors), 1), np.int64), factors], axis=1)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"imgs": None}, "lacks the array"),
        ({"imgs": np.zeros((288, 64, 64), np.float32)}, "imgs must be uint8"),
        ({"imgs": np.zeros((287, 64, 64), np.uint8)}, r"shape \(288, 64, 64\)"),
        ({"imgs": np.full((288, 64, 64), 255, np.uint8)}, "only 0 and 1"),
        ({"latents_classes": np.zeros((288, 5), np.int64)}, "latents_classes must be"),
        ({"latents_classes": "swap"}, "row 1 has factors"),
        ({"latents_classes": "colour"}, "column 0"),
    ],
    ids=["no-imgs", "float-imgs", "short", "not-binary", "classes-shape", "order", "colour"],
)
def test_bad_real_files_are_refused_with_a_clear_error(
    small_dsprites, tmp_path, overrides, message
):
    data = DSprites()
    special = overrides.get("latents_classes")
    if isinstance(special, str) and special == "swap":
        # pos_x varying fastest: the wrong order
        overrides = {"latents_classes": _classes(data)[:, [0, 1, 2, 3, 5, 4]]}
    elif isinstance(special, str) and special == "colour":
        classes = _classes(data)
        classes[7, 0] = 1
        overrides = {"latents_classes": classes}
    path = tmp_path / "fake.npz"
    _write_real_npz(path, data, **overrides)
    with pytest.raises(DataError, match=message):
        DSprites(path=path).stored_images()
    assert not any(small_dsprites.glob("*.arrow"))  # nothing cached from a bad file


def test_unreadable_real_files_are_refused(small_dsprites, tmp_path):
    path = tmp_path / "fake.npz"
    _write_real_npz(path, DSprites())
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(DataError, match="cannot read dSprites file"):
        DSprites(path=truncated).stored_images()
    with pytest.raises(DataError, match="does not exist"):
        DSprites(path=tmp_path / "missing.npz")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no dSprites file in folder"):
        DSprites(path=tmp_path / "empty")
    wrong = tmp_path / "imgs.txt"
    wrong.write_text("hello")
    with pytest.raises(DataError, match="must end in .npz"):
        DSprites(path=wrong).stored_images()


def test_full_size_data_set_refuses_a_small_file(tmp_path, monkeypatch):
    small = type("Small", (DSprites,), {"factor_sizes": (3, 2, 3, 4, 4)})(cache_dir=tmp_path)
    path = tmp_path / "small.npz"
    _write_real_npz(path, small)
    with pytest.raises(DataError, match=r"shape \(737280, 64, 64\)"):
        DSprites(cache_dir=tmp_path, path=path).stored_images()
