"""Entity tagging: BIO tags from spans and back by hand-checked cases (nested spans flattened),
span scores by seqeval, MaintIE spans in the catalog (bad ones named), a tagger that learns the
vendored MaintIE sample through the CLI, and masked-language-model pretraining whose encoder starts
a tagger."""

from __future__ import annotations

import json

import pytest

from transferline.tagging.spans import bio_tags, cut, decode, outermost, span_scores, words


def test_bio_tags_flatten_nested_spans_to_the_outermost():
    text = "<id> air horn not working"
    offsets = words(text)
    assert offsets == [(0, 4), (5, 8), (9, 13), (14, 17), (18, 25)]
    spans = [{"label": "PhysicalObject/PresentingObject/AcousticDevice", "start": 5, "end": 13},
             {"label": "PhysicalObject/PresentingObject/AcousticDevice", "start": 9, "end": 13},  # nested: dropped
             {"label": "State/UndesirableState/FailedState", "start": 14, "end": 25}]
    assert len(outermost(spans)) == 2
    assert bio_tags(offsets, spans, 1) == ["O", "B-PhysicalObject", "I-PhysicalObject", "B-State", "I-State"]
    assert bio_tags(offsets, spans, 2)[1] == "B-PhysicalObject/PresentingObject"
    assert cut("State/UndesirableState/FailedState", 0) == "State/UndesirableState/FailedState"
    back = decode(text, offsets, bio_tags(offsets, spans, 1))
    assert [(s["label"], s["text"]) for s in back] == [("PhysicalObject", "air horn"), ("State", "not working")]
    # an I- tag without its B- opens a span (seqeval's CoNLL scheme)
    assert decode(text, offsets, ["O", "I-Activity", "I-Activity", "O", "O"])[0]["text"] == "air horn"


def test_span_scores_by_hand():
    true = [["B-A", "I-A", "O", "B-B"], ["B-A", "O"]]
    pred = [["B-A", "I-A", "O", "B-A"], ["B-A", "B-B"]]  # 2 of 3 true spans found, 2 of 4 predicted right
    s = span_scores(true, pred)
    assert s["precision"] == pytest.approx(0.5) and s["recall"] == pytest.approx(2 / 3)
    assert s["f1"] == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3)) and s["spans"] == 3
    assert s["per_type"]["A"]["recall"] == 1.0 and s["per_type"]["B"]["f1"] == 0.0


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    from transferline.catalog import Catalog
    from transferline.connectors import create_reader
    from transferline.sample_data import sample_path

    catalog = Catalog(tmp_path_factory.mktemp("tag-cat"))
    catalog.ingest("mie", create_reader("maintie")(sample_path("maintie")))
    catalog.ingest("mn", create_reader("maintnet")(sample_path("maintnet")))
    return catalog


def test_maintie_spans_are_character_offsets_of_the_annotated_tokens(catalog):
    from transferline.sample_data import sample_path
    from transferline.tagging import load_tagged

    docs = json.loads((sample_path("maintie") / "gold_release.json").read_text())
    rows = catalog.read("mie", columns=["doc_id", "text", "spans"]).to_pylist()
    by_id = {r["doc_id"]: r for r in rows}
    for i, doc in enumerate(docs):
        row = by_id[str(i)]
        assert row["text"].split(" ") == doc["tokens"]
        assert [row["text"][s["start"]:s["end"]] for s in row["spans"]] == \
            [" ".join(doc["tokens"][e["start"]:e["end"]]) for e in doc["entities"]]
    data = load_tagged(catalog, "mie", 1)
    assert data.types == sorted({e["type"].split("/")[0] for d in docs for e in d["entities"]})
    assert data.tag_names[0] == "O" and len(data.tag_names) == 1 + 2 * len(data.types)
    assert all(len(t) == len(o) for t, o in zip(data.tags, data.offsets))
    rest, held = data.holdout(0.1, 0)
    assert len(held) == 24 and not set(rest.names) & set(held.names)


def test_bad_spans_are_named(tmp_path, catalog):
    import pyarrow as pa

    from transferline.catalog import Catalog
    from transferline.catalog._validate import validate_table
    from transferline.catalog.schemas import get_kind
    from transferline.connectors import create_reader
    from transferline.errors import DataError, TransferlineError
    from transferline.tagging import load_tagged

    src = tmp_path / "gold_release.json"
    src.write_text(json.dumps([{"text": "pump leak", "tokens": ["pump", "leak"],
                                "entities": [{"start": 1, "end": 3, "type": "State"}]}]))
    with pytest.raises(DataError, match=r"entity token range 1\.\.3 lies outside the document's 2 tokens") as exc:
        Catalog(tmp_path / "c").ingest("bad", create_reader("maintie")(src))
    assert "row 1" in str(exc.value) and "entities" in str(exc.value)
    table = catalog.read("mie").slice(0, 2)
    spans = table.column("spans").to_pylist()
    spans[1] = [{"label": "State", "start": 0, "end": 999}]
    bad = table.set_column(table.column_names.index("spans"), "spans", pa.array(spans, table.schema.field("spans").type))
    with pytest.raises(DataError, match="entity span .* lies outside its text") as exc:
        validate_table(bad, get_kind("text"), file="x.parquet")
    assert "spans" in str(exc.value)
    assert not (tmp_path / "c" / "bad").exists()
    with pytest.raises(TransferlineError, match="'mn' has no entity spans"):
        load_tagged(catalog, "mn")


