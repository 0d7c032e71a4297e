"""What conftest.py promises: a scratch output folder that is gone after the run, and
Hypothesis examples that are the same on every CI run."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PROBE = textwrap.dedent("""
    import json
    import os
    from pathlib import Path

    from hypothesis import given, settings
    from hypothesis import strategies as st

    drawn = []


    @settings(max_examples=30)
    @given(st.integers(-10**9, 10**9))
    def test_draw(number):
        drawn.append(number)


    def test_record():
        output = Path(os.environ["NST_OUTPUT_DIR"])
        (output / "figure.png").write_bytes(b"made by a test")
        Path("record.json").write_text(json.dumps({"output_dir": str(output), "drawn": drawn}))
""")


def run_probe(folder: Path, **environment) -> dict:
    """Run a small test file under the project's conftest.py in a fresh pytest process."""
    folder.mkdir()
    (folder / "test_probe.py").write_text(PROBE)
    env = {key: value for key, value in os.environ.items()
           if key not in ("NST_OUTPUT_DIR", "CI", "PYTEST_ADDOPTS")}
    env.update(environment, PYTHONPATH=str(ROOT))
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "conftest",
                             "-p", "no:cacheprovider", "--rootdir", str(folder), "-c", os.devnull,
                             "test_probe.py"],
                            cwd=folder, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads((folder / "record.json").read_text())


def test_the_scratch_output_folder_is_removed_after_the_session(tmp_path):
    record = run_probe(tmp_path / "run")
    output = Path(record["output_dir"])
    assert output.name.startswith("nst-test-output-") and not output.is_relative_to(ROOT)
    assert not output.exists()


def test_an_output_folder_given_from_outside_is_kept(tmp_path):
    mine = tmp_path / "my_output"
    mine.mkdir()
    record = run_probe(tmp_path / "run", NST_OUTPUT_DIR=str(mine))
    assert record["output_dir"] == str(mine)
    assert (mine / "figure.png").read_bytes() == b"made by a test"


def test_hypothesis_draws_the_same_examples_on_every_ci_run(tmp_path):
    first = run_probe(tmp_path / "ci1", CI="true")["drawn"]
    second = run_probe(tmp_path / "ci2", CI="true")["drawn"]
    assert len(first) == 30 and first == second
    assert not (tmp_path / "ci1" / ".hypothesis" / "examples").exists()   # no database in CI
    # Outside CI the examples are random: two runs differ (so the comparison can tell)
    assert run_probe(tmp_path / "local")["drawn"] != first
