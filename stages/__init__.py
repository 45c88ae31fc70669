"""DVC pipeline stages: raw-data -> data-prep -> select -> train -> ood -> evaluate,
robustness, ood-evaluate -> audit-docs (see dvc.yaml)."""
