"""GramRecommender: the numbers of `trainer.predict` for every task, the item-vector cache, adding items, errors."""

from __future__ import annotations

import json
import math

import pytest
import torch
from transformers import AutoTokenizer, BertConfig, BertTokenizerFast

from gram_hf import GramConfig, GramModel, GramRecommender, GramTrainer, GramTrainingArguments, ItemCatalog
from gram_hf.inference import CACHE_DIRNAME, INFERENCE_CONFIG_NAME


def _trainer(model, catalog, collator, eval_collator, train, tmp_path, mode="gram", steps=2):
    args = GramTrainingArguments(
        output_dir=str(tmp_path / "out"), gram_mode=mode, gram_interval="1", use_cpu=True, max_steps=steps,
        per_device_train_batch_size=4, per_device_eval_batch_size=3, learning_rate=1e-2, encoder_learning_rate=1e-2,
        save_strategy="no", report_to="none", disable_tqdm=True, seed=0,
    )  # fmt: skip
    trainer = GramTrainer(model=model, args=args, item_catalog=catalog, data_collator=collator,
                          eval_data_collator=eval_collator, train_dataset=train)  # fmt: skip
    trainer.train()  # a couple of steps: the numbers compared are those of a trained (changed) model
    return trainer


@pytest.fixture
def kt(tokenizer, tiny_bert_config, tmp_path):
    from gram_hf.tasks.knowledge_tracing import KnowledgeTracingCollator, make_synthetic_knowledge_tracing

    data = make_synthetic_knowledge_tracing(num_users=30, num_items=20, min_length=4, max_length=9, seed=0)
    catalog = ItemCatalog(data.item_ids, data.texts, tokenizer, max_length=10)
    torch.manual_seed(0)
    model = GramModel(GramConfig(encoder=tiny_bert_config, head_type="knowledge_tracing"))
    collator = KnowledgeTracingCollator()
    trainer = _trainer(model, catalog, collator, collator, data.train, tmp_path)
    trainer.processing_class = tokenizer
    return trainer, data


@pytest.fixture
def news(tokenizer, tiny_bert_config, tmp_path):
    from gram_hf.tasks.news_recommendation import (
        NewsRecommendationCollator,
        build_news_catalog,
        load_mind,
        make_synthetic_mind,
    )

    make_synthetic_mind(tmp_path / "mind", "small", num_users=12, num_news=40, train_impressions=16,
                        dev_impressions=6, mean_candidates=5, mean_history=4, seed=0)  # fmt: skip
    data = load_mind(tmp_path / "mind", cache_dir=tmp_path / "cache", text_fields=("title",))
    catalog = build_news_catalog(data, tokenizer, max_lengths={"title": 10})
    torch.manual_seed(0)
    config = GramConfig(encoder=tiny_bert_config, head_type="news_recommendation", pooling="attention",
                        attention_pooling_dim=8, head_config={"query_dim": 16, "dropout": 0.2})  # fmt: skip
    collator = NewsRecommendationCollator(max_history=3)
    trainer = _trainer(GramModel(config), catalog, collator, collator, data["train"], tmp_path)
    trainer.processing_class = tokenizer
    return trainer, data


def _next_item(tokenizer, tiny_bert_config, tmp_path, item_encoder="content"):
    from gram_hf.tasks.next_item import NextItemCollator, load_movielens, make_synthetic_movielens

    make_synthetic_movielens(tmp_path / "ml", num_users=20, num_items=30, num_genres=3, max_length=10, seed=0)
    data = load_movielens(tmp_path / "ml", cache_dir=str(tmp_path / "cache"))
    head_config = {"max_length": 5, "dropout": 0.2, "num_heads": 2, "loss_type": "cce"}
    torch.manual_seed(0)
    if item_encoder == "id":
        model = GramModel.for_item_ids(data.num_items, 32, head_type="next_item", head_config=head_config)
        catalog, mode = None, "nocontent"
    else:
        config = GramConfig(encoder=tiny_bert_config, head_type="next_item", head_config=head_config,
                            item_encoder=item_encoder, num_items=data.num_items)  # fmt: skip
        model = GramModel(config)
        if item_encoder == "content+id":
            model.set_cold_start_items(torch.tensor(data.items["cold_start"]))
        catalog, mode = data.catalog(tokenizer, max_length=10), "gram"
    train = NextItemCollator.from_head(model.head, data.num_items)
    evaluation = NextItemCollator.from_head(model.head, data.num_items, mode="eval")
    trainer = _trainer(model, catalog, train, evaluation, data["train"], tmp_path, mode=mode)
    trainer.processing_class = tokenizer if catalog is not None else None
    return trainer, data


