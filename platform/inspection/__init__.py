"""Visual inspection: anomaly detection from defect-free images (PatchCore, PaDiM) on pretrained
image encoders, scored per image and per pixel."""

from .anomaly import AnomalyConfig, AnomalyModel, FitInfo, evaluate_anomaly, fit_anomaly, score_images

__all__ = ["AnomalyConfig", "AnomalyModel", "FitInfo", "evaluate_anomaly", "fit_anomaly", "score_images"]
