"""record.json's layout: compact where it is bulky, the same data as written."""
import json

import numpy as np

from common.runstore import read_record, write_record


def test_a_record_keeps_each_list_of_numbers_on_one_line_and_reads_back_the_same(tmp_path):
    confusion = np.diag(np.arange(100))         # CIFAR-100's confusion matrix, as sparse as a good model's
    metrics = {"test": {"accuracy": np.float64(0.5), "ece": float("nan"), "confusion_matrix": confusion,
                        "per_class_accuracy": [0.25] * 100, "few": None, "balanced": np.bool_(True)}}
    path = write_record(tmp_path / "run", {"model": {"kwargs": {}}}, metrics, "2026-01-01T00:00:00",
                        classes=[f"c{i}" for i in range(100)])
    text = path.read_text()
    record = read_record(path)
    assert record["metrics"]["test"]["confusion_matrix"] == confusion.tolist()
    assert record["metrics"]["test"]["accuracy"] == 0.5 and np.isnan(record["metrics"]["test"]["ece"])
    assert record["metrics"]["test"]["balanced"] is True                  # numpy's bool as JSON's, not "True"
    assert record["config"] == {"model": {"kwargs": {}}} and record["classes"][99] == "c99"
    lines = text.splitlines()
    assert "    [0, 1" + ", 0" * 98 + "]," in lines          # a row of the matrix, one line
    assert '   "per_class_accuracy": [' + ", ".join(["0.25"] * 100) + "]," in lines
    assert len(text) < len(json.dumps(record, indent=1)) / 2