@pytest.fixture
def next_item(tokenizer, tiny_bert_config, tmp_path):
    return _next_item(tokenizer, tiny_bert_config, tmp_path)


# ------------------------------------------------------------------------ the same numbers as trainer.predict


def test_knowledge_tracing_predict_response_equals_trainer_predict(kt):
    trainer, data = kt
    test = data.test
    logits = torch.as_tensor(trainer.predict(test).predictions[0])
    recommender = GramRecommender.from_trainer(trainer)
    assert type(recommender).__name__ == "KnowledgeTracingRecommender"
    ids = recommender.item_ids
    checked = 0
    assert len(test) >= 3
    for row in range(3):
        items, responses = test[row]["items"], test[row]["responses"]
        for t in (0, 2, len(items) - 1):
            history = [(ids[i], r) for i, r in zip(items[:t], responses[:t])]
            probability = recommender.predict_response(history, items=[ids[items[t]]])
            assert torch.allclose(probability, torch.sigmoid(logits[row, t : t + 1]), atol=1e-6)
            checked += 1
    # A batch of learners gives the same numbers, and a mapping history (a dataset row with ids) as pairs do.
    batch = recommender.predict_response(
        [[(ids[test[0]["items"][0]], test[0]["responses"][0])], {"items": [], "responses": []}],
        items=[[ids[test[0]["items"][1]]], [ids[test[1]["items"][0]]]],
    )
    assert torch.allclose(batch[0], torch.sigmoid(logits[0, 1:2]), atol=1e-6)
    assert torch.allclose(batch[1], torch.sigmoid(logits[1, 0:1]), atol=1e-6)
    assert checked == 9


def test_news_rank_equals_trainer_predict(news):
    trainer, data = news
    evaluation = data["validation"]
    scores, _ = trainer.predict(evaluation).predictions
    recommender = GramRecommender.from_trainer(trainer)
    ids = recommender.item_ids
    for row in range(len(evaluation)):
        history = [ids[i] for i in evaluation[row]["history"]]
        candidates = [ids[i] for i in evaluation[row]["candidates"]]
        expected = torch.as_tensor(scores[row, : len(candidates)])
        assert torch.allclose(recommender.score(history, candidates), expected, atol=1e-5)
        ranking = recommender.rank(history, candidates)
        assert [entry["item_id"] for entry in ranking] == [candidates[i] for i in torch.argsort(-expected).tolist()]
    batch = recommender.score([[ids[0]], []], [[ids[1], ids[2]], [ids[3]]])
    assert len(batch) == 2 and batch[0].shape == (2,) and batch[1].shape == (1,)


