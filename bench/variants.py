"""Run All as a class runs it: the whole notebook, headless (papermill), at full size, with
the settings the exercises name, other images of odd sizes, and a GPU's arithmetic
(float32, the default memory layout). Each run must finish; the checks that do not hold
under a variant's settings print "check not met" instead of stopping it.

    .venv/bin/python -m bench.variants            # full size, about 20 minutes on 2 cores
    .venv/bin/python -m bench.variants --quick    # quick mode, as the tests run it

Writes results["variants"] in bench/results.json (full size only): per variant the
parameters, seconds, whether it finished and the checks not met; and the whole notebook at
the defaults divided by one bare 256 px VGG19 pass measured in the same run
(`variants_defaults_floor_passes_256`), so that machines can be compared."""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nst_helpers as helpers
from bench import notebook_tools
from bench.measure import floor_seconds

ROOT = notebook_tools.ROOT
RESULTS = ROOT / "bench" / "results.json"

VARIANTS = {
    "defaults": {},
    "exercise 1, style_weight 0.2": {"style_weight": 0.2},
    "exercise 1, style_weight 2000": {"style_weight": 2000.0},
    "exercise 4, tv_weight 0": {"tv_weight": 0.0},
    "other images of odd sizes": {"content_path": "{panorama}",
                                  "style_path": "assets/the_scream.jpg",
                                  "second_content_path": "assets/golden_gate.jpg"},
    "a GPU's arithmetic (float32, default layout)": {"precision": "float32",
                                                     "memory_layout": "contiguous"},
}


def make_panorama(folder: Path) -> Path:
    """A learner's own photo of an odd size: a 1600 x 600 strip of Tübingen, as a PNG."""
    from PIL import Image
    with Image.open(ROOT / "assets" / "tubingen.jpg") as photo:
        strip = photo.convert("RGB").crop((0, 200, 1024, 584)).resize((1600, 600))
    path = folder / "my_panorama.png"
    strip.save(path)
    return path


def run_variant(parameters: dict, scratch: Path, quick: bool,
                notebook: Path | None = None) -> dict:
    """papermill `notebook` (the lesson unless given) with `parameters` into `scratch`; what
    happened."""
    notebook = notebook or notebook_tools.NOTEBOOK
    outputs = scratch / "outputs"
    command = [sys.executable, "-m", "papermill", str(notebook),
               str(scratch / "executed.ipynb"), "--cwd", str(ROOT),
               "-p", "output_dir", str(outputs)]
    for name, value in parameters.items():
        if value == "{panorama}":
            value = make_panorama(scratch)
        command += ["-p", name, str(value)]
    environment = {key: value for key, value in os.environ.items()
                   if key not in ("NST_OUTPUT_DIR", "NST_QUICK")}
    environment.update(TQDM_DISABLE="1", MPLBACKEND="Agg",
                       JUPYTER_DATA_DIR=str(scratch / "jupyter-data"))
    if quick:
        environment["NST_QUICK"] = "1"
    began = time.perf_counter()
    result = subprocess.run(command, cwd=ROOT, env=environment, stdin=subprocess.DEVNULL,
                            capture_output=True, text=True)
    seconds = time.perf_counter() - began
    executed = scratch / "executed.ipynb"
    text = ""
    if executed.exists():
        cells = json.loads(executed.read_text())["cells"]
        text = "".join("".join(output.get("text", "")) for cell in cells
                       if cell["cell_type"] == "code" for output in cell.get("outputs", []))
    return {"finished": result.returncode == 0, "seconds": round(seconds, 1),
            "checks_met": sum(line.startswith("check: ") for line in text.splitlines()),
            "checks_not_met": [line for line in text.splitlines()
                               if line.startswith("check not met: ")],
            "error": "" if result.returncode == 0 else result.stderr.strip()[-2000:],
            "outputs": sorted(path.name for path in outputs.glob("*")) if outputs.exists() else []}


def floor_pass_seconds(size: int = 256, repeats: int = 5) -> float:
    """The least work one optimisation step does: one forward and backward pass of VGG19 up
    to relu5_1 at `size` px, float32, default layout (measure.floor_seconds, on the
    notebook's definitions)."""
    nb = notebook_tools.definitions("float32", "contiguous", quick=False, device_name="cpu")
    image = helpers.load_image(ROOT / "assets" / "tubingen.jpg", max_size=size)
    return floor_seconds(nb, image, repeats=repeats)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="quick mode; results not saved")
    parser.add_argument("--only", nargs="*", help="variant names (default: all)")
    arguments = parser.parse_args()
    names = arguments.only or list(VARIANTS)
    report = {}
    for name in names:
        with tempfile.TemporaryDirectory(prefix="nst-variant-") as folder:
            print(f"{name} ...", flush=True)
            report[name] = {"parameters": VARIANTS[name],
                            **run_variant(VARIANTS[name], Path(folder), arguments.quick)}
            outcome = report[name]
            print(f"  {'finished' if outcome['finished'] else 'FAILED'} in {outcome['seconds']} s;"
                  f" checks met {outcome['checks_met']}, not met {len(outcome['checks_not_met'])}")
            for line in outcome["checks_not_met"]:
                print("   ", line)
            if outcome["error"]:
                print(outcome["error"])
            del outcome["outputs"]
    if arguments.quick:
        return
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results["variants"] = report
    if "defaults" in report:
        floor = floor_pass_seconds()
        results["variants_floor_pass_256_s"] = round(floor, 4)
        results["variants_defaults_floor_passes_256"] = round(report["defaults"]["seconds"] / floor)
        print(f"the whole notebook at the defaults: {report['defaults']['seconds']} s = "
              f"{results['variants_defaults_floor_passes_256']} bare 256 px VGG19 passes "
              f"({floor:.3f} s each)")
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
