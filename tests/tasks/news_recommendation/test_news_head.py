"""NewsRecommendationHead (NRMS): shapes, history masking, the cross-entropy loss and gradients."""

from __future__ import annotations

import pytest
import torch

from gram_hf import GramConfig, GramModel, HeadOutput, get_head_class
from gram_hf.tasks.news_recommendation import (
    NEWS_DEFAULT_POOLING,
    NewsRecommendationCollator,
    NewsRecommendationHead,
    default_num_attention_heads,
)

DIM = 16


@pytest.fixture
def head():
    torch.manual_seed(0)
    return NewsRecommendationHead(item_dim=DIM, num_attention_heads=4, query_dim=8, dropout=0.0).eval()


@pytest.fixture
def batch():
    return NewsRecommendationCollator()(
        [
            {"history": [3, 1, 4, 1, 5], "candidates": [2, 6, 5, 3, 9], "labels": [0, 1, 0, 0, 0]},
            {"history": [2, 7], "candidates": [8, 1], "labels": [1, 0]},
            {"history": [], "candidates": [4, 6, 7], "labels": [1, 0, 1]},
            {"history": [9], "candidates": [2, 3, 4, 5], "labels": [0, 0, 0, 0]},
        ]
    )


@pytest.fixture
def item_vectors(batch):
    return torch.randn(len(batch["item_index"]), DIM, generator=torch.Generator().manual_seed(1))


def run(head, vectors, batch, **overrides) -> HeadOutput:
    inputs = {key: batch[key] for key in ("history_ref", "candidate_ref", "labels")}
    return head(vectors, **{**inputs, **overrides})


def manual_loss(scores, labels):
    losses = []
    for row_scores, row_labels in zip(scores, labels):
        negatives = row_scores[row_labels == 0]
        for positive in row_scores[row_labels == 1]:
            logits = torch.cat([positive.view(1), negatives])
            losses.append(torch.nn.functional.cross_entropy(logits.view(1, -1), torch.tensor([0])))
    return torch.stack(losses).mean()


def test_registered_and_output_shapes(head, item_vectors, batch):
    assert get_head_class("news_recommendation") is NewsRecommendationHead
    assert NewsRecommendationHead.item_ref_keys == ("history_ref", "candidate_ref")
    assert NewsRecommendationHead.scored_ref_key == "candidate_ref"
    output = run(head, item_vectors, batch)
    assert output.scores.shape == batch["candidate_ref"].shape == (4, 5)
    assert output.loss.ndim == 0 and torch.isfinite(output.loss)
    assert torch.isfinite(output.scores).all()
    assert (output.scores[batch["candidate_ref"] < 0] == 0).all()


def test_scores_are_dot_products_with_the_user_vector(head, item_vectors, batch):
    output = run(head, item_vectors, batch)
    users = head.user_vectors(item_vectors, batch["history_ref"])
    for row in range(4):
        for column, ref in enumerate(batch["candidate_ref"][row].tolist()):
            if ref >= 0:
                torch.testing.assert_close(output.scores[row, column], users[row] @ item_vectors[ref])


def test_loss_is_cross_entropy_of_each_click_against_the_negatives(head, item_vectors, batch):
    output = run(head, item_vectors, batch)
    torch.testing.assert_close(output.loss, manual_loss(output.scores, batch["labels"]))


def test_training_row_loss_is_the_plm_nr_cross_entropy(head, item_vectors):
    rows = NewsRecommendationCollator()(
        [{"history": [1, 2], "candidates": [3, 4, 5, 6, 7], "labels": [0, 0, 1, 0, 0]} for _ in range(2)]
    )
    vectors = torch.randn(len(rows["item_index"]), DIM)
    output = run(head, vectors, rows)
    expected = torch.nn.functional.cross_entropy(output.scores, torch.tensor([2, 2]))
    torch.testing.assert_close(output.loss, expected)
    # the loss does not depend on where the positive sits
    permuted = dict(
        rows, candidate_ref=rows["candidate_ref"][:, [2, 0, 1, 3, 4]], labels=rows["labels"][:, [2, 0, 1, 3, 4]]
    )
    torch.testing.assert_close(run(head, vectors, permuted).loss, output.loss)


