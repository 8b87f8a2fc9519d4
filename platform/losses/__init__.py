"""Plain loss functions and modules; they know nothing about the methods that compose them."""

from .adversarial import (Discriminator, RandomizedMultilinear, certainty_weights, dann_schedule, multilinear_map,
                          reverse_gradient)
from .contrastive import info_nce, nt_xent
from .coral import coral, covariance
from .mmd import gaussian_kernel_sum, heuristic_bandwidths, joint_mmd, mk_mmd, mmd

__all__ = ["Discriminator", "RandomizedMultilinear", "certainty_weights", "coral", "covariance", "dann_schedule",
           "gaussian_kernel_sum", "heuristic_bandwidths", "info_nce", "joint_mmd", "mk_mmd", "mmd", "multilinear_map",
           "nt_xent", "reverse_gradient"]
