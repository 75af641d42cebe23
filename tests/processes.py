"""Running the real ``ordtool`` in a child process, isolated from the caller's environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from ordtool.config import Settings

CLI_TIMEOUT_S = 60


def ordtool_env(settings: Settings | None = None, **extra: str) -> dict[str, str]:
    """This process's environment without any ORDTOOL_* setting, plus the given settings'
    databases (so a child uses exactly the test's data dir or PostgreSQL databases)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORDTOOL_")}
    env["ORDTOOL_ENVIRONMENT"] = "test"
    if settings is not None:
        env["ORDTOOL_DATA_DIR"] = str(settings.data_dir)
        for name in ("orders", "customers", "audit"):
            url = getattr(settings, f"{name}_database_url")
            if url is not None:
                env[f"ORDTOOL_{name.upper()}_DATABASE_URL"] = url.get_secret_value()
    return env | extra


def run_ordtool(
    args: list[str], env: dict[str, str], cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m ordtool ARGS``; cwd defaults to the data dir so no stray .env is read."""
    where = cwd or Path(env.get("ORDTOOL_DATA_DIR", "/"))
    return subprocess.run(
        [sys.executable, "-m", "ordtool", *args],
        env=env,
        cwd=where if where.is_dir() else "/",
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        check=False,
    )


def ok_json(args: list[str], env: dict[str, str]) -> Any:
    """Run a command that must succeed with ``--json`` and return its parsed output."""
    result = run_ordtool([*args, "--json"], env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)
