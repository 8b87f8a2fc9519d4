"""Task heads, losses and metrics (predictive maintenance, defect detection)."""
