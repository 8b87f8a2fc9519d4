"""The Ray Serve application: one FastAPI deployment that validates requests, keeps models loaded
(multiplexed) and batches them.

``POST /v1/models/{name}/predict`` (``?version=3`` or ``?stage=production``), ``GET /v1/models``,
``GET /healthz``, OpenAPI docs at ``/docs``. Requests are validated against the model's input spec
(422 naming the field); each replica keeps up to ``models_per_replica`` models
loaded (``@serve.multiplexed``, LRU; 8 by default) and batches concurrent requests per model, sized by what
batching measurably buys that model (:mod:`.batching`).

The request path does little per request: the body's bytes go straight to pydantic's JSON parser
(validation in the same pass), series windows may come as base64 float32 (``windows_base64``), and
answers are written by orjson.

# NOTE: each loaded model has its own batch queue (Ray < 2.53 once mixed models within one
# ``@serve.batch`` queue, ray #56633), so no request can be answered by another model.
"""

# NOTE: no `from __future__ import annotations` here: FastAPI must resolve the request model's
# annotation at runtime, and Serve's ingress re-creates the methods outside this module's globals.
import asyncio
import json
import os
from urllib.parse import quote

import orjson
from fastapi import FastAPI, HTTPException, Query, Request, Response
from pydantic import BaseModel, Field
from ray import serve

from .._fs import check_name
from ..errors import TransferlineError
from ..model_registry import STAGES, IntegrityError, ModelRegistry, RegistryError
from .batching import batched, measure
from .metrics import ModelMetrics
from .predictor import PredictRequest, RequestError, load_model, parse_request, response, validate

API_KEY_ENV = "TRANSFERLINE_API_KEY"
OPEN_DOCS_ENV = "TRANSFERLINE_OPEN_DOCS"  # "1": /docs and /openapi.json answer without the key
MAX_BODY_BYTES = 8 * 1024 * 1024
MODELS_PER_REPLICA = 8  # loaded models each replica keeps (LRU, by @serve.multiplexed)
PAGE_SIZE, MAX_PAGE_SIZE = 100, 1000  # GET /v1/models: names per page, by default and at most
TARGET_ONGOING = 32  # autoscaling: requests in flight per replica it aims at
PUBLIC_PATHS = ("/healthz",)
DOC_PATHS = ("/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json")


class Detail(BaseModel):
    detail: str


class Box(BaseModel):
    label: str = Field(description="the defect class")
    score: float = Field(description="the detector's confidence, 0-1")
    xyxy: list[float] = Field(description="left, top, right, bottom in the sent image's own pixels")


class Span(BaseModel):
    label: str = Field(description="the entity type")
    start: int = Field(description="first character of the span in the sent text")
    end: int = Field(description="one past its last character")
    text: str = Field(description="the span's text")


class Neighbour(BaseModel):
    problem: str = Field(description="a past problem text, among the k most similar to the sent text")
    actions: list[str] = Field(description="the actions logged for that problem")
    score: float = Field(description="cosine similarity of the two texts' embeddings")


class Prediction(BaseModel):
    model: str = Field(description="the answering model, name@version")
    predictions: list[int | float | list[float]] | list[list[Box]] | list[list[Span]] | list[list[Neighbour]] = Field(
        description="one per window, image or text: label units (e.g. cycles), class ids, one value per output, "
                    "(detectors) the boxes found in each image, best first, (taggers) each text's entity spans, or "
                    "(retrievers) each text's nearest past problems with their actions, best first")
    labels: list[str] | None = Field(None, description="class names, for classifiers")
    unit: str | None = Field(None, description="unit of a regression output")
    outputs: list[str] | None = Field(None, description="output names, for several regression outputs")
    probabilities: list[list[float]] | None = Field(None, description="classifiers: per sample, the probability of "
                                                                      "each class (in the model's class order)")
    units: list[str] | None = Field(None, description="one unit per output, for several regression outputs")
    anomalous: list[bool] | None = Field(None, description="anomaly models: per image, score above the threshold")
    threshold: float | None = Field(None, description="anomaly models: the decision threshold, set on defect-free "
                                                      "validation images")
    heatmaps: list[str] | None = Field(None, description="anomaly models, when asked: per image a base64 PNG of the "
                                                         "pixel anomaly map at the model's input size")
    inputs_used: list[str] | None = Field(None, description="models of several inputs: the inputs the request gave "
                                                            "(the others were absent, masked out)")


