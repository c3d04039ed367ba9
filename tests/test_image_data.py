"""Image data files (.npz of uint8 images and labels_<task>): the format, and one line for each kind of bad file."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

from edgec import image_data
from edgec.errors import DataError
from edgec.frontends.vit_moe_spec import VitMoeSpec
from edgec.image_data import ImageData, image_batches, load_images, save_images

SPEC = VitMoeSpec.from_config({
    "model_type": "vit_moe", "image_size": [16, 24], "in_chans": 3, "patch_size": 8, "embed_dim": 8, "depth": 1,
    "num_heads": 2, "moe_layers": [0], "num_experts": 2, "top_k": 1, "moe_hidden": 8,
    "tasks": {"digit": 10, "parity": 2}})
N = 5
UNPICKLED: list[str] = []


def _images(n: int = N, shape: tuple[int, ...] = (16, 24, 3), dtype=np.uint8) -> np.ndarray:
    return np.random.default_rng(n).integers(0, 256, (n, *shape)).astype(dtype)


def _labels(n: int = N) -> dict[str, np.ndarray]:
    digit = np.arange(n) % 10
    return {"labels_digit": digit, "labels_parity": digit % 2}


def _write(path: Path, **arrays) -> Path:
    np.savez(path, **arrays)
    return path


def _refused(path: Path, *fragments: str, need_labels: bool = True) -> str:
    with pytest.raises(DataError) as info:
        load_images(path, SPEC, need_labels=need_labels)
    msg = str(info.value)
    assert "\n" not in msg and str(path) in msg, msg
    for fragment in fragments:
        assert fragment in msg, msg
    return msg


def test_round_trip_and_batches(tmp_path):
    images, labels = _images(), _labels()
    save_images(tmp_path / "d.npz", images, {k.removeprefix("labels_"): v for k, v in labels.items()})
    data = load_images(tmp_path / "d.npz", SPEC)
    np.testing.assert_array_equal(data.images, images)
    assert data.images.dtype == np.uint8 and list(data.labels) == ["digit", "parity"]
    for task in SPEC.task_names:
        assert data.labels[task].dtype == np.int64
        np.testing.assert_array_equal(data.labels[task], labels[f"labels_{task}"])
    batches = image_batches(data, 2)
    assert [len(b) for b in batches] == [2, 2, 1]
    np.testing.assert_array_equal(np.concatenate([b.labels["parity"] for b in batches]), labels["labels_parity"])
    assert [len(b) for b in image_batches(data, 2, max_images=3)] == [2, 1]


def test_uncompressed_int32_and_fortran_arrays(tmp_path):
    images = np.asfortranarray(_images())
    labels = {k: v.astype(np.int32) for k, v in _labels().items()}
    data = load_images(_write(tmp_path / "d.npz", images=images, **labels), SPEC)
    np.testing.assert_array_equal(data.images, images)
    np.testing.assert_array_equal(data.labels["digit"], labels["labels_digit"])


def test_calibration_data_needs_no_labels(tmp_path):
    path = _write(tmp_path / "calib.npz", images=_images())
    assert load_images(path, SPEC, need_labels=False).labels == {}
    _refused(path, "has no labels_digit", "evaluation needs labels for every task")


def test_missing_labels_for_one_task(tmp_path):
    _refused(_write(tmp_path / "d.npz", images=_images(), labels_digit=_labels()["labels_digit"]),
             "has no labels_parity")


def test_labels_of_an_unknown_task(tmp_path):
    _refused(_write(tmp_path / "d.npz", images=_images(), **_labels(), labels_colour=np.zeros(N, np.int64)),
             "'labels_colour' is labels of a task the model does not have", "digit, parity")


def test_an_unknown_array(tmp_path):
    path = _write(tmp_path / "d.npz", images=_images(), **_labels(), extra=np.zeros(3))
    _refused(path, "'extra' is an unknown array")


def test_no_images(tmp_path):
    _refused(_write(tmp_path / "d.npz", **_labels()), "has no images array")


@pytest.mark.parametrize("shape, fragments", [
    ((16, 16, 3), ["16 x 16 pixels", "takes 16 x 24", "resize"]),
    ((24, 16, 3), ["24 x 16 pixels"]),
    ((16, 24, 1), ["1 channels", "takes 3 (in_chans"]),
    ((16, 24, 4), ["4 channels"]),
    ((16, 24), ["shape (5, 16, 24)", "[N, height, width, channels]"]),
])
def test_wrong_image_size_or_channels(tmp_path, shape, fragments):
    _refused(_write(tmp_path / "d.npz", images=_images(shape=shape), **_labels()), *fragments)


@pytest.mark.parametrize("dtype", [np.float32, np.int64, np.uint16, np.int8])
def test_images_not_uint8(tmp_path, dtype):
    _refused(_write(tmp_path / "d.npz", images=_images(dtype=dtype), **_labels()), "not uint8")


def test_empty(tmp_path):
    _refused(_write(tmp_path / "d.npz", images=_images(0), **_labels(0)), "holds no images")


@pytest.mark.parametrize("task, bad, fragment", [
    ("digit", 10, "labels_digit[3] = 10 is outside [0, 10)"),
    ("parity", -1, "labels_parity[3] = -1 is outside [0, 2)"),
    ("parity", 2**40, "labels_parity[3] = 1099511627776"),
])
def test_labels_out_of_range(tmp_path, task, bad, fragment):
    labels = {k: v.astype(np.int64) for k, v in _labels().items()}
    labels[f"labels_{task}"][3] = bad
    _refused(_write(tmp_path / "d.npz", images=_images(), **labels), fragment)


def test_unsigned_labels_past_int64(tmp_path):
    labels = {k: v.astype(np.uint64) for k, v in _labels().items()}
    labels["labels_digit"][1] = 2**64 - 1
    _refused(_write(tmp_path / "d.npz", images=_images(), **labels), "labels_digit[1] = 18446744073709551615")
    labels["labels_digit"][1] = 9
    assert load_images(_write(tmp_path / "d.npz", images=_images(), **labels), SPEC).labels["digit"].dtype == np.int64


def test_labels_out_of_range_in_calibration_data(tmp_path):
    _refused(_write(tmp_path / "d.npz", images=_images(), labels_parity=np.full(N, 5)), "outside [0, 2)",
             need_labels=False)


@pytest.mark.parametrize("labels, fragment", [
    (np.arange(N - 1), "shape (4,), but there are 5 images"),
    (np.arange(N + 1), "shape (6,)"),
    (np.zeros((N, 1), np.int64), "shape (5, 1)"),
    (np.zeros(N, np.float32), "not integers"),
    (np.zeros(N, bool), "not integers"),
])
def test_labels_of_wrong_length_or_type(tmp_path, labels, fragment):
    _refused(_write(tmp_path / "d.npz", images=_images(), labels_digit=labels,
                    labels_parity=_labels()["labels_parity"]), fragment)


class _Boom:
    """Unpickling this appends to UNPICKLED: the loader must never do it."""

    def __reduce__(self):
        return UNPICKLED.append, ("unpickled",)


def test_object_arrays_are_refused_unread(tmp_path):
    path = _write(tmp_path / "d.npz", images=_images(), labels_digit=np.array([_Boom()] * N, dtype=object),
                  labels_parity=_labels()["labels_parity"])
    _refused(path, "holds Python objects", "never unpickles")
    assert UNPICKLED == []


@pytest.mark.parametrize("where", [100, 0.5])
def test_corrupt_member_data(tmp_path, where):
    """Corrupt compressed bytes, whether met in a header or inside the images."""
    path = tmp_path / "d.npz"
    save_images(path, _images(200), {"digit": np.zeros(200), "parity": np.zeros(200)})
    raw = bytearray(path.read_bytes())
    at = int(where * len(raw)) if isinstance(where, float) else where
    raw[at:at + 40] = b"\xff" * 40
    path.write_bytes(bytes(raw))
    _refused(path, "cannot read the .npz")


@pytest.mark.parametrize("content, fragment", [
    (b"just some text\n", "not an .npz (zip) archive"),
    (b"", "not an .npz (zip) archive"),
    (b"PK\x03\x04" + b"\0" * 40, "no zip end record"),
])
def test_not_an_npz(tmp_path, content, fragment):
    path = tmp_path / "d.npz"
    path.write_bytes(content)
    _refused(path, fragment)


def test_a_single_npy(tmp_path):
    np.save(tmp_path / "d.npy", _images())
    _refused(tmp_path / "d.npy", "is a single .npy array", "numpy.savez")


def test_truncated_archive(tmp_path):
    path = _write(tmp_path / "d.npz", images=_images(), **_labels())
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    _refused(path, "garbled .npz")


def test_not_a_file(tmp_path):
    _refused(tmp_path / "absent.npz", "no such data file")
    (tmp_path / "dir.npz").mkdir()
    _refused(tmp_path / "dir.npz", "is a directory")


def test_file_size_limit(tmp_path, monkeypatch):
    path = _write(tmp_path / "d.npz", images=_images(), **_labels())
    monkeypatch.setattr(image_data, "MAX_DATA_BYTES", path.stat().st_size - 1)
    _refused(path, "larger than MAX_DATA_BYTES")


def test_compressed_arrays_may_not_inflate_past_the_limit(tmp_path, monkeypatch):
    """A zip bomb: a few kB on disk, declaring 100x the limit; refused from the headers, before any array is read."""
    path = tmp_path / "d.npz"
    save_images(path, np.zeros((1000, 16, 24, 3), np.uint8), {})
    monkeypatch.setattr(image_data, "MAX_DATA_BYTES", 10_000)
    monkeypatch.setattr(image_data, "_read", lambda *a: pytest.fail("read an array"))
    _refused(path, "more than MAX_DATA_BYTES = 10000 bytes (uncompressed)")


def test_too_many_entries(tmp_path):
    path = tmp_path / "d.npz"
    with zipfile.ZipFile(path, "w") as z:
        for i in range(image_data._MAX_MEMBERS + 1):
            z.writestr(f"a{i}.npy", b"")
    _refused(path, f"lists {image_data._MAX_MEMBERS + 1} entries")


@pytest.mark.parametrize("name, data, fragment", [
    ("images.txt", b"x", "'images.txt' is not a .npy array"),
    ("images.npy", b"\x93NUMPY\x01\x00\x04\x00{'x", "garbled .npy header"),
    ("images.npy", b"not npy", "garbled .npy header"),
])
def test_bad_members(tmp_path, name, data, fragment):
    path = tmp_path / "d.npz"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(name, data)
    _refused(path, fragment)


def test_truncated_member(tmp_path):
    """A header declaring more data than the member holds."""
    path, header = tmp_path / "d.npz", tmp_path / "h.npy"
    np.save(header, _images())
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("images.npy", header.read_bytes()[:-10])
        for key, y in _labels().items():
            np.save(header, y)
            z.writestr(f"{key}.npy", header.read_bytes())
    _refused(path, "array images is truncated")


def test_image_batches_refuses_a_batch_of_zero():
    data = ImageData(_images(), {})
    with pytest.raises(DataError, match="batch size 0"):
        image_batches(data, 0)
