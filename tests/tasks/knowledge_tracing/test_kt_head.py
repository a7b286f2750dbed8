"""KnowledgeTracingHead: masked BCE loss, output shape and causality."""

from __future__ import annotations

import pytest
import torch

from gram_hf import HeadOutput
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