@pytest.mark.parametrize("item_encoder", ["content", "id", "content+id"])
def test_next_item_top_k_equals_trainer_predict(item_encoder, tokenizer, tiny_bert_config, tmp_path):
    trainer, data = _next_item(tokenizer, tiny_bert_config, tmp_path, item_encoder)
    test = data["test"]
    # [B, 2 + k]: rank, top-k catalog rows, rank among the cold-start items
    predicted = torch.as_tensor(trainer.predict(test).predictions[0])
    recommender = GramRecommender.from_trainer(trainer, items=None if item_encoder != "id" else data.items)
    ids = recommender.item_ids
    histories = [[ids[i] for i in test[row]["items"][:-1]] for row in range(len(test))]
    lists = recommender.top_k(histories, k=10)
    for row, top in enumerate(lists):
        assert [entry["item_id"] for entry in top] == [ids[i] for i in predicted[row, 1:-1].tolist()]
        assert not set(entry["item_id"] for entry in top) & set(histories[row])  # seen items excluded
        assert all(a["score"] >= b["score"] for a, b in zip(top, top[1:]))
    alone = recommender.top_k(histories[0], k=3)  # one user alone: the same list (scores to rounding)
    assert [entry["item_id"] for entry in alone] == [entry["item_id"] for entry in lists[0][:3]]
    assert [entry["score"] for entry in alone] == pytest.approx([entry["score"] for entry in lists[0][:3]], rel=1e-5)
    # Without exclusion the list is the unfiltered ranking of the same user vector.
    queries = recommender.user_vectors(histories[:1])
    expected = torch.topk(queries @ recommender.item_vectors.T, 5).indices[0].tolist()
    assert [e["item_id"] for e in recommender.top_k(histories[0], k=5, exclude_seen=False)] == [
        ids[i] for i in expected
    ]


# ----------------------------------------------------------------------- saved models, the cache, new items


def test_from_pretrained_reads_the_saved_settings_and_caches_item_vectors(news, tmp_path):
    trainer, data = news
    model_dir = tmp_path / "saved"
    trainer.save_model(str(model_dir))
    saved = json.loads((model_dir / INFERENCE_CONFIG_NAME).read_text())
    assert saved["catalog"]["text_fields"] == ["title"] and saved["collator"]["options"]["max_history"] == 3
    history, candidates = [data.items["item_id"][i] for i in (0, 1, 2, 3, 4)], data.items["item_id"][5:9]
    expected = GramRecommender.from_trainer(trainer).score(history, candidates)

    first = GramRecommender.from_pretrained(model_dir, items=data.items, device="cpu")
    assert first.counters["items_encoded"] == data.num_items
    assert (model_dir / CACHE_DIRNAME / "item_vectors.safetensors").is_file()
    assert torch.allclose(first.score(history, candidates), expected, atol=1e-5)  # max_history=3 was applied
    second = GramRecommender.from_pretrained(model_dir, items=data.items, device="cpu")
    assert second.counters["items_encoded"] == 0
    assert torch.equal(second.item_vectors, first.item_vectors)

    # Another encoder (one weight changed): the whole cache is stale.
    changed = GramModel.from_pretrained(model_dir)
    with torch.no_grad():
        changed.encoder.backbone.embeddings.word_embeddings.weight[100] += 1.0
    changed.save_pretrained(model_dir)
    third = GramRecommender.from_pretrained(model_dir, items=data.items, device="cpu")
    assert third.counters["items_encoded"] == data.num_items


def test_adding_items_encodes_only_them(next_item, tmp_path):
    trainer, data = next_item
    recommender = GramRecommender.from_trainer(trainer, cache_dir=tmp_path / "cache")
    full = recommender.counters["items_encoded"]
    assert full == data.num_items
    before = recommender.item_vectors.clone()
    rows = recommender.add_items(["new-1", recommender.item_ids[3]], ["a brand new film", "a changed description"])
    assert rows.tolist() == [data.num_items, 3]
    assert recommender.counters["items_encoded"] == full + 2
    after = recommender.item_vectors
    untouched = [i for i in range(data.num_items) if i != 3]
    assert torch.equal(after[untouched], before[untouched]) and not torch.equal(after[3], before[3])
    # The same vectors as encoding the grown catalog from scratch.
    catalog = ItemCatalog(recommender.item_ids, recommender.catalog._texts, trainer.processing_class, max_length=10)
    fresh = GramRecommender(trainer.gram_model, catalog, trainer.processing_class, device="cpu")
    assert torch.allclose(fresh.item_vectors, after, atol=1e-6)
    # A new item given with its text inside a history is added on the fly; then it can be recommended.
    top = recommender.top_k([recommender.item_ids[0], {"item_id": "new-2", "text": "another new film"}], k=40)
    assert "new-2" in recommender.item_ids and "new-2" not in [entry["item_id"] for entry in top]
    assert "new-1" in [entry["item_id"] for entry in top]
    # The cache follows: a new recommender over the grown catalog encodes nothing.
    grown = GramRecommender(trainer.gram_model, recommender.catalog, trainer.processing_class, device="cpu",
                            cache_dir=tmp_path / "cache")  # fmt: skip
    assert grown.counters["items_encoded"] == 0


