"""Run configuration: a YAML file plus dotted ``key=value`` overrides, validated against defaults.

Components are chosen by registry name (``encoder.name``, ``objective.name``, ``adaptation.name``,
``task.name``, ``strategy.name``). Short aliases work as overrides: ``encoder=cnn_small`` sets
``encoder.name``; ``target.labelled_units=5`` reaches ``data.target.labelled_units``.
"""

from __future__ import annotations

import copy
import math
import re
from pathlib import Path

import yaml

from ..errors import TransferlineError, shorten

DEFAULTS: dict = {
    "mode": "transfer",  # or "pretrain"
    "seed": 0,
    "catalog": None,
    "run_dir": None,
    "device": "auto",  # "cpu", "cuda" or "auto"
    "precision": "fp32",  # "bf16" autocasts on CUDA
    "data": {
        "dataset": None,
        # several inputs joined per sample (a multimodal run): input name -> catalog dataset, e.g.
        # {de: cwru_de, fe: cwru_fe}, each read by data.spec and joined by recording and position; or
        # {dataset, spec_options} (other spec options, e.g. features) or {dataset, columns} (tabular);
        # joined by time, inputs of other kinds give their own {dataset, spec[, spec_options]}
        "inputs": {},
        # how inputs are joined: by "key" (series windows: recording and position) or by "time": one
        # sample per event of the anchor input (images, texts), each other input joined on the same
        # plant/asset within tolerance_s seconds (series: the window ending at or before the event)
        "join": {"by": "key", "anchor": None, "tolerance_s": None},
        "spec": None,
        "spec_options": {},
        # each role may read another dataset than data.dataset (e.g. target rows captured over OPC UA)
        "source": {"domains": None, "split": "train", "dataset": None},
        # labelled target data: labelled_units whole units (assets), or per_class samples of each class (images)
        "target": {"domains": None, "split": "train", "labelled_units": 0, "per_class": 0, "unlabelled": True,
                   "dataset": None},
        # holdout: the test set is this fraction of each class of the target rows (images without a test
        # split), the same rows for every seed (drawn with holdout_seed)
        "test": {"domains": None, "split": "test", "last_only": True, "monitor": False, "dataset": None,
                 "holdout": None, "holdout_seed": 0},
        "val_fraction": 0.2,
        "time_split": None,  # e.g. 0.8: train on the first 80% of each recording, test on the rest
        # e.g. 0.8: deal each recording's windows at random, 80% to training and the rest to testing
        # (test.holdout_seed draws them; UDTL's CWRU protocol): test windows sit between training windows
        "window_split": None,
        # stream the source samples through Ray Data instead of loading them (datasets larger than memory):
        # series rows per read task and windows in the shuffle buffer; images or texts per read task and
        # in the shuffle buffer (decoded images are large: 224x224 RGB is 0.6 MB each); several inputs
        # joined by key stream joined in each read task (rows_per_task counts every input's rows); joined
        # by time, samples_per_task events per read task, with what their machines recorded
        "streaming": {"enabled": False, "rows_per_task": 100_000, "shuffle_windows": 8192,
                      "samples_per_task": 256, "shuffle_samples": 512},
    },
    "encoder": {"name": "cnn_small", "options": {}},
    "task": {"name": "rul", "options": {}},
    "objective": {"name": "masked", "options": {}},
    "adaptation": {"name": "source_only", "options": {}},
    "strategy": {"name": "full", "options": {}},
    "pretrained": None,  # a pretraining run directory whose encoder to start from
    # ema: decay of an exponential moving average of the weights (0: off); when on, evaluation, early
    # stopping and the saved model use the averaged weights
    "optim": {"lr": 1e-3, "weight_decay": 1e-4, "batch_size": 256, "epochs": 20, "max_steps_per_epoch": None,
              "schedule": "cosine", "ema": 0.0},  # schedule: or "constant"
    # metric: "auto" / "source_val" (held-out source units), "target_val" (held-out labelled target
    # units), "dev" (Deep Embedded Validation: source-val losses weighted by target/source density),
    # or "last" (no selection: the last epoch's weights; few-shot runs validate on their training samples)
    "early_stopping": {"patience": 5, "metric": "auto", "min_delta": 0.0},
    "progress": True,
    # MLflow tracking of the run (runs with a run directory): uri null means $MLFLOW_TRACKING_URI, else ./mlruns
    "tracking": {"mlflow": True, "uri": None, "experiment": "transferline"},
}

