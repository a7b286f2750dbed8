"""SASRecHead: causality, the losses it selects, e2e expansion, ranking mode and its place in GramModel."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from gram_hf import GramConfig, GramModel, expand_occurrences
from gram_hf.tasks.next_item import (
    NextItemCollator,
    SASRecHead,
    linear_cross_entropy,
    new_item_offsets,
    rank_catalog,
    sampled_cross_entropy,
)

DIM = 16
NUM_ITEMS = 30
SEQUENCES = [
    {"items": [3, 1, 4, 1, 5, 9, 2, 6]},
    {"items": [2, 7, 18]},
    {"items": [28, 18, 2, 8, 4, 5]},
]


def make_head(loss_type="cce", **kwargs):
    torch.manual_seed(0)
    return SASRecHead(DIM, num_blocks=2, num_heads=2, max_length=10, dropout=0.0, loss_type=loss_type, **kwargs)


def catalog_vectors(seed=1):
    return torch.randn(NUM_ITEMS, DIM, generator=torch.Generator().manual_seed(seed))


def batch_for(head, mode="train", **kwargs):
    torch.manual_seed(2)
    return NextItemCollator.from_head(head, NUM_ITEMS, mode=mode, **kwargs)(SEQUENCES)


def head_inputs(batch):
    return {key: value for key, value in batch.items() if key != "item_index"}


def test_states_are_causal_and_ignore_padding():
    head = make_head().eval()
    vectors = catalog_vectors()
    refs = torch.tensor([[3, 1, 4, 1, 5, -1, -1]])
    states = head.encode_sequence(vectors, refs)
    changed = refs.clone()
    changed[0, 3] = 9  # a later item
    changed_states = head.encode_sequence(vectors, changed)
    torch.testing.assert_close(states[0, :3], changed_states[0, :3])
    assert not torch.allclose(states[0, 3], changed_states[0, 3])
    shorter = head.encode_sequence(vectors, refs[:, :5])  # padding columns removed
    torch.testing.assert_close(states[0, :5], shorter[0])


def test_item_ref_keys_follow_the_loss():
    assert make_head("cce").item_ref_keys == ("input_ref", "catalog_ref")
    assert make_head("ce").item_ref_keys == ("input_ref", "catalog_ref")
    for loss_type in ("bce", "ce_sampled", "cce_sampled"):
        assert make_head(loss_type).item_ref_keys == ("input_ref", "target_ref", "negative_ref")
    assert make_head("bce").num_negatives == 1
    assert make_head("cce_sampled").num_negatives == 256
    assert make_head("ce_sampled", num_negatives=5).num_negatives == 5
    with pytest.raises(ValueError, match="loss_type"):
        make_head("softmax")
    with pytest.raises(ValueError, match="num_heads"):
        SASRecHead(DIM, num_heads=3)


def test_full_catalog_losses_agree_and_equal_cross_entropy():
    vectors = catalog_vectors().requires_grad_()
    results = {}
    for loss_type in ("ce", "cce"):
        head = make_head(loss_type, loss_block_size=7).train()
        batch = batch_for(head)
        assert batch["item_index"].tolist() == list(range(NUM_ITEMS))
        loss = head(vectors, **head_inputs(batch)).loss
        results[loss_type] = (loss, torch.autograd.grad(loss, vectors)[0])
        states = head.encode_sequence(vectors, batch["input_ref"])
        reference = F.cross_entropy((states @ vectors.T).transpose(1, 2), batch["labels"])
        torch.testing.assert_close(loss, reference, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(results["ce"][0], results["cce"][0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(results["ce"][1], results["cce"][1], atol=1e-5, rtol=1e-5)


def test_sampled_losses_agree_and_use_the_batch_negatives():
    results = {}
    for loss_type in ("ce_sampled", "cce_sampled"):
        head = make_head(loss_type, num_negatives=6, loss_block_size=4).train()
        batch = batch_for(head)
        vectors = catalog_vectors()[batch["item_index"]].requires_grad_()
        loss = head(vectors, **head_inputs(batch)).loss
        results[loss_type] = (loss, torch.autograd.grad(loss, vectors)[0])
        states = head.encode_sequence(vectors, batch["input_ref"])
        targets = batch["target_ref"].masked_fill(batch["target_ref"] < 0, -100)
        reference = sampled_cross_entropy(states, vectors, targets, batch["negative_ref"])
        torch.testing.assert_close(loss, reference, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(results["ce_sampled"][0], results["cce_sampled"][0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(results["ce_sampled"][1], results["cce_sampled"][1], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(("sharing", "shape"), [("sequence", (3, 6)), ("batch", (6,))])
def test_shared_negatives_head_scores_the_shared_set_at_every_position(sharing, shape):
    results = {}
    for loss_type in ("ce_sampled", "cce_sampled"):
        head = make_head(loss_type, num_negatives=6, loss_block_size=4, negative_sharing=sharing).train()
        batch = batch_for(head)
        assert batch["negative_ref"].shape == shape
        vectors = catalog_vectors()[batch["item_index"]].requires_grad_()
        loss = head(vectors, **head_inputs(batch)).loss
        results[loss_type] = (loss, torch.autograd.grad(loss, vectors)[0])
        states = head.encode_sequence(vectors, batch["input_ref"])
        targets = batch["target_ref"].masked_fill(batch["target_ref"] < 0, -100)
        per_position = batch["negative_ref"].unsqueeze(-2).expand(*targets.shape, -1)
        reference = sampled_cross_entropy(states, vectors, targets, per_position, negative_mask=batch["negative_mask"])
        torch.testing.assert_close(loss, reference, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(results["ce_sampled"][1], results["cce_sampled"][1], atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match=f"negative_sharing='{sharing}' applies"):
        make_head("cce", negative_sharing=sharing)
    with pytest.raises(ValueError, match="negative_sharing must be one of"):
        make_head("cce_sampled", negative_sharing="user")


def test_configurations_saved_with_shared_negatives_still_load():
    """Head configurations written before `negative_sharing` said `shared_negatives`: True was one set per batch."""
    with pytest.warns(FutureWarning, match="negative_sharing"):
        assert make_head("cce_sampled", shared_negatives=True).negative_sharing == "batch"
    with pytest.warns(FutureWarning):
        assert make_head("cce_sampled", shared_negatives=False).negative_sharing == "position"


@pytest.mark.parametrize(("loss_type", "sharing"), [("cce", "position"), ("bce", "position"),
                                                    ("cce_sampled", "position"), ("cce_sampled", "sequence"),
                                                    ("cce_sampled", "batch"), ("ce_sampled", "batch")])  # fmt: skip
def test_e2e_expansion_gives_the_same_loss_and_summed_gradients(loss_type, sharing):
    """With one row per occurrence (e2e), the loss is unchanged and per-occurrence gradients sum to GRAM's."""
    head = make_head(loss_type, num_negatives=3, negative_sharing=sharing).train()
    batch = batch_for(head)
    item_index = batch["item_index"]
    unique_vectors = catalog_vectors()[item_index].requires_grad_()
    inputs = head_inputs(batch)
    loss = head(unique_vectors, **inputs).loss
    (unique_grad,) = torch.autograd.grad(loss, unique_vectors)
    refs = {key: inputs[key] for key in head.item_ref_keys}
    occurrence_index, occurrence_refs = expand_occurrences(item_index, refs)
    occurrence_vectors = catalog_vectors()[occurrence_index].requires_grad_()
    expanded_loss = head(occurrence_vectors, **{**inputs, **occurrence_refs}).loss
    (occurrence_grad,) = torch.autograd.grad(expanded_loss, occurrence_vectors)
    torch.testing.assert_close(expanded_loss, loss, atol=1e-6, rtol=1e-6)
    position = torch.searchsorted(item_index, occurrence_index)
    summed = torch.zeros_like(unique_grad).index_add_(0, position, occurrence_grad)
    torch.testing.assert_close(summed, unique_grad, atol=1e-6, rtol=1e-5)
    if loss_type == "cce":  # the output layer is one occurrence of every catalog item
        assert occurrence_index.numel() == NUM_ITEMS + int((inputs["input_ref"] >= 0).sum())


