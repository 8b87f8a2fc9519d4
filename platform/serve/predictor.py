"""Plain-Python prediction over registered models: validation, normalization, an LRU of loaded
exported models. Ray Serve wraps this; tests and ``transferline predict`` use it directly.

Models exported to ONNX run in onnxruntime: serving them imports numpy, onnxruntime and the
registry's JSON (text models: the ``tokenizers`` library), and neither torch nor tsai, fastai or
transformers (a test checks ``sys.modules``, for series models and taggers). TorchScript is the
fallback for a model that did not export (its entry's ``runtime`` says why); detectors decode their
boxes with torchvision, so serving one loads torch.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..data.inputs import PRESENT, InputSpec
from ..data.preprocess import build_preprocess
from ..errors import TransferlineError
from ..model_registry import ModelEntry, ModelRegistry
from ..model_registry._runtime import OnnxModule, TorchScriptModule

FLOAT32_MAX = float(np.finfo(np.float32).max)
MAX_TEXT_CHARS = 20_000
# request fields by the input modality that takes them (series models take windows), and what to call them
INPUT_FIELDS = {"image": ("images", "pixels"), "text": ("texts",), "series": ("windows", "windows_base64"),
                "tabular": ("rows",)}
INPUT_NAMES = {"windows": "sensor windows", "windows_base64": "sensor windows", "images": "images",
               "pixels": "images", "texts": "texts", "rows": "table rows"}


class RequestError(TransferlineError):
    """A request that does not fit the model: ``loc`` is the path to the bad field (FastAPI style)."""

    def __init__(self, loc: list, message: str) -> None:
        self.loc, self.message = loc, message
        super().__init__(f"{'.'.join(map(str, loc))}: {message}")


class InputPart(BaseModel):
    """One input's fields: what a single-input model takes at the top level of a request, and a
    model of several inputs under ``inputs.<name>``."""

    model_config = ConfigDict(strict=True, extra="forbid")

    windows: list[list[list[float]]] | None = Field(None, description="series models: [batch][time][signal] raw "
                                                                         "sensor values")
    windows_base64: str | None = Field(None, description="series models, the binary form of `windows`: base64 of "
                                                         "little-endian float32 values in [batch][time][signal] order "
                                                         "(the batch size follows from the length)")
    signals: list[str] | None = Field(None, description="signal names in column order (checked against the model)")
    groups: list[list[int]] | None = Field(None, description="[batch][time] normalization group, e.g. "
                                                             "operating condition round(setting_1)")
    images: list[str] | None = Field(None, description="image models: base64-encoded PNG or JPEG files")
    pixels: list[list[list[int]]] | list[list[list[list[int]]]] | None = Field(
        None, description="image models: raw pixels 0-255, [batch][height][width] or [batch][height][width][channel]")
    texts: list[str] | None = Field(None, description="text models: the texts, each non-empty and at most "
                                                      f"{MAX_TEXT_CHARS:,} characters (cut at the model's max tokens)")
    rows: list[list[float]] | None = Field(None, description="tabular inputs (e.g. set-points): [batch][column] raw "
                                                             "values, columns in the order of `columns`")
    columns: list[str] | None = Field(None, description="tabular inputs: column names in order (checked against "
                                                        "the model)")


class PredictRequest(InputPart):
    """``POST /v1/models/{name}/predict``'s body, validated strictly: numbers must be JSON numbers
    (no booleans, no numeric strings), group ids JSON integers, and no unknown fields."""

    heatmap: bool = Field(False, description="anomaly models: also answer each image's pixel anomaly map as a "
                                             "base64 PNG at the model's input size (hot = anomalous)")
    inputs: dict[str, InputPart] | None = Field(
        None, description="models of several inputs (e.g. one per sensor): input name -> that input's fields; "
                          "leave out an input the samples lack (a sensor down), give at least one")


def parse_request(body) -> PredictRequest:
    """A decoded JSON body, or its undecoded bytes (parsed and validated in one pass by pydantic's
    JSON parser), → :class:`PredictRequest`; raises :class:`RequestError` naming the first bad field."""
    try:
        if isinstance(body, (bytes, bytearray, memoryview)):
            return PredictRequest.model_validate_json(body)
        return PredictRequest.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise RequestError(["body", *first["loc"]], first["msg"]) from None


@dataclass
class LoadedModel:
    entry: ModelEntry
    module: OnnxModule | TorchScriptModule
    preprocess: object  # built from the entry's input spec, as in training
    modality: str = "series"
    answer: object = None  # taggers, retrievers: (model output, the request's texts) -> predictions
    batched: object = None  # the server's async batched run, where batching pays (serve.batching)

    @property
    def ref(self) -> str:
        return self.entry.ref

    def prepare(self, raw, extra: np.ndarray | None = None) -> np.ndarray | dict[str, np.ndarray]:
        """What :func:`validate` returned → model input (float32), by the training preprocessing:
        raw windows ``[B, T, C]`` and their groups → ``[B, C, T]``; images → ``[B, C, H, W]``; texts →
        token ids ``[B, L]`` (int64); several inputs → each one's, by name, and ``present``."""
        if self.modality == "multi":
            return self.preprocess(raw)
        return prepare_input(self.preprocess, self.modality, raw, extra)

    def run(self, x: np.ndarray) -> np.ndarray:
        return self.module.run(x)


