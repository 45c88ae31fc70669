"""What several stages share: params, artifacts, canonical outputs, models, gates, documents.

The entry points, ``python -m stages.<name>`` (see dvc.yaml), are the modules of ``stages/``;
nothing here is run on its own."""