class RecommendRequest(BaseModel):
    """Set-point recommendation from a process surrogate (``transferline optimize`` over HTTP)."""

    model_config = {"extra": "forbid"}
    objective: str = Field(description="max:NAME or min:NAME; NAME a set-point or an outcome", max_length=200)
    bounds: dict[str, list[float]] | None = Field(None, description="per set-point [low, high] (default: the fitted "
                                                                    "data's range)")
    constraints: list[str] = Field(default_factory=list, max_length=32,
                                   description="outcome bounds, e.g. 'passed_visual_inspection>=0.9'")
    min_probability: float = Field(0.8, description="how sure a recommendation must be to meet every constraint")
    top: int = Field(5, description="how many set-points (1-100)")
    current: dict[str, float] | None = Field(None, description="today's set-points: the reference for expected "
                                                               "improvement (default: the best observed run meeting "
                                                               "the constraints)")
    next: int = Field(0, description="also propose the next N experiments (0-8; BoTorch)")
    context: dict[str, str | float] | None = Field(None, description="the value of each context input the surrogate "
                                                                    "takes, e.g. {'tool_condition': 'unworn'}")
    warm_start: list[str] = Field(default_factory=list, max_length=8,
                                  description="other machines' surrogates (name or name@version) whose experiments "
                                              "warm-start the next experiments")


class Recommendation(BaseModel):
    model: str = Field(description="the answering surrogate, name@version")
    feasible: bool = Field(description="whether any set-point within the bounds meets every constraint with "
                                       "min_probability (if not, 'closest' and 'message' say how near it came)")
    recommendations: list[dict] = Field(description="best first: setpoints, outcomes (mean, interval_90), "
                                                    "p_constraints, objective, expected_improvement")
    reference: dict = Field(description="the objective value expected improvement is measured from, and its source")
    objective: list[str]
    constraints: list[str]
    min_probability: float
    candidates: int = Field(description="set-points evaluated (a Sobol design plus the corners of the box)")
    bounds: dict[str, list[float]]
    warnings: list[str] = Field(description="bounds outside the fitted data (extrapolation)")
    message: str | None = None
    closest: dict | None = None
    next: list[dict[str, float]] | None = Field(None, description="the next experiments, when asked for")
    acquisition: str | None = None
    log_acquisition_value: float | None = None
    context: dict[str, str | float] | None = None
    warm_start: dict[str, dict[str, dict]] | None = Field(None, description="per outcome, each source's weight: "
                                                                            "kept, ranking, correlation")


ERRORS = {400: {"model": Detail, "description": "a body that cannot be read as JSON"},
          401: {"model": Detail, "description": "missing or wrong x-api-key (when the server has a key)"},
          404: {"model": Detail, "description": "no such model, version or stage"},
          409: {"model": Detail, "description": "the model's files changed after registration: not served"},
          413: {"model": Detail, "description": "request body over the limit"}}


# The predict route reads its body's bytes itself (pydantic parses and validates them in one pass);
# the schema is stated for the OpenAPI document.
PREDICT_BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": PredictRequest.model_json_schema()}}}}


def _json(answer: dict) -> Response:
    """An answer as JSON by orjson (numpy scalars included), without its None fields."""
    return Response(orjson.dumps({k: v for k, v in answer.items() if v is not None},
                                 option=orjson.OPT_SERIALIZE_NUMPY), media_type="application/json")


def _unprocessable(exc: RequestError) -> HTTPException:
    return HTTPException(422, detail=[{"loc": exc.loc, "msg": exc.message, "type": "value_error"}])