def validate(entry: ModelEntry, request: PredictRequest) -> tuple:
    """Checks a parsed request against the model's input spec; returns the raw input and what goes
    with it: windows ``[B, T, C]`` and groups for series models, decoded images and None for image
    models, the texts and None for text models."""
    if entry.task.get("name") == "process_outcome":
        raise RequestError(["path", "name"], f"model {entry.ref} is a process surrogate: ask it for set-points with "
                                             f"POST /v1/models/{entry.name}/recommend")
    if several_inputs(entry):
        return validate_inputs(entry, request), None
    if request.inputs is not None:
        raise RequestError(["body", "inputs"], f"model {entry.ref} takes one input ({', '.join(entry.input)}): send "
                                               "its fields at the top level of the body")
    accepted = next((fields for modality, fields in INPUT_FIELDS.items() if modality in entry.input), ("windows",))
    wrong = [f for f in INPUT_NAMES if getattr(request, f) is not None and f not in accepted]
    if wrong:
        raise RequestError(["body", wrong[0]], f"model {entry.ref} takes {INPUT_NAMES[accepted[0]]}, not "
                                               f"{INPUT_NAMES[wrong[0]]}")
    if request.columns is not None and "tabular" not in entry.input:
        raise RequestError(["body", "columns"], f"model {entry.ref} takes {INPUT_NAMES[accepted[0]]}; columns name "
                                                "the values of table rows")
    if request.heatmap and entry.output.get("kind") != "anomaly":
        raise RequestError(["body", "heatmap"], f"model {entry.ref} is a {entry.task.get('name')} model; heat maps "
                                                "come from anomaly models")
    if "text" in entry.input:
        return validate_texts(entry, request.texts), None
    if "tabular" in entry.input:
        return validate_rows(entry, request), None
    if "image" in entry.input:
        from ._images import decode_images

        return decode_images(request, RequestError), None
    if request.windows is None and request.windows_base64 is None:
        raise RequestError(["body", "windows"], f"model {entry.ref} takes sensor windows: [batch][time][signal]")
    if request.windows is not None and request.windows_base64 is not None:
        raise RequestError(["body", "windows_base64"], "send the windows once: as `windows` or as `windows_base64`")
    spec = series_spec(entry)
    if request.signals is not None and list(request.signals) != list(spec["signals"]):
        raise RequestError(["body", "signals"], f"model {entry.ref} takes signals {spec['signals']} in this order")
    expected = (spec["window"], spec["channels"])
    field = "windows" if request.windows is not None else "windows_base64"
    if request.windows is not None:
        try:
            x = np.asarray(request.windows, dtype=np.float64)
        except ValueError:
            raise RequestError(["body", "windows"], "ragged: every window needs the same number of time steps and "
                                                    "signals") from None
    else:
        x = _binary_windows(request.windows_base64, expected, entry)
    if x.ndim != 3 or x.shape[1:] != expected or x.shape[0] == 0:
        raise RequestError(["body", "windows"], f"shape {list(x.shape)}; model {entry.ref} takes "
                                                f"[batch >= 1, {expected[0]} time steps, {expected[1]} signals]")
    bad = ~(np.abs(x) <= FLOAT32_MAX)  # NaN, infinities, and values that overflow float32
    if bad.any():
        b, t, c = (int(i) for i in np.argwhere(bad)[0])
        raise RequestError(["body", field, b, t, c], f"{x[b, t, c]!r} is not a finite float32 "
                                                     f"(signal {spec['signals'][c]!r})")
    g = None
    normalizer = spec.get("normalizer") if spec.get("normalize") == "group" else None
    if request.groups is not None:
        try:
            g = np.asarray(request.groups, dtype=np.int64)
        except (ValueError, OverflowError):
            raise RequestError(["body", "groups"], "expected [batch][time] integers within int64") from None
        if g.shape != x.shape[:2]:
            raise RequestError(["body", "groups"], f"shape {list(g.shape)}, windows need {list(x.shape[:2])}")
        if normalizer:
            known = np.asarray(normalizer["groups"][:-1], np.int64)
            unknown = ~np.isin(g, known)
            if unknown.any():
                b, t = (int(i) for i in np.argwhere(unknown)[0])
                raise RequestError(["body", "groups", b, t], f"group {int(g[b, t])} is not one of model "
                                                             f"{entry.ref}'s groups {known.tolist()}")
    elif spec.get("group_by") and normalizer and len(normalizer["groups"]) > 2:
        raise RequestError(["body", "groups"], f"model {entry.ref} normalizes per {spec['group_by']}: send the "
                                               "group of every time step (e.g. round(setting_1) for C-MAPSS)")
    return x, g


