"""One training loop for pretraining and transfer, driven by a config file plus overrides."""

from .config import DEFAULTS, load_config, validate
from .data import RunData, prepare_data
from .loop import EarlyStopping, run_epochs
from .ray_runner import fit_on_ray
from .run import feature_mmd, predict, train_loop
from .strategies import Strategy, create_strategy, list_strategies

__all__ = ["DEFAULTS", "EarlyStopping", "RunData", "Strategy", "create_strategy", "feature_mmd", "fit_on_ray", "list_strategies",
           "load_config", "predict", "prepare_data", "run_epochs", "train_loop", "validate"]
