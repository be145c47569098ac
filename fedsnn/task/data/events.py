"""Event-camera datasets, binned into T spike frames with tonic.

Expected layouts under ``data-dir``:

    nmnist/{Train,Test}/<label>/<index:05d>.bin       N-MNIST, the publisher's layout (Train.zip / Test.zip
                                                       extracted); tonic's download lands in NMNIST/ instead
    dvs_gesture/DVSGesture/ibmGestureTrain|ibmGestureTest/user01_<lighting>/<label>.npy   DVS128 Gesture (tonic)
    dvs128_gesture/events/<...>_label<LL>_<...>.npy   cut recordings, one structured (t, x, y, p) array each,
                                                       with an optional index.csv saying where labels come from

Every recording becomes float32 frames [T, 2, H, W]: ``tonic.transforms.ToFrame``
with ``n_time_bins=T`` over the recording, event counts clipped to {0, 1} (a
spike in that bin, polarity and pixel), the binary tensors the attacks match.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from fedsnn.errors import DataFormatError, DataNotFoundError
from fedsnn.task.data.base import LabelledData, Split, require_root

NMNIST_SENSOR = (34, 34, 2)  # tonic's (x, y, polarity) convention
DVS_SENSOR = (128, 128, 2)
NMNIST_EVENT_BYTES = 5  # 40-bit events: x, y, polarity + timestamp bits 22..16, timestamp bits 15..0
DVS_CLASSES = 11
_CUT_LABEL = re.compile(r"_label(\d+)_")


def spike_frames(events: np.ndarray, sensor: tuple[int, int, int], timesteps: int) -> np.ndarray:
    """A structured event array (fields x, y, t, p) -> float32 {0, 1} frames [T, 2, H, W]."""
    import tonic

    frames = tonic.transforms.ToFrame(sensor_size=sensor, n_time_bins=timesteps)(events)
    return np.minimum(frames, 1).astype(np.float32)


def _stack(frames: list[np.ndarray], timesteps: int, sensor: tuple[int, int, int]) -> torch.Tensor:
    if not frames:
        return torch.zeros(0, timesteps, sensor[2], sensor[1], sensor[0])
    return torch.from_numpy(np.stack(frames))


# --- N-MNIST -----------------------------------------------------------------------------------------------


def nmnist_files(folder: Path) -> tuple[list[Path], list[int]]:
    """The .bin recordings of one split folder (``Train`` or ``Test``) and their labels, by MNIST index.

    The publisher numbers recordings by their 1-based MNIST index, so a complete
    set (or a subset holding the first N) has every index from 1 to its largest:
    a gap is a missing file, and is reported with the folder to put it in.
    """
    found = sorted(folder.glob("[0-9]/*.bin"))
    by_index: dict[int, Path] = {}
    for path in found:
        if not path.stem.isdigit():
            raise DataFormatError("nmnist", path, "a file named <index:05d>.bin", f"the name {path.name!r}")
        index = int(path.stem)
        if index in by_index:
            raise DataFormatError("nmnist", path, f"one recording per index; index {index} is also "
                                  f"{by_index[index]}", "two files with the same index")
        by_index[index] = path
    missing = sorted(set(range(1, max(by_index, default=0) + 1)) - set(by_index))
    if missing:
        shown = [str(folder / "<label>" / f"{i:05d}.bin") for i in missing[:20]]
        more = [f"... and {len(missing) - 20} more"] if len(missing) > 20 else []
        raise DataNotFoundError("nmnist", str(folder), shown + more,
                                "the recordings are numbered 1..N without gaps; re-extract the publisher's zip")
    paths = [by_index[i] for i in sorted(by_index)]
    return paths, [int(p.parent.name) for p in paths]


def read_nmnist(path: Path) -> np.ndarray:
    """One N-MNIST .bin file through tonic's reader, after checking it is whole and fits 34 x 34."""
    import tonic

    size = path.stat().st_size
    if size == 0 or size % NMNIST_EVENT_BYTES:
        raise DataFormatError("nmnist", path, f"a non-zero multiple of {NMNIST_EVENT_BYTES} bytes (40-bit events)",
                              f"{size} bytes")
    events = tonic.io.read_mnist_file(str(path), dtype=tonic.datasets.NMNIST.dtype)
    if len(events) and (events["x"].max() >= NMNIST_SENSOR[0] or events["y"].max() >= NMNIST_SENSOR[1]):
        raise DataFormatError("nmnist", path, "events inside the 34 x 34 ATIS sensor",
                              f"x up to {events['x'].max()}, y up to {events['y'].max()}")
    return events


