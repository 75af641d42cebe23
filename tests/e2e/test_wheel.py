"""The built wheel is all a user needs: installed in a fresh virtual environment (with its
dependencies resolved by pip, so a missing one fails here), its ``ordtool seed --idempotent``
loads the 12 shipped customers from the seeds packed inside it, and a second run creates none.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SHIPPED_SEEDS = 12
STEP_TIMEOUT_S = 900  # pip on a busy 2-core machine; the bound is only there to end a hang


def run(args: list[str | Path], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("ORDTOOL_", "PYTHON"))}
    result = subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        env=clean | {"PIP_DISABLE_PIP_VERSION_CHECK": "1"} | env,
        capture_output=True,
        text=True,
        timeout=STEP_TIMEOUT_S,
        check=False,
    )
    assert result.returncode == 0, f"{args}: {result.stderr[-2000:]}"
    return result


@pytest.mark.slow
@pytest.mark.timeout(3 * STEP_TIMEOUT_S)
def test_the_wheel_installs_and_seeds_from_its_own_data(tmp_path: Path) -> None:
    assert (REPO / "pyproject.toml").is_file() and (REPO / "seeds").is_dir()
    dist = tmp_path / "dist"
    run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", dist, REPO], tmp_path)
    [wheel] = dist.glob("ordtool-*.whl")

    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", venv], tmp_path)
    run([venv / "bin" / "python", "-m", "pip", "install", "-q", wheel], tmp_path)

    # The venv runs its own copy, not this checkout (whose seeds/ would make the test moot).
    where = run(
        [venv / "bin" / "python", "-c", "import ordtool; print(ordtool.__file__)"], tmp_path
    )
    package = Path(where.stdout.strip()).parent
    assert package.is_relative_to(venv), package
    assert (package / "_seeds" / "customers.csv").is_file()

    work = tmp_path / "work"  # an empty working directory: no .env, no seeds/ beside it
    work.mkdir()
    data = {"ORDTOOL_DATA_DIR": str(tmp_path / "data")}
    ordtool = venv / "bin" / "ordtool"
    first = run([ordtool, "seed", "--idempotent", "--json"], work, **data)
    assert json.loads(first.stdout) == {"created": SHIPPED_SEEDS, "updated": 0, "unchanged": 0}
    second = run([ordtool, "seed", "--idempotent", "--json"], work, **data)
    assert json.loads(second.stdout) == {"created": 0, "updated": 0, "unchanged": SHIPPED_SEEDS}
    listed = run([ordtool, "customers", "list", "--json"], work, **data)
    emails = {c["email"] for c in json.loads(listed.stdout)["items"]}
    assert len(emails) == SHIPPED_SEEDS and "ada@example.com" in emails
