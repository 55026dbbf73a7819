import logging
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from deft_tune.cli import main
from deft_tune.data import names
from deft_tune.data.dsprites import DSprites


def _run(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:  # argparse errors
        return exc.code


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_list_names_every_data_set(capsys):
    assert _run(["data", "list"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in out] == names()
    assert all(len(line.split()) > 1 for line in out)  # each with a description


def test_info_before_and_after_render(small_dsprites, capsys):
    assert _run(["data", "info", "dsprites_full"]) == 0
    out = capsys.readouterr().out
    assert "factors: shape=3, scale=2, orientation=3, pos_x=4, pos_y=4" in out
    assert "samples: 288" in out and "observation shape: (1, 64, 64)" in out
    assert f"cache: {DSprites().cache_path} (not built yet" in out

    assert _run(["data", "render", "dsprites_full"]) == 0
    captured = capsys.readouterr()
    assert str(DSprites().cache_path) in captured.out
    assert "288/288" in captured.err  # the progress bar reached the end

    assert _run(["data", "info", "color_dsprites"]) == 0
    out = capsys.readouterr().out
    assert "(exists" in out and "observation shape: (3, 64, 64)" in out


def test_cache_dir_flag_beats_the_env_var(small_dsprites, tmp_path, capsys):
    flag_dir = tmp_path / "flag"
    assert _run(["data", "render", "dsprites_noshape", "--cache-dir", str(flag_dir)]) == 0
    assert list(flag_dir.glob("*.arrow")) and not small_dsprites.exists()


@pytest.mark.parametrize("name", ["dsprites_full", "scream_dsprites", "dsprites_noshape"])
def test_show_writes_one_row_per_factor(small_dsprites, tmp_path, capsys, name):
    out = tmp_path / "grid.png"
    assert _run(["data", "show", name, "--out", str(out), "--seed", "3"]) == 0
    with Image.open(out) as image:
        width, height = image.size
        pixels = np.asarray(image.convert("RGB"))
    factors = 5 if name != "dsprites_noshape" else 4
    assert height == factors * (64 + 2)
    assert width == 90 + 4 * (64 + 2)  # the longest traversal: pos_x, pos_y with 4 values
    assert pixels.std() > 0
    assert [p.name for p in tmp_path.iterdir() if p.is_file()] == ["grid.png"]


def test_show_rows_sweep_one_factor_each(small_dsprites, tmp_path):
    from deft_tune.cli.data import traversal_rows

    data = DSprites()
    rows = traversal_rows(data, np.random.default_rng(0), columns=None)
    assert [len(r) for r in rows] == list(data.factor_sizes)
    fixed = data.sample_factors(1, np.random.default_rng(0))[0]
    for j, row in enumerate(rows):
        factors = np.repeat(fixed[None], data.factor_sizes[j], axis=0)
        factors[:, j] = np.arange(data.factor_sizes[j])
        assert (row == data.images(data.factors_to_index(factors))).all()
    assert [len(r) for r in traversal_rows(data, np.random.default_rng(0), 2)] == [2] * 5


def test_corrupt_cache_is_rerendered_and_said_so(small_dsprites, caplog):
    assert _run(["data", "render", "dsprites_full"]) == 0
    path = DSprites().cache_path
    path.write_bytes(b"garbage")
    with caplog.at_level(logging.WARNING):
        assert _run(["data", "render", "dsprites_full"]) == 0
    assert f"cache file {path} is corrupt; re-rendering" in caplog.text
    assert DSprites().stored_images().shape == (288, 512)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["data", "info", "no_such_set"], "known: dsprites_full"),
        (["data", "render", "smallnorb"], "smallnorb needs"),
        (["data", "info", "dsprites_full", "--path", "/no/such/file.npz"], "does not exist"),
        (["data", "show", "dsprites_full", "--out", "/no/such/folder/g.png"], "does not exist"),
        (["data", "show", "dsprites_full", "--out", "grid.jpg"], "must end in .png"),
        (["data", "show", "dsprites_full", "--out", "g.png", "--columns", "0"], "at least 1"),
        (["data", "show", "dsprites_full", "--out", "g.png", "--seed", "-1"], "--seed == -1"),
        (["data"], "required"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(small_dsprites, capsys, argv, message):
    assert _run(argv) == 2
    assert message in _one_line_error(capsys)


def test_bad_real_file_leaves_nothing_behind(small_dsprites, tmp_path, capsys):
    bad = tmp_path / "dsprites.npz"
    np.savez(bad, imgs=np.zeros((288, 64, 64), np.uint8))
    assert _run(["data", "render", "dsprites_full", "--path", str(bad)]) == 2
    assert "lacks the array(s) latents_classes" in _one_line_error(capsys)
    assert not small_dsprites.exists() or not any(small_dsprites.iterdir())


def test_paths_in_the_way_are_refused_before_rendering(small_dsprites, tmp_path, capsys):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    assert _run(["data", "render", "dsprites_full", "--cache-dir", str(a_file)]) == 2
    assert f"--cache-dir {a_file} is a file" in _one_line_error(capsys)
    grid = tmp_path / "grid.png"
    grid.mkdir()
    assert _run(["data", "show", "dsprites_full", "--out", str(grid)]) == 2
    assert "is a folder" in _one_line_error(capsys)
    assert not small_dsprites.exists()  # nothing rendered


def test_data_list_imports_no_torch_and_shows_each_class_description():
    script = (
        "import sys\n"
        "from deft_tune.cli import main\n"
        "main(['data', 'list'])\n"
        "print('heavy:', sorted(m for m in ('torch', 'pyarrow') if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    lines = done.stdout.strip().splitlines()
    assert lines[-1] == "heavy: []", done.stdout
    from deft_tune.data import dataset_class, names

    for name, line in zip(names(), lines[:-1], strict=True):
        assert line.split(None, 1) == [name, dataset_class(name).description]
