"""Readers for MNIST's IDX format, gzipped or not (torchvision's on-disk layout)."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from fedsnn.errors import DataFormatError

_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: Path, dataset: str = "mnist") -> np.ndarray:
    """Read one IDX file (``.gz`` or raw) into an array of its declared shape.

    A truncated or corrupt file (bad gzip stream, bad magic, fewer or more bytes
    than its header declares) raises DataFormatError naming the file.
    """
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (EOFError, OSError, zlib.error) as err:  # gzip.BadGzipFile is an OSError
        raise DataFormatError(dataset, path, "a whole gzip stream", f"{type(err).__name__}: {err}") from err
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _DTYPES:
        raise DataFormatError(dataset, path, "an IDX header (00 00 <type> <ndim>)", f"bytes {data[:4].hex() or 'none'}")
    dtype, ndim = np.dtype(_DTYPES[data[2]]), data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataFormatError(dataset, path, f"a {header}-byte header", f"{len(data)} bytes in all")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(shape)) * dtype.itemsize
    if len(data) != expected:
        raise DataFormatError(dataset, path, f"{expected} bytes (shape {shape} declared in its header)",
                              f"{len(data)} bytes")
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write a uint8 array as IDX (gzipped when the name ends in .gz); for tests."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    payload = header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as f:
        f.write(payload)
