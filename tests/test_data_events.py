"""Event loaders on small recordings the test writes: N-MNIST .bin files, DVS128 Gesture cuts;
what they say about missing or damaged files; N-MNIST through the federation (in-memory grid)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from flower_grid import InMemoryGrid
from flwr.app import Context, RecordDict

from clients.client_app import app as client_app
from fedsnn.experiment.runs import read_jsonl
from server.server_app import main as server_main
from fedsnn.errors import DataFormatError, DataNotFoundError, RunConfigError
from fedsnn.experiment.config import RunConfig
from fedsnn.task.data import EVENT_DATASETS, load_dataset
from fedsnn.task.data.events import load_dvs_gesture, load_nmnist, read_nmnist, write_nmnist

rng = np.random.default_rng(0)
GESTURE_DTYPE = np.dtype([("t", "<i8"), ("x", "<i2"), ("y", "<i2"), ("p", "i1")])


def make_nmnist(root, train_labels=(5, 0, 4, 1, 9, 2), test_labels=(7, 2, 1), events=300):
    """Recordings numbered 1..N per split, in <split>/<label>/<index:05d>.bin, 300 ms long."""
    for split, labels in (("Train", train_labels), ("Test", test_labels)):
        for index, label in enumerate(labels, 1):
            t = np.sort(rng.integers(0, 300_000, events))
            write_nmnist(root / "nmnist" / split / str(label) / f"{index:05d}.bin",
                         rng.integers(0, 34, events), rng.integers(0, 34, events), t, rng.integers(0, 2, events))


def test_nmnist_bin_round_trip_through_tonics_reader(tmp_path):
    path = tmp_path / "00001.bin"
    write_nmnist(path, np.array([3, 33]), np.array([0, 17]), np.array([5, 2**22 + 7]), np.array([1, 0]))
    events = read_nmnist(path)
    assert events["x"].tolist() == [3, 33] and events["y"].tolist() == [0, 17]
    assert events["t"].tolist() == [5, 2**22 + 7] and events["p"].tolist() == [1, 0]


def test_nmnist_frames_and_labels_in_index_order(tmp_path):
    make_nmnist(tmp_path)
    split = load_nmnist(tmp_path, timesteps=4)
    assert split.train.samples.shape == (6, 4, 2, 34, 34) and split.test.samples.shape == (3, 4, 2, 34, 34)
    assert split.train.is_event and split.train.num_classes == 10
    assert split.train.labels.tolist() == [5, 0, 4, 1, 9, 2] and split.test.labels.tolist() == [7, 2, 1]
    assert set(split.train.samples.unique().tolist()) == {0.0, 1.0}
    assert (split.train.samples.sum((1, 2, 3, 4)) > 0).all()
    assert load_dataset("nmnist", str(tmp_path), timesteps=4).train.samples.equal(split.train.samples)


def test_nmnist_one_event_lands_in_its_pixel_polarity_and_bin(tmp_path):
    make_nmnist(tmp_path, train_labels=(3,), test_labels=(3,))
    write_nmnist(tmp_path / "nmnist" / "Train" / "3" / "00001.bin", np.array([0, 7, 33]), np.array([0, 20, 33]),
                 np.array([0, 150_000, 300_000]), np.array([0, 1, 0]))
    frames = load_nmnist(tmp_path, timesteps=3).train.samples[0]  # [T, 2, H, W]
    assert frames[1, 1, 20, 7] == 1 and frames[0, 0, 0, 0] == 1
    assert frames.sum() == 2  # tonic's time bins are half-open: the event at the last timestamp is dropped


def test_nmnist_gap_in_the_numbering_lists_the_missing_recording(tmp_path):
    make_nmnist(tmp_path)
    (tmp_path / "nmnist" / "Train" / "4" / "00003.bin").unlink()
    with pytest.raises(DataNotFoundError, match=r"Train/<label>/00003\.bin"):
        load_nmnist(tmp_path)


def test_truncated_nmnist_recording_names_the_file(tmp_path):
    make_nmnist(tmp_path)
    victim = tmp_path / "nmnist" / "Test" / "2" / "00002.bin"
    victim.write_bytes(victim.read_bytes()[:-2])
    with pytest.raises(DataFormatError, match=r"Test/2/00002\.bin.*multiple of 5 bytes.*1498 bytes"):
        load_nmnist(tmp_path)


def test_nmnist_events_outside_the_sensor_are_refused(tmp_path):
    make_nmnist(tmp_path)
    write_nmnist(tmp_path / "nmnist" / "Train" / "5" / "00001.bin", np.array([40]), np.array([1]), np.array([1]),
                 np.array([1]))
    with pytest.raises(DataFormatError, match="34 x 34"):
        load_nmnist(tmp_path)


def make_cuts(root, labels=(0, 1, 2), index=True):
    events_dir = root / "dvs128_gesture" / "events"
    events_dir.mkdir(parents=True)
    rows = ["file,label0,label_source"]
    for label in labels:
        n = 400
        ev = np.zeros(n, GESTURE_DTYPE)
        ev["t"], ev["x"], ev["y"], ev["p"] = (np.sort(rng.integers(0, 1_450_000, n)), rng.integers(0, 128, n),
                                              rng.integers(0, 128, n), rng.integers(0, 2, n))
        name = f"userUNK_lightingUNK_label{label:02d}_gesture_slayer{label + 1:02d}.npy"
        np.save(events_dir / name, ev)
        rows.append(f"events/{name},{label},inferred (visual check)")
    if index:
        (root / "dvs128_gesture" / "index.csv").write_text("\n".join(rows) + "\n")
    return events_dir


def test_dvs_gesture_cuts_carry_their_inferred_labels(tmp_path):
    make_cuts(tmp_path)
    split = load_dvs_gesture(tmp_path, timesteps=5)
    assert split.train.samples.shape == (3, 5, 2, 128, 128) and len(split.test) == 0
    assert split.train.labels.tolist() == [0, 1, 2] and split.train.num_classes == 11
    assert split.train.label_source == "inferred (visual check)"
    assert split.train.subset([1]).label_source == "inferred (visual check)"


def test_dvs_gesture_cuts_without_index_say_labels_come_from_file_names(tmp_path):
    make_cuts(tmp_path, index=False)
    assert load_dvs_gesture(tmp_path, timesteps=2).train.label_source == "file name"


def test_truncated_gesture_cut_names_the_file(tmp_path):
    victim = sorted(make_cuts(tmp_path).glob("*.npy"))[1]
    victim.write_bytes(victim.read_bytes()[:-100])
    with pytest.raises(DataFormatError, match=victim.name):
        load_dvs_gesture(tmp_path, timesteps=2)


@pytest.mark.parametrize("dataset", EVENT_DATASETS)
def test_event_data_needs_snn_lenet_and_no_gamin(dataset):
    assert set(EVENT_DATASETS) == {"nmnist", "dvs-gesture"}
    with pytest.raises(RunConfigError, match="'snn-lenet' for event data"):
        RunConfig(dataset=dataset, data_dir="/tmp", model="lenet", gamin_rounds="none")
    with pytest.raises(RunConfigError, match="gamin-rounds.*'none' for event data"):
        RunConfig(dataset=dataset, data_dir="/tmp", model="snn-lenet")
    RunConfig(dataset=dataset, data_dir="/tmp", model="snn-lenet", gamin_rounds="none")


def test_nmnist_federation_attacks_event_updates_every_round(tmp_path):
    """The real ServerApp and ClientApp on the in-memory grid: SNN-LeNet on N-MNIST frames, iDLG each round."""
    make_nmnist(tmp_path / "data", train_labels=tuple(range(10)) * 2, test_labels=tuple(range(10)), events=200)
    run_config = {"dataset": "nmnist", "data-dir": str(tmp_path / "data"), "model": "snn-lenet", "timesteps": 3,
                  "num-rounds": 2, "mode": "fedsgd", "batch-size": 2, "attacks": "idlg", "attack-iterations": 2,
                  "attack-samples": 1, "attack-time-budget": 2.0, "eval-samples": 4, "judge": "none", "gamin-rounds": "none",
                  "output-dir": str(tmp_path / "runs")}
    grid = InMemoryGrid(client_app, 2, run_config)
    server_main(grid, Context(run_id=1, node_id=0, node_config={}, state=RecordDict(), run_config=run_config))
    (run_dir,) = list((tmp_path / "runs").iterdir())
    metrics = read_jsonl(run_dir / "metrics.jsonl")
    assert [r["round"] for r in metrics] == [0, 1, 2] and all(r["clients-ok"] == 2 for r in metrics[1:])
    leakage = read_jsonl(run_dir / "leakage.jsonl")
    assert sorted({r["round"] for r in leakage}) == [1, 2] and len(leakage) == 4  # 2 clients x 2 rounds
    assert all(r["status"] != "failed" for r in leakage), [r.get("reason") for r in leakage]
    assert {r.get("label-source") for r in leakage if "samples" in r} == {"given"}  # the DVS cuts' records say 'inferred ...'
    rebuilt = torch.load(next((run_dir / "reconstructions").glob("r001-*.pt")), weights_only=True)
    assert any(t.dim() == 5 and t.shape[-3:] == (2, 34, 34) for t in rebuilt.values() if isinstance(t, torch.Tensor))