def write_nmnist(path: Path, x: np.ndarray, y: np.ndarray, t_us: np.ndarray, on: np.ndarray) -> None:
    """Write events in the publisher's 40-bit .bin layout (byte 0 x, byte 1 y, byte 2 polarity bit 7 and
    timestamp bits 22..16, bytes 3-4 timestamp bits 15..0); for tests."""
    t = np.asarray(t_us, dtype=np.uint32)
    raw = np.stack([x, y, (np.asarray(on, np.uint32) << 7) | ((t >> 16) & 0x7F), (t >> 8) & 0xFF, t & 0xFF], 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(raw.astype(np.uint8).tobytes())


def load_nmnist(root: Path | None, timesteps: int = 20, download: bool = False, **_: object) -> Split:
    """N-MNIST (Orchard et al. 2015): 10 digit classes, frames [T, 2, 34, 34]; the publisher's split."""
    import tonic

    base = require_root("nmnist", root)
    folder = next((f for f in (base / "nmnist", base / "NMNIST") if (f / "Train").is_dir()), base / "nmnist")
    if download and not (folder / "Train").is_dir():
        for train in (True, False):
            tonic.datasets.NMNIST(save_to=str(base), train=train)  # fetches into <data-dir>/NMNIST
        folder = base / "NMNIST"
    expected = [folder / "Train", folder / "Test"]
    if not all(p.is_dir() for p in expected):
        raise DataNotFoundError("nmnist", str(root), [str(p / "<label>" / "<index:05d>.bin") for p in expected],
                                "extract the publisher's Train.zip and Test.zip there, or set download=true (tonic)")
    classes = tuple(tonic.datasets.NMNIST.classes)

    def read(split_folder: Path) -> LabelledData:
        paths, labels = nmnist_files(split_folder)
        if not paths:
            raise DataNotFoundError("nmnist", str(root), [str(split_folder / "<label>" / "00001.bin")],
                                    "extract the publisher's Train.zip and Test.zip there")
        frames = [spike_frames(read_nmnist(p), NMNIST_SENSOR, timesteps) for p in paths]
        return LabelledData(_stack(frames, timesteps, NMNIST_SENSOR), torch.tensor(labels), 10, classes)

    return Split(read(folder / "Train"), read(folder / "Test"))


# --- DVS128 Gesture ----------------------------------------------------------------------------------------


def load_dvs_gesture(root: Path | None, timesteps: int = 20, download: bool = False, **_: object) -> Split:
    """DVS128 Gesture (Amir et al. 2017), frames [T, 2, 128, 128], 11 classes.

    Reads tonic's layout when present (or fetched with download=True), else the
    cut recordings of ``dvs128_gesture/events``; see ``load_gesture_cuts``.
    """
    import tonic

    base = require_root("dvs-gesture", root)
    folder = base / "dvs_gesture" / "DVSGesture"
    expected = [folder / "ibmGestureTrain", folder / "ibmGestureTest"]
    cuts = base / "dvs128_gesture" / "events"
    if not download and not all(p.exists() for p in expected):
        if cuts.is_dir():
            return load_gesture_cuts(cuts, timesteps)
        raise DataNotFoundError(
            "dvs-gesture", str(root), [str(p / "user01_<lighting>" / "<label>.npy") for p in expected]
            + [f"or {cuts / '<name>_label<LL>_<name>.npy'} (cut recordings, fields t, x, y, p)"],
            "let tonic fetch it once with download=true, or copy tonic's extracted DVSGesture folder there",
        )

    class DVSGesture(tonic.datasets.DVSGesture):  # same name: tonic derives the folder from it
        """tonic's loader, but it may touch the network only when download=True."""

        def _check_exists(self) -> bool:
            return download is False or super()._check_exists()

    def read(train: bool) -> LabelledData:
        ds = DVSGesture(save_to=str(base / "dvs_gesture"), train=train)
        frames, labels = [], []
        for i in range(len(ds)):
            events, label = ds[i]
            frames.append(spike_frames(events, DVS_SENSOR, timesteps))
            labels.append(int(label))
        return LabelledData(_stack(frames, timesteps, DVS_SENSOR), torch.tensor(labels, dtype=torch.long),
                            DVS_CLASSES, tuple(ds.classes))

    return Split(read(True), read(False))


def load_gesture_cuts(folder: Path, timesteps: int) -> Split:
    """Cut DVS128 Gesture recordings, one ``.npy`` structured array (t, x, y, p) per cut.

    The label is the ``_label<LL>_`` part of the file name (0-based, tonic's
    numbering); ``index.csv`` beside ``events/`` may say where it comes from
    (column ``label_source``), which becomes ``LabelledData.label_source``
    (``'inferred ...'`` for ../shared/data/dvs128_gesture). All cuts form the
    training split and the test split is empty: there is no official split of
    cuts, and they serve as attack victims (Tables V and VI).
    """
    import tonic

    paths = sorted(folder.glob("*.npy"))
    if not paths:
        raise DataNotFoundError("dvs-gesture", str(folder), [str(folder / "<name>_label<LL>_<name>.npy")],
                                "copy the cut recordings there")
    sources = _label_sources(folder.parent / "index.csv")
    frames, labels = [], []
    for path in paths:
        match = _CUT_LABEL.search(path.name)
        if not match or int(match.group(1)) >= DVS_CLASSES:
            raise DataFormatError("dvs-gesture", path, f"a name holding _label<LL>_ with LL < {DVS_CLASSES}",
                                  repr(path.name))
        try:
            events = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as err:
            raise DataFormatError("dvs-gesture", path, "a whole .npy array", f"{type(err).__name__}: {err}") from err
        if events.dtype.names is None or not {"t", "x", "y", "p"} <= set(events.dtype.names):
            raise DataFormatError("dvs-gesture", path, "a structured array with fields t, x, y, p",
                                  f"dtype {events.dtype}")
        if len(events) and (events["x"].max() >= DVS_SENSOR[0] or events["y"].max() >= DVS_SENSOR[1]):
            raise DataFormatError("dvs-gesture", path, "events inside the 128 x 128 DVS128 sensor",
                                  f"x up to {events['x'].max()}, y up to {events['y'].max()}")
        frames.append(spike_frames(events, DVS_SENSOR, timesteps))
        labels.append(int(match.group(1)))
    kinds = sorted({sources.get(f"events/{p.name}", "file name") for p in paths})
    classes = tuple(tonic.datasets.DVSGesture.classes)
    train = LabelledData(_stack(frames, timesteps, DVS_SENSOR), torch.tensor(labels), DVS_CLASSES, classes,
                         label_source="; ".join(kinds))
    return Split(train, train.subset([]))


def _label_sources(index: Path) -> dict[str, str]:
    """file -> label_source from an index.csv (columns file, label_source), {} when there is none."""
    if not index.exists():
        return {}
    with index.open(newline="") as f:
        return {row["file"]: row.get("label_source") or "file name" for row in csv.DictReader(f)}


EVENT_LOADERS: dict[str, Callable[..., Split]] = {"nmnist": load_nmnist, "dvs-gesture": load_dvs_gesture}
__all__ = ["EVENT_LOADERS", "load_dvs_gesture", "load_gesture_cuts", "load_nmnist", "spike_frames", "write_nmnist"]
