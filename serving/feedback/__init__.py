"""Ground-truth feedback: ``POST /feedback`` by request id, its records, and the index of
recent decisions that resolves a request id to what was decided."""