ALIASES = {
    "encoder": "encoder.name", "task": "task.name", "objective": "objective.name", "adaptation": "adaptation.name",
    "strategy": "strategy.name", "epochs": "optim.epochs", "lr": "optim.lr", "batch_size": "optim.batch_size",
}
_FREE_FORM = {"options", "spec_options", "inputs"}  # sub-keys here are passed to components unchecked


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> dict:
    """Defaults ← file ← overrides, then validated. Raises TransferlineError naming a bad key."""
    config = copy.deepcopy(DEFAULTS)
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise TransferlineError(f"config file {path} not found")
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise TransferlineError(f"config file {path}: invalid YAML ({exc})") from None
        if not isinstance(loaded, dict):
            raise TransferlineError(f"config file {path}: top level must be a mapping")
        _merge(config, loaded, str(path), "")
    for item in overrides or []:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise TransferlineError(f"override {item!r} must look like key=value")
        dotted, value = _resolve(config, key.strip()), yaml.safe_load(text)
        parent = dotted.rpartition(".")[0]
        if dotted.endswith(".name") and isinstance(config.get(parent), dict) and config[parent].get("name") != value:
            config[parent]["options"] = {}  # another component: the file's options were for the old one
        _set(config, dotted, value)
    validate(config)
    return config


def _resolve(config: dict, key: str) -> str:
    if key in ALIASES:
        return ALIASES[key]
    if key.split(".")[0] in ("source", "target", "test"):
        return f"data.{key}"
    return key


def _merge(base: dict, new: dict, where: str, prefix: str) -> None:
    for key, value in new.items():
        path = f"{prefix}{key}"
        if key not in base and prefix.rstrip(".").split(".")[-1] not in _FREE_FORM:
            raise TransferlineError(f"{where}: unknown config key {path!r}")
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value, where, f"{path}.")
        else:
            base[key] = value


def _set(config: dict, dotted: str, value) -> None:
    node, parts = config, dotted.split(".")
    for i, part in enumerate(parts[:-1]):
        if part not in node or not isinstance(node[part], dict):
            raise TransferlineError(f"override: unknown config key {'.'.join(parts[: i + 1])!r}")
        node = node[part]
    free = parts[-2] in _FREE_FORM if len(parts) > 1 else False
    if parts[-1] not in node and not free:
        raise TransferlineError(f"override: unknown config key {dotted!r}")
    node[parts[-1]] = value