class Limits:
    """ASGI middleware: the API key (when ``TRANSFERLINE_API_KEY`` is set: every path but
    ``/healthz``, the docs too unless ``TRANSFERLINE_OPEN_DOCS=1``), then the body limit on the bytes
    actually received, chunked bodies included, before anything parses them."""

    def __init__(self, app, max_body: int = MAX_BODY_BYTES) -> None:
        self.app, self.max_body = app, max_body

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        key, path = os.environ.get(API_KEY_ENV), scope.get("path", "")
        open_docs = os.environ.get(OPEN_DOCS_ENV) == "1" and path in DOC_PATHS
        if key and path not in PUBLIC_PATHS and not open_docs and headers.get("x-api-key") != key:
            return await _reply(send, 401, "missing or wrong x-api-key")
        declared = headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body):
            return await _reply(send, 413, f"request body over {self.max_body} bytes")
        body, more = [], True
        size = 0
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                return await _reply(send, 413, f"request body over {self.max_body} bytes")
            body.append(chunk)
            more = message.get("more_body", False)
        whole, sent = b"".join(body), False

        async def replay():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": whole, "more_body": False}
            return await receive()

        return await self.app(scope, replay, send)


async def _reply(send, status: int, detail: str) -> None:
    payload = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": payload})


def build_api() -> FastAPI:
    api = FastAPI(title="transferline", description="Predictions from registered transferline models.")
    api.add_middleware(Limits)
    return api


api = build_api()


def _public_input(entry) -> dict:
    """What a client needs to build a request, per modality (no fitted statistics)."""
    out = {}
    for modality, spec in entry.input.items():
        out[modality] = {k: v for k, v in spec.items() if k != "normalizer"}
        if spec.get("modality", modality) == "series":
            out[modality]["layout"] = "[batch, time, signal]"
    return out


def _replica_grpc_on_loopback() -> None:
    """On a Ray node whose address is loopback (the embedded Ray), Serve's per-replica gRPC server
    for calls between deployments listens on 127.0.0.1 rather than on every interface.

    # NOTE: Serve binds that server to "[::]:0" with no setting to change it. This app has one
    # deployment and HTTP goes through the proxy, so the server carries nothing here; on a cluster
    # (a node address that is not loopback) Serve's binding is left as it is, for the operator.
    """
    import ray
    from ray.serve._private import replica

    try:
        node_ip = ray.util.get_node_ip_address()
    except Exception:  # not inside a Ray worker (e.g. imported by a plain FastAPI test)
        return
    if not node_ip.startswith("127.") or getattr(replica.add_port_to_grpc_server, "_loopback", False):
        return
    bind = replica.add_port_to_grpc_server

    def loopback(server, address: str):
        return bind(server, address.replace("[::]", "127.0.0.1", 1))

    loopback._loopback = True
    replica.add_port_to_grpc_server = loopback