def test_hybrid_new_items_get_their_content_alone(tokenizer, tiny_bert_config, tmp_path):
    trainer, data = _next_item(tokenizer, tiny_bert_config, tmp_path, "content+id")
    model = trainer.gram_model
    with torch.no_grad():
        model.item_id_table.weight.normal_()  # make the ID part visible
    recommender = GramRecommender.from_trainer(trainer)
    content = recommender._content
    cold = torch.tensor(data.items["cold_start"])
    vectors = recommender.item_vectors
    warm = (~cold).nonzero().squeeze(1)
    assert torch.allclose(vectors[warm], content[warm] + model.item_id_table.weight[warm], atol=1e-6)
    assert torch.equal(vectors[cold], content[cold])
    recommender.add_items(["brand-new"], ["a film nobody rated"])
    assert torch.equal(recommender.item_vectors[-1], recommender._content[-1])


def test_next_item_top_k_mixes_in_the_new_releases(tokenizer, tiny_bert_config, tmp_path):
    from gram_hf.tasks.next_item import new_item_offsets

    trainer, data = _next_item(tokenizer, tiny_bert_config, tmp_path, "content+id")
    cold = torch.zeros(data.num_items, dtype=torch.bool)
    cold[[5, 9, 13]] = True  # this small dataset has no new release of its own
    trainer.gram_model.set_cold_start_items(cold)
    recommender = GramRecommender.from_trainer(trainer)
    assert torch.equal(recommender.new_items, cold)
    recommender.add_items(["brand-new"], ["a film nobody rated"])
    assert recommender.new_items[-1] and int(recommender.new_items.sum()) == int(cold.sum()) + 1
    ids = recommender.item_ids
    histories = [[ids[0], ids[1]], [ids[2]], ["brand-new"]]

    def mixture_lists(share, new_mask, histories, k=8):
        queries, vectors = recommender.user_vectors(histories), recommender.item_vectors
        scores = (queries.double() @ vectors.double().T).clone()
        for row, history in enumerate(histories):
            scores[row, [ids.index(item) for item in history]] = -torch.inf
        warm = scores.masked_fill(new_mask, -torch.inf).log_softmax(dim=1) + math.log(1 - share)
        new = scores.masked_fill(~new_mask, -torch.inf).log_softmax(dim=1) + math.log(share)
        log_p = torch.where(new_mask, new, warm)
        return [[ids[i] for i in row.argsort(descending=True)[:k].tolist()] for row in log_p]

    for share in (0.05, 0.5):
        lists = recommender.top_k(histories, k=8, new_item_share=share)
        assert [[entry["item_id"] for entry in top] for top in lists] == mixture_lists(
            share, recommender.new_items, histories
        )
        # A new release's score is its raw score plus the user's mixture offset; a warm item's is its raw score.
        queries, vectors = recommender.user_vectors(histories), recommender.item_vectors
        exclude = torch.tensor([[ids.index(i) for i in h] + [-1] * (2 - len(h)) for h in histories])
        offsets = new_item_offsets(queries, vectors, recommender.new_items, share, exclude=exclude)
        for row, top in enumerate(lists):
            for entry in top:
                item = ids.index(entry["item_id"])
                raw = float(queries[row] @ vectors[item])
                expected = raw + float(offsets[row]) if recommender.new_items[item] else raw
                assert entry["score"] == pytest.approx(expected, rel=1e-5, abs=1e-5)
        if share == 0.5:  # half the next items are new releases: some reach the lists
            assert any(recommender.new_items[ids.index(entry["item_id"])] for top in lists for entry in top)
    # The third user has seen the one new release named here: nothing to interleave, the model's own list.
    named = recommender.top_k(histories, k=8, new_item_share=0.5, new_items=["brand-new"])
    only_brand_new = torch.zeros(len(ids), dtype=torch.bool)
    only_brand_new[-1] = True
    assert [[entry["item_id"] for entry in top] for top in named[:2]] == mixture_lists(
        0.5, only_brand_new, histories[:2]
    )
    assert [entry["item_id"] for entry in named[2]] == [e["item_id"] for e in recommender.top_k(histories[2], k=8)]
    with pytest.raises(ValueError, match="new_item_share must lie in"):
        recommender.top_k(histories, new_item_share=1.0)
    with pytest.raises(ValueError, match="names the new releases"):
        recommender.top_k(histories, new_items=["brand-new"])
    with pytest.raises(ValueError, match="use_index=False"):
        recommender.top_k(histories, new_item_share=0.1, use_index=True)
    with pytest.raises(TypeError, match="list of item ids"):
        recommender.top_k(histories, new_item_share=0.1, new_items=[{"item_id": "x", "text": "y"}])
    # By default top_k ranks at the share the model was evaluated with (the head's); 0 turns it off.
    raw = recommender.top_k(histories, k=8, new_item_share=0.0)
    assert recommender.top_k(histories, k=8) == raw
    trainer.gram_model.head.new_item_share = 0.5
    assert recommender.top_k(histories, k=8) == recommender.top_k(histories, k=8, new_item_share=0.5) != raw
    assert recommender.top_k(histories, k=8, new_item_share=0.0) == raw