def validate(config: dict) -> None:
    """Checks modes and that every named component exists in its registry."""
    from transferline.tasks import list_tasks

    from ..adaptation import list_adaptations
    from ..data import IMAGE_SPECS, TEXT_SPECS, WINDOW_SPECS
    from ..encoders import encoder_name, known_encoder, list_encoders
    from ..objectives import list_objectives
    from .strategies import list_strategies

    if config["mode"] not in ("pretrain", "transfer"):
        raise TransferlineError(f"mode must be 'pretrain' or 'transfer', not {config['mode']!r}")
    encoder = config["encoder"]["name"]
    # a family's member (timm/<any model>, hf/<folder or hub id>) is known without being listed
    known = isinstance(encoder, str) and known_encoder(encoder)
    checks = [("encoder.name", encoder_name(encoder) if known else encoder, [encoder_name(encoder)] if known else
               list_encoders()),
              ("task.name", config["task"]["name"], list_tasks()),
              ("objective.name", config["objective"]["name"], list_objectives()),
              ("adaptation.name", config["adaptation"]["name"], list_adaptations()),
              ("strategy.name", config["strategy"]["name"], list_strategies())]
    spec = config["data"]["spec"]
    if not isinstance(spec, dict):
        checks.append(("data.spec", spec, [*WINDOW_SPECS, *IMAGE_SPECS, *TEXT_SPECS]))
    for key, value, known in checks:
        if value not in known:
            hint = ("; or write one in full: data.spec: {kind: waveforms, length: 1024, ...} (`transferline "
                    "datasets show NAME` suggests one)") if key == "data.spec" else ""
            raise TransferlineError(f"config {key}: unknown {shorten(value)}; known: {', '.join(known)}{hint}")
    if not config["data"]["inputs"] and not config["data"]["dataset"]:
        raise TransferlineError("config data.dataset: a catalog dataset name is required (or data.inputs)")
    if config["early_stopping"]["metric"] not in ("auto", "source_val", "target_val", "dev", "last"):
        raise TransferlineError("config early_stopping.metric: 'auto', 'source_val', 'target_val', 'dev' or 'last', "
                                f"not {config['early_stopping']['metric']!r}")
    if config["data"]["streaming"]["enabled"]:
        _validate_streaming(config)
    if config["precision"] not in ("fp32", "bf16"):
        raise TransferlineError(f"config precision: 'fp32' or 'bf16', not {shorten(config['precision'])}")
    if config["optim"]["schedule"] not in ("cosine", "constant"):
        raise TransferlineError(f"config optim.schedule: 'cosine' or 'constant', not {shorten(config['optim']['schedule'])}")
    device = config["device"]
    if not isinstance(device, str) or not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", device):
        raise TransferlineError(f"config device: 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', not {shorten(device)}")
    for key in ("progress", "tracking.mlflow", "data.test.last_only", "data.test.monitor", "data.target.unlabelled"):
        if not isinstance(_get(config, key), bool):
            raise TransferlineError(f"config {key}: true or false, not {shorten(_get(config, key))}")
    for key in ("tracking.uri", "tracking.experiment"):
        value = _get(config, key)
        if not (value is None and key == "tracking.uri") and not (isinstance(value, str) and value.strip()):
            raise TransferlineError(f"config {key}: a non-empty text{' or null' if key == 'tracking.uri' else ''}, "
                                    f"not {shorten(value)}")
    _number(config, "seed", integer=True, low=0)
    _number(config, "optim.lr", low=0, low_open=True)
    _number(config, "optim.weight_decay", low=0)
    _number(config, "optim.batch_size", integer=True, low=1)
    _number(config, "optim.epochs", integer=True, low=1)
    _number(config, "optim.max_steps_per_epoch", integer=True, low=1, optional=True)
    ema = config["optim"]["ema"]
    if not isinstance(ema, (int, float)) or isinstance(ema, bool) or not 0 <= ema < 1:
        raise TransferlineError(f"config optim.ema: a decay in [0, 1) (0 turns averaging off), got {shorten(ema)}")
    _number(config, "early_stopping.patience", integer=True, low=0)
    _number(config, "early_stopping.min_delta", low=0)
    _number(config, "data.val_fraction", low=0, high=1, low_open=True, high_open=True)
    _number(config, "data.time_split", low=0, high=1, low_open=True, high_open=True, optional=True)
    _number(config, "data.window_split", low=0, high=1, low_open=True, high_open=True, optional=True)
    if config["data"]["time_split"] and config["data"]["window_split"]:
        raise TransferlineError("config data.window_split: recordings are split either in time (data.time_split) or "
                                "by dealing their windows at random, not both")
    _number(config, "data.target.labelled_units", integer=True, low=0)
    _number(config, "data.target.per_class", integer=True, low=0)
    _number(config, "data.test.holdout", low=0, high=1, low_open=True, high_open=True, optional=True)
    _number(config, "data.test.holdout_seed", integer=True, low=0)
    if config["data"]["target"]["per_class"] and config["data"]["target"]["labelled_units"]:
        raise TransferlineError("config data.target: labelled_units or per_class, not both")
    spec = _validate_spec(config["data"])
    join = config["data"]["join"]
    if not isinstance(join, dict) or join.get("by") not in ("key", "time"):
        raise TransferlineError(f"config data.join.by: 'key' or 'time', not "
                                f"{shorten(join.get('by') if isinstance(join, dict) else join)}")
    if config["data"]["inputs"]:
        _validate_inputs(config, spec)
    elif join["by"] == "time":
        raise TransferlineError("config data.join.by: joining by time takes several inputs (data.inputs)")
    if join["by"] == "key" and (join.get("anchor") is not None or join.get("tolerance_s") is not None):
        raise TransferlineError("config data.join: anchor and tolerance_s join by time; set data.join.by=time")
    if config.get("pretrained") is not None:
        folder = Path(str(config["pretrained"])).expanduser()
        if not (folder / "encoder.safetensors").is_file() or not (folder / "encoder.json").is_file():
            raise TransferlineError(f"config pretrained: {folder} holds no encoder.safetensors and encoder.json; "
                                    "give the folder of a finished pretraining run")