def several_inputs(entry: ModelEntry) -> bool:
    """Whether the model takes several named inputs (a fusion model), each under ``inputs.<name>``."""
    return len(entry.input) > 1 or any("modality" in spec for spec in entry.input.values())


def validate_inputs(entry: ModelEntry, request: PredictRequest) -> dict[str, tuple]:
    """A request for a model of several inputs: each given input checked as a one-input model with
    that input's spec would check it (errors located under ``body.inputs.<name>``), at least one
    given, all with the same number of samples. Returns input name → what :func:`validate` returns."""
    from dataclasses import replace

    names = list(entry.input)
    top = [f for f in InputPart.model_fields if getattr(request, f) is not None]
    if top:
        raise RequestError(["body", top[0]], f"model {entry.ref} takes several inputs ({', '.join(names)}): send "
                                             "each one's fields under inputs.<name>")
    if not request.inputs:
        raise RequestError(["body", "inputs"], f"model {entry.ref} takes inputs {names}: give at least one as "
                                               "inputs.<name> (leave out only those the samples lack)")
    unknown = [n for n in request.inputs if n not in entry.input]
    if unknown:
        raise RequestError(["body", "inputs", unknown[0]], f"model {entry.ref} has no input {unknown[0]!r}; it "
                                                           f"takes {names}")
    out = {}
    for name in names:
        if name not in request.inputs:
            continue
        spec = dict(entry.input[name])
        one = replace(entry, input={spec.pop("modality", name): spec})
        try:
            out[name] = validate(one, PredictRequest.model_construct(**request.inputs[name].model_dump()))
        except RequestError as exc:
            raise RequestError(["body", "inputs", name, *exc.loc[1:]], exc.message) from None
    sizes = {name: len(x) for name, (x, _) in out.items()}
    if len(set(sizes.values())) > 1:
        raise RequestError(["body", "inputs"], f"the inputs hold different numbers of samples: {sizes}")
    return out


