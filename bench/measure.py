"""Speed measurements of the notebook's code, side by side in one run.

Uses the notebook's own functions (its set-up and definition cells, bench/notebook_tools.py), on
Tübingen + The Starry Night from assets/, and writes what it measures into
bench/results.json (one key per measurement; `python -m bench.readme` then renders the
README's tables from it) and comparison images under bench/.

    .venv/bin/python -m bench.measure                 # about 12 minutes on 2 CPU cores
    .venv/bin/python -m bench.measure --only floor    # re-measure some parts, keep the rest

The fast loop runs in the arithmetic the notebook's rules pick on this machine, measured
quickly at the start (bfloat16 only where it is faster: a CPU without bfloat16 units runs
it tens of times slower), unless --precision / --memory-layout say otherwise. On a GPU
machine, `--only gpu` adds the GPU figures (512 px x 300 steps, float32 and bfloat16).

Ratios are what to read: absolute seconds vary from run to run on shared machines, but
the two sides of each ratio are measured in the same run, interleaved where possible.
"""

import argparse
import itertools
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
from pathlib import Path

import torch
import torch.nn.functional as F

import nst_helpers as helpers
from bench import notebook_tools

ROOT = notebook_tools.ROOT
BENCH = ROOT / "bench"
RESULTS = BENCH / "results.json"
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
        self.nb["wait_for_device"]()
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


