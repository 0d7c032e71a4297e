"""The README's 512 px gallery, painted by the notebook's own `paint` (coarse to fine from
the recoloured photo, section 25), with the notebook's weights, on the CPU unless a GPU is
there.

    .venv/bin/python -m bench.gallery                   # five pictures, 15 minutes on 2 cores
    .venv/bin/python -m bench.gallery --only the_scream # the pictures whose name contains it
    .venv/bin/python -m bench.gallery --other           # three more pairs, to outputs/other_pairs
    .venv/bin/python -m bench.gallery --measure-only    # the saved pictures' figures again

Writes assets/generated/gallery/<photo>_<painting>.png and records in bench/results.json
each picture's seconds (`gallery_512_seconds`), the same time in bare VGG19 forward and
backward passes at 512 px timed just before and just after the picture
(`gallery_512_floor_passes`), and its figures (`gallery_512_quality`: palette distance,
boldness, content loss, colour speckle, detail and feature energy, measured on the saved
PNG). Where ../shared/reference holds a published jcjohnson/neural-style output of the same pair, it
records that picture's figures too, and draws both side by side in
outputs/gallery_vs_reference_<painting>.jpg, untracked: the references are not the
project's to ship (the README shows them from jcjohnson/neural-style's own repository).
Then `python -m bench.readme` renders the README's gallery from the results.

It loads the notebook's definitions only (no lesson is run on the way) and paints, and times
the floor pass, in a GPU's arithmetic: float32 and the default memory layout. bfloat16 and
channels_last pay on some CPUs only, and channels_last can speed up the bare pass more than a
whole step, which would inflate the count of passes.
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import nst_helpers as helpers
from bench import notebook_tools
from bench.measure import floor_seconds

ROOT = notebook_tools.ROOT
SIZE = 512
# coarse to fine: 128, 256 and 512 px, with the parameters cell's GPU steps
STEPS = tuple(notebook_tools.parameter_values(device="cuda")["paint_steps"])
PAIRS = [("tubingen", "starry_night"), ("tubingen", "the_scream"), ("tubingen", "shipwreck"),
         ("tubingen", "composition_vii"), ("dog", "starry_night")]
OTHER_PAIRS = [("dog", "composition_vii"), ("soccer", "shipwreck"), ("golden_gate", "great_wave")]
OTHER = ROOT / "outputs" / "other_pairs"      # untracked: checked, not shown
SHEETS = ROOT / "outputs"                     # untracked: the side-by-sides with a reference
GALLERY = ROOT / "assets" / "generated" / "gallery"
SHARED = ROOT.parent / "shared"
# issue 19's bar: a picture as bold as its painting keeps at least these shares of the
# painting's chroma 90th percentile and of its mean luminance gradient (../shared/tools/boldness.py)
CHROMA_BAR, GRADIENT_BAR = 0.95, 0.90
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


def boldness(style: Path, images: list[Path]) -> list[tuple[float, float]] | None:
    """The shared boldness tool's ratios to the painting (chroma's 90th percentile, mean
    luminance gradient) for each image, or None where the tool is not beside the project."""
    tool = SHARED / "tools" / "boldness.py"
    if not tool.exists():
        return None
    printed = subprocess.run([sys.executable, str(tool), str(style), *map(str, images)],
                             capture_output=True, text=True, check=True).stdout
    rows = [line.split() for line in printed.splitlines()[2:]]
    return [(float(row[-3]), float(row[-1])) for row in rows]


def content_loss_at(nb: dict, image: torch.Tensor, content_path: Path) -> float:
    """The notebook's content loss (at its content layer, relu4_2) of `image` against the
    photo at the same size, in float32."""
    photo = helpers.load_image(content_path, max_size=SIZE).to(nb["device"])
    image = image.to(nb["device"])
    layer = nb["content_layer"]
    with torch.no_grad():
        return F.mse_loss(nb["content_targets_for"](image, layer)[layer],
                                  nb["content_targets_for"](photo, layer)[layer]).item()


def feature_energy(nb: dict, image: torch.Tensor, painting: torch.Tensor) -> float:
    """How strongly the picture's VGG features fire next to the painting's: each style layer's
    Gram-matrix trace (the mean squared activation summed over channels) over the painting's,
    averaged over the style layers. A picture that matches the painting's style statistics
    scores 1; one with more contrast in colour and stroke than the painting scores above."""
    layers = nb["style_layers"]
    with torch.no_grad():
        ours, theirs = (nb["extract_features"](picture.to(nb["device"]), layers)
                        for picture in (image, painting))
        return statistics.mean((nb["gram_matrix"](ours[layer]).trace()
                                / nb["gram_matrix"](theirs[layer]).trace()).item()
                               for layer in layers)


def arithmetic(nb: dict) -> str:
    return f"{nb['precision']}, {nb['memory_layout']}"


def figures_of(nb: dict, path: Path, content_path: Path, style_path: Path) -> dict:
    """The saved picture's figures (the PNG, as shown and as the shared tools read it)."""
    photo = helpers.load_image(content_path, max_size=SIZE)
    painting = helpers.load_image(style_path, max_size=SIZE)
    picture = helpers.load_image(path)
    quality = {"content_loss_512": float(f"{content_loss_at(nb, picture, content_path):.4g}"),
               "colour_speckle": round(nb["colour_speckle"](picture), 4),
               "photo_colour_speckle": round(nb["colour_speckle"](photo), 4),
               "painting_colour_speckle": round(nb["colour_speckle"](painting), 4),
               "detail": round(nb["detail"](picture, photo), 3),
               "feature_energy": round(feature_energy(nb, picture, painting), 3)}
    palette = palette_distances(style_path, content_path, [path])
    if palette:
        quality["palette_to_style"] = palette[0]
    bold = boldness(style_path, [path])
    if bold:
        quality["chroma_p90_ratio"], quality["gradient_ratio"] = bold[0]
    return quality