def _get(config: dict, dotted: str):
    node = config
    for part in dotted.split("."):
        node = node[part]
    return node


def _number(config: dict, dotted: str, *, integer: bool = False, low: float | None = None, high: float | None = None,
            low_open: bool = False, high_open: bool = False, optional: bool = False) -> None:
    """Raises TransferlineError naming ``dotted`` unless its value is a number (an integer if asked)
    within the bounds (``*_open``: the bound itself is excluded)."""
    value = _get(config, dotted)
    if value is None and optional:
        return
    kind = "an integer" if integer else "a number"
    ok = isinstance(value, int if integer else (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        bounds = []
        if low is not None:
            bounds.append(f"{'>' if low_open else '>='} {low:g}")
        if high is not None:
            bounds.append(f"{'<' if high_open else '<='} {high:g}")
        where = f" {' and '.join(bounds)}" if bounds else ""
        raise TransferlineError(f"config {dotted}: must be {kind}{where}{' or null' if optional else ''}, "
                                f"got {shorten(value)}")


def _validate_spec(data: dict, where: str = "data"):  # -> WindowSpec | ImageInput | TextInput
    """The data spec with its options applied, checked: known fields, values its kind supports
    (``where``: the key holding ``spec`` and ``spec_options``, e.g. an input's)."""
    from ..data import ImageInput, TextInput, get_data_spec

    options = data.get("spec_options") or {}
    if not isinstance(options, dict):
        raise TransferlineError(f"config {where}.spec_options: a mapping, not {shorten(options)}")

    def key(name: str) -> str:  # where the user wrote the field: the spec written in full, or an option
        return f"{where}.spec.{name}" if isinstance(data["spec"], dict) and name not in options else \
            f"{where}.spec_options.{name}"

    at = f"{where}.spec" if isinstance(data["spec"], dict) and not options else f"{where}.spec / {where}.spec_options"
    try:
        spec = get_data_spec(data["spec"], **options)
    except (TypeError, ValueError) as exc:
        raise TransferlineError(f"config {at}: {exc}") from None
    if isinstance(spec, (ImageInput, TextInput)):
        (_validate_image_spec if isinstance(spec, ImageInput) else _validate_text_spec)(spec, key)
        what = "image" if isinstance(spec, ImageInput) else "text"
        if key_ := _recording_split(data):
            how = "in time" if key_ == "time_split" else "by dealing their windows"
            raise TransferlineError(f"config data.{key_}: splits recordings {how}; {what} datasets take "
                                    "data.test.holdout")
        return spec
    allowed = ("group", "window", "none") if spec.kind == "runs" else ("window", "none")
    if spec.normalize not in allowed:
        raise TransferlineError(f"config {key('normalize')}: {spec.kind} windows take {', '.join(allowed)}, "
                                f"not {shorten(spec.normalize)}")
    for name in ("length", "stride"):
        value = getattr(spec, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise TransferlineError(f"config {key(name)}: a positive integer, not {shorten(value)}")
    inputs = data.get("inputs") if isinstance(data.get("inputs"), dict) else {}
    own = inputs and all(isinstance(s, dict) and ("features" in (s.get("spec_options") or {}) or "columns" in s)
                         for s in inputs.values())  # each input names its own (checked with the inputs)
    if spec.kind == "runs" and not spec.features and not own:
        raise TransferlineError(f"config {key('features')}: a runs spec needs features (the signal columns that "
                                "become channels), here or in each of data.inputs' spec_options")
    if spec.kind == "waveforms" and not spec.label:
        raise TransferlineError(f"config {key('label')}: a waveforms spec needs label (the class column, e.g. "
                                "label)")
    return spec


def _validate_image_spec(spec, key) -> None:
    from ..data.preprocess import ImagePreprocess

    size = spec.size
    if not (isinstance(size, tuple) and len(size) == 2 and all(isinstance(v, int) and not isinstance(v, bool)
                                                                 and 8 <= v <= 4096 for v in size)):
        raise TransferlineError(f"config {key('size')}: [height, width], integers 8 to 4096, not "
                                f"{shorten(list(size) if isinstance(size, tuple) else size)}")
    try:
        ImagePreprocess(spec)
    except (ValueError, TypeError) as exc:
        raise TransferlineError(f"config data.spec_options: {exc}") from None


def _validate_text_spec(spec, key) -> None:
    n = spec.max_length
    if not isinstance(n, int) or isinstance(n, bool) or not 8 <= n <= 512:
        raise TransferlineError(f"config {key('max_length')}: tokens per text, an integer 8 to 512, not {shorten(n)}")
    if not isinstance(spec.tokenizer, str) or not spec.tokenizer:
        raise TransferlineError(f"config {key('tokenizer')}: a shipped model (hf/all-minilm-l6-v2), a folder or a "
                                f"hub id, not {shorten(spec.tokenizer)}")


def _validate_inputs(config: dict, spec) -> None:
    """``data.inputs``: input name → a dataset (series windows by ``data.spec``), or a mapping
    ``{dataset, spec_options}`` (windows by ``data.spec`` with these options, e.g. other
    ``features``) or ``{dataset, columns}`` (a tabular input: those columns of a runs dataset at
    each window's last row), or joined by time ``{dataset, spec[, spec_options]}`` (an input of its
    own kind); all read in memory."""
    from ..data import WindowSpec
    from ..data.inputs import PRESENT
    from ..encoders import encoder_modality

    data = config["data"]
    inputs = data["inputs"]
    if not isinstance(inputs, dict):
        raise TransferlineError(f"config data.inputs: a mapping of input name to dataset, not {shorten(inputs)}")
    for name, source in inputs.items():
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) or name == PRESENT:
            raise TransferlineError(f"config data.inputs: input names are identifiers other than {PRESENT!r}, "
                                    f"not {shorten(name)}")
        _validate_input(f"data.inputs.{name}", source, data, spec)
    join = data["join"]
    if join["by"] == "time":
        _validate_time_join(data, spec)
    else:
        own = [name for name, s in inputs.items() if isinstance(s, dict) and "spec" in s]
        if own:
            raise TransferlineError(f"config data.inputs.{own[0]}.spec: inputs joined by key are cut by data.spec "
                                    "(give spec_options); inputs of other kinds join by time (data.join.by=time)")
        if all(isinstance(s, dict) and s.get("columns") for s in inputs.values()):
            raise TransferlineError("config data.inputs: tabular inputs are read at the windows of a series input; "
                                    "give at least one series input")
    if len(inputs) < 2 and encoder_modality(config["encoder"]["name"]) == "multi":
        raise TransferlineError(f"config data.inputs: the {config['encoder']['name']} encoder fuses several inputs; "
                                "it needs at least two")
    for role in ("source", "target", "test"):
        if data[role].get("dataset"):
            raise TransferlineError(f"config data.{role}.dataset: with data.inputs every role reads the inputs' "
                                    "datasets; leave it unset")
    if join["by"] == "key" and not isinstance(spec, WindowSpec):
        raise TransferlineError("config data.inputs: inputs joined by key are series windows (and tabular rows at "
                                "their ends); use a runs or waveforms spec, or join images and texts by time "
                                "(data.join.by=time)")


def _validate_time_join(data: dict, spec) -> None:
    """``data.join.by=time``: an anchor input of events (images, texts), a tolerance, and inputs
    whose specs read their datasets' kinds (series: runs, which keep row times)."""
    from ..data import ImageInput, TextInput, WindowSpec
    from .data import input_sources

    join, inputs = data["join"], data["inputs"]
    if join.get("anchor") not in inputs:
        raise TransferlineError(f"config data.join.anchor: the input whose events (images, texts) are the samples, "
                                f"one of {list(inputs)}; not {shorten(join.get('anchor'))}")
    tolerance = join.get("tolerance_s")
    if not isinstance(tolerance, (int, float)) or isinstance(tolerance, bool) or not math.isfinite(tolerance) \
            or tolerance < 0:
        raise TransferlineError(f"config data.join.tolerance_s: seconds an input may lie from an event, a number "
                                f">= 0, not {shorten(tolerance)}")
    if key_ := _recording_split(data):
        raise TransferlineError(f"config data.{key_}: samples joined by time are events; hold some out with "
                                "data.test.holdout or a test split")
    sources = input_sources(data, spec)
    anchor = sources[join["anchor"]].spec
    if not isinstance(anchor, (ImageInput, TextInput)):
        raise TransferlineError(f"config data.join.anchor: input {join['anchor']!r} is read as series windows; the "
                                "anchor is an input of events, images or texts (give it an image or text spec)")
    for name, source in sources.items():
        if isinstance(source.spec, WindowSpec) and source.spec.kind != "runs":
            raise TransferlineError(f"config data.inputs.{name}: {source.spec.kind} segments carry no times; series "
                                    "joined by time are runs datasets with a ts column")


def _validate_input(key: str, source, data: dict, spec) -> None:
    """One ``data.inputs`` entry (see :func:`_validate_inputs`)."""
    from ..data import WindowSpec
    from .data import input_source

    if isinstance(source, str) and source:
        return
    if not isinstance(source, dict):
        raise TransferlineError(f"config {key}: a catalog dataset name, or {{dataset: NAME, spec_options: {{...}}}} "
                                f"or {{dataset: NAME, columns: [...]}}, not {shorten(source)}")
    unknown = sorted(set(source) - {"dataset", "spec", "spec_options", "columns"})
    if unknown:
        raise TransferlineError(f"config {key}: unknown key(s) {unknown}; an input takes dataset and spec_options "
                                "(series), columns (tabular) or, joined by time, its own spec")
    if "spec" in source and "columns" in source:
        raise TransferlineError(f"config {key}: spec (an input of its own kind) or columns (a tabular input), not both")
    if not isinstance(source.get("dataset"), str) or not source["dataset"]:
        raise TransferlineError(f"config {key}.dataset: a catalog dataset name, not {shorten(source.get('dataset'))}")
    if "spec_options" in source and "columns" in source:
        raise TransferlineError(f"config {key}: spec_options (a series input) or columns (a tabular input), not both")
    if "spec_options" in source and not isinstance(source["spec_options"], dict):
        raise TransferlineError(f"config {key}.spec_options: a mapping of window spec fields, not "
                                f"{shorten(source['spec_options'])}")
    columns = source.get("columns")
    if "columns" in source and (not isinstance(columns, list) or not columns
                                or not all(isinstance(c, str) and c for c in columns)):
        raise TransferlineError(f"config {key}.columns: a non-empty list of column names, not {shorten(columns)}")
    if columns and isinstance(spec, WindowSpec) and spec.kind != "runs":
        raise TransferlineError(f"config {key}.columns: tabular inputs read columns of runs datasets; the spec reads "
                                f"{getattr(spec, 'kind', type(spec).__name__)}")
    if "spec" in source:  # an input of its own kind: its spec checked as data.spec is
        _validate_spec({"spec": source["spec"], "spec_options": source.get("spec_options") or {},
                        "time_split": None, "inputs": {}}, where=key)
        return
    if source.get("spec_options"):
        try:
            own = input_source(data, spec, source).spec
        except (TypeError, ValueError) as exc:
            raise TransferlineError(f"config {key}.spec_options: {exc}") from None
        if getattr(own, "kind", None) != getattr(spec, "kind", None):
            raise TransferlineError(f"config {key}.spec_options: joined inputs share the spec's kind "
                                    f"({getattr(spec, 'kind', None)})")
        if own.kind == "runs" and not own.features:
            raise TransferlineError(f"config {key}.spec_options.features: a runs input needs features")


def _recording_split(data: dict) -> str | None:
    """The key that splits each recording between training and test (``time_split`` or
    ``window_split``), where one is set."""
    return next((key for key in ("time_split", "window_split") if data.get(key)), None)


def _validate_streaming(config: dict) -> None:
    """Streaming covers the source windows (the large part); these settings need them in memory."""
    data = config["data"]
    if not data["source"]["domains"]:
        raise TransferlineError("config data.streaming.enabled: streams the source domains; set data.source.domains")
    if key_ := _recording_split(data):
        raise TransferlineError(f"config data.streaming.enabled: not with data.{key_} (splits each asset in "
                                "memory); split by asset instead")
    if config["early_stopping"]["metric"] == "dev":
        raise TransferlineError("config data.streaming.enabled: early_stopping.metric=dev weights source windows "
                                "held in memory; use source_val or target_val")
    for key in ("rows_per_task", "shuffle_windows", "samples_per_task", "shuffle_samples"):
        value = data["streaming"][key]
        if not isinstance(value, int) or value <= 0:
            raise TransferlineError(f"config data.streaming.{key}: must be a positive integer, got {value!r}")
