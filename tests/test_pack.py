"""A pack (one compressed file of the training images some runs need and the test set) stands in
for the official files: the same images, labels and provenance, and a clear stop for an image it
does not hold."""
import numpy as np
import pytest

from common.config import DataConfig
from common.data import CifarError, CifarNotFoundError, load_cifar
from common.data.cifar import missing_files, pack_path
from common.data.pack import main as pack_main
from common.data.provenance import data_provenance
from common.datasets import build_datasets


@pytest.fixture(scope="module")
def packed(synthetic_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("packed")
    pack_main(["--dataset", "cifar10", "--imb-factor", "0.1", "0.2", "--data", str(synthetic_root), "--out", str(out)])
    return out


@pytest.mark.parametrize("imb_factor", [0.1, 0.2])
def test_a_pack_gives_the_same_run_data_as_the_official_files(synthetic_root, packed, imb_factor):
    cfg = DataConfig(dataset="cifar10", imb_factor=imb_factor)
    official, from_pack = build_datasets(cfg, synthetic_root), build_datasets(cfg, packed)
    for part in ("train", "val"):
        assert (official[part] is None) == (from_pack[part] is None)
    assert np.array_equal(official["train"][0], from_pack["train"][0])
    assert np.array_equal(official["train"][1], from_pack["train"][1])
    assert np.array_equal(official["tests"]["test"][0], from_pack["tests"]["test"][0])
    assert official["train_counts"] == from_pack["train_counts"] and official["classes"] == from_pack["classes"]
    assert data_provenance("cifar10", str(packed)) == data_provenance("cifar10", str(synthetic_root))
    assert missing_files("cifar10", packed) == [] and missing_files("cifar100", packed)


def test_an_image_the_pack_does_not_hold_stops_the_run(packed):
    with pytest.raises(CifarNotFoundError, match="holds .* of the 1200 training images"):
        build_datasets(DataConfig(dataset="cifar10", imb_factor=0.5), packed)
    images, labels, _ = load_cifar("cifar10", packed)
    assert len(images) == len(labels) == 1200


def test_a_damaged_pack_names_itself(tmp_path):
    pack_path("cifar10", tmp_path).write_bytes(b"not a pack")
    with pytest.raises(CifarError, match="pack.npz is damaged"):
        load_cifar("cifar10", tmp_path, train=False)


def test_pack_command_checks_its_input(tmp_path, capsys):
    with pytest.raises(SystemExit):
        pack_main(["--dataset", "cifar10", "--imb-factor", "100", "--data", str(tmp_path), "--out", str(tmp_path)])
    assert "ratio 100 is 0.01" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        pack_main(["--dataset", "cifar10", "--imb-factor", "0.01", "--data", str(tmp_path), "--out", str(tmp_path)])
    assert "files not found" in capsys.readouterr().err
