"""Real loaders for every supported dataset, reading the files a user already has.

Expected layout under ``data-dir`` (each dataset in its own folder, in the
format its publisher or torchvision ships):

    mnist/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]
    cifar100/cifar-100-python/{train,test,meta}
    lfw/lfw-deepfunneled/<Identity>/<Identity>_NNNN.jpg
    att_faces/s1..s40/1..10.pgm
    nmnist/{Train,Test}/<label>/<index>.bin, dvs_gesture/... : event data, see fedsnn.task.data.events

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

from fedsnn.errors import DataFormatError, DataNotFoundError
from fedsnn.task.data.base import LabelledData, Split, require_root
from fedsnn.task.data.events import EVENT_LOADERS
from fedsnn.task.data.idx import read_idx

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
    for images, labels, image_file, label_file in ((xtr, ytr, files[0], files[1]), (xte, yte, files[2], files[3])):
        if images.ndim != 3 or images.shape[1:] != (28, 28):
            raise DataFormatError("mnist", image_file, "images of 28 x 28", f"shape {images.shape}")
        if labels.ndim != 1 or len(labels) != len(images):
            raise DataFormatError("mnist", label_file, f"{len(images)} labels, one per image of {image_file.name}",
                                  f"shape {labels.shape}")
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
    base = require_root("cifar100", root) / "cifar100"
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

    def unpickle(name: str) -> dict:
        try:
            with open(folder / name, "rb") as f:
                return pickle.load(f, encoding="bytes")
        except (pickle.UnpicklingError, EOFError, ValueError, AttributeError) as err:
            raise DataFormatError("cifar100", folder / name, "a whole cifar-100-python pickle",
                                  f"{type(err).__name__}: {err}") from err

    def read(name: str) -> LabelledData:
        d = unpickle(name)
        data, labels = d.get(b"data"), d.get(b"fine_labels")
        if data is None or labels is None or np.ndim(data) != 2 or np.shape(data)[1] != 3072 or len(labels) != len(data):
            raise DataFormatError("cifar100", folder / name, "b'data' [N, 3072] uint8 and N b'fine_labels'",
                                  f"keys {sorted(d)}, data shape {np.shape(data)}, {len(labels or [])} labels")
        x = np.asarray(data, dtype=np.uint8).reshape(-1, 3, 32, 32)
        return LabelledData(_images(x), torch.tensor(labels, dtype=torch.long), 100, classes)

    names = unpickle("meta").get(b"fine_label_names", [])
    if len(names) != 100:
        raise DataFormatError("cifar100", folder / "meta", "100 b'fine_label_names'", f"{len(names)}")
    classes = tuple(c.decode() if isinstance(c, bytes) else c for c in names)
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


def _read_image(dataset: str, path: Path, mode: str, size: int) -> np.ndarray:
    """One image file as uint8 [H, W] or [H, W, C] (resized to size x size when size > 0)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im = im.convert(mode)
            if size:
                im = im.resize((size, size), Image.BILINEAR)
            return np.asarray(im)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:  # PIL: truncated or not an image
        raise DataFormatError(dataset, path, f"a readable {path.suffix} image", f"{type(err).__name__}: {err}") from err


def lfw_missing(folder: Path, people: list[Path]) -> list[str]:
    """Images missing from LFW identity folders: each holds <Name>_0001.jpg..<Name>_NNNN.jpg without gaps,
    and NNNN is its count in lfw-names.txt (beside lfw-deepfunneled/) when that file is there."""
    names_file = folder.parent / "lfw-names.txt"
    counts = {}
    if names_file.exists():
        counts = {name: int(n) for name, n in (line.split() for line in names_file.read_text().splitlines() if line.strip())}
    missing = []
    for person in people:
        numbers = {int(p.stem.rsplit("_", 1)[-1]) for p in person.glob(f"{person.name}_*.jpg")}
        last = counts.get(person.name, max(numbers, default=0))
        missing += [str(person / f"{person.name}_{i:04d}.jpg") for i in range(1, last + 1) if i not in numbers]
    return missing


