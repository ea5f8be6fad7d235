"""Data: CIFAR reading, long-tailed subsets, re-sampling, batched augmentation.

Synthetic CIFAR lives in ``common.data.synthetic`` (also a command-line tool)."""
from .augment import (AUGMENTATIONS, CIFAR10_MEAN, CIFAR10_STD, CIFAR100_MEAN, CIFAR100_STD,
                      IMAGENET_MEAN, IMAGENET_STD, LDAM_MEAN, LDAM_STD, NORMALISATIONS, autoaugment_cifar,
                      build_augment, color_jitter, gaussian_blur, mixup, mixup_loss, normalize,
                      random_crop, random_flip, random_grayscale, random_resized_crop, resize,
                      simclr_color)
from .cifar import (CifarError, CifarFormatError, CifarNotFoundError, RestrictedUnpickler, default_data_root,
                    load_cifar, safe_load_pickle)
from .loader import BatchLoader, to_tensor_images
from .longtail import (GROUP_NAMES, LONGTAIL_PROFILES, class_counts, class_groups, fold_split, heldout_indices,
                       longtail_counts, longtail_indices, select_classes, thesis_split)
from .sampling import artificial_balance, balanced_bagging, class_balanced_sample_weights
