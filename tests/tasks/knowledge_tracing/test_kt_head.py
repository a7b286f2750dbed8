"""KnowledgeTracingHead: masked BCE loss, output shape and causality."""

from __future__ import annotations

import pytest
import torch

from gram_hf import GramModel, HeadOutput, expand_occurrences
from gram_hf.tasks.knowledge_tracing import KnowledgeTracingCollator, KnowledgeTracingHead

DIM = 8


@pytest.fixture
def head():
    torch.manual_seed(0)
    return KnowledgeTracingHead(item_dim=DIM, hidden_size=12, num_layers=2).eval()


@pytest.fixture
def batch():
    return KnowledgeTracingCollator()(
        [
            {"items": [3, 1, 3, 5, 2, 1], "responses": [1, 0, 1, 0, 0, 1]},
            {"items": [1, 4, 2], "responses": [0, 1, 1]},
            {"items": [5, 5, 3, 4, 1], "responses": [1, 1, 0, 1, 0]},
        ]
    )


@pytest.fixture
def item_vectors(batch):
    generator = torch.Generator().manual_seed(1)
    return torch.randn(len(batch["item_index"]), DIM, generator=generator)


def run(head, item_vectors, batch) -> HeadOutput:
    return head(item_vectors, item_ref=batch["item_ref"], labels=batch["labels"])


def test_output_shape_and_finite_loss(head, item_vectors, batch):
    output = run(head, item_vectors, batch)
    assert isinstance(output, HeadOutput)
    assert output.scores.shape == batch["item_ref"].shape == (3, 6)
    assert output.loss.ndim == 0
    assert torch.isfinite(output.loss)
    assert torch.isfinite(output.scores).all()


def test_loss_is_bce_over_non_padding_positions(head, item_vectors, batch):
    output = run(head, item_vectors, batch)
    mask = batch["item_ref"] >= 0
    expected = torch.nn.functional.binary_cross_entropy_with_logits(output.scores[mask], batch["labels"][mask])
    torch.testing.assert_close(output.loss, expected)


def test_labels_at_padding_do_not_matter(head, item_vectors, batch):
    output = run(head, item_vectors, batch)
    padding = batch["item_ref"] < 0
    assert padding.any()
    for value in (0.0, 1.0, 7.0):
        changed = dict(batch, labels=batch["labels"].masked_fill(padding, value))
        other = run(head, item_vectors, changed)
        torch.testing.assert_close(other.loss, output.loss)
        torch.testing.assert_close(other.scores[~padding], output.scores[~padding])


def test_item_vectors_read_only_by_padding_do_not_matter(head, batch):
    """Padding (-1) gathers row 0 before masking; a row 0 that no real position references must not leak."""
    generator = torch.Generator().manual_seed(2)
    num_items = len(batch["item_index"])
    # shift references by one so that row 0 is referenced by padding only
    item_ref = torch.where(batch["item_ref"] >= 0, batch["item_ref"] + 1, batch["item_ref"])
    shifted = dict(batch, item_ref=item_ref)
    vectors = torch.randn(num_items + 1, DIM, generator=generator, requires_grad=True)
    output = run(head, vectors, shifted)
    output.loss.backward()
    assert vectors.grad[0].abs().sum() == 0
    assert (vectors.grad[1:].abs().sum(1) > 0).all()

    real = item_ref >= 0
    for replacement in (torch.zeros(DIM), torch.full((DIM,), 50.0)):
        changed = vectors.detach().clone()
        changed[0] = replacement
        other = run(head, changed, shifted)
        torch.testing.assert_close(other.loss, output.loss)
        torch.testing.assert_close(other.scores[real], output.scores[real])


def test_padding_does_not_leak_into_real_positions(head, item_vectors, batch):
    """A sequence scores the same alone (no padding) and in a padded batch."""
    output = run(head, item_vectors, batch)
    row = 1
    length = int((batch["item_ref"][row] >= 0).sum())
    alone = {key: batch[key][row : row + 1, :length] for key in ("item_ref", "labels")}
    single = run(head, item_vectors, alone)
    torch.testing.assert_close(single.scores[0], output.scores[row, :length], atol=1e-6, rtol=1e-5)


def test_scores_are_causal_in_the_responses(head, item_vectors, batch):
    labels, item_ref = batch["labels"], batch["item_ref"]
    with torch.no_grad():
        scores = run(head, item_vectors, batch).scores
    num_steps = labels.shape[1]
    for t in range(num_steps):
        real = item_ref[:, t] >= 0
        flipped = labels.clone()
        flipped[real, t] = 1 - flipped[real, t]
        with torch.no_grad():
            other = run(head, item_vectors, dict(batch, labels=flipped)).scores
        # the prediction at steps <= t does not see the response at t
        torch.testing.assert_close(other[:, : t + 1], scores[:, : t + 1])
        # ... while the next step of a sequence that goes on does
        if t + 1 < num_steps:
            continues = real & (item_ref[:, t + 1] >= 0)
            if continues.any():
                assert not torch.allclose(other[continues, t + 1], scores[continues, t + 1])


