"""Real loaders for every supported dataset, reading the files a user already has.

Expected layout under ``data-dir`` (each dataset in its own folder, in the
format its publisher or torchvision ships):

    mnist/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]
    cifar100/cifar-100-python/{train,test,meta}
    lfw/lfw-deepfunneled/<Identity>/<Identity>_NNNN.jpg
    att_faces/s1..s40/1..10.pgm
    dvs_gesture/DVSGesture/ibmGestureTrain|ibmGestureTest/user01_<lighting>/<label>.npy  (tonic)

Nothing downloads unless ``download=True`` is asked for (only torchvision and
tonic datasets can be fetched; faces cannot). ``mnist`` with an empty
``data-dir`` uses the digits shipped inside the package, so a default run works
offline with no set-up.
"""

from __future__ import annotations

import base64
import io
import json
import pickle
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from fedsnn.task.data.base import LabelledData, Split
from fedsnn.task.data.idx import read_idx
from fedsnn.errors import DataNotFoundError

EMBEDDED_MNIST = Path(__file__).parent / "embedded" / "mnist-6k.json"


def read_embedded(path: Path = EMBEDDED_MNIST) -> dict[str, np.ndarray]:
    """The shipped sample: an .npz stored as base64 inside JSON, because Flower
    ships only text files to its apps (see embedded/SOURCE.md)."""
    blob = base64.b64decode(json.loads(path.read_text())["npz_base64"])
    with np.load(io.BytesIO(blob)) as z:
        return {k: z[k] for k in z.files}


def _images(array: np.ndarray) -> torch.Tensor:
    """uint8 [N, H, W] or [N, C, H, W] -> float32 [N, C, H, W] in [0, 1]."""
    t = torch.from_numpy(np.array(array, dtype=np.uint8)).float().div_(255.0)
    return t.unsqueeze(1) if t.dim() == 3 else t


def load_mnist(root: Path | None, download: bool = False, **_: object) -> Split:
    if root is None:
        z = read_embedded()
        train = LabelledData(_images(z["train_images"]), torch.from_numpy(z["train_labels"]).long(), 10)
        test = LabelledData(_images(z["test_images"]), torch.from_numpy(z["test_labels"]).long(), 10)
        return Split(train, test)
    raw = root / "mnist" / "MNIST" / "raw"
    names = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
    if download and not all(_find(raw, n) for n in names):
        import torchvision

        torchvision.datasets.MNIST(str(root / "mnist"), download=True)
    files = [_find(raw, n) for n in names]
    if not all(files):
        raise DataNotFoundError(
            "mnist", str(root), [str(raw / f"{n}.gz") + " (or uncompressed)" for n in names],
            "copy the four MNIST IDX files there, or set download=true to fetch them with torchvision",
        )
    xtr, ytr, xte, yte = (read_idx(f) for f in files)  # type: ignore[arg-type]
    return Split(
        LabelledData(_images(xtr), torch.from_numpy(ytr.astype(np.int64)), 10),
        LabelledData(_images(xte), torch.from_numpy(yte.astype(np.int64)), 10),
    )


def _find(folder: Path, stem: str) -> Path | None:
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.exists():
            return candidate
    return None