def floor_seconds(nb: dict, image: torch.Tensor, repeats: int = 3, bfloat16: bool | None = None,
                  layout: str | None = None) -> float:
    """One forward + backward of the truncated VGG19 with respect to the input image: the
    least work any optimisation step must do. In the fast loop's precision and layout unless
    `bfloat16` / `layout` ("contiguous" or "channels_last") say otherwise."""
    bfloat16 = nb["use_bfloat16"] if bfloat16 is None else bfloat16
    layout = nb["chosen_layout"] if layout is None else layout
    x = image.clone().requires_grad_(True)
    times = []
    with nb["vgg_in_layout"](layout):                  # the default layout again afterwards
        for _ in range(repeats):
            nb["wait_for_device"]()
            began = time.perf_counter()
            with torch.autocast(nb["device"].type, dtype=torch.bfloat16, enabled=bfloat16):
                out = nb["vgg"](nb["caffe_preprocess"](x))
            out.float().sum().backward()
            nb["wait_for_device"]()
            times.append(time.perf_counter() - began)
            x.grad = None
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
    with notebook_tools.overriding(nb, use_bfloat16=False):
        fp32_image, fp32_history, fp32_seconds = problem.run(steps)
    side_by_side([helpers.load_image(pastiche_image), ours_image],
                 [f"pastiche CLI: {peer['loop_s']:.0f} s loop, {peer['wall_s']:.0f} s wall",
                  f"this notebook: {ours_seconds:.0f} s"], BENCH / "pastiche_vs_notebook.jpg")
    difference = (fp32_image - ours_image).abs()
    side_by_side([fp32_image, ours_image],
                 [f"float32: {fp32_seconds:.0f} s, loss {min(fp32_history['total']):.4g}",
                  f"{nb['precision']}: {ours_seconds:.0f} s, "
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
    return list(itertools.accumulate(losses, min))


def measure_coarse_to_fine(nb: dict, size: int = 512, single_steps: int = 300,
                           plan=((128, 150), (256, 60), (512, 150)),
                           checkpoints=(50, 100, 150, 200, 300), headline: int = 100) -> dict:
    """From noise (as in the notebook's section 10): how long does coarse to fine need to
    reach the loss that a single-scale run reaches in N steps, for several N? The times come
    from `stylise_fast`'s own per-step clock (history["seconds"]), so one long run of each gives
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
    timings = {name: [] for name in nb["layouts"]}
    for _ in range(rounds):
        for name in nb["layouts"]:       # stylise_fast switches VGG to chosen_layout per run
            with notebook_tools.overriding(nb, chosen_layout=name):
                timings[name].append(step_seconds(problem))
    pictures = {}
    for name in nb["layouts"]:
        with notebook_tools.overriding(nb, chosen_layout=name):
            image, history, seconds = problem.run(steps)
        pictures[name] = (image, min(history["total"]), seconds)
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
            "default": nb["chosen_layout"]}


def measure_precision_speed(nb: dict, size: int = 256, rounds: int = 2) -> dict:
    problem = Problem(nb, size)
    timings = {"float32": [], "bfloat16": []}
    for _ in range(rounds):
        for name in timings:
            with notebook_tools.overriding(nb, use_bfloat16=name == "bfloat16"):
                timings[name].append(step_seconds(problem))
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
    """The GPU figure: one run of `steps` steps at `size` px from the photo on the
    namespace's device, in float32 (the notebook's GPU default) and under bfloat16 autocast,
    after a short warm-up (cuDNN picks its algorithms, the allocator fills its cache)."""
    problem = Problem(nb, size)
    runs, pictures = {}, []
    for precision in ("float32", "bfloat16"):
        with notebook_tools.overriding(nb, use_bfloat16=precision == "bfloat16"):
            problem.run(3)
            image, history, seconds = problem.run(steps)
        runs[precision] = {"seconds": round(seconds, 3), "final_loss": min(history["total"]),
                           "evaluations": len(history["total"])}
        pictures.append(image)
        print(f"  {precision}: {steps} steps at {size} px in {seconds:.2f} s")
    name = torch.cuda.get_device_name() if nb["device"].type == "cuda" else str(nb["device"])
    side_by_side(pictures, [f"{precision} on {name}: {run['seconds']:.1f} s, loss "
                            f"{run['final_loss']:.4g}" for precision, run in runs.items()],
                 figure_dir / f"{nb['device'].type}_float32_vs_bfloat16.jpg")
    return {"device": name, "size": size, "steps": steps, **runs,
            "bfloat16_speedup": round(runs["float32"]["seconds"] / runs["bfloat16"]["seconds"], 3),
            "bfloat16_vs_float32_loss_ratio": round(runs["bfloat16"]["final_loss"]
                                                    / runs["float32"]["final_loss"], 4)}


def measure_peak_memory(precision: str, memory_layout: str, size: int = 512,
                        steps: int = 5) -> float:
    """Peak resident memory of a fresh process that loads the notebook's definitions and
    runs the fast loop for `steps` steps at `size` px (MB)."""
    script = textwrap.dedent(f"""
        import resource
        from bench import notebook_tools
        nb = notebook_tools.definitions({precision!r}, {memory_layout!r}, quick=False,
                                        image_size={size}, device_name="cpu")
        nb["stylise_fast"](nb["content_image"], nb["content_targets"], nb["style_targets"],
                           {steps}, nb["current_weights"]())
        print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    """)
    printed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                             check=True, cwd=ROOT,
                             env=dict(os.environ, TQDM_DISABLE="1", MPLBACKEND="Agg")).stdout
    peak = float(printed.split()[-1])
    print(f"  peak RSS of a {size} px run: {peak:.0f} MB")
    return round(peak, 1)


PARTS = ("floor", "peer", "quality", "precision", "memory", "steps", "gpu")


def use_fastest_arithmetic(nb: dict, precision: str | None = None, layout: str | None = None,
                           size: int = 64) -> tuple[str, str]:
    """Set the fast loop's precision and memory layout in `nb`: as given, or by the notebook's
    own rules of sections 13 and 14 (bfloat16 when it is more than 20% faster, channels_last
    unless it is more than 5% slower), measured quickly on the photo at `size` px. A CPU
    without bfloat16 units runs bfloat16 tens of times slower: it must be measured."""
    image = F.interpolate(nb["content_image"], size=(size, size), mode="area")
    targets = (nb["content_targets_for"](image, nb["content_layer"]), nb["style_targets"])

    def seconds(bfloat16, layout_name):
        with nb["vgg_in_layout"](layout_name):
            return nb["seconds_per_evaluation"](image, targets, nb["current_weights"](),
                                                nb["gram_matrix"], bfloat16, repeats=2)[0]

    if precision is None:
        faster = seconds(True, "contiguous") < 0.8 * seconds(False, "contiguous")
        precision = "bfloat16" if faster else "float32"
    bfloat16 = precision == "bfloat16"
    if layout is None:
        layout = ("channels_last" if seconds(bfloat16, "channels_last")
                  < 1.05 * seconds(bfloat16, "contiguous") else "contiguous")
    nb.update(precision=precision, memory_layout=layout, use_bfloat16=bfloat16,
              chosen_layout=layout)
    return precision, layout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="",
                        help=f"comma-separated parts to re-measure, keeping the others' "
                             f"previous results: {', '.join(PARTS)}")
    parser.add_argument("--precision", choices=("float32", "bfloat16"))
    parser.add_argument("--memory-layout", choices=("contiguous", "channels_last"))
    arguments = parser.parse_args()
    parts = set(arguments.only.split(",")) if arguments.only else set(PARTS) - {"gpu"}
    unknown = parts - set(PARTS)
    if unknown:
        parser.error(f"unknown parts {sorted(unknown)}; choose from {', '.join(PARTS)}")
    if "gpu" in parts and not torch.cuda.is_available():
        parser.error("no CUDA device here: run `--only gpu` on a GPU machine")
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    if parts - {"gpu"}:
        with tempfile.TemporaryDirectory(prefix="nst-measure-") as scratch:
            nb = notebook_tools.definitions("float32", "contiguous", quick=False,
                                           device_name="cpu", output_dir=Path(scratch))
            precision, layout = use_fastest_arithmetic(nb, arguments.precision,
                                                       arguments.memory_layout)
            results.update({"machine": machine(), "device": str(nb["device"])})
            print(f"machine: {results['machine']}\narithmetic: {precision}, {layout}")
            measure(nb, parts, results, precision, layout)
    if "gpu" in parts:
        print("7. GPU: 512 px x 300 steps")
        with tempfile.TemporaryDirectory(prefix="nst-measure-") as scratch:
            results["gpu"] = measure_device_run(notebook_tools.definitions(
                "float32", "contiguous", quick=False, device_name="cuda",
                output_dir=Path(scratch)))
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print("results in bench/results.json; the README's tables: python -m bench.readme")


def measure(nb: dict, parts: set, results: dict, precision: str, layout: str) -> None:
    if "floor" in parts:
        print("1. floor vs notebook step")
        results["floor_and_step"] = measure_floor_and_step(nb)
    if "peer" in parts:
        print("2. peer: pastiche")
        results["peer"] = measure_peer(nb)
    if "quality" in parts:
        print("3. time to quality at 512 px")
        results["time_to_quality"] = measure_coarse_to_fine(nb)
    if "precision" in parts:
        print("4. precision and memory layout")
        results["precision"] = {**measure_precision_speed(nb), "default": precision}
        results["layout"] = measure_layout(nb)
    if "memory" in parts:
        print("5. memory")
        results["peak_rss_mb_512"] = measure_peak_memory(precision, layout)
    if "steps" in parts:
        print("6. how many steps: the picture after N steps against 300")
        results["steps_needed"] = measure_steps_needed(nb)


if __name__ == "__main__":
    main()
