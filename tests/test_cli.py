import re
import subprocess
import sys

import pytest

import recur
from recur import catalogue, cli


def test_demo_prints_closed_loop_error_and_writes_figure(tmp_path, capsys):
    out = tmp_path / "demo.png"
    assert cli.main(["demo", "--units", "200", "--steps", "200", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    nrmse = float(re.search(r"closed loop\s+200 steps, NRMSE ([0-9.e+-]+)", text).group(1))
    assert nrmse < 0.2  # a 200-unit reservoir still continues the series closely
    assert "valid time" in text
    assert out.exists() and out.stat().st_size > 10_000


def test_topologies_lists_catalogue(capsys):
    assert cli.main(["topologies"]) == 0
    text = capsys.readouterr().out
    for name in catalogue.names():
        assert re.search(rf"^{name}\s", text, re.M)


def test_version_and_help(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["--version"])
    assert exc.value.code == 0
    assert recur.__version__ in capsys.readouterr().out
    assert cli.main([]) == 0
    assert "demo" in capsys.readouterr().out


def test_bad_demo_arguments():
    with pytest.raises(SystemExit) as exc:
        cli.main(["demo", "--units", "3"])
    assert exc.value.code == 2


def test_console_script_and_import_has_no_side_effects():
    # reservoirpy makes a temp folder at import; recur must not import it until used.
    code = "import sys, recur; print('reservoirpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    out = subprocess.run([sys.executable, "-m", "recur.cli", "--version"], capture_output=True,
                         text=True, check=True)
    assert recur.__version__ in out.stdout


def test_every_subpackage_ships_in_the_wheel():
    # The package list in pyproject.toml is explicit (the catalogue is mapped in from
    # topologies/); a subpackage missing from it would be left out of a non-editable install.
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    listed = set(tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(root).parts) for p in (root / "recur").rglob("__init__.py")}
    assert found <= listed, f"missing from pyproject.toml: {sorted(found - listed)}"


def test_figures_leave_the_matplotlib_backend_alone(tmp_path):
    # The library draws on a bare Figure, never through pyplot's global state.
    code = ("import matplotlib; matplotlib.use('svg'); import numpy as np; "
            "from recur import plotting; "
            f"p = plotting.plot_generation(np.sin(np.arange(50.0)), np.cos(np.arange(50.0)), r'{tmp_path}/g.png'); "
            "import sys; print(matplotlib.get_backend(), p is not None, 'matplotlib.pyplot' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["svg", "True", "False"]
    assert (tmp_path / "g.png").stat().st_size > 5_000