def test_training_batches_in_eval_mode_return_target_logits():
    for loss_type in ("ce", "cce_sampled"):
        head = make_head(loss_type, num_negatives=4).eval()
        batch = batch_for(head)
        vectors = catalog_vectors()[batch["item_index"]]
        output = head(vectors, **head_inputs(batch))
        assert output.scores.shape == batch["input_ref"].shape
        assert torch.isfinite(output.loss)


@pytest.mark.parametrize("exclude_seen", [True, False])
def test_ranking_mode_over_the_catalog(exclude_seen):
    head = make_head("ce_sampled", eval_top_k=5, eval_block_size=7).eval()
    batch = batch_for(head, mode="eval", exclude_seen=exclude_seen)
    vectors = catalog_vectors()
    output = head(vectors, **head_inputs(batch))
    assert output.scores.dtype == torch.long and output.scores.shape == (3, 7)
    torch.testing.assert_close(output.scores[:, 0], output.target_rank)
    torch.testing.assert_close(output.scores[:, 1:-1], output.top_items)
    assert (output.scores[:, -1] == -1).all() and (output.cold_rank == -1).all()  # no cold-start items named
    states = head.encode_sequence(vectors, batch["input_ref"])
    lengths = (batch["input_ref"] >= 0).sum(1)
    final = states[torch.arange(3), lengths - 1]
    seen = batch["seen_ref"] if exclude_seen else None
    top, ranks = rank_catalog(final, vectors, batch["labels"], k=5, exclude=seen)
    assert output.top_items.tolist() == top.tolist()
    assert output.target_rank.tolist() == ranks.tolist()
    expected_loss = linear_cross_entropy(final, vectors, batch["labels"])
    torch.testing.assert_close(output.loss, expected_loss)
    if exclude_seen:
        for row, sequence in enumerate(SEQUENCES):
            assert not set(output.top_items[row].tolist()) & set(sequence["items"][:-1])


