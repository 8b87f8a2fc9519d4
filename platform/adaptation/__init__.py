"""Domain adaptation by name (source_only, mmd, coral, dann, jmmd, cdan, adabn) and label-free model selection."""

from ._base import Adaptation, DomainBatch, create_adaptation, list_adaptations, register_adaptation
from .selection import density_ratio, dev_risk

__all__ = ["Adaptation", "DomainBatch", "create_adaptation", "density_ratio", "dev_risk", "list_adaptations",
           "register_adaptation"]
