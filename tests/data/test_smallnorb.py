"""SmallNORB reader: exact binary format, every rejection path, and the grid arrangement.

The real files (48,600 examples) cannot ship with the tests, so the class is exercised through a
subclass with a tiny but complete grid, written in the exact NORB format.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from deft_tune.data import get_dataset
from deft_tune.data import smallnorb as sn
from deft_tune.data.smallnorb import SmallNORB, read_norb_file, read_norb_header, write_norb_file
from deft_tune.errors import DataError

TRAIN, TEST = sn.SPLIT_PREFIXES


class TinyNORB(SmallNORB):
    """2 categories x 2 instances x 2 elevations x 3 azimuths x 2 lightings = 48 examples."""

    factor_sizes = (2, 2, 3, 2)
    nuisance_sizes = (2,)


def _examples(seed: int = 0) -> dict[str, dict[str, np.ndarray]]:
    """Labels and images of a tiny complete grid, split by instance as the real data is."""
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*[np.arange(s) for s in (2, 2, 2, 3, 2)], indexing="ij"), -1)
    grid = grid.reshape(-1, 5)  # category, instance, elevation, azimuth index, lighting
    splits = {}
    for prefix, instance in ((TRAIN, 1), (TEST, 0)):
        rows = rng.permutation(grid[grid[:, 1] == instance])  # files are not in grid order
        info = np.stack([rows[:, 1], rows[:, 2], 2 * rows[:, 3], rows[:, 4]], axis=1)
        dat = rng.integers(0, 256, size=(len(rows), 2, 96, 96), dtype=np.uint8)
        splits[prefix] = {
            "dat": dat,
            "cat": rows[:, 0].astype(np.int32),
            "info": info.astype(np.int32),
            "grid": rows,
        }
    return splits


def _write_folder(folder: Path, splits, gz: bool = False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, arrays in splits.items():
        for kind in ("dat", "cat", "info"):
            path = folder / f"{prefix}-{kind}.mat"
            write_norb_file(path, arrays[kind])
            if gz:
                path.with_name(path.name + ".gz").write_bytes(gzip.compress(path.read_bytes()))
                path.unlink()
    return folder


def _pillow_lanczos(image: np.ndarray) -> np.ndarray:
    return np.asarray(Image.fromarray(image).resize((64, 64), Image.Resampling.LANCZOS))


# --- the file format ---------------------------------------------------------------------


def test_reads_hand_packed_int32_file_with_padded_dims(tmp_path):
    # ndim 1 still stores 3 dims (the unused ones are 1): a 20-byte header.
    path = tmp_path / "cat.mat"
    path.write_bytes(struct.pack("<5i", 0x1E3D4C54, 1, 3, 1, 1) + struct.pack("<3i", 4, 0, 2))
    dtype, shape, header = read_norb_header(path)
    assert (dtype, shape, header) == (np.dtype("<i4"), (3,), 20)
    np.testing.assert_array_equal(read_norb_file(path), [4, 0, 2])


def test_reads_hand_packed_uint8_file_with_four_dims(tmp_path):
    path = tmp_path / "dat.mat"
    payload = bytes(range(24))
    path.write_bytes(struct.pack("<6i", 0x1E3D4C55, 4, 1, 2, 3, 4) + payload)
    array = read_norb_file(path)
    assert array.dtype == np.uint8 and array.shape == (1, 2, 3, 4)
    assert array[0, 1, 2, 3] == 23 and array[0, 1, 0, 0] == 12


@pytest.mark.parametrize(
    "array",
    [
        np.arange(5, dtype=np.int32) - 2,
        np.arange(24, dtype=np.uint8).reshape(2, 3, 4),
        np.arange(120, dtype=np.uint8).reshape(1, 2, 3, 4, 5),
        np.linspace(-1, 1, 6, dtype=np.float32).reshape(3, 2),
    ],
)
def test_write_read_round_trip(tmp_path, array):
    path = tmp_path / "x.mat"
    write_norb_file(path, array)
    assert path.stat().st_size == 8 + 4 * max(3, array.ndim) + array.nbytes
    back = read_norb_file(path)
    assert back.dtype == array.dtype.newbyteorder("<")
    np.testing.assert_array_equal(back, array)


def test_reads_gzip_file(tmp_path):
    array = np.arange(30, dtype=np.int32).reshape(10, 3)
    write_norb_file(tmp_path / "x.mat", array)
    gz = tmp_path / "x.mat.gz"
    gz.write_bytes(gzip.compress((tmp_path / "x.mat").read_bytes()))
    np.testing.assert_array_equal(read_norb_file(gz), array)


@pytest.mark.parametrize(
    "content, message",
    [
        (struct.pack("<5i", 0x1E3D4C99, 1, 3, 1, 1) + bytes(12), "wrong magic number 0x1e3d4c99"),
        (struct.pack("<5i", 0x1E3D4C54, 0, 3, 1, 1) + bytes(12), "bad ndim 0"),
        (struct.pack("<5i", 0x1E3D4C54, 99, 3, 1, 1), "bad ndim 99"),
        (struct.pack("<i", 0x1E3D4C54), "truncated header"),
        (struct.pack("<4i", 0x1E3D4C55, 4, 1, 2), "truncated header"),
        (struct.pack("<5i", 0x1E3D4C54, 1, 3, 1, 1) + bytes(11), "truncated: 31 bytes"),
        (struct.pack("<5i", 0x1E3D4C54, 1, 3, 1, 1) + bytes(13), "too long: 33 bytes"),
        (struct.pack("<5i", 0x1E3D4C54, 1, -3, 1, 1), "negative dimension"),
    ],
)
def test_rejects_malformed_files(tmp_path, content, message):
    path = tmp_path / "bad.mat"
    path.write_bytes(content)
    with pytest.raises(DataError, match=message) as info:
        read_norb_file(path)
    assert str(path) in str(info.value)


def test_rejects_missing_and_corrupt_gzip_files(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        read_norb_file(tmp_path / "nothing.mat")
    bad = tmp_path / "bad.mat.gz"
    bad.write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match="cannot read"):
        read_norb_file(bad)
    write_norb_file(tmp_path / "x.mat", np.arange(1000, dtype=np.int32))
    cut = tmp_path / "cut.mat.gz"  # the header decompresses, the stream ends early
    cut.write_bytes(gzip.compress((tmp_path / "x.mat").read_bytes())[:-20])
    with pytest.raises(DataError, match="cut.mat.gz: cannot read"):
        read_norb_file(cut)


# --- the data set ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("norb")
    splits = _examples()
    data = TinyNORB(path=_write_folder(root / "files", splits), cache_dir=root / "cache")
    return data, splits


def test_grid_holds_left_images_resized_by_lanczos(tiny):
    data, splits = tiny
    stored = data.stored_images()
    assert stored.shape == (24, 2, 64, 64) and stored.dtype == np.uint8
    for arrays in splits.values():
        for (category, instance, elev, azim, light), pair in zip(
            arrays["grid"], arrays["dat"], strict=True
        ):
            cell = ((category * 2 + elev) * 3 + azim) * 2 + light  # row-major over (2, 2, 3, 2)
            np.testing.assert_array_equal(stored[cell, instance], _pillow_lanczos(pair[0]))


def test_decode_picks_one_instance_per_image_and_scales(tiny):
    data, _ = tiny
    raw = torch.from_numpy(np.repeat(np.asarray(data.stored_images()[[5]]), 64, axis=0))
    out = data.decode_batch(raw, torch.Generator().manual_seed(0))
    assert out.shape == (64, 1, 64, 64) and out.dtype == torch.float32
    instances = [torch.from_numpy(data.stored_images()[5, i] / np.float32(255)) for i in (0, 1)]
    which = [next(i for i, c in enumerate(instances) if torch.allclose(o[0], c)) for o in out]
    assert set(which) == {0, 1}  # both instances appear: P(not) = 2 * 2**-64
    with pytest.raises(ValueError, match=r"raw must have shape \(n, 2, 64, 64\)"):
        data.decode_batch(raw[:, 0])


def test_sampling_from_factors_draws_the_instance(tiny):
    data, _ = tiny
    factors = np.repeat([[1, 1, 2, 0]], 40, axis=0)
    obs = data.sample_observations_from_factors(factors, np.random.default_rng(3))
    assert obs.shape == (40, 1, 64, 64)
    cell = data.factors_to_index(factors[:1])[0]
    assert cell == ((1 * 2 + 1) * 3 + 2) * 2 + 0
    candidates = [data.stored_images()[cell, i] / np.float32(255) for i in (0, 1)]
    which = [next(i for i, c in enumerate(candidates) if np.allclose(o[0], c)) for o in obs]
    assert set(which) == {0, 1}  # P(one instance missing) = 2 * 2**-40
    factors, obs = data.sample(7, np.random.default_rng(0))
    assert factors.shape == (7, 4) and obs.shape == (7, 1, 64, 64)


def test_cache_is_reused(tiny, monkeypatch):
    data, _ = tiny
    data.stored_images()
    cache_files = sorted(p.name for p in data.cache_dir.iterdir())
    assert cache_files == [data.cache_path.name] and cache_files[0].endswith(".arrow")
    monkeypatch.setattr(sn, "resize_lanczos", lambda *a, **k: pytest.fail("cache not used"))
    again = TinyNORB(path=data.path, cache_dir=data.cache_dir)
    np.testing.assert_array_equal(again.stored_images(), data.stored_images())


def test_damaged_cache_is_rebuilt(tmp_path):
    folder = _write_folder(tmp_path / "files", _examples(1))
    first = TinyNORB(path=folder, cache_dir=tmp_path / "cache")
    expected = np.array(first.stored_images())
    first.cache_path.write_bytes(b"garbage")
    again = TinyNORB(path=folder, cache_dir=tmp_path / "cache")
    np.testing.assert_array_equal(again.stored_images(), expected)


def test_reads_gzipped_folder(tmp_path):
    splits = _examples(2)
    plain = TinyNORB(path=_write_folder(tmp_path / "a", splits), cache_dir=tmp_path / "c1")
    gz = TinyNORB(path=_write_folder(tmp_path / "b", splits, gz=True), cache_dir=tmp_path / "c2")
    np.testing.assert_array_equal(gz.stored_images(), plain.stored_images())


def test_registry_builds_smallnorb_and_full_size_metadata(tmp_path):
    folder = _write_folder(tmp_path / "files", _examples())
    data = get_dataset("smallnorb", path=folder, cache_dir=tmp_path / "cache")
    assert isinstance(data, SmallNORB)
    assert data.factor_names == ("category", "elevation", "azimuth", "lighting")
    assert data.factor_sizes == (5, 9, 18, 6) and data.num_samples == 4_860
    assert data.storage_sizes == (5, 9, 18, 6, 10)
    assert data.observation_shape == (1, 64, 64)


# --- rejections by the data set ----------------------------------------------------------


def _broken(tmp_path, mutate) -> tuple[Path, Path]:
    splits = _examples()
    mutate(splits)
    return _write_folder(tmp_path / "files", splits), tmp_path / "cache"


def test_full_size_class_rejects_small_files_naming_the_dims(tmp_path):
    folder = _write_folder(tmp_path / "files", _examples())
    with pytest.raises(
        DataError,
        match=r"dims \(24, 2, 96, 96\) in the header, "
        r"expected \(24300, 2, 96, 96\)",
    ):
        SmallNORB(path=folder, cache_dir=tmp_path / "cache").stored_images()
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda s: s[TRAIN].update(dat=s[TRAIN]["dat"].astype(np.int32)), "wrong magic number"),
        (lambda s: s[TEST].update(cat=s[TEST]["cat"][:, None]), "ndim 2 in the header"),
        (lambda s: s[TEST].update(info=s[TEST]["info"][:, :3]), r"dims \(24, 3\)"),
        (lambda s: s[TRAIN].update(dat=s[TRAIN]["dat"][:, :, :64, :64]), r"dims \(24, 2, 64, 64\)"),
        (lambda s: s[TRAIN]["info"].__setitem__((0, 2), 3), "azimuth values must be even"),
        (
            lambda s: s[TRAIN]["info"].__setitem__((0, 3), 7),
            r"lighting values must lie in \[0, 2\)",
        ),
        (lambda s: s[TEST]["cat"].__setitem__(0, -1), r"category values must lie in \[0, 2\)"),
        (lambda s: s[TEST]["info"].__setitem__((0, 0), 1), "do not form the full grid"),
    ],
)
def test_rejects_inconsistent_files(tmp_path, mutate, message):
    folder, cache = _broken(tmp_path, mutate)
    with pytest.raises(DataError, match=message):
        TinyNORB(path=folder, cache_dir=cache).stored_images()
    assert not cache.exists() or not any(cache.iterdir())  # nothing half-written


def test_rejects_truncated_image_file(tmp_path):
    folder = _write_folder(tmp_path / "files", _examples())
    dat = folder / f"{TEST}-dat.mat"
    dat.write_bytes(dat.read_bytes()[:-100])
    with pytest.raises(DataError, match=f"{dat.name}: truncated"):
        TinyNORB(path=folder, cache_dir=tmp_path / "cache").stored_images()


def test_rejects_missing_folder_and_files(tmp_path):
    with pytest.raises(DataError, match="pass path=FOLDER"):
        SmallNORB()
    with pytest.raises(DataError, match="does not exist"):
        SmallNORB(path=tmp_path / "nope")
    folder = _write_folder(tmp_path / "files", _examples())
    (folder / f"{TEST}-info.mat").unlink()
    with pytest.raises(DataError, match=f"{TEST}-info.mat .*not found"):
        SmallNORB(path=folder)


def test_build_cache_reports_progress(tmp_path):
    data = TinyNORB(path=_write_folder(tmp_path / "files", _examples()), cache_dir=tmp_path / "c")
    calls = []
    assert data.build_cache(lambda done, total: calls.append((done, total))) == data.cache_path
    assert data.cache_path.is_file() and calls[-1] == (48, 48)
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)


@pytest.mark.parametrize("damage", ["magic", "truncate", "missing"])
def test_cli_reports_one_line_and_exit_2(tmp_path, capsys, monkeypatch, damage):
    from deft_tune.cli import main

    monkeypatch.setattr(SmallNORB, "factor_sizes", TinyNORB.factor_sizes)  # the registry's class
    monkeypatch.setattr(SmallNORB, "nuisance_sizes", TinyNORB.nuisance_sizes)
    folder = _write_folder(tmp_path / "files", _examples())
    cat = folder / f"{TRAIN}-cat.mat"
    if damage == "magic":
        cat.write_bytes(struct.pack("<i", 0x1E3D4C11) + cat.read_bytes()[4:])
    elif damage == "truncate":
        cat.write_bytes(cat.read_bytes()[:-1])
    else:
        cat.unlink()
    cache_dir = tmp_path / "cache"
    argv = ["data", "render", "smallnorb", "--path", str(folder), "--cache-dir", str(cache_dir)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("deft-tune: error: ")]
    assert len(errors) == 1 and cat.name in errors[0] and "Traceback" not in err
    assert not cache_dir.exists() or not any(cache_dir.iterdir())
