"""Plain loss functions and modules; they know nothing about the methods that compose them."""

from .adversarial import Discriminator, dann_schedule, reverse_gradient
from .contrastive import info_nce, nt_xent
from .coral import coral, covariance
from .mmd import gaussian_kernel_sum, mk_mmd, mmd

__all__ = ["Discriminator", "coral", "covariance", "dann_schedule", "gaussian_kernel_sum", "info_nce", "mk_mmd",
           "mmd", "nt_xent", "reverse_gradient"]
