"""
News recommendation: rank an impression's candidate news for a user from their click history (MIND, NRMS).

- [`load_mind`]: the raw MIND folders as [`InteractionData`] (a `datasets` builder, cached);
- [`make_synthetic_mind`]: a MIND-format folder with a planted content signal, for tests and demos (or, with
  `structure="realistic"`, a weak one: [`SyntheticStructure`]);
- [`NewsRecommendationCollator`] and [`NewsRecommendationHead`] (registered as `"news_recommendation"`);
- [`write_mind_prediction`]: leaderboard submissions.

The news content encoder pools tokens by additive attention as in PLM-NR: build the model with
`GramModel.from_encoder_pretrained(..., head_type="news_recommendation", pooling=NEWS_DEFAULT_POOLING)`.
"""

from ..synthetic_structure import SYNTHETIC_STRUCTURES, ItemStructure, SyntheticStructure
from .collator import NewsRecommendationCollator
from .head import NewsRecommendationHead, default_num_attention_heads
from .metrics import NewsRecommendationMetrics
from .mind import MIND_FIELD_MAX_LENGTHS, NEWS_DEFAULT_POOLING, build_news_catalog, load_mind
from .mind_builder import IMPRESSION_FEATURES, MIND, NEWS_TEXT_FIELDS, MINDConfig
from .mind_files import find_mind_folders
from .prediction import (
    rank_candidates,
    scores_from_predictions,
    write_mind_prediction,
    write_mind_prediction_from_output,
)
from .synthetic import MIND_PRESETS, MINDPreset, SyntheticMIND, SyntheticMINDSplit, make_synthetic_mind
from .task import NEWS_RECOMMENDATION_TASK

__all__ = [
    "NEWS_RECOMMENDATION_TASK",
    "NewsRecommendationMetrics",
    "IMPRESSION_FEATURES",
    "MIND",
    "MIND_FIELD_MAX_LENGTHS",
    "MIND_PRESETS",
    "NEWS_DEFAULT_POOLING",
    "NEWS_TEXT_FIELDS",
    "SYNTHETIC_STRUCTURES",
    "ItemStructure",
    "MINDConfig",
    "MINDPreset",
    "NewsRecommendationCollator",
    "NewsRecommendationHead",
    "SyntheticMIND",
    "SyntheticMINDSplit",
    "SyntheticStructure",
    "build_news_catalog",
    "default_num_attention_heads",
    "find_mind_folders",
    "load_mind",
    "make_synthetic_mind",
    "rank_candidates",
    "scores_from_predictions",
    "write_mind_prediction",
    "write_mind_prediction_from_output",
]