@serve.deployment(max_ongoing_requests=256)
@serve.ingress(api)
class ModelServer:
    """One deployment: HTTP, validation next to the registry's JSON, loaded models (multiplexed,
    LRU) and batched prediction. One hop per request; replicas scale it out."""

    def __init__(self, models_root: str, batching: bool = True, models_per_replica: int = MODELS_PER_REPLICA) -> None:
        _replica_grpc_on_loopback()
        self.registry = ModelRegistry(models_root)
        self.batching = batching
        self.models_per_replica = models_per_replica
        self.metrics = ModelMetrics()

        async def load(key: str):  # NOTE: Serve keeps its LRU on the function it wraps: one per replica
            """``key`` is :attr:`ModelEntry.key`: a version deleted and registered again is a new
            model. With batching on, the model gets its own batch queue, sized by
            :func:`.batching.measure`. Loading runs on a thread: requests for loaded models go on."""
            model, policy = await asyncio.to_thread(self._load_model, key)
            observe = lambda n: self.metrics.batch_of(model.ref, n)  # noqa: E731
            model.batched = batched(model, policy, observe) if policy and policy.batch else None
            return model

        self.get_model = serve.multiplexed(max_num_models_per_replica=models_per_replica)(load)

    def _load_model(self, key: str):
        model = load_model(self.registry, key.partition("#")[0])
        return model, measure(model.module) if self.batching else None

    @api.get("/healthz")
    async def healthz(self) -> dict:
        return {"status": "ok", "models": len(self.registry.names())}

    @api.get("/v1/models")
    async def models(self, response: Response, limit: int = Query(PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE),
                     after: str | None = Query(None, max_length=200,
                                               description="the last name of the previous page")) -> list[dict]:
        """Registered models by name, ``limit`` per page; a ``Link: <...>; rel="next"`` header points
        at the next page while there is one."""
        names = [n for n in self.registry.names() if after is None or n > after]
        page = names[:limit]
        if len(names) > limit:
            response.headers["link"] = f'</v1/models?limit={limit}&after={quote(page[-1])}>; rel="next"'
        out = []
        for name in page:
            entry = self.registry.get(name)
            out.append({"name": name, "versions": self.registry.versions(name), "stages": self.registry.stages(name),
                        "latest": entry.version, "task": entry.task["name"], "input": _public_input(entry)})
        return out

    @api.post("/v1/models/{name}/predict", response_model=Prediction, response_model_exclude_none=True,
              responses=ERRORS, openapi_extra=PREDICT_BODY)
    async def predict(self, name: str, request: Request, version: int | None = None,
                      stage: str | None = None) -> Response:
        """One prediction request, counted and timed per model (:mod:`.metrics`)."""
        import time

        t0, ref, code = time.perf_counter(), None, 500
        try:
            entry = self._entry(name, version, stage)
            ref = entry.ref
            answer = await self._predict(entry, request)
            code = 200
            return answer
        except HTTPException as exc:
            code = exc.status_code
            raise
        finally:
            self.metrics.request(ref, code, (time.perf_counter() - t0) * 1000)

    async def _predict(self, entry, request: Request) -> Response:
        try:
            body = parse_request(await request.body())
            raw, extra = validate(entry, body)
        except RequestError as exc:
            raise _unprocessable(exc) from None
        try:
            model = await self.get_model(entry.key)  # loaded (and its files checked) here, per request
        except IntegrityError as exc:
            raise HTTPException(409, detail=exc.public) from None
        x = model.prepare(raw, extra)
        if model.batched:
            y = await model.batched(x)
        else:
            self.metrics.batch_of(model.ref, len(next(iter(x.values()))) if isinstance(x, dict) else len(x))
            y = model.run(x)
        return _json(response(entry, y, heatmap=body.heatmap, raw=raw, answer=model.answer))

    @api.post("/v1/models/{name}/recommend", response_model=Recommendation, response_model_exclude_none=True,
              responses=ERRORS)
    async def recommend(self, name: str, body: RecommendRequest, version: int | None = None,
                        stage: str | None = None) -> dict:
        """Top set-points within bounds meeting the constraints, each with its outcomes' means and
        90 % intervals, the probability of meeting every constraint and the expected improvement."""
        import asyncio

        from ..process.recommend import RecommendError, answer_for

        entry = self._entry(name, version, stage)
        if entry.task.get("name") != "process_outcome":
            raise _unprocessable(RequestError(["path", "name"], f"model {entry.ref} is a {entry.task.get('name')} "
                                                                "model, not a process surrogate"))
        try:
            model, meta = await asyncio.get_running_loop().run_in_executor(None, self._surrogate, entry)
        except IntegrityError as exc:
            raise HTTPException(409, detail=exc.public) from None
        sources = {}
        for i, ref in enumerate(body.warm_start):
            try:
                check_name(ref.partition("@")[0], "model", RegistryError)
                other = self.registry.get(ref)
            except RegistryError as exc:
                raise _unprocessable(RequestError(["body", "warm_start", i], exc.public)) from None
            if other.task.get("name") != "process_outcome":
                raise _unprocessable(RequestError(["body", "warm_start", i], f"{other.ref} is not a process surrogate"))
            try:
                sources[other.ref] = (await asyncio.get_running_loop().run_in_executor(None, self._surrogate, other))[1]
            except IntegrityError as exc:
                raise HTTPException(409, detail=exc.public) from None
        try:
            answer = await asyncio.get_running_loop().run_in_executor(None, lambda: answer_for(
                model, meta, bounds=body.bounds, objective=body.objective, constraints=body.constraints,
                min_probability=body.min_probability, top=body.top, current=body.current, next_q=body.next,
                warm_start=sources or None, context=body.context))
        except RecommendError as exc:
            raise _unprocessable(RequestError(["body", exc.field], exc.message)) from None
        return {"model": entry.ref, **answer}

    def _entry(self, name: str, version: int | None, stage: str | None):
        try:
            check_name(name, "model", RegistryError)
        except RegistryError as exc:
            raise _unprocessable(RequestError(["path", "name"], str(exc))) from None
        if stage is not None and stage not in STAGES:
            raise _unprocessable(RequestError(["query", "stage"], f"one of {', '.join(STAGES)}"))
        try:
            return self.registry.get(f"{name}@{version}" if version is not None else name, stage)
        except RegistryError as exc:
            raise HTTPException(404, detail=exc.public) from None

    def _surrogate(self, entry):
        """The surrogate of a registry entry (its files checked first), kept per registration."""
        from ..process.store import load_surrogate

        cache = self.__dict__.setdefault("_surrogates", {})
        if entry.key not in cache:
            self.registry.verify(entry)
            if len(cache) >= self.models_per_replica:
                cache.clear()
            cache[entry.key] = load_surrogate(self.registry.path(entry.name, entry.version))
        return cache[entry.key]