def paint_one(nb: dict, content: str, style: str, folder: Path = GALLERY) -> tuple[float, dict]:
    content_path = ROOT / "assets" / f"{content}.jpg"
    style_path = ROOT / "assets" / f"{style}.jpg"
    began = time.perf_counter()
    picture, _, _ = nb["paint"](content_path, style_path, SIZE, STEPS, nb["current_weights"](),
                             nb["paint_content_boost"],
                             description=f"{content} x {style}")
    seconds = time.perf_counter() - began
    path = folder / f"{content}_{style}.png"
    path.unlink(missing_ok=True)               # the gallery's own output: replaced on purpose
    helpers.save_image(picture, path)
    quality = figures_of(nb, path, content_path, style_path)
    print(f"  {path.name}: {seconds:.0f} s, {quality}", flush=True)
    return round(seconds, 1), quality


def figures_caption(values: dict) -> str:
    """A picture's figures in one line (the side-by-side sheets and the README's)."""
    return (f"palette distance {values['palette_to_style']:.1f}, boldness "
            f"{values['chroma_p90_ratio']:.2f} / {values['gradient_ratio']:.2f}, "
            f"content loss {values['content_loss_512']:.3g}, "
            f"colour speckle {values['colour_speckle']:.3f}, detail {values['detail']:.2f}, "
            f"feature energy {values['feature_energy']:.2f}")


def reference_sheet(nb: dict, style: str, quality: dict) -> dict | None:
    """ours | reference, with both pictures' figures, for a pair that has a reference."""
    reference_path = SHARED / "reference" / REFERENCES[style]
    if not reference_path.exists():
        return None
    content_path = ROOT / "assets" / "tubingen.jpg"
    ours_path = GALLERY / f"tubingen_{style}.png"
    reference = helpers.load_image(reference_path)
    SHEETS.mkdir(exist_ok=True)
    figures = figures_of(nb, reference_path, content_path, ROOT / "assets" / f"{style}.jpg")
    ours = quality[f"tubingen_{style}"]

    helpers.show_images([helpers.load_image(ours_path), reference],
                        [f"this notebook (paint, 512 px): {figures_caption(ours)}",
                         f"jcjohnson/neural-style: {figures_caption(figures)}"],
                        path=SHEETS / f"gallery_vs_reference_{style}.jpg", height=5)
    return figures


