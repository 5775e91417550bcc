"""Coverage beyond the measured k: scaling-law fits, per-problem forecasts and cost."""
