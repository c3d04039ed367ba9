"""`edgec run OUT --image FILE [--task NAME]`: the top classes of one image, per task, through ONNX Runtime.

The image is a PNG or JPEG (through Pillow; grayscale, RGB and palette images) or a .npy uint8 array
[H, W, C]; it must have the build's size and channel count (no silent resizing: a resized image is not the
image the user measured). Probabilities are the softmax of the model's logits.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgec.data import read_npy_header
from edgec.errors import ArtifactError, DataError
from edgec.frontends.validate import one_line
from edgec.manifest import check_files
from edgec.targets.onnx.build_images import model_file

__all__ = ["classify", "read_image"]

_MODES = {"L": 1, "RGB": 3, "P": 3}  # Pillow mode -> channels (a palette image reads as RGB)
MAX_IMAGE_BYTES = 64 << 20


def _read_npy_image(path: Path) -> np.ndarray:
    """A uint8 [H, W, C] or [H, W] array from a .npy file, its header checked before any data is read."""
    try:
        with path.open("rb") as f:
            shape, fortran, dtype = read_npy_header(f)
            if dtype != np.uint8 or len(shape) not in (2, 3) or int(np.prod(shape)) > MAX_IMAGE_BYTES:
                raise DataError(f"{path}: holds {dtype} {list(shape)}; pass a uint8 array [H, W, C] (or [H, W])")
            data = np.fromfile(f, np.uint8, int(np.prod(shape)))
    except DataError:
        raise
    except Exception as err:  # numpy's header parser raises ValueError, SyntaxError, ...
        raise DataError(f"{path}: not a readable .npy image ({one_line(err)}); pass a uint8 array saved by "
                        "numpy.save") from None
    if data.size != int(np.prod(shape)):
        raise DataError(f"{path}: truncated (shape {list(shape)} needs {int(np.prod(shape))} bytes)")
    image = data.reshape(shape, order="F" if fortran else "C")
    return image if image.ndim == 3 else image[..., None]


def read_image(path: Path) -> np.ndarray:
    """uint8 [H, W, C] from a PNG / JPEG (Pillow) or a .npy file; anything else is one DataError line."""
    if not path.is_file():
        raise DataError(f"{path}: no such image file")
    if path.suffix.lower() == ".npy":
        return _read_npy_image(path)
    from PIL import Image, UnidentifiedImageError

    Image.MAX_IMAGE_PIXELS = MAX_IMAGE_BYTES  # a header claiming more is refused before decoding
    try:
        with Image.open(path) as img:
            if img.mode not in _MODES:
                raise DataError(f"{path}: image mode {img.mode}; pass a grayscale, RGB or palette PNG/JPEG")
            if img.width * img.height > MAX_IMAGE_BYTES:
                raise DataError(f"{path}: {img.width}x{img.height} is too large for an image model's input")
            img = img.convert("RGB") if img.mode == "P" else img
            array = np.asarray(img, dtype=np.uint8)
    except DataError:
        raise
    except Image.DecompressionBombError:
        raise DataError(f"{path}: claims more than {MAX_IMAGE_BYTES} pixels; pass the image the model takes") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
        raise DataError(f"{path}: not a readable image ({one_line(err)}); pass a PNG, JPEG or .npy file") from None
    return array if array.ndim == 3 else array[..., None]


def classify(folder: Path, manifest: dict, image_path: Path, task: str | None = None,
             top: int = 5) -> dict[str, list[tuple[int, float]]]:
    """The ``top`` (class, probability) pairs of the image for each task of the build (or only ``task``)."""
    from edgec.targets.onnx.generate import open_session

    tasks = manifest.get("tasks")
    if not isinstance(tasks, dict) or not tasks:
        raise DataError(f"{folder}: a language model build: --image applies to image models; use --prompt")
    if task is not None and task not in tasks:
        raise DataError(f"--task {task!r} is not a task of {folder} ({', '.join(tasks)})")
    want = tuple(manifest.get("image") or ())
    if len(want) != 3 or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in want):
        raise ArtifactError(f"{folder / 'manifest.json'}: its 'image' entry is not [H, W, C]; rebuild the folder with "
                            "edgec build")
    image = read_image(image_path)
    if image.shape != want:
        raise DataError(f"{image_path}: a {image.shape[0]}x{image.shape[1]} image with {image.shape[2]} channel(s); "
                        f"the model takes {want[0]}x{want[1]} with {want[2]}: resize or convert it first")
    chosen = [task] if task else list(tasks)
    check_files(folder, manifest, [model_file(t) for t in chosen])
    result = {}
    for t in chosen:
        logits = open_session(folder / model_file(t)).run(["logits"], {"images": image[None]})[0][0]
        p = np.exp(logits - logits.max())
        p /= p.sum()
        order = np.argsort(-p, kind="stable")[:top]
        result[t] = [(int(c), float(p[c])) for c in order]
    return result