def test_scores_depend_on_the_current_item(head, item_vectors, batch):
    """The logit at t is read against the item at t (the content signal), not only the history."""
    with torch.no_grad():
        scores = run(head, item_vectors, batch).scores
        changed_ref = batch["item_ref"].clone()
        changed_ref[0, 0] = 3 if changed_ref[0, 0] != 3 else 2
        other = head(item_vectors, item_ref=changed_ref, labels=batch["labels"]).scores
    assert not torch.allclose(other[0, 0], scores[0, 0])
    torch.testing.assert_close(other[1:], scores[1:])


def test_gradients_reach_item_vectors_and_parameters(head, item_vectors, batch):
    vectors = item_vectors.clone().requires_grad_(True)
    head.train()
    run(head, vectors, batch).loss.backward()
    assert (vectors.grad.abs().sum(1) > 0).all()
    assert head.start.grad is not None and head.start.grad.abs().sum() > 0
    assert head.output.weight.grad.abs().sum() > 0


def test_head_config_defaults():
    head = KnowledgeTracingHead(item_dim=DIM)
    assert head.hidden_size == DIM
    assert head.lstm.num_layers == 2
    assert head.item_ref_keys == ("item_ref",)


def test_missing_labels_raise(head, item_vectors, batch):
    with pytest.raises(ValueError, match="labels"):
        head(item_vectors, item_ref=batch["item_ref"])


# ------------------------------------------------------------------------------------------------ features

FEATURES = {"part": 8, "elapsed_time": 5}


@pytest.fixture
def feature_head():
    torch.manual_seed(0)
    head = KnowledgeTracingHead(item_dim=DIM, hidden_size=12, features=FEATURES, current_features=["part"]).eval()
    with torch.no_grad():
        # larger than the 0.02 initialisation, so that every feature visibly moves the scores
        for embedding in head.feature_embeddings.values():
            embedding.weight[1:].normal_()
    return head


@pytest.fixture
def feature_batch():
    return KnowledgeTracingCollator(feature_columns=("part", "elapsed_time"))(
        [
            {"items": [3, 1, 3, 5, 2, 1], "responses": [1, 0, 1, 0, 0, 1], "part": [1, 2, 1, 7, 3, 2],
             "elapsed_time": [1, 4, 2, 0, 3, 1]},
            {"items": [1, 4, 2], "responses": [0, 1, 1], "part": [2, 5, 3], "elapsed_time": [2, 2, 4]},
            {"items": [5, 5, 3, 4, 1], "responses": [1, 1, 0, 1, 0], "part": [7, 7, 1, 5, 2],
             "elapsed_time": [3, 1, 1, 4, 2]},
        ]
    )  # fmt: skip


def run_features(head, item_vectors, batch) -> HeadOutput:
    return head(item_vectors, **{key: value for key, value in batch.items() if key != "item_index"})


def test_features_of_zero_add_nothing(feature_head, item_vectors, feature_batch):
    plain = KnowledgeTracingHead(item_dim=DIM, hidden_size=12)
    plain.load_state_dict(
        {k: v for k, v in feature_head.state_dict().items() if not k.startswith("feature_embeddings.")}
    )
    plain.eval()
    unknown = dict(feature_batch, part=torch.zeros_like(feature_batch["part"]))
    unknown["elapsed_time"] = torch.zeros_like(feature_batch["elapsed_time"])
    expected = run(plain, item_vectors, feature_batch)
    output = run_features(feature_head, item_vectors, unknown)
    torch.testing.assert_close(output.scores, expected.scores)
    torch.testing.assert_close(output.loss, expected.loss)


def test_current_feature_is_seen_from_its_own_step(feature_head, item_vectors, feature_batch):
    """`part` of interaction t is known before answering t: it moves the scores at t and later, never before."""
    with torch.no_grad():
        scores = run_features(feature_head, item_vectors, feature_batch).scores
    item_ref = feature_batch["item_ref"]
    for t in range(item_ref.shape[1]):
        real = item_ref[:, t] >= 0
        changed = feature_batch["part"].clone()
        changed[real, t] = changed[real, t] % 7 + 1  # another known part
        with torch.no_grad():
            other = run_features(feature_head, item_vectors, dict(feature_batch, part=changed)).scores
        torch.testing.assert_close(other[:, :t], scores[:, :t])
        assert not torch.allclose(other[real, t], scores[real, t])


