"""The README's 512 px gallery, painted by the notebook's own `paint` (coarse to fine from
the recoloured photo, section 25), with the notebook's weights, on the CPU unless a GPU is
there.

    .venv/bin/python -m bench.gallery                   # five pictures, about 10 minutes on 2 cores
    .venv/bin/python -m bench.gallery --only the_scream # the pictures whose name contains it

Writes assets/generated/gallery/<photo>_<painting>.png, records each picture's seconds in
bench/results.json as `gallery_512_seconds` (and its quality figures as `gallery_512_quality`),
and, where ../shared/reference holds a published jcjohnson/neural-style output of the same
pair, a side-by-side sheet bench/gallery_vs_reference_<painting>.jpg. Then
`python -m bench.readme` renders the README's gallery table from the results.

It loads the notebook's definitions only (no lesson is run on the way) and paints in the
arithmetic the notebook's rules pick on this machine, measured in a few seconds
(bench/measure.py's use_fastest_arithmetic).
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import nst_helpers as helpers
from bench import notebook_tools
from bench.measure import use_fastest_arithmetic

ROOT = notebook_tools.ROOT
SIZE = 512
STEPS = (300, 150, 60)          # coarse to fine: 128, 256 and 512 px
PAIRS = [("tubingen", "starry_night"), ("tubingen", "the_scream"), ("tubingen", "shipwreck"),
         ("tubingen", "composition_vii"), ("dog", "starry_night")]
GALLERY = ROOT / "assets" / "generated" / "gallery"
SHARED = ROOT.parent / "shared"
REFERENCES = {"starry_night": "jcjohnson_tubingen_starry_night.png",
              "the_scream": "jcjohnson_tubingen_the_scream.png"}


def palette_distances(style: Path, content: Path, images: list[Path]) -> list[float] | None:
    """The shared palette tool's 'to style' figure for each image (one call, so the figures
    are comparable), or None where the tool is not beside the project."""
    tool = SHARED / "tools" / "palette_distance.py"
    if not tool.exists():
        return None
    printed = subprocess.run([sys.executable, str(tool), str(style), str(content),
                              *map(str, images)], capture_output=True, text=True,
                             check=True).stdout
    return [float(value) for value in re.findall(r"to style\s+([\d.]+)", printed)]


def content_loss_at(nb: dict, image: torch.Tensor, content_path: Path) -> float:
    """The notebook's content loss (at its content layer, relu4_2) of `image` against the
    photo at the same size, in float32."""
    photo = helpers.load_image(content_path, max_size=SIZE).to(nb["device"])
    image = image.to(nb["device"])
    layer = nb["content_layer"]
    with torch.no_grad():
        return F.mse_loss(nb["content_targets_for"](image, layer)[layer],
                                  nb["content_targets_for"](photo, layer)[layer]).item()


def arithmetic(nb: dict) -> str:
    return f"{nb['precision']}, {nb['memory_layout']}"


def paint_one(nb: dict, content: str, style: str) -> tuple[float, dict]:
    content_path = ROOT / "assets" / f"{content}.jpg"
    style_path = ROOT / "assets" / f"{style}.jpg"
    began = time.perf_counter()
    picture, _, _ = nb["paint"](content_path, style_path, SIZE, STEPS, nb["current_weights"](),
                             description=f"{content} x {style}")
    seconds = time.perf_counter() - began
    path = GALLERY / f"{content}_{style}.png"
    path.unlink(missing_ok=True)               # the gallery's own output: replaced on purpose
    helpers.save_image(picture, path)
    quality = {"content_loss_512": float(f"{content_loss_at(nb, picture, content_path):.4g}"),
               "colour_speckle": round(nb["colour_speckle"](picture), 3),
               "photo_colour_speckle": round(nb["colour_speckle"](
                   helpers.load_image(content_path, max_size=SIZE)), 3)}
    palette = palette_distances(style_path, content_path, [path])
    if palette:
        quality["palette_to_style"] = palette[0]
    print(f"  {path.name}: {seconds:.0f} s, {quality}", flush=True)
    return round(seconds, 1), quality


def reference_sheet(nb: dict, style: str, quality: dict) -> dict | None:
    """ours | reference, with both pictures' figures, for a pair that has a reference."""
    reference_path = SHARED / "reference" / REFERENCES[style]
    if not reference_path.exists():
        return None
    content_path = ROOT / "assets" / "tubingen.jpg"
    ours_path = GALLERY / f"tubingen_{style}.png"
    reference = helpers.load_image(reference_path)
    palettes = palette_distances(ROOT / "assets" / f"{style}.jpg", content_path,
                                 [reference_path, ours_path])
    figures = {"palette_to_style": palettes[0],
               "content_loss_512": float(f"{content_loss_at(nb, reference, content_path):.4g}"),
               "colour_speckle": round(nb["colour_speckle"](reference), 3)}
    ours = quality[f"tubingen_{style}"]

    def caption(who, values):
        return (f"{who}: palette distance {values['palette_to_style']:.1f}, "
                f"content loss {values['content_loss_512']:.3g}, "
                f"speckle {values['colour_speckle']:.2f}")

    helpers.show_images([helpers.load_image(ours_path), reference],
                        [caption("this notebook (paint, 512 px)", ours),
                         caption("jcjohnson/neural-style", figures)],
                        path=ROOT / "bench" / f"gallery_vs_reference_{style}.jpg", height=5)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="", help="paint only the pairs whose name contains this")
    arguments = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    with tempfile.TemporaryDirectory() as scratch:    # the cells' own figures go nowhere
        nb = notebook_tools.definitions("float32", "contiguous", quick=False,
                                       device_name=device, output_dir=Path(scratch))
        use_fastest_arithmetic(nb)
        GALLERY.mkdir(parents=True, exist_ok=True)
        results_path = ROOT / "bench" / "results.json"
        results = json.loads(results_path.read_text())
        seconds = results.setdefault("gallery_512_seconds", {})
        quality = results.setdefault("gallery_512_quality", {})
        print(f"paint steps per level: {STEPS}, device {nb['device']} ({arithmetic(nb)})")
        for content, style in PAIRS:
            name = f"{content}_{style}"
            if arguments.only in name:
                seconds[name], quality[name] = paint_one(nb, content, style)
                results_path.write_text(json.dumps(results, indent=2) + "\n")
        references = results.setdefault("gallery_512_references", {})
        for style in REFERENCES:
            if f"tubingen_{style}" in quality and arguments.only in f"tubingen_{style}":
                figures = reference_sheet(nb, style, quality)
                if figures:
                    references[f"tubingen_{style}"] = figures
        results["gallery_512_settings"] = {"paint_steps": list(STEPS),
                                           "style_weight": nb["current_weights"]()["style"],
                                           "tv_weight": nb["current_weights"]()["tv"],
                                           "machine": f"{os.cpu_count()} cores, {nb['device']}, "
                                                      f"{arithmetic(nb)}"}
        results_path.write_text(json.dumps(results, indent=2) + "\n")
        print("results in bench/results.json; the README's table: python -m bench.readme")


if __name__ == "__main__":
    main()