def load_lfw(root: Path | None, image_size: int = 32, seed: int = 0, **_: object) -> Split:
    """LFW deep-funneled, one folder per identity; RGB resized to image_size
    (32 by default, as DLG did); a seeded, stratified 80/20 split (LFW has none).
    A missing image (a gap in an identity's numbering, or fewer than
    lfw-names.txt lists) stops the load with the list of missing files."""
    folder = require_root("lfw", root) / "lfw" / "lfw-deepfunneled"
    people = sorted(p for p in folder.glob("*") if p.is_dir()) if folder.exists() else []
    if not people:
        raise DataNotFoundError(
            "lfw", str(root), [str(folder / "<Identity>" / "<Identity>_0001.jpg")],
            "extract lfw-deepfunneled.tgz there (no automatic download for LFW)",
        )
    if missing := lfw_missing(folder, people):
        raise DataNotFoundError("lfw", str(root), missing[:20] + ([f"... and {len(missing) - 20} more"] if len(missing) > 20 else []),
                                "extract lfw-deepfunneled.tgz there again (these images are missing)")
    images, labels = [], []
    for label, person in enumerate(people):
        for jpg in sorted(person.glob("*.jpg")):
            images.append(_read_image("lfw", jpg, "RGB", image_size).transpose(2, 0, 1))
            labels.append(label)
    y = np.array(labels, dtype=np.int64)
    tr, te = _stratified_split(y, 0.2, seed)
    return _from_split(_images(np.stack(images)), y, tuple(p.name for p in people), tr, te)


ATT_SUBJECTS, ATT_IMAGES = 40, 10


def load_att_faces(root: Path | None, image_size: int = 0, **_: object) -> Split:
    """AT&T/ORL faces: s1..s40, 10 PGMs each, 112x92 grey; images 1-8 train,
    9-10 test (8/2 per subject, as the GAMIN paper). image_size > 0 resizes.
    Every one of the 400 files must be there; the missing ones are listed."""
    folder = require_root("att-faces", root) / "att_faces"
    expected = [folder / f"s{s}" / f"{i}.pgm" for s in range(1, ATT_SUBJECTS + 1) for i in range(1, ATT_IMAGES + 1)]
    missing = [str(p) for p in expected if not p.is_file()]
    if missing:
        shown = missing if len(missing) < 20 else [str(folder / "s1" / "1.pgm"), "...", str(folder / "s40" / "10.pgm"),
                                                   f"({len(missing)} of {len(expected)} missing, first {missing[0]})"]
        raise DataNotFoundError("att-faces", str(root), shown,
                                "copy the AT&T (ORL) face database's s1..s40 folders there (no automatic download)")
    images = [_read_image("att-faces", p, "L", image_size) for p in expected]
    if len({im.shape for im in images}) > 1:
        odd = next(p for p, im in zip(expected, images) if im.shape != images[0].shape)
        raise DataFormatError("att-faces", odd, f"the size of {expected[0]} ({images[0].shape})", "another size")
    y = np.repeat(np.arange(ATT_SUBJECTS), ATT_IMAGES)
    test_mask = np.tile(np.arange(1, ATT_IMAGES + 1) > 8, ATT_SUBJECTS)
    names = tuple(f"s{s}" for s in range(1, ATT_SUBJECTS + 1))
    return _from_split(_images(np.stack(images)), y, names, np.flatnonzero(~test_mask), np.flatnonzero(test_mask))


LOADERS: dict[str, Callable[..., Split]] = {
    "mnist": load_mnist,
    "cifar100": load_cifar100,
    "lfw": load_lfw,
    "att-faces": load_att_faces,
    **EVENT_LOADERS,
}
DATASETS = tuple(LOADERS)
EVENT_DATASETS = tuple(EVENT_LOADERS)  # frames [N, T, 2, H, W]: SNN-LeNet only, no GAMIN
