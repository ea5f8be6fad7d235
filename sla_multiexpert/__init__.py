"""Seed 003: SLA re-weighting + logit adjustment on a multi-domain expert ResNet-32."""
from . import train  # noqa: F401  (registers the sla_multiexpert method and its model)
