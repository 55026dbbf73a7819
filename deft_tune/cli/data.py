"""`deft-tune data`: list, render, show and describe the ground-truth data sets."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np

from deft_tune.errors import DataError
from deft_tune.fileio import atomic_write, check_output_dir, check_output_file
from deft_tune.validation import check_seed

_LABEL_WIDTH = 90  # pixels left of each grid row for the factor's name
_GAP = 2


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("data", help="list, render, show and describe the data sets")
    actions = p.add_subparsers(
        dest="data_command", metavar="ACTION", required=True, parser_class=type(p)
    )
    actions.add_parser("list", help="the data sets, one line each").set_defaults(func=run_list)

    q = actions.add_parser("render", help="render (or read) a data set into the cache")
    _dataset_args(q)
    q.set_defaults(func=run_render)

    q = actions.add_parser("show", help="write a PNG grid: one row per factor traversal")
    _dataset_args(q)
    q.add_argument("--out", required=True, type=Path, help="the PNG file to write")
    q.add_argument("--seed", type=int, default=0, help="seed of the fixed factors (default 0)")
    q.add_argument(
        "--columns",
        type=int,
        default=None,
        help="at most this many values per factor, evenly spaced (default: all)",
    )
    q.set_defaults(func=run_show)

    q = actions.add_parser("info", help="factor names and sizes, sample count, cache path")
    _dataset_args(q)
    q.set_defaults(func=run_info)


def _dataset_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", metavar="NAME", help="a data set name (see `deft-tune data list`)")
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="cache folder (default: $DEFT_TUNE_CACHE, else the user cache)",
    )
    parser.add_argument(
        "--path",
        type=Path,
        default=None,
        help="the data set's real file or folder (needed by smallnorb)",
    )


def _dataset(args: argparse.Namespace):
    from deft_tune.data import get_dataset

    if args.cache_dir is not None:
        check_output_dir(args.cache_dir, "--cache-dir", writable=False)

    options = {
        key: value
        for key, value in (("cache_dir", args.cache_dir), ("path", args.path))
        if value is not None
    }
    return get_dataset(args.name, **options)


def run_list(args: argparse.Namespace) -> int:
    from deft_tune.data import describe, names

    width = max(map(len, names()))
    for name in names():
        try:
            description = describe(name)
        except (ImportError, AttributeError) as exc:  # a family whose module is not there
            description = f"(unavailable: {exc})"
        print(f"{name:<{width}}  {description}")
    return 0


def run_render(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    data = _dataset(args)
    start = time.perf_counter()
    if hasattr(data, "build_cache"):
        bars: list[Any] = []  # opened at the first progress report: a cached set shows no bar

        def progress(done: int, total: int) -> None:
            if not bars:
                bars.append(
                    tqdm(desc=f"rendering {args.name}", total=total, unit="img", unit_scale=True)
                )
            bars[0].update(done - bars[0].n)

        try:
            path = data.build_cache(progress)
        finally:
            for bar in bars:
                bar.close()
    else:
        data.stored_images()
        path = getattr(data, "cache_path", None)
    where = f" in {path}" if path is not None else ""
    print(
        f"{args.name}: {data.num_samples:,} samples cached{where} "
        f"({time.perf_counter() - start:.1f} s)"
    )
    return 0


def run_info(args: argparse.Namespace) -> int:
    data = _dataset(args)
    sizes = ", ".join(f"{n}={s}" for n, s in zip(data.factor_names, data.factor_sizes))
    print(f"name: {data.name}")
    print(f"description: {getattr(data, 'description', '')}")
    print(f"factors: {sizes}")
    pairs = zip(getattr(data, "nuisance_names", ()), getattr(data, "nuisance_sizes", ()))
    if nuisance := ", ".join(f"{n}={s}" for n, s in pairs):
        print(f"nuisance: {nuisance}")
    if hasattr(data, "num_samples"):
        print(f"samples: {data.num_samples:,}")
    print(f"observation shape: {tuple(data.observation_shape)}")
    path = getattr(data, "cache_path", None)
    if path is None:
        print("cache: none")
    elif Path(path).is_file():
        print(f"cache: {path} (exists, {Path(path).stat().st_size / 2**20:.1f} MiB)")
    else:
        print(f"cache: {path} (not built yet; `deft-tune data render {args.name}`)")
    return 0


def run_show(args: argparse.Namespace) -> int:
    out: Path = args.out
    if out.suffix.lower() != ".png":
        raise DataError(f"--out {out} must end in .png")
    if not out.parent.is_dir():
        raise DataError(f"--out {out}: folder {out.parent} does not exist")
    check_output_file(out, "--out")
    if args.columns is not None and args.columns < 1:
        raise DataError(f"--columns {args.columns} must be at least 1")
    check_seed(args.seed, "--seed")
    data = _dataset(args)
    rng = np.random.default_rng(args.seed)
    rows = traversal_rows(data, rng, args.columns)
    _write_png_atomic(out, _grid_image(rows, data.factor_names))
    print(f"wrote {out}: {len(rows)} factor traversals of {args.name} (seed {args.seed})")
    return 0


def traversal_rows(data, rng: np.random.Generator, columns: int | None) -> list[np.ndarray]:
    """One (values, C, H, W) array per factor: that factor swept, the others fixed at a draw."""
    fixed = data.sample_factors(1, rng)[0]
    rows = []
    for j, size in enumerate(data.factor_sizes):
        values = np.arange(size)
        if columns is not None and columns < size:
            values = np.unique(np.round(np.linspace(0, size - 1, columns)).astype(np.int64))
        factors = np.repeat(fixed[None], len(values), axis=0)
        factors[:, j] = values
        rows.append(data.sample_observations_from_factors(factors, rng))
    return rows


def _grid_image(rows: list[np.ndarray], labels: tuple[str, ...]):
    from PIL import Image, ImageDraw

    _, _, height, width = rows[0].shape
    columns = max(len(r) for r in rows)
    grid = Image.new(
        "RGB", (_LABEL_WIDTH + columns * (width + _GAP), len(rows) * (height + _GAP)), "white"
    )
    draw = ImageDraw.Draw(grid)
    for i, (row, label) in enumerate(zip(rows, labels)):
        top = i * (height + _GAP)
        draw.text((4, top + height // 2 - 5), label, fill="black")
        for k, obs in enumerate(row):
            pixels = np.clip(np.rint(obs * 255), 0, 255).astype(np.uint8)
            pixels = np.repeat(pixels, 3, axis=0) if len(pixels) == 1 else pixels
            tile = Image.fromarray(np.ascontiguousarray(pixels.transpose(1, 2, 0)), "RGB")
            grid.paste(tile, (_LABEL_WIDTH + k * (width + _GAP), top))
    return grid


def _write_png_atomic(out: Path, image) -> None:
    try:  # the package's one atomic writer: a unique temp name, the user's umask
        atomic_write(out, lambda tmp: image.save(tmp, format="PNG"))
    except PermissionError as exc:
        raise DataError(f"--out {out}: cannot write in {out.parent}: {exc}") from None
