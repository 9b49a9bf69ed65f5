"""Settings that pass TOML but would break a run are one-line config errors (exit 2) naming the key.

Issue 14, items 8 and 10: a NaN threshold makes every comparison false, so `min_likelihood = nan`
accepted false boxes and `max_colour_distance = nan` switched the colour guard off. The rule is one
place (`pipeline.config.build`): every float setting of every stage must be finite.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.errors import ConfigError
from tests.helpers.cli import one_line, run_stage

CASES = {
    "facecrop min_likelihood nan": (
        "facecrop",
        "[facecrop.thresholds]\nmin_likelihood = nan\n",
        "[facecrop].thresholds.min_likelihood",
    ),
    "facecrop margin inf": ("facecrop", "[facecrop]\nmargin = inf\n", "[facecrop].margin"),
    "facecrop shift -inf": ("facecrop", "[facecrop]\nshift = -inf\n", "[facecrop].shift"),
    "dedup max_colour_distance nan": (
        "dedup",
        "[dedup]\nmax_colour_distance = nan\n",
        "[dedup].max_colour_distance",
    ),
    "dedup min_contrast inf": ("dedup", "[dedup]\nmin_contrast = inf\n", "[dedup].min_contrast"),
    "crawler backoff inf": ("crawler", "[crawler]\nbackoff = inf\n", "[crawler].backoff"),
}


@pytest.mark.parametrize("case", CASES)
def test_non_finite_float_settings_are_config_errors(tmp_path: Path, case: str) -> None:
    name, text, key = CASES[case]
    config = tmp_path / "bad.toml"
    config.write_text(text)
    result = run_stage(name, tmp_path / "data", config)
    assert result.returncode == ConfigError.exit_code, result.stderr
    line = one_line(result, name)
    assert key in line and "finite" in line, line


@pytest.mark.parametrize("name", ["crawler", "facecrop", "dedup"])
def test_non_utf8_toml_is_a_config_error(tmp_path: Path, name: str) -> None:
    config = tmp_path / "latin1.toml"
    config.write_bytes("[dedup]\n# r\xe9glages\nthreshold = 4\n".encode("latin-1"))
    result = run_stage(name, tmp_path / "data", config)
    assert result.returncode == ConfigError.exit_code, result.stderr
    line = one_line(result, name)
    assert str(config) in line and "UTF-8" in line, line
