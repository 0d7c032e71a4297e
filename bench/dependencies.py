"""Why the notebook uses neither pygifsicle nor torchvision, measured.

Both are left out of requirements.txt, so install them aside first (no dependencies: the
point is to try them next to this project's CPU build of torch):

    .venv/bin/pip install --target /tmp/nst-peers --no-deps pygifsicle==1.1.0 torchvision==0.28.0
    PYTHONPATH=/tmp/nst-peers .venv/bin/python -m bench.dependencies /tmp/nst-peers

It writes bench/dependencies.json; `python -m bench.readme` renders it into the README.
"""

import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import imageio.v3 as imageio
import numpy as np

import nst_helpers as helpers

ROOT = Path(__file__).resolve().parent.parent

RESULTS = ROOT / "bench" / "dependencies.json"


def gif_frames() -> list:
    """41 full-colour frames, the gallery's painted dog fading into its photo."""
    start = helpers.load_image(ROOT / "assets" / "generated" / "gallery" / "dog_starry_night.png")
    end = helpers.load_image(ROOT / "assets" / "dog.jpg", max_size=max(start.shape[-2:]))
    return [np.asarray(helpers.tensor_to_pil(start + (end - start) * i / 40)) for i in range(41)]


def measure_pygifsicle(folder: Path) -> dict:
    import pygifsicle

    results = {"version": distribution(folder, "pygifsicle")[0]}
    with tempfile.TemporaryDirectory() as scratch:
        plain = Path(scratch) / "plain.gif"
        imageio.imwrite(plain, gif_frames(), extension=".gif", duration=[80] * 40 + [1500],
                        loop=0)
        options = ["--optimize=3", "--lossy=80", "--no-warnings"]
        ways = {"direct_call": lambda path: helpers._compress_gif(path, colors=64, lossy=80),
                "pygifsicle_colors_in_options":
                    lambda path: pygifsicle.optimize(str(path), options=["--colors", "64",
                                                                         *options]),
                "pygifsicle_colors_argument":
                    lambda path: pygifsicle.optimize(str(path), colors=64, options=options)}
        for name, compress in ways.items():
            copy = Path(scratch) / f"{name}.gif"
            shutil.copy(plain, copy)
            compress(copy)
            results[f"{name}_mb"] = round(copy.stat().st_size / 1e6, 2)
        broken = Path(scratch) / "broken.gif"
        broken.write_text("not a GIF")
        results["gifsicle_exit_status_on_a_broken_gif"] = subprocess.run(
            [helpers._find_gifsicle(), str(broken), "--output", str(broken)],
            capture_output=True).returncode
        try:
            pygifsicle.optimize(str(broken))
            results["pygifsicle_raises_on_a_broken_gif"] = False
        except Exception:  # noqa: BLE001 - any exception counts as reporting the failure
            results["pygifsicle_raises_on_a_broken_gif"] = True
    return results


def distribution(folder: Path, name: str) -> tuple[str, str]:
    """(version, METADATA text) of a package installed in `folder`."""
    info = next(folder.glob(f"{name}-*.dist-info"))
    return info.name.removesuffix(".dist-info").split("-")[1], (info / "METADATA").read_text()


def measure_torchvision(folder: Path) -> dict:
    version, metadata = distribution(folder, "torchvision")
    torch_pin = re.search(r"^Requires-Dist: torch ?\(?==([\d.]+)", metadata, re.MULTILINE).group(1)
    attempt = subprocess.run([sys.executable, "-c", "import torchvision"],
                             env={"PYTHONPATH": str(folder), "PATH": "/usr/bin:/bin"},
                             capture_output=True, text=True)
    error = attempt.stderr.strip().splitlines()[-1] if attempt.returncode else None
    source = (folder / "torchvision" / "models" / "vgg.py").read_text()
    vgg19 = source[source.index("class VGG19_Weights"):]
    return {"version": version, "requires_torch": torch_pin, "import_error": error,
            "vgg19_weights_url": re.search(r'url="([^"]+)"', vgg19).group(1),
            "vgg19_weights_mb": float(re.search(r'"_file_size": ([\d.]+)', vgg19).group(1))}


def main() -> None:
    folder = Path(sys.argv[1]).resolve()
    results = {"pygifsicle": measure_pygifsicle(folder), "torchvision": measure_torchvision(folder)}
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
