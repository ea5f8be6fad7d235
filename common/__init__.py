"""ltrepro's shared package: configs, data, models, losses, metrics, training engine, reporting."""
from .config import ConfigError, ExperimentConfig, TrainConfig, load_config
from .data import (BatchLoader, CifarError, CifarFormatError, CifarNotFoundError, artificial_balance, balanced_bagging,
                   build_augment, class_balanced_sample_weights, class_counts, class_groups, default_data_root,
                   load_cifar, longtail_counts, longtail_indices, mixup, select_classes, thesis_split,
                   to_tensor_images)
from .engine import CheckpointError, NonFiniteLossError, fit, make_step, predict, seed_everything
from .losses import LOSSES, build_loss, class_weights, register_loss
from .methods import METHODS, register_method
from .metrics import (accuracy, classification_report, confusion_matrix, evaluate_predictions,
                      expected_calibration_error, group_accuracy, per_class_accuracy)
from .models import MODELS, PretrainedWeightsUnavailable, build_model, freeze_backbone
from .runstore import read_records, write_record

__version__ = "0.1.0"