def application(models_root: str | None = None, *, batching: bool = True, replicas: int = 1,
                max_replicas: int | None = None, target_ongoing: int = TARGET_ONGOING,
                models_per_replica: int = MODELS_PER_REPLICA):
    """The bound Serve application for ``serve.run``: ``replicas`` model servers, or with
    ``max_replicas`` above it, Serve's autoscaling between the two, aiming at ``target_ongoing``
    requests in flight per replica. Each replica keeps the ``models_per_replica`` models it used
    last loaded (``benchmarks/results/serve_models.json`` has the load time and memory per model)."""
    if replicas < 1 or (max_replicas is not None and max_replicas < replicas) or target_ongoing < 1:
        raise TransferlineError(f"replicas {replicas}, max_replicas {max_replicas}, target_ongoing {target_ongoing}: "
                                "need 1 <= replicas <= max_replicas and target_ongoing >= 1")
    if isinstance(models_per_replica, bool) or not isinstance(models_per_replica, int) or models_per_replica < 1:
        raise TransferlineError(f"models_per_replica {models_per_replica!r}: a whole number of at least 1")
    root = str(ModelRegistry(models_root).root)
    if max_replicas is not None and max_replicas > replicas:
        options = {"autoscaling_config": {"min_replicas": replicas, "initial_replicas": replicas,
                                          "max_replicas": max_replicas, "target_ongoing_requests": target_ongoing}}
    else:
        options = {"num_replicas": replicas}
    return ModelServer.options(**options).bind(root, batching, models_per_replica)


def app_builder(args: dict):
    """Serve's application builder (``import_path: transferline.serve.app:app_builder`` with ``args``:
    models_root, batching, replicas, max_replicas, target_ongoing_requests, models_per_replica), e.g. for a
    KubeRay RayService."""
    top = args.get("max_replicas")
    return application(args.get("models_root"), batching=bool(args.get("batching", True)),
                       replicas=int(args.get("replicas", 1)), max_replicas=int(top) if top is not None else None,
                       target_ongoing=int(args.get("target_ongoing_requests", TARGET_ONGOING)),
                       models_per_replica=int(args.get("models_per_replica", MODELS_PER_REPLICA)))