def test_masked_language_model_step_reaches_the_encoder():
    import torch

    from transferline.data import Batch, InputSpec, TextInput
    from transferline.encoders import create_encoder
    from transferline.objectives import create_objective

    torch.manual_seed(0)
    spec = InputSpec.of(TextInput(max_length=16))
    encoder = create_encoder("hf/all-minilm-l6-v2", spec)
    objective = create_objective("masked", encoder, spec, ratio=0.5)
    ids = torch.from_numpy(objective.collator.tokenizer(["oil leak at left engine", "replaced magneto"],
                                                        padding=True, return_tensors="np")["input_ids"])
    out = objective.step(Batch({"text": ids}))
    assert torch.isfinite(out["loss"]) and 0 < out["masked_fraction"] <= 1
    out["loss"].backward()
    assert encoder.model.embeddings.word_embeddings.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="ratio"):
        create_objective("masked", encoder, spec, ratio=1.5)


@pytest.mark.slow
def test_pretrain_then_tag_through_the_cli(catalog, tmp_path, capsys):
    from transferline.cli import main
    from transferline.tagging import load_tagged, tag_texts
    from transferline.tagging.run import dataset_texts
    from transferline.tagging.tagger import TagConfig, build_tagger
    from transferline.train.checkpoint import load_state

    home = ["--catalog", str(catalog.root)]
    pre = tmp_path / "dapt"
    assert main(["tag", "pretrain", "--datasets", "mn", "mie", "--exclude-holdout-of", "mie", "--epochs", "2",
                 "--out", str(pre), *home]) == 0
    fit = json.loads((pre / "metrics.json").read_text())
    assert fit["val_loss"] < fit["val_loss_before"] - 1.0  # the held-out masked tokens are predicted better
    held = set(load_tagged(catalog, "mie").holdout(0.1, 0)[1].names)
    assert len(dataset_texts(catalog, ["mie"], {"mie": held})) == 240 - len(held) == 216
    run = tmp_path / "tagger"
    args = ["tag", "fit", "--dataset", "mie", "--epochs", "4", "--pretrained", str(pre), *home]
    assert main([*args, "--out", str(run)]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test"]["f1"] > 0.5 and metrics["test"]["spans"] > 40, metrics["test"]
    assert metrics["fit"]["val_f1"] == max(r["val_f1"] for r in metrics["fit"]["history"])
    assert "test span F1" in capsys.readouterr().out
    state, meta = load_state(run, "model")
    assert meta["kind"] == "tagger" and meta["tags"][0] == "O"
    tagger, spec = build_tagger(TagConfig(max_length=meta["input"]["text"]["max_length"]), meta["tags"])
    tagger.load_state_dict(state)
    spans = tag_texts(tagger.eval(), spec, ["replace air conditioner filter"])[0]
    assert all(s["text"] == "replace air conditioner filter"[s["start"]:s["end"]] for s in spans) and spans
    assert main([*args, "--out", str(run)]) == 2  # exists
    assert main([*args[:3], "mn", *args[4:], "--out", str(tmp_path / "x")]) == 2
    assert "'mn' has no entity spans" in capsys.readouterr().err
    assert main([*args, "--depth", "-1", "--out", str(tmp_path / "y")]) == 2
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
    # the run folder's config.yaml is a `--config` file holding the run's settings; flags win over it
    from transferline._fitconfig import read_fit_config

    data, tagging = read_fit_config(run / "config.yaml", "tagging", TagConfig)
    assert data["dataset"] == "mie" and tagging["epochs"] == 4 and tagging["pretrained"] == str(pre)
    assert main(["tag", "fit", "--config", str(run / "config.yaml"), "--freeze-epochs", "-1", *home,
                 "--out", str(tmp_path / "z")]) == 2
    assert f"--config {run / 'config.yaml'}: tagging: depth >= 0, freeze_epochs >= 0" in capsys.readouterr().err
    assert not (tmp_path / "z").exists()


def test_text_views_swap_abbreviations_and_drop_tokens(tmp_path):
    import torch

    from transferline.data import TextInput
    from transferline.data.preprocess import TextPreprocess
    from transferline.objectives.text_views import TextViews

    spec = TextInput(max_length=24)
    always = TextViews(spec, drop=0.0, swap=1.0)
    assert always.swap_words("ALT inop, replaced alternator belt") == "alternator inoperable, replaced alt belt"
    assert TextViews(spec, drop=0.0, swap=0.0).swap_words("ALT inop") == "ALT inop"
    ids = torch.from_numpy(TextPreprocess(spec)(["alt inop, replaced alternator belt"] * 8))
    assert torch.equal(always(always(ids)), ids)  # swapped there and back
    torch.manual_seed(0)
    dropped = TextViews(spec, drop=0.5, swap=0.0)(ids)
    real = ids != 0
    assert (dropped[:, 0] == ids[:, 0]).all() and (dropped[~real] == 0).all()  # [CLS] kept, padding stays
    share = ((dropped == 0) & real).sum() / real.sum()
    assert 0.25 < share < 0.6 and not torch.equal(dropped[0], dropped[1])  # each text its own view
    lexicon = tmp_path / "lex.csv"
    lexicon.write_text("short,long\npmp,pump\n")
    with pytest.raises(ValueError, match="needs columns Abbreviated and Standard_Description"):
        TextViews(spec, lexicon=str(lexicon))


def test_contrastive_text_objective_reaches_the_encoder():
    import torch

    from transferline.data import Batch, InputSpec, TextInput
    from transferline.data.preprocess import TextPreprocess
    from transferline.encoders import create_encoder
    from transferline.objectives import create_objective

    torch.manual_seed(0)
    spec = InputSpec.of(TextInput(max_length=16))
    encoder = create_encoder("hf/all-minilm-l6-v2", spec)
    objective = create_objective("contrastive", encoder, spec, drop=0.2, swap=0.5)
    ids = torch.from_numpy(TextPreprocess(spec["text"])(["oil leak at left engine", "replaced magneto", "alt inop",
                                                         "cyl 3 low compression"]))
    out = objective.step(Batch({"text": ids}))
    assert torch.isfinite(out["loss"])
    out["loss"].backward()
    assert encoder.model.embeddings.word_embeddings.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['jitter'\]"):
        create_objective("contrastive", encoder, spec, jitter=0.1)


@pytest.mark.slow
def test_contrastive_text_pretraining_through_the_cli(catalog, tmp_path, capsys):
    from transferline.cli import main

    out = tmp_path / "ntxent"
    assert main(["tag", "pretrain", "--datasets", "mn", "--objective", "contrastive", "--epochs", "1",
                 "--catalog", str(catalog.root), "--out", str(out)]) == 0
    fit = json.loads((out / "metrics.json").read_text())
    assert fit["val_loss"] < fit["val_loss_before"] and fit["config"]["objective"] == "contrastive"
    assert json.loads((out / "encoder.json").read_text())["objective"] == "contrastive"
    assert "held-out contrastive loss" in capsys.readouterr().out
    assert main(["tag", "pretrain", "--datasets", "mn", "--objective", "contrastive", "--swap", "2",
                 "--catalog", str(catalog.root), "--out", str(tmp_path / "bad")]) == 2
    assert not (tmp_path / "bad").exists()


def test_streamed_tagging_reads_the_in_memory_split_and_encoding(catalog):
    """What `tag fit --stream` reads: the same training, validation and test texts as in memory, the
    same tag set, and each training text encoded as in memory (ids, each word's first token, tag id)."""
    import numpy as np

    from transferline.tagging import TagConfig, load_tagged
    from transferline.tagging.spans import WordTokens
    from transferline.tagging.stream import encode, plan_tagging, read_task
    from transferline.tagging.tagger import tag_spec

    data = load_tagged(catalog, "mie", 2)
    rest, test = data.holdout(0.2, 3)
    train, val = rest.holdout(0.1, 4)
    plan = plan_tagging(catalog, "mie", 2, holdout=0.2, val_fraction=0.1, split_seed=3)
    assert plan.tag_names == data.tag_names and len(plan.split["train"]) == len(train)
    for part, want in (("val", val), ("test", test)):
        got = plan.texts(part)
        assert (got.names, got.texts, got.tags) == (want.names, want.texts, want.tags)
    spec = tag_spec(TagConfig(max_length=12))  # short enough that words of longer texts are cut
    tasks = plan.tasks("train", texts_per_task=50)
    assert len(tasks) == 4 and sum(len(t["rows"]) for t in tasks) == len(train)
    blocks = [b for task in tasks for b in read_task({k: [v] for k, v in task.items()}, spec=spec,
                                                     tag_names=plan.tag_names, depth=2, seed=0, block=16)]
    got = {k: np.concatenate([b[k] for b in blocks]) for k in ("ids", "first", "targets")}
    want = encode(train, WordTokens(spec, pad_to_max=True))
    assert got["ids"].shape == want["ids"].shape == (len(train), 12) and (want["first"] == -1).any()
    assert (want["targets"] >= 0).sum() > len(train)  # tags of words with a token
    rows = lambda e: sorted(e["ids"][i].tobytes() + e["first"][i].tobytes() + e["targets"][i].tobytes()
                            for i in range(len(e["ids"])))  # noqa: E731
    assert rows(got) == rows(want)  # the same texts, encoded alike, in another (shuffled) order
    assert not np.array_equal(got["ids"], want["ids"])
