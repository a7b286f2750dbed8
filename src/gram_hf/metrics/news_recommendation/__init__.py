"""The `news_recommendation` metric; `evaluate.load` reads its script `news_recommendation.py` (see the README)."""