def floor_at_512(nb: dict) -> float:
    """Seconds of one bare VGG19 forward and backward pass at 512 px (bench/measure.py's
    floor), in the arithmetic the pictures are painted in."""
    photo = helpers.load_image(ROOT / "assets" / "tubingen.jpg", max_size=SIZE).to(nb["device"])
    return floor_seconds(nb, photo, repeats=3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="", help="paint only the pairs whose name contains this")
    parser.add_argument("--other", action="store_true",
                        help="paint the three other pairs instead, to outputs/other_pairs")
    parser.add_argument("--measure-only", action="store_true",
                        help="paint nothing: measure the saved pictures again (their seconds "
                             "and bare passes stay as recorded)")
    arguments = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    with tempfile.TemporaryDirectory() as scratch:    # the cells' own figures go nowhere
        nb = notebook_tools.definitions("float32", "contiguous", quick=False,
                                       device_name=device, output_dir=Path(scratch))
        folder, pairs, prefix = ((OTHER, OTHER_PAIRS, "other_pairs_512") if arguments.other
                                 else (GALLERY, PAIRS, "gallery_512"))
        folder.mkdir(parents=True, exist_ok=True)
        results_path = ROOT / "bench" / "results.json"
        results = json.loads(results_path.read_text())
        seconds = results.setdefault(f"{prefix}_seconds", {})
        quality = results.setdefault(f"{prefix}_quality", {})
        passes = results.setdefault(f"{prefix}_floor_passes", {})
        if not arguments.measure_only:     # before and after each picture: the machine drifts
            floors = [floor_at_512(nb)]
            print(f"paint steps per level: {STEPS}, device {nb['device']} ({arithmetic(nb)}), "
                  f"floor pass at 512 px {floors[0]:.2f} s")
        for content, style in pairs:
            name = f"{content}_{style}"
            if arguments.only in name and arguments.measure_only:
                quality[name] = figures_of(nb, folder / f"{name}.png",
                                           ROOT / "assets" / f"{content}.jpg",
                                           ROOT / "assets" / f"{style}.jpg")
                print(f"  {name}: {quality[name]}", flush=True)
            elif arguments.only in name:
                seconds[name], quality[name] = paint_one(nb, content, style, folder)
                floors.append(floor_at_512(nb))
                passes[name] = round(seconds[name] / statistics.mean(floors[-2:]), 1)
                print(f"  {passes[name]} bare VGG19 passes (floor pass {floors[-2]:.2f} s "
                      f"before, {floors[-1]:.2f} s after)", flush=True)
                results_path.write_text(json.dumps(results, indent=2) + "\n")
        if not arguments.other:
            references = results.setdefault("gallery_512_references", {})
            for style in REFERENCES:
                if f"tubingen_{style}" in quality and arguments.only in f"tubingen_{style}":
                    figures = reference_sheet(nb, style, quality)
                    if figures:
                        references[f"tubingen_{style}"] = figures
        if arguments.measure_only:
            results_path.write_text(json.dumps(results, indent=2) + "\n")
            print("figures measured again in bench/results.json; python -m bench.readme")
            return
        floor = statistics.mean(floors)
        results[f"{prefix}_settings"] = {"paint_steps": list(STEPS),
                                         "paint_content_boost": nb["paint_content_boost"],
                                         "style_weight": nb["current_weights"]()["style"],
                                         "tv_weight": nb["current_weights"]()["tv"],
                                         "floor_pass_512_seconds": round(floor, 3),
                                         "machine": f"{os.cpu_count()} cores, {nb['device']}, "
                                                    f"{arithmetic(nb)}"}
        results_path.write_text(json.dumps(results, indent=2) + "\n")
        print("results in bench/results.json; the README's table: python -m bench.readme")


if __name__ == "__main__":
    main()
