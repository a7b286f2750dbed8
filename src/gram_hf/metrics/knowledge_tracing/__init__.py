"""The `knowledge_tracing` metric; `evaluate.load` reads its script `knowledge_tracing.py` (see the README)."""
