"""DVC stages, one module per stage of dvc.yaml: each imports libraries only, never another stage."""
