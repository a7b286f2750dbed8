"""The knowledge-tracing head: a DKT-style LSTM over (item vector, response) pairs scored against the next item."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from numbers import Integral

import torch
from torch import nn

from ...heads import GramHead, HeadOutput, register_head
from ...precision import run_recurrent

# Batch keys the head (or the engine) already uses; a feature cannot take one of these names.
RESERVED_KEYS = frozenset({"item_index", "item_ref", "labels", "item_vectors"})


@register_head("knowledge_tracing")
class KnowledgeTracingHead(GramHead):
    r"""
    Predicts whether a learner answers each item of their sequence correctly.

    The input at step t is the previous interaction, `[h_{t-1} * r_{t-1}; h_{t-1} * (1 - r_{t-1})]` (DKT's split of
    the item by correctness, with item vectors in place of one-hot ids), and a learned start vector at t = 0. A
    stacked LSTM reads the inputs; the logit at t is the LSTM state projected to the item space and dotted with the
    current item vector `h_t`, so the prediction depends on the item's content. The loss is the binary cross-entropy
    over non-padding positions.

    Optional categorical features of the interactions (e.g. EdNet's question `part`, a bucketed `elapsed_time`) are
    embedded (`padding_idx=0`: 0 = padding or unknown adds nothing) and added to the LSTM input, which keeps its size.
    When a value becomes known decides where it enters, so that no prediction sees what it predicts:

    - a *current* feature (listed in `current_features`) is known before the learner answers, like the part of the
      question shown: interaction t's value enters the input at step t, so the prediction at t can use it;
    - every other feature is treated as known only once the learner has answered, like the time taken to answer:
      interaction t's value enters at step t + 1, with the response r_t. This is the default because a feature wrongly
      declared current leaks the answer into the prediction (elapsed time correlates with correctness), while a
      current feature declared past only loses some signal.

    Batch keys: `item_ref` (`[B, T]` positions into the item vectors, -1 for padding), `labels` (`[B, T]` float,
    1 = correct, 0 = wrong, -100 for padding) and one `[B, T]` LongTensor per feature, named as the feature, with
    values in `[0, num_embeddings)` (values at padding positions are ignored). [`KnowledgeTracingCollator`] with
    `feature_columns` emits them.

    Args:
        item_dim (`int`): dimension of item vectors.
        hidden_size (`int`, *optional*): LSTM hidden size; defaults to `item_dim` (as in the GRAM paper).
        num_layers (`int`, *optional*, defaults to 2): stacked LSTM layers.
        dropout (`float`, *optional*, defaults to 0.0): dropout between LSTM layers and on the output state.
        features (`dict[str, int]`, *optional*): feature name -> number of embeddings (values 0..n-1, 0 reserved for
            padding/unknown), e.g. a dataset's `InteractionData.stats["features"]`.
        current_features (`Sequence[str]`, *optional*): the features known before the response (see above).

    Example:

    ```python
    >>> head_config = {"features": data.stats["features"], "current_features": ["part"]}
    >>> model = GramModel.from_encoder_pretrained(head_type="knowledge_tracing", head_config=head_config)
    >>> collator = KnowledgeTracingCollator(feature_columns=list(data.stats["features"]))
    ```
    """

    item_ref_keys = ("item_ref",)
    scored_ref_key = "item_ref"

    def __init__(
        self,
        item_dim: int,
        hidden_size: int | None = None,
        num_layers: int = 2,
        dropout: float = 0.0,
        features: Mapping[str, int] | None = None,
        current_features: Sequence[str] = (),
    ):
        super().__init__(item_dim)
        self.hidden_size = hidden_size or item_dim
        features = dict(features or {})
        if isinstance(current_features, str):
            current_features = [current_features]
        for name, size in features.items():
            if not isinstance(name, str) or not name or "." in name or name in RESERVED_KEYS:
                raise ValueError(
                    f"Feature names must be non-empty strings without '.', other than {sorted(RESERVED_KEYS)}; "
                    f"got {name!r}."
                )
            if isinstance(size, bool) or not isinstance(size, Integral) or size < 2:
                raise ValueError(
                    f"Feature {name!r} needs an integer number of embeddings >= 2 (0 = padding/unknown), got {size!r}."
                )
        unknown = sorted(set(current_features) - set(features))
        if unknown:
            raise ValueError(f"current_features {unknown} are not among the features {sorted(features)}.")
        self.features = {name: int(size) for name, size in features.items()}
        self.current_features = tuple(current_features)
        input_size = 2 * item_dim
        self.start = nn.Parameter(torch.zeros(input_size))
        self.feature_embeddings = nn.ModuleDict(
            {name: nn.Embedding(size, input_size, padding_idx=0) for name, size in self.features.items()}
        )
        for embedding in self.feature_embeddings.values():
            # Small, as the library's other embeddings (GramModel re-initialises them the same way).
            nn.init.normal_(embedding.weight, std=0.02)
            with torch.no_grad():
                embedding.weight[0].zero_()
        self.lstm = nn.LSTM(
            input_size,
            self.hidden_size,
            num_layers=num_layers,
            batch_first=True,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.dropout = nn.Dropout(dropout)
        self.output = nn.Linear(self.hidden_size, item_dim)

    def forward(
        self,
        item_vectors: torch.Tensor,
        item_ref: torch.LongTensor,
        labels: torch.Tensor | None = None,
        **features: torch.LongTensor,
    ) -> HeadOutput:
        if labels is None:
            raise ValueError("The knowledge-tracing head needs `labels` (the responses) as inputs and targets.")
        unexpected = sorted(set(features) - set(self.features))
        if unexpected:
            raise TypeError(
                f"KnowledgeTracingHead got unexpected batch keys {unexpected}; features: {sorted(self.features)}."
            )
        missing = sorted(set(self.features) - set(features))
        if missing:
            raise ValueError(f"The batch lacks the features {missing}; see KnowledgeTracingCollator(feature_columns).")
        mask = item_ref >= 0
        vectors = item_vectors[item_ref.clamp(min=0)] * mask.unsqueeze(-1).to(item_vectors.dtype)
        responses = torch.where(mask, labels, torch.zeros_like(labels)).to(vectors.dtype).unsqueeze(-1)
        interactions = torch.cat([vectors * responses, vectors * (1 - responses)], dim=-1)
        start = self.start.to(interactions.dtype).expand(interactions.shape[0], 1, -1)
        # inputs[:, t] describes what is known before answering item t: interactions < t (and their past features)
        # and the current features of interaction t.
        inputs = torch.cat([start, interactions[:, :-1]], dim=1)
        for name, embedding in self.feature_embeddings.items():
            embedded = embedding(self._feature_values(name, features[name], mask)).to(inputs.dtype)
            if name not in self.current_features:
                # Known after the response: interaction t's value joins r_t at step t + 1.
                embedded = torch.cat([torch.zeros_like(embedded[:, :1]), embedded[:, :-1]], dim=1)
            inputs = inputs + embedded
        # On a CPU without bf16 RNN kernels the LSTM runs in fp32 under --bf16 (see gram_hf.precision).
        states, _ = run_recurrent(self.lstm, inputs)
        logits = (self.output(self.dropout(states)) * vectors).sum(-1)
        loss = nn.functional.binary_cross_entropy_with_logits(logits[mask].float(), labels[mask].float())
        return HeadOutput(loss=loss, scores=logits)

    def _feature_values(self, name: str, values: torch.Tensor, mask: torch.Tensor) -> torch.LongTensor:
        """The feature's ids with padding positions set to 0, checked against the embedding's size."""
        if values.shape != mask.shape:
            raise ValueError(f"Feature {name!r} has shape {tuple(values.shape)}, item_ref {tuple(mask.shape)}.")
        if values.is_floating_point() or values.is_complex():
            raise ValueError(f"Feature {name!r} must hold integer ids, got dtype {values.dtype}.")
        values = values.long().masked_fill(~mask, 0)
        size = self.features[name]
        # An out-of-range id would otherwise be an opaque indexing error (a device-side assert on GPU). One
        # device-to-host read for both bounds.
        if values.numel():
            low, high = torch.stack(torch.aminmax(values)).tolist()
            if low < 0 or high >= size:
                raise ValueError(f"Feature {name!r} has ids in [{low}, {high}], outside [0, {size}).")
        return values