def test_ranking_mode_ranks_cold_start_targets_among_the_cold_start_items():
    # Items outside the training catalog are the cold-start items: user 1's held-out 18 is one, and so is 7, which
    # user 1 has seen (excluded from their ranking); users 0 and 2 hold out warm items.
    cold_items = [4, 7, 11, 18, 22, 25, 29]
    training = [item for item in range(NUM_ITEMS) if item not in cold_items]
    head = make_head("cce", eval_top_k=5).eval()
    batch = batch_for(head, mode="eval", training_items=training)
    assert batch["cold_ref"].tolist() == cold_items
    vectors = catalog_vectors()
    output = head(vectors, **head_inputs(batch))
    assert output.scores.shape == (3, 7) and output.scores[:, -1].tolist() == output.cold_rank.tolist()
    states = head.encode_sequence(vectors, batch["input_ref"])
    final = states[torch.arange(3), (batch["input_ref"] >= 0).sum(1) - 1]
    scores = final @ vectors.T
    expected = []
    for row, sequence in enumerate(SEQUENCES):
        target, history = sequence["items"][-1], set(sequence["items"][:-1])
        if target not in cold_items:
            expected.append(-1)
            continue
        others = [item for item in cold_items if item != target and item not in history]
        expected.append(sum(int(scores[row, item] >= scores[row, target]) for item in others))
    assert expected[0] == -1 and expected[1] >= 0 and output.cold_rank.tolist() == expected
    # The full-catalog ranking is unchanged by naming the cold-start items.
    plain = head(vectors, **{k: v for k, v in head_inputs(batch).items() if k != "cold_ref"})
    assert plain.target_rank.tolist() == output.target_rank.tolist() and (plain.cold_rank == -1).all()