def load_cifar100(root: Path | None, download: bool = False, **_: object) -> Split:
    base = _require_root("cifar100", root) / "cifar100"
    folder = base / "cifar-100-python"
    if download and not (folder / "train").exists():
        import torchvision

        torchvision.datasets.CIFAR100(str(base), download=True)
    expected = [folder / "train", folder / "test", folder / "meta"]
    if not all(p.exists() for p in expected):
        raise DataNotFoundError(
            "cifar100", str(root), [str(p) for p in expected],
            "extract cifar-100-python.tar.gz there (torchvision's layout), or set download=true",
        )

    def read(name: str) -> LabelledData:
        with open(folder / name, "rb") as f:
            d = pickle.load(f, encoding="bytes")
        x = np.asarray(d[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        return LabelledData(_images(x), torch.tensor(d[b"fine_labels"], dtype=torch.long), 100, classes)

    with open(folder / "meta", "rb") as f:
        classes = tuple(c.decode() if isinstance(c, bytes) else c for c in pickle.load(f, encoding="bytes")[b"fine_label_names"])
    return Split(read("train"), read("test"))


def _stratified_split(labels: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-class random split, deterministic by seed; every class keeps >= 1 train sample."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_test = min(len(idx) - 1, int(round(len(idx) * test_fraction)))
        test.extend(idx[:n_test])
        train.extend(idx[n_test:])
    return np.sort(np.array(train, dtype=np.int64)), np.sort(np.array(test, dtype=np.int64))


def _from_split(x: torch.Tensor, y: np.ndarray, names: tuple[str, ...], tr: np.ndarray, te: np.ndarray) -> Split:
    yt = torch.from_numpy(y)
    return Split(
        LabelledData(x[tr], yt[tr], len(names), names), LabelledData(x[te], yt[te], len(names), names)
    )


def load_lfw(root: Path | None, image_size: int = 32, seed: int = 0, **_: object) -> Split:
    """LFW deep-funneled, one folder per identity; RGB resized to image_size
    (32 by default, as DLG did); a seeded, stratified 80/20 split (LFW has none)."""
    from PIL import Image

    folder = _require_root("lfw", root) / "lfw" / "lfw-deepfunneled"
    people = sorted(p for p in folder.glob("*") if p.is_dir()) if folder.exists() else []
    if not people:
        raise DataNotFoundError(
            "lfw", str(root), [str(folder / "<Identity>" / "<Identity>_0001.jpg")],
            "extract lfw-deepfunneled.tgz there (no automatic download for LFW)",
        )
    images, labels = [], []
    for label, person in enumerate(people):
        for jpg in sorted(person.glob("*.jpg")):
            with Image.open(jpg) as im:
                im = im.convert("RGB").resize((image_size, image_size), Image.BILINEAR)
                images.append(np.asarray(im).transpose(2, 0, 1))
            labels.append(label)
    y = np.array(labels, dtype=np.int64)
    tr, te = _stratified_split(y, 0.2, seed)
    return _from_split(_images(np.stack(images)), y, tuple(p.name for p in people), tr, te)


def load_att_faces(root: Path | None, image_size: int = 0, **_: object) -> Split:
    """AT&T/ORL faces: s1..s40, 10 PGMs each, 112x92 grey; images 1-8 train,
    9-10 test (8/2 per subject, as the GAMIN paper). image_size > 0 resizes."""
    from PIL import Image

    folder = _require_root("att-faces", root) / "att_faces"
    subjects = sorted((p for p in folder.glob("s*") if p.is_dir()), key=lambda p: int(p.name[1:])) if folder.exists() else []
    if not subjects:
        raise DataNotFoundError(
            "att-faces", str(root), [str(folder / "s1" / "1.pgm"), "...", str(folder / "s40" / "10.pgm")],
            "copy the AT&T (ORL) face database's s1..s40 folders there (no automatic download)",
        )
    images, labels, is_test = [], [], []
    for label, subject in enumerate(subjects):
        for pgm in sorted(subject.glob("*.pgm"), key=lambda p: int(p.stem)):
            with Image.open(pgm) as im:
                im = im.convert("L")
                if image_size:
                    im = im.resize((image_size, image_size), Image.BILINEAR)
                images.append(np.asarray(im))
            labels.append(label)
            is_test.append(int(pgm.stem) > 8)
    y, test_mask = np.array(labels, dtype=np.int64), np.array(is_test)
    names = tuple(s.name for s in subjects)
    return _from_split(_images(np.stack(images)), y, names, np.flatnonzero(~test_mask), np.flatnonzero(test_mask))


DVS_SENSOR = (128, 128, 2)


def load_dvs_gesture(root: Path | None, timesteps: int = 20, download: bool = False, **_: object) -> Split:
    """DVS128 Gesture through tonic, events binned into T frames with ToFrame.

    Frames are [T, 2, 128, 128] event counts clipped to {0, 1} (a spike in
    that pixel, polarity and bin), the binary spike tensors the attacks match.
    """
    import tonic

    base = _require_root("dvs-gesture", root) / "dvs_gesture"
    folder = base / "DVSGesture"
    expected = [folder / "ibmGestureTrain", folder / "ibmGestureTest"]
    if not download and not all(p.exists() for p in expected):
        raise DataNotFoundError(
            "dvs-gesture", str(root), [str(p / "user01_<lighting>" / "<label>.npy") for p in expected],
            "let tonic fetch it once with download=true, or copy tonic's extracted DVSGesture folder there",
        )
    to_frames = tonic.transforms.ToFrame(sensor_size=DVS_SENSOR, n_time_bins=timesteps)

    class DVSGesture(tonic.datasets.DVSGesture):  # same name: tonic derives the folder from it
        """tonic's loader, but it may touch the network only when download=True."""

        def _check_exists(self) -> bool:
            return download is False or super()._check_exists()

    def read(train: bool) -> LabelledData:
        ds = DVSGesture(save_to=str(base), train=train)
        frames, labels = [], []
        for i in range(len(ds)):
            events, label = ds[i]
            frames.append(np.minimum(to_frames(events), 1).astype(np.float32))
            labels.append(int(label))
        x = torch.from_numpy(np.stack(frames)) if frames else torch.zeros(0, timesteps, 2, 128, 128)
        return LabelledData(x, torch.tensor(labels, dtype=torch.long), 11, tuple(ds.classes))

    return Split(read(True), read(False))


def _require_root(dataset: str, root: Path | None) -> Path:
    if root is None:
        raise DataNotFoundError(
            dataset, "", [f"<data-dir>/{dataset}/..."],
            "set data-dir to the folder that holds it; only mnist has a built-in sample",
        )
    return root


LOADERS: dict[str, Callable[..., Split]] = {
    "mnist": load_mnist,
    "cifar100": load_cifar100,
    "lfw": load_lfw,
    "att-faces": load_att_faces,
    "dvs-gesture": load_dvs_gesture,
}
DATASETS = tuple(LOADERS)