def _binary_windows(text: str, shape: tuple[int, int], entry: ModelEntry) -> np.ndarray:
    """``windows_base64`` → ``[B, T, C]`` float32 (B from the length), or :class:`RequestError`."""
    import binascii
    from base64 import b64decode

    try:
        raw = b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise RequestError(["body", "windows_base64"], "not valid base64") from None
    per_window = 4 * shape[0] * shape[1]
    if not raw or len(raw) % per_window:
        raise RequestError(["body", "windows_base64"], f"{len(raw)} bytes; model {entry.ref} takes a whole number "
                                                       f"(>= 1) of windows of {shape[0]} time steps x {shape[1]} "
                                                       f"signals x 4 bytes (float32) = {per_window} bytes each")
    return np.frombuffer(raw, dtype="<f4").reshape(-1, *shape).astype(np.float64)  # as the JSON form's values


def validate_rows(entry: ModelEntry, request: PredictRequest) -> np.ndarray:
    """The rows of a request for a tabular input: ``[batch >= 1][columns]`` finite numbers."""
    columns = list(entry.input["tabular"]["columns"])
    if request.columns is not None and list(request.columns) != columns:
        raise RequestError(["body", "columns"], f"model {entry.ref} takes columns {columns} in this order")
    if not request.rows:
        raise RequestError(["body", "rows"], f"model {entry.ref} takes table rows: [batch][column] values of "
                                             f"{columns}")
    for i, row in enumerate(request.rows):
        if len(row) != len(columns):
            raise RequestError(["body", "rows", i], f"{len(row)} values; model {entry.ref} takes one per column "
                                                    f"{columns}")
    x = np.asarray(request.rows, dtype=np.float64)
    bad = ~(np.abs(x) <= FLOAT32_MAX)
    if bad.any():
        b, c = (int(i) for i in np.argwhere(bad)[0])
        raise RequestError(["body", "rows", b, c], f"{x[b, c]!r} is not a finite float32 (column {columns[c]!r})")
    return x


def validate_texts(entry: ModelEntry, texts: list[str] | None) -> list[str]:
    """The texts of a request for a text model: at least one, none empty or over the size limit."""
    if not texts:
        raise RequestError(["body", "texts"], f"model {entry.ref} takes texts: a non-empty list of strings")
    for i, text in enumerate(texts):
        if not text.strip():
            raise RequestError(["body", "texts", i], "empty text")
        if len(text) > MAX_TEXT_CHARS:
            raise RequestError(["body", "texts", i], f"{len(text):,} characters; at most {MAX_TEXT_CHARS:,}")
    return list(texts)


class Predictor:
    """Answers predictions for any registered model, keeping up to ``max_models`` loaded (LRU)."""

    def __init__(self, registry: ModelRegistry | str | None = None, max_models: int = 16) -> None:
        self.registry = registry if isinstance(registry, ModelRegistry) else ModelRegistry(registry)
        self.max_models = max_models
        self._loaded: OrderedDict[str, LoadedModel] = OrderedDict()

    def entry(self, name: str, version: str | int | None = None, stage: str | None = None) -> ModelEntry:
        ref = f"{name}@{version}" if version is not None else name
        return self.registry.get(ref, stage)

    def load(self, ref: str | ModelEntry) -> LoadedModel:
        """The loaded model for ``name@version`` or an entry (loads it, evicting the least recently used).

        Kept per registration (:attr:`ModelEntry.key`), so a re-registered version number is loaded anew.
        """
        entry = ref if isinstance(ref, ModelEntry) else self.registry.get(ref)
        if entry.key in self._loaded:
            self._loaded.move_to_end(entry.key)
            return self._loaded[entry.key]
        model = load_model(self.registry, entry)
        self._loaded[entry.key] = model
        while len(self._loaded) > self.max_models:
            self._loaded.popitem(last=False)
        return model

    def predict(self, name: str, windows=None, *, signals=None, groups=None, images=None, pixels=None, texts=None,
                inputs=None, heatmap: bool = False, version=None, stage=None) -> dict:
        """Validates like the server (:class:`PredictRequest`, then the model's input spec) and predicts.
        ``inputs``: for a model of several inputs, input name → that input's fields."""
        given = {"windows": windows, "signals": signals, "groups": groups, "images": images, "pixels": pixels,
                 "texts": texts, "inputs": inputs, "heatmap": heatmap or None}
        return self.predict_body(name, {k: v for k, v in given.items() if v is not None}, version=version, stage=stage)

    def predict_body(self, name: str, body: dict, *, version=None, stage=None) -> dict:
        """Answers a request body as the server's ``POST /v1/models/{name}/predict`` does."""
        entry = self.entry(name, version, stage)
        request = parse_request(body)
        x, g = validate(entry, request)
        model = self.load(entry)
        return response(entry, model.run(model.prepare(x, g)), heatmap=request.heatmap, raw=x, answer=model.answer)


