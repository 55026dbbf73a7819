"""Benchmark: render all 737,280 dSprites images, cache them, load the cache, gather batches.

    python benchmarks/render_dsprites.py            # full run; rewrites the block in docs/data.md
    python benchmarks/render_dsprites.py --smoke    # a 288-image grid in seconds, prints only

Measures, in one run on this machine:
1. the full render into the Arrow cache (wall and process CPU time), through the same
   ``DSprites.build_cache`` that ``deft-tune data render`` calls;
2. loading the cached set in a fresh process (open + memory-map + zero-copy view; the OS page
   cache is warm, since the file was just written);
3. gathering and decoding random batches (numpy fancy index of the mapped rows, then
   ``decode_batch``);
4. the side-by-side ratio that set the renderer's threading: the same blocks with torch's own
   two intra-op threads vs one torch thread per block and a thread per core.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from deft_tune.data import render
from deft_tune.data.dsprites import DSprites

DOC = Path(__file__).resolve().parents[1] / "docs" / "data.md"
START, END = "<!-- render-benchmark:start -->", "<!-- render-benchmark:end -->"

_LOAD = """
import sys, time
from deft_tune.data.dsprites import DSprites
DSprites.factor_sizes = tuple(map(int, sys.argv[2].split("x")))
start = time.perf_counter()
rows = DSprites(cache_dir=sys.argv[1]).stored_images()
print(time.perf_counter() - start, rows.shape[0])
"""


def time_render(data: DSprites) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    data.build_cache()
    return time.perf_counter() - wall, time.process_time() - cpu


def time_cold_load(cache_dir: str, sizes: tuple[int, ...]) -> float:
    """Seconds to open and memory-map the cache in a fresh process (imports not counted)."""
    args = [sys.executable, "-c", _LOAD, cache_dir, "x".join(map(str, sizes))]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout.split()
    return float(out[0])


def time_gather(data: DSprites, batch: int, repeats: int = 200) -> float:
    """Mean seconds per random batch: gather stored rows by index, decode to float32."""
    rng = np.random.default_rng(0)
    stored = data.stored_images()
    start = time.perf_counter()
    for _ in range(repeats):
        raw = torch.from_numpy(stored[rng.integers(0, len(stored), size=batch)])
        data.decode_batch(raw)
    return (time.perf_counter() - start) / repeats


def threading_ratio(data: DSprites, images: int = 16384) -> tuple[float, float]:
    """(seconds with torch's intra-op threads, seconds with one torch thread per block)."""
    rng = np.random.default_rng(1)
    factors = data.index_to_factors(rng.integers(0, data.num_samples, size=images))
    factors = factors[np.lexsort(factors.T[::-1])]  # grouped by shape and scale, as in a render
    start = time.perf_counter()
    for s in range(0, images, render._CHUNK):  # one block after another, torch threads inside
        render._render_block(factors[s : s + render._CHUNK], packed=True)
    intra_op = time.perf_counter() - start
    start = time.perf_counter()
    render.render_packed(factors)
    return intra_op, time.perf_counter() - start


def load_average() -> str:
    try:
        return ", ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def report(args: argparse.Namespace, cache_dir: str) -> str:
    data = DSprites(cache_dir=cache_dir)
    load_before = load_average()
    wall, cpu = time_render(data)
    size_mb = data.cache_path.stat().st_size / 2**20
    loads = [time_cold_load(cache_dir, data.factor_sizes) for _ in range(3)]
    gathers = {b: time_gather(data, b) for b in (64, 256)}
    intra_op, blocks = threading_ratio(data, images=min(16384, data.num_samples))
    lines = [
        f"Measured {datetime.date.today().isoformat()} with `python benchmarks/render_dsprites.py`"
        f"{' --smoke' if args.smoke else ''} on {platform.machine()}, {os.cpu_count()} cores, "
        f"torch {torch.__version__} (CPU), Python {platform.python_version()}. The machine was "
        f"shared with other jobs (load average {load_before} before the render, "
        f"{load_average()} after): wall times are upper bounds, ratios within the run are fair.",
        "",
        "| what | figure |",
        "|---|---|",
        f"| render {data.num_samples:,} images + write the cache | {wall:.1f} s wall, "
        f"{cpu:.1f} s CPU ({data.num_samples / wall:,.0f} images/s) |",
        f"| cache file | {size_mb:.0f} MiB (bit-packed, 512 bytes per image) |",
        f"| load the cache in a fresh process (memory-map) | best {min(loads) * 1e3:.1f} ms, "
        f"worst {max(loads) * 1e3:.1f} ms of 3 |",
    ]
    lines += [
        f"| random batch of {b}: gather + decode to float32 | {t * 1e3:.2f} ms |"
        for b, t in gathers.items()
    ]
    lines.append(
        f"| threading, same 16,384 images: torch intra-op threads vs one torch thread per "
        f"block, a block per core | {intra_op:.2f} s vs {blocks:.2f} s "
        f"({intra_op / blocks:.1f}x) |"
    )
    return "\n".join(lines)


def write_doc(block: str) -> None:
    text = DOC.read_text() if DOC.exists() else f"# Data\n\n{START}\n{END}\n"
    if START not in text:
        text += f"\n{START}\n{END}\n"
    text = re.sub(f"{START}.*?{END}", lambda _: f"{START}\n{block}\n{END}", text, flags=re.S)
    tmp = DOC.with_name(f".{DOC.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, DOC)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="288 images; print, write nothing")
    args = parser.parse_args()
    if args.smoke:
        DSprites.factor_sizes = (3, 2, 3, 4, 4)
    with tempfile.TemporaryDirectory(prefix="deft-render-bench-") as cache_dir:
        block = report(args, cache_dir)
    print(block)
    if not args.smoke:
        write_doc(block)
        print(f"\nwritten to {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