def test_gram_model_with_next_item_head_round_trips(tmp_path, tiny_bert_config):
    head_config = {"loss_type": "cce_sampled", "num_negatives": 7, "max_length": 12, "num_heads": 2}
    model = GramModel(GramConfig(encoder=tiny_bert_config, head_type="next_item", head_config=head_config))
    assert isinstance(model.head, SASRecHead) and model.head.num_negatives == 7
    model.save_pretrained(tmp_path)
    reloaded = GramModel.from_pretrained(tmp_path)
    assert reloaded.head.loss_type == "cce_sampled" and reloaded.head.item_ref_keys == model.head.item_ref_keys
    for (name, param), (_, other) in zip(model.named_parameters(), reloaded.named_parameters()):
        torch.testing.assert_close(param, other, msg=name)
    ids = GramModel.for_item_ids(NUM_ITEMS, DIM, head_type="next_item", head_config={"loss_type": "ce"})
    batch = NextItemCollator.from_head(ids.head, NUM_ITEMS)(SEQUENCES)
    assert torch.isfinite(ids(**batch).loss)


def test_ranking_mode_mixes_in_the_new_releases_at_the_new_item_share():
    cold_items = [4, 7, 11, 18, 22, 25, 29]
    training = [item for item in range(NUM_ITEMS) if item not in cold_items]
    vectors = catalog_vectors()
    vectors[cold_items] *= 0.05  # never trained: low scores
    plain_head = make_head("cce", eval_top_k=5).eval()
    batch = batch_for(plain_head, mode="eval", training_items=training)
    plain = plain_head(vectors, **head_inputs(batch))
    head = make_head("cce", eval_top_k=5, new_item_share=0.4).eval()
    mixed = head(vectors, **head_inputs(batch))
    final = head.encode_sequence(vectors, batch["input_ref"])[torch.arange(3), (batch["input_ref"] >= 0).sum(1) - 1]
    new_items = torch.zeros(NUM_ITEMS, dtype=torch.bool)
    new_items[cold_items] = True
    offsets = new_item_offsets(final, vectors, new_items, 0.4, exclude=batch["seen_ref"])
    top, ranks = rank_catalog(
        final, vectors, batch["labels"], k=5, exclude=batch["seen_ref"], offset_items=new_items, offsets=offsets
    )
    assert mixed.top_items.tolist() == top.tolist() and mixed.target_rank.tolist() == ranks.tolist()
    assert new_items[mixed.top_items].sum() > new_items[plain.top_items].sum()
    assert mixed.target_rank[1] < plain.target_rank[1]  # user 1 holds out the new release 18
    # The ranking among the new releases only, and the loss, are the model's either way.
    assert mixed.cold_rank.tolist() == plain.cold_rank.tolist()
    torch.testing.assert_close(mixed.loss, plain.loss)
    # Without cold-start items in the batch there is nothing to mix in.
    no_cold = {key: value for key, value in head_inputs(batch).items() if key != "cold_ref"}
    assert head(vectors, **no_cold).top_items.tolist() == plain_head(vectors, **no_cold).top_items.tolist()
    with pytest.raises(ValueError, match="new_item_share must lie in"):
        make_head("cce", new_item_share=1.0)


def test_validation_ranks_by_the_models_scores_and_restores_the_share(tiny_bert_config):
    from gram_hf import get_task

    head = make_head("cce", new_item_share=0.3)
    with head.ranking_by_scores():
        assert head.new_item_share == 0.0
    assert head.new_item_share == 0.3
    with pytest.raises(RuntimeError), head.ranking_by_scores():
        raise RuntimeError("an evaluation failed")
    assert head.new_item_share == 0.3  # restored even then
    model = GramModel(GramConfig(encoder=tiny_bert_config, head_type="next_item", head_config={"new_item_share": 0.2}))
    with get_task("next_item").validating(model):
        assert model.head.new_item_share == 0.0
    assert model.head.new_item_share == 0.2
    with get_task("knowledge_tracing").validating(model):  # a task without a validation context changes nothing
        assert model.head.new_item_share == 0.2