def test_next_item_new_releases_of_content_and_id_models(tokenizer, tiny_bert_config, tmp_path, caplog):
    trainer, data = _next_item(tokenizer, tiny_bert_config, tmp_path, "content")
    ids = list(data.items["item_id"])
    histories = [[ids[0], ids[1]], [ids[2]]]
    # Built from the trainer's catalog, a content model knows no new release: an explicit share says so, the head's
    # share (from training) is skipped with one warning.
    recommender = GramRecommender.from_trainer(trainer)
    assert not recommender.new_items.any()
    with pytest.raises(ValueError, match="knows no new release .*new_items="):
        recommender.top_k(histories, new_item_share=0.2)
    trainer.gram_model.head.new_item_share = 0.2
    with caplog.at_level("WARNING"):
        assert recommender.top_k(histories, k=5) == recommender.top_k(histories, k=5, new_item_share=0.0)
    assert sum("new_item_share=0.2 is not applied" in record.message for record in caplog.records) == 1
    # The loaders' item tables flag them (`cold_start`), and so does any table with that column.
    flags = [index in (4, 7) for index in range(len(ids))]
    items = {"item_id": ids, "text": list(data.items["text"]), "cold_start": flags}
    listed = GramRecommender(trainer.gram_model, items, tokenizer, device="cpu")
    assert listed.new_items.tolist() == flags
    assert listed.top_k(histories, k=5, new_item_share=0.2) == listed.top_k(
        histories, k=5, new_item_share=0.2, new_items=[ids[4], ids[7]]
    )
    with pytest.raises(ValueError, match="has only new releases"):
        listed.top_k(histories, new_item_share=0.2, new_items=ids)
    # An ID model's recommender reads the flags from its items too.
    id_trainer, _ = _next_item(tokenizer, tiny_bert_config, tmp_path / "id", "id")
    id_recommender = GramRecommender.from_trainer(id_trainer, items={"item_id": ids, "cold_start": flags})
    assert id_recommender.new_items.tolist() == flags
    lists = id_recommender.top_k(histories, k=5, new_item_share=0.9)
    assert any(entry["item_id"] in (ids[4], ids[7]) for top in lists for entry in top)


# -------------------------------------------------------------------------------------------- bad inputs


def test_bad_inputs_raise_clear_errors(next_item, kt, tmp_path):
    trainer, data = next_item
    recommender = GramRecommender.from_trainer(trainer)
    with pytest.raises(KeyError, match="Unknown item id 'nope'.*give it with its text"):
        recommender.top_k(["nope"])
    with pytest.raises(ValueError, match="empty history"):
        recommender.top_k([])
    with pytest.raises(NotImplementedError, match="predict_response is knowledge tracing's"):
        recommender.predict_response([], items=["x"])
    kt_trainer, _ = kt
    kt_recommender = GramRecommender.from_trainer(kt_trainer)
    with pytest.raises(ValueError, match="Responses are 1"):
        kt_recommender.predict_response([(kt_recommender.item_ids[0], 2)], items=[kt_recommender.item_ids[1]])
    with pytest.raises(NotImplementedError, match="top_k is next-item's"):
        kt_recommender.top_k(["x"])


