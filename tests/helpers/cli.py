"""Running the stages as a user does: `python -m STAGE ARGS` (or the `animefaces` console script) in a
subprocess, from the repository, with the repository first on PYTHONPATH.

`run_cli` is the one way a test runs a stage to its end and `start_cli` the one way it starts one to
signal, kill or watch; `run_stage` and `start_stage` add the `--config C --data D --no-progress` every
stage takes. `ok` and `one_line` read what a run left on stderr.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CONSOLE = Path(sys.executable).parent / "animefaces"
# Generous for a loaded two-core machine; a test that bounds a run on purpose passes its own.
DEFAULT_TIMEOUT = 600.0


def cli_env(**overrides: str) -> dict[str, str]:
    """os.environ with the repository first on PYTHONPATH (before any PYTHONPATH already set) and one
    OpenMP thread per process (the suite's processes share two cores), then `overrides`."""
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1", **overrides}


def cli_command(stage: str) -> list[str]:
    """The argv prefix for `stage`: a module (`dedup`), a module and its subcommand (`pipeline summary`,
    `train sample`), or `animefaces ...` for the installed console script."""
    words = stage.split()
    if words[0] == "animefaces":
        return [str(CONSOLE), *words[1:]]
    return [sys.executable, "-m", *words]


def run_cli(
    stage: str,
    *args: str | Path,
    timeout: float = DEFAULT_TIMEOUT,
    check: bool = False,
    cwd: str | Path = REPO,
    env: dict[str, str] | None = None,
    **kwargs,
) -> subprocess.CompletedProcess:
    """`stage ARGS` to its end, output captured as text, stdin empty. With `check`, a non-zero exit fails
    the test with the command and the end of its output. `kwargs` go to subprocess.run."""
    command = [*cli_command(stage), *map(str, args)]
    if "input" not in kwargs:
        kwargs.setdefault("stdin", subprocess.DEVNULL)
    result = subprocess.run(
        command,
        cwd=cwd,
        env=cli_env() if env is None else env,
        capture_output=True,
        text=True,
        timeout=timeout,
        **kwargs,
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(command)} exited {result.returncode}\n"
            f"stdout:\n{result.stdout[-3000:]}\nstderr:\n{result.stderr[-3000:]}"
        )
    return result


def start_cli(
    stage: str, *args: str | Path, cwd: str | Path = REPO, env: dict[str, str] | None = None, **popen
) -> subprocess.Popen:
    """`stage ARGS` started and left running (text mode); `popen` says where its output goes."""
    popen.setdefault("text", True)
    return subprocess.Popen(
        [*cli_command(stage), *map(str, args)], cwd=cwd, env=cli_env() if env is None else env, **popen
    )


def stage_args(
    data: Path, config: Path, *extra: str | Path, cascade: Path | None = None, progress: bool = False
) -> list[str]:
    """`--config C --data D [--no-progress] EXTRA [--cascade X]`, as every stage takes them."""
    args = ["--config", str(config), "--data", str(data), *([] if progress else ["--no-progress"])]
    args += map(str, extra)
    return args + (["--cascade", str(cascade)] if cascade is not None else [])


def run_stage(
    stage: str,
    data: Path,
    config: Path,
    *extra: str | Path,
    cascade: Path | None = None,
    progress: bool = False,
    **kwargs,
) -> subprocess.CompletedProcess:
    """`python -m STAGE --config C --data D --no-progress EXTRA [--cascade X]` through run_cli."""
    return run_cli(stage, *stage_args(data, config, *extra, cascade=cascade, progress=progress), **kwargs)


def start_stage(
    stage: str,
    data: Path,
    config: Path,
    *extra: str | Path,
    cascade: Path | None = None,
    progress: bool = False,
    **kwargs,
) -> subprocess.Popen:
    """run_stage's command line, started through start_cli."""
    return start_cli(stage, *stage_args(data, config, *extra, cascade=cascade, progress=progress), **kwargs)


def ok(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    """`result` when it exited 0 without a traceback; otherwise the test fails with its stderr."""
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stderr[-3000:]}"
    assert "Traceback" not in result.stderr, result.stderr
    return result


def one_line(result: subprocess.CompletedProcess, label: str) -> str:
    """The single error line a failing stage must end with (no traceback, nothing else), `LABEL: ...`."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert "Traceback" not in result.stderr, result.stderr
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"{label}: "), lines[0]
    return lines[0]


def last_line(result: subprocess.CompletedProcess, label: str | None = None) -> str:
    """The closing line on stderr, after any log lines, with no traceback anywhere; `LABEL: ...` when given."""
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines, "nothing on stderr"
    if label is not None:
        assert lines[-1].startswith(f"{label}: "), result.stderr
    return lines[-1]