def load_model(registry: ModelRegistry, ref: str | ModelEntry) -> LoadedModel:
    """Loads one registered model's exported artifact (ONNX where the registry wrote one, else
    TorchScript) and its preprocessing (no caching),
    after checking its files against the content hash of its registration (:class:`IntegrityError`)."""
    entry = ref if isinstance(ref, ModelEntry) else registry.get(ref)
    registry.verify(entry)
    specs = InputSpec.from_dict(entry.input)
    multi = several_inputs(entry)
    if "model.onnx" in entry.files:
        module = OnnxModule(registry.artifact(entry.ref).with_name("model.onnx"))
    else:  # the model did not export to ONNX (entry.runtime says why), or was registered before it could
        module = TorchScriptModule(registry.artifact(entry.ref), inputs=[*specs.names, PRESENT] if multi else None)
    if multi:
        return LoadedModel(entry, module, InputsPreprocess(specs), "multi")
    spec = specs.only()
    if entry.output.get("kind") == "neighbours":  # retrievers: the indexed problems and their actions
        import json

        index = json.loads((registry.path(entry.name, entry.version) / "index.json").read_text())
        return LoadedModel(entry, module, build_preprocess(spec), spec.modality,
                           answer=lambda out, texts: neighbours_answer(out, index))
    if entry.output.get("kind") == "spans":  # taggers split texts into words as in training
        from ..tagging.spans import TagPreprocess

        preprocess = TagPreprocess(spec)
        return LoadedModel(entry, module, preprocess, spec.modality,
                           answer=lambda out, texts: preprocess.spans(texts, out, entry.output["tags"]))
    return LoadedModel(entry, module, build_preprocess(spec), spec.modality)


def prepare_input(preprocess, modality: str, raw, extra: np.ndarray | None = None) -> np.ndarray:
    """One input as :func:`validate` returned it → model input, by the training preprocessing:
    raw windows ``[B, T, C]`` and their groups → ``[B, C, T]``; images and texts as they come."""
    if modality in ("image", "text", "tabular"):
        return preprocess(raw)
    return preprocess(np.asarray(raw).transpose(0, 2, 1), extra)


class InputsPreprocess:
    """A model of several inputs: each given input preprocessed as in training, zeros for the absent
    ones, and the presence mask saying which are which."""

    def __init__(self, spec: InputSpec) -> None:
        self.specs = spec.modalities
        self.parts = {name: build_preprocess(s) for name, s in self.specs.items()}
        # what an absent input's zeros look like: one sample's shape and dtype
        self.blank = {name: (s.example(1).shape[1:], s.example(1).dtype) for name, s in self.specs.items()}

    def __call__(self, raw: dict[str, tuple]) -> dict[str, np.ndarray]:
        batch = len(next(iter(raw.values()))[0])
        feeds = {}
        for name, spec in self.specs.items():
            if name in raw:
                feeds[name] = prepare_input(self.parts[name], spec.modality, *raw[name])
            else:
                shape, dtype = self.blank[name]
                feeds[name] = np.zeros((batch, *shape), dtype)
        feeds[PRESENT] = np.repeat(np.array([[name in raw for name in self.specs]]), batch, axis=0)
        return feeds


def neighbours_answer(out: np.ndarray, index: dict) -> list[list[dict]]:
    """Retrievers: per text its nearest past problems ``{problem, actions, score}``, best first
    (``out`` holds k scores, then the k indices into the registered index)."""
    k = out.shape[1] // 2
    return [[{"problem": index["problems"][int(j)], "actions": index["actions"][int(j)], "score": round(float(s), 6)}
             for s, j in zip(row[:k], row[k:])] for row in out]


