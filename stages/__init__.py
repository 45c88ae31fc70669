"""DVC pipeline stages: data-prep -> train -> evaluate -> robustness."""
