"""The inference layer: one predictor under every protocol adapter (native and OIP)."""