def test_padded_history_slots_do_not_change_the_user_vector(head, item_vectors, batch):
    users = head.user_vectors(item_vectors, batch["history_ref"])
    wider = torch.cat([batch["history_ref"], torch.full((4, 3), -1)], dim=1)
    torch.testing.assert_close(head.user_vectors(item_vectors, wider), users)
    # row 1 alone, without the padding the longer row 0 forces on it
    alone = batch["history_ref"][1:2, :2]
    torch.testing.assert_close(head.user_vectors(item_vectors, alone)[0], users[1])
    # whatever the padding gathers (row 0 of the item vectors) does not matter
    shifted = torch.cat([torch.full((1, DIM), 1e4), item_vectors])
    refs = torch.where(batch["history_ref"] >= 0, batch["history_ref"] + 1, -1)
    torch.testing.assert_close(head.user_vectors(shifted, refs), users)


def test_empty_history_gets_the_learned_user_vector(head, item_vectors, batch):
    with torch.no_grad():
        head.empty_user.copy_(torch.arange(DIM, dtype=torch.float))
    users = head.user_vectors(item_vectors, batch["history_ref"])
    torch.testing.assert_close(users[2], head.empty_user.detach())
    output = run(head, item_vectors, batch)
    assert torch.isfinite(output.scores).all() and torch.isfinite(output.loss)
    only_empty = head.user_vectors(item_vectors, torch.full((2, 4), -1))
    torch.testing.assert_close(only_empty, head.empty_user.detach().expand(2, -1))


def test_gradients_flow_to_item_vectors_and_parameters(head, item_vectors, batch):
    head.train()
    vectors = item_vectors.clone().requires_grad_(True)
    run(head, vectors, batch).loss.backward()
    assert torch.isfinite(vectors.grad).all()
    # every item of the batch is read by a row with a click (row 3 has none, but its items recur elsewhere)
    assert (vectors.grad.abs().sum(1) > 0).all()
    for name, parameter in head.named_parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), name
    assert head.self_attention.query.weight.grad.abs().sum() > 0
    assert head.empty_user.grad.abs().sum() > 0


def test_impressions_without_clicks_add_no_loss(head, item_vectors, batch):
    output = run(head, item_vectors, batch)
    changed = batch["labels"].clone()
    changed[3] = -1  # unknown labels for the click-less impression
    torch.testing.assert_close(run(head, item_vectors, batch, labels=changed).loss, output.loss)


def test_impression_made_only_of_clicks_costs_nothing(head):
    rows = NewsRecommendationCollator()([{"history": [1], "candidates": [2, 3], "labels": [1, 1]}])
    vectors = torch.randn(3, DIM, requires_grad=True)
    output = run(head, vectors, rows)
    assert output.loss.item() == pytest.approx(0.0, abs=1e-6)
    output.loss.backward()
    assert torch.isfinite(vectors.grad).all()


def test_labelless_batches_have_no_loss_in_evaluation_and_fail_in_training(head, item_vectors, batch):
    unknown = torch.where(batch["labels"] == -100, batch["labels"], torch.full_like(batch["labels"], -1))
    output = run(head, item_vectors, batch, labels=unknown)
    assert output.loss is None and output.scores.shape == (4, 5)
    assert run(head, item_vectors, batch, labels=None).loss is None
    head.train()
    with pytest.raises(ValueError, match="no clicked candidate"):
        run(head, item_vectors, batch, labels=unknown)


def test_default_heads_and_invalid_heads():
    assert default_num_attention_heads(384) == 16
    assert default_num_attention_heads(768) == 16
    assert default_num_attention_heads(400) == 16
    assert default_num_attention_heads(32) == 2
    assert default_num_attention_heads(8) == 1
    assert default_num_attention_heads(7) == 1
    assert NewsRecommendationHead(item_dim=32).num_attention_heads == 2
    with pytest.raises(ValueError, match="must divide item_dim=32"):
        NewsRecommendationHead(item_dim=32, num_attention_heads=5)


def test_built_through_gram_model(tiny_bert_config):
    model = GramModel(
        GramConfig(
            encoder=tiny_bert_config,
            head_type="news_recommendation",
            pooling=NEWS_DEFAULT_POOLING,
            item_dim=24,
            head_config={"num_attention_heads": 3, "query_dim": 10, "dropout": 0.1},
        )
    )
    assert isinstance(model.head, NewsRecommendationHead)
    assert model.head.num_attention_heads == 3
    assert model.head.pooling.projection.out_features == 10
    assert model.config.pooling == "attention"