def test_past_feature_is_seen_only_after_its_step(feature_head, item_vectors, feature_batch):
    """`elapsed_time` of interaction t is known once t is answered: like the response, it moves only steps > t."""
    with torch.no_grad():
        scores = run_features(feature_head, item_vectors, feature_batch).scores
    item_ref = feature_batch["item_ref"]
    for t in range(item_ref.shape[1]):
        real = item_ref[:, t] >= 0
        changed = feature_batch["elapsed_time"].clone()
        changed[real, t] = changed[real, t] % 4 + 1
        with torch.no_grad():
            other = run_features(feature_head, item_vectors, dict(feature_batch, elapsed_time=changed)).scores
        torch.testing.assert_close(other[:, : t + 1], scores[:, : t + 1])
        if t + 1 < item_ref.shape[1]:
            continues = real & (item_ref[:, t + 1] >= 0)
            if continues.any():
                assert not torch.allclose(other[continues, t + 1], scores[continues, t + 1])


def test_features_default_to_past(item_vectors, feature_batch):
    head = KnowledgeTracingHead(item_dim=DIM, features={"part": 8}).eval()
    with torch.no_grad():
        head.feature_embeddings["part"].weight[1:].normal_()
        scores = run_features(head, item_vectors, {k: v for k, v in feature_batch.items() if k != "elapsed_time"})
        changed = feature_batch["part"].clone()
        changed[:, 0] = 6
        other = head(item_vectors, item_ref=feature_batch["item_ref"], labels=feature_batch["labels"], part=changed)
    torch.testing.assert_close(other.scores[:, 0], scores.scores[:, 0])
    assert not torch.allclose(other.scores[:, 1], scores.scores[:, 1])


def test_feature_values_at_padding_do_not_matter(feature_head, item_vectors, feature_batch):
    output = run_features(feature_head, item_vectors, feature_batch)
    padding = feature_batch["item_ref"] < 0
    changed = dict(feature_batch)
    changed["part"] = feature_batch["part"].masked_fill(padding, 7)
    changed["elapsed_time"] = feature_batch["elapsed_time"].masked_fill(padding, -5)  # even invalid ids
    other = run_features(feature_head, item_vectors, changed)
    torch.testing.assert_close(other.scores[~padding], output.scores[~padding])
    torch.testing.assert_close(other.loss, output.loss)


def test_feature_gradients_skip_the_padding_row(feature_head, item_vectors, feature_batch):
    feature_head.train()
    run_features(feature_head, item_vectors, feature_batch).loss.backward()
    for embedding in feature_head.feature_embeddings.values():
        assert embedding.weight.grad[0].abs().sum() == 0
        assert embedding.weight.grad[1:].abs().sum() > 0


def test_features_work_with_e2e_expansion(feature_head, item_vectors, feature_batch):
    """In `e2e` mode the engine remaps only `item_ref`; the features pass through unchanged."""
    occurrence_index, refs = expand_occurrences(feature_batch["item_index"], {"item_ref": feature_batch["item_ref"]})
    rows = torch.searchsorted(feature_batch["item_index"], occurrence_index)
    expanded = run_features(feature_head, item_vectors[rows], dict(feature_batch, **refs))
    torch.testing.assert_close(expanded.scores, run_features(feature_head, item_vectors, feature_batch).scores)


def test_head_with_features_saves_and_reloads(tmp_path, feature_batch):
    torch.manual_seed(0)
    head_config = {"features": FEATURES, "current_features": ["part"]}
    model = GramModel.for_item_ids(6, DIM, head_type="knowledge_tracing", head_config=head_config).eval()
    assert model.head.feature_embeddings["part"].weight[0].abs().sum() == 0  # padding row after post_init
    model.save_pretrained(tmp_path)
    reloaded = GramModel.from_pretrained(tmp_path).eval()
    assert reloaded.head.features == FEATURES and reloaded.head.current_features == ("part",)
    with torch.no_grad():
        expected = model(**feature_batch).scores
        torch.testing.assert_close(reloaded(**feature_batch).scores, expected)


@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        ({"part": None}, ValueError, r"lacks the features \['part'\]"),
        ({"difficulty": torch.zeros(3, 6, dtype=torch.long)}, TypeError, "unexpected batch keys"),
        ({"part": torch.full((3, 6), 8)}, ValueError, r"outside \[0, 8\)"),
        ({"part": torch.zeros(3, 5, dtype=torch.long)}, ValueError, "has shape"),
        ({"part": torch.zeros(3, 6)}, ValueError, "integer ids"),
    ],
)
def test_invalid_feature_inputs_raise(feature_head, item_vectors, feature_batch, change, error, match):
    batch = {k: v for k, v in feature_batch.items() if k != "item_index"}
    for key, value in change.items():
        if value is None:
            del batch[key]
        else:
            batch[key] = value
    with pytest.raises(error, match=match):
        feature_head(item_vectors, **batch)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"features": {"labels": 4}}, "Feature names"),
        ({"features": {"a.b": 4}}, "Feature names"),
        ({"features": {"part": 1}}, ">= 2"),
        ({"features": {"part": 3.0}}, ">= 2"),
        ({"features": {"part": 8}, "current_features": ["elapsed_time"]}, "not among the features"),
    ],
)
def test_invalid_feature_config_raises(kwargs, match):
    with pytest.raises(ValueError, match=match):
        KnowledgeTracingHead(item_dim=DIM, **kwargs)
