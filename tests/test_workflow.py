"""The GPU-runner workflow's last job (.github/bench-report.sh), run here on result sets
laid out as the bench jobs upload them: results-<release>-shard<K>/<result set>/.

The sets are TEST DATA (tests/resultsets.py), written through the real writer; the
commands are the real `catsdogs report`, `trend` and `compare`. What this cannot check is
the GitHub side (runners, artifacts): actionlint checks the workflow file in .ci/run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from resultsets import copy_result_set, write_result_set

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / ".github" / "bench-report.sh"
VARIANTS = ("baseline_cnn", "preprocessed_cnn")


def _artifacts(sets: Path, release: str, tf_version: str, *, worse: bool = False) -> None:
    """Two shards of one release, each its own result set, as two downloaded artifacts
    (an artifact holds what the job's results/runs/ held: the result set folder)."""
    staging = sets.parent / f"staging-{release}"
    for shard, seeds in ((1, (0, 2)), (2, (1,))):
        made = write_result_set(staging / str(shard), variants=VARIANTS, seeds=seeds,
                                tf_version=tf_version, rng=shard)
        if worse:  # the same runs, every step of model1 30% slower
            made = copy_result_set(made, staging / f"{shard}-worse", step_scale=1.3,
                                   variants=["baseline_cnn"], tf_version=tf_version)
        artifact = sets / f"results-{release}-shard{shard}"
        artifact.mkdir(parents=True)
        shutil.move(made, artifact / made.name)


def _run(sets: Path, out: Path) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if not key.startswith("CATSDOGS_")}
    env.update(PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
               PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="2",
               GITHUB_STEP_SUMMARY=str(out.parent / "summary.md"))
    return subprocess.run(["bash", str(SCRIPT), str(sets), str(out)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=900)


def test_the_workflow_runs_this_script():
    assert ".github/bench-report.sh sets report" in (
        REPO / ".github/workflows/bench.yml").read_text()


def test_shards_merge_per_release_and_no_regression_passes(tmp_path):
    sets, out = tmp_path / "sets", tmp_path / "report"
    _artifacts(sets, "tf220", "2.20.0")
    _artifacts(sets, "tf221", "2.21.0")
    done = _run(sets, out)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    for release in ("tf220", "tf221"):  # one table per release, its two shards merged
        assert "baseline_cnn" in (out / release / "table.md").read_text()
    assert (out / "trend.txt").read_text().strip()
    compare = (out / "compare.txt").read_text()
    assert "2.20.0" in compare and "2.21.0" in compare
    summary = (tmp_path / "summary.md").read_text()
    assert "## tf220" in summary and "## compare tf220 -> tf221" in summary


def test_a_regression_in_the_newest_release_fails_the_job(tmp_path):
    sets, out = tmp_path / "sets", tmp_path / "report"
    _artifacts(sets, "tf220", "2.20.0")
    _artifacts(sets, "tf221", "2.21.0", worse=True)
    done = _run(sets, out)
    assert done.returncode == 1, done.stdout[-2000:] + done.stderr[-2000:]
    assert "regress" in (out / "compare.txt").read_text().lower()


def test_no_artifacts_is_one_line_and_exit_2(tmp_path):
    (tmp_path / "sets").mkdir()
    done = _run(tmp_path / "sets", tmp_path / "report")
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
