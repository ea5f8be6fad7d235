import numpy as np
import pytest

from common.metrics import (classification_report, confusion_matrix, evaluate_predictions,
                            expected_calibration_error, group_accuracy)


def test_ece_constructed_case():
    # 10 samples at confidence 0.9 with 8 right, 5 at 0.6 all right:
    # 10/15 * |0.8 - 0.9| + 5/15 * |1.0 - 0.6| = 0.0667 + 0.1333 = 0.2
    probs = np.array([[0.9, 0.1]] * 10 + [[0.6, 0.4]] * 5)
    labels = np.array([0] * 8 + [1] * 2 + [0] * 5)
    assert expected_calibration_error(probs, labels, 15) == pytest.approx(0.2)


def test_ece_perfectly_calibrated_is_zero():
    probs = np.array([[1.0, 0.0]] * 4)
    assert expected_calibration_error(probs, np.zeros(4, int)) == pytest.approx(0.0)


def test_group_accuracy_shot_and_thirds():
    train_counts = [500, 50, 5]
    labels = np.array([0, 0, 1, 1, 2, 2])
    preds = np.array([0, 0, 1, 0, 0, 0])
    assert group_accuracy(labels, preds, train_counts, "shot") == {"many": 1.0, "medium": 0.5, "few": 0.0}
    assert group_accuracy(labels, preds, train_counts, "thirds") == {"head": 1.0, "middle": 0.5, "tail": 0.0}


def test_report_and_confusion():
    labels, preds = np.array([0, 0, 1, 2]), np.array([0, 1, 1, 2])
    rep = classification_report(labels, preds, 3)
    assert rep["precision"] == pytest.approx([1.0, 0.5, 1.0]) and rep["recall"] == pytest.approx([0.5, 1.0, 1.0])
    assert confusion_matrix(labels, preds, 3).tolist() == [[1, 1, 0], [0, 1, 0], [0, 0, 1]]
    out = evaluate_predictions(np.eye(3)[preds], labels, [100, 30, 2])
    assert out["accuracy"] == 0.75 and out["few"] == 1.0 and out["medium"] == pytest.approx(2 / 3)  # 100 is not > 100: class 0 is medium