def series_spec(entry: ModelEntry) -> dict:
    """The series part of an entry's input spec; a clear error for models that take other inputs."""
    if "series" not in entry.input:
        raise RequestError(["body", "windows"], f"model {entry.ref} takes {', '.join(entry.input)} inputs, "
                                                "not sensor windows")
    return entry.input["series"]


def response(entry: ModelEntry, out: np.ndarray, heatmap: bool = False, raw=None, answer=None) -> dict:
    """The answer to one request from the model's output ``out``; ``raw`` is the request's validated
    input (detectors map their boxes back to each image's own pixels; a model of several inputs
    also answers which inputs it used); ``answer`` is the loaded model's own reading of its output
    (:attr:`LoadedModel.answer`: taggers' spans, retrievers' neighbours)."""
    if isinstance(raw, dict):
        return {**_response(entry, out, heatmap), "inputs_used": list(raw)}
    return _response(entry, out, heatmap, raw, answer)


def _response(entry: ModelEntry, out: np.ndarray, heatmap: bool = False, raw=None, answer=None) -> dict:
    output = entry.output
    if answer is not None:
        return {"model": entry.ref, "predictions": answer(out, raw)}
    if output.get("kind") == "boxes":  # dense FCOS outputs, decoded by torchvision's post-processing
        return {"model": entry.ref, "predictions": _boxes(entry, out, raw)}
    if output.get("kind") == "anomaly":  # [B, 1 + H*W]: the image score, then the pixel map
        scores, threshold = out[:, 0], float(output["threshold"])
        answer = {"model": entry.ref, "predictions": scores.round(6).tolist(),
                  "anomalous": (scores > threshold).tolist(), "threshold": threshold}
        if heatmap:
            h, w = output["map_size"]
            from ..inspection.heatmap import heatmap_png

            low, high = output["map_range"]
            answer["heatmaps"] = [heatmap_png(row.reshape(h, w), low, high) for row in out[:, 1:]]
        return answer
    if output.get("kind") == "labels":  # multi-label: a probability per class, the labels above the threshold
        classes, threshold = output.get("classes") or [], output.get("threshold", 0.5)
        chosen = [np.flatnonzero(row > threshold).tolist() for row in out]
        return {"model": entry.ref, "predictions": chosen,
                **({"labels": [[classes[i] for i in ids] for ids in chosen]} if classes else {}),
                "probabilities": out.round(6).tolist()}
    if output.get("kind") == "class":
        probabilities = None
        if out.ndim == 2:  # exported classifiers answer class probabilities (older exports: class ids)
            probabilities, out = out, out.argmax(-1)
        ids, classes = out.astype(int).tolist(), output.get("classes")
        return {"model": entry.ref, "predictions": ids,
                **({"labels": [classes[i] for i in ids]} if classes else {}),
                **({"probabilities": probabilities.round(6).tolist()} if probabilities is not None else {})}
    out = out.tolist()
    units = output.get("units") or []
    if len(output.get("names") or []) > 1:
        return {"model": entry.ref, "predictions": out, "outputs": output["names"], "units": units}
    return {"model": entry.ref, "predictions": out, "unit": units[0] if units and units[0] else None}


_DECODERS: OrderedDict = OrderedDict()


def _boxes(entry: ModelEntry, out: np.ndarray, images: list) -> list[list[dict]]:
    """Per image its boxes (label, score, xyxy in the image's own pixels), best first."""
    import torch

    from ..inspection.detection import BoxDecoder, boxes_answer

    output = entry.output
    if entry.key not in _DECODERS:
        _DECODERS[entry.key] = (BoxDecoder.from_dict(output["decoder"], output["strides"]),
                                build_preprocess(InputSpec.from_dict(entry.input).only()))
        while len(_DECODERS) > 16:
            _DECODERS.popitem(last=False)
    decoder, preprocess = _DECODERS[entry.key]
    found = decoder(torch.from_numpy(out))
    sizes = [(img.shape[1], img.shape[0]) if isinstance(img, np.ndarray) else img.size for img in images]
    return [boxes_answer(d, output["classes"], preprocess, w, h) for d, (w, h) in zip(found, sizes)]