def test_a_catalog_from_another_tokenizer_is_refused(next_item, tmp_path):
    trainer, data = next_item
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "film"]))
    other = BertTokenizerFast(vocab_file=str(vocab))
    catalog = ItemCatalog(data.items["item_id"], data.items["text"], other, max_length=10)
    with pytest.raises(ValueError, match="different tokenizer than the model's"):
        GramRecommender.from_trainer(trainer, items=catalog)
    # The same tokenizer loaded again is the same tokenizer.
    same = AutoTokenizer.from_pretrained(trainer.processing_class.name_or_path)
    catalog = ItemCatalog(data.items["item_id"], data.items["text"], same, max_length=10)
    assert GramRecommender.from_trainer(trainer, items=catalog).num_items == data.num_items


def test_an_item_id_model_scores_only_its_items(tokenizer, tiny_bert_config, tmp_path):
    trainer, data = _next_item(tokenizer, tiny_bert_config, tmp_path, "id")
    with pytest.raises(ValueError, match="needs items="):
        GramRecommender.from_trainer(trainer)
    recommender = GramRecommender.from_trainer(trainer, items=data.items)
    with pytest.raises(KeyError, match="item-ID model can only score"):
        recommender.top_k(["not-an-item"])
    with pytest.raises(ValueError, match="item-ID model"):
        recommender.add_items(["x"], ["text"])
    with pytest.raises(ValueError, match="item rows but"):
        GramRecommender(trainer.gram_model, data.items["item_id"][:-1])


def test_catalog_token_digests_follow_the_tokens(tokenizer):
    catalog = ItemCatalog(["a", "b", "c"], ["one two", "two one", "one two"], tokenizer, max_length=8)
    digests = catalog.token_digests()
    assert digests[0] == digests[2] and digests[0] != digests[1]  # same tokens, same digest; order matters
    grown, rows = catalog.with_items(["b", "d"], ["one two three", "four"], tokenizer)
    assert rows.tolist() == [1, 3]
    reference = ItemCatalog(["a", "b", "c", "d"], ["one two", "one two three", "one two", "four"], tokenizer, 8)
    assert torch.equal(grown.flat_input_ids, reference.flat_input_ids)
    assert torch.equal(grown.token_digests(), reference.token_digests())


def test_unconfigured_model_config_is_rejected():
    config = BertConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=1, intermediate_size=8)
    model = GramModel(GramConfig(encoder=config, head_type="next_item", head_config={"max_length": 4}))
    with pytest.raises(ValueError, match="tokenizer"):
        GramRecommender(model, {"item_id": ["a"], "text": ["x"]})


def test_top_k_through_a_tuned_index_matches_exact_search(next_item):
    pytest.importorskip("faiss")
    trainer, data = next_item
    recommender = GramRecommender.from_trainer(trainer)
    ids = recommender.item_ids
    histories = [[ids[i] for i in data["test"][row]["items"][:-1]] for row in range(len(data["test"]))]
    exact = recommender.top_k(histories, k=5)
    index = recommender.build_index(tune_histories=histories, target_recall=1.0)
    assert recommender.index_recall == 1.0 and len(index) == recommender.num_items
    approximate = recommender.top_k(histories, k=5)  # through the index, seen items filtered after the search
    assert [[e["item_id"] for e in top] for top in approximate] == [[e["item_id"] for e in top] for top in exact]
    assert recommender.top_k(histories, k=5, use_index=False) == exact
    recommender.add_items(["another"], ["a film"])
    assert recommender.index is None  # stale after the catalog changed
    with pytest.raises(ValueError, match="build_index"):
        recommender.top_k(histories[0], use_index=True)
