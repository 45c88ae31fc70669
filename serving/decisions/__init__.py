"""Decision records: one JSON line per answered /predict, /explain and OIP infer request.

:mod:`.outcome` carries a request's outcome from the response builder to the chain step
(:mod:`.step`), :mod:`.writer` writes records off the hot path, :mod:`.query` and
``python -m serving.decisions`` read them back, :mod:`.trace` follows a record's lineage
chain. The record format is ``decision_record.v3.schema.json`` (JSON Schema, versioned by
``schema_version``; ``decision_record.v1``/``v2.schema.json`` describe older records, read
back through :mod:`.legacy`).
"""
