"""Decision records: one JSON line per answered /predict, /explain and OIP infer request.

:mod:`.outcome` carries a request's outcome from the response builder to the chain step
(:mod:`.step`), :mod:`.writer` writes records off the hot path, :mod:`.query` and
``python -m serving.decisions`` read them back. The record format is
``decision_record.v1.schema.json`` (JSON Schema, versioned by ``schema_version``).
"""
