"""HTTP load generator, run as its own process so that it never shares an event loop or a GIL with
the server it measures.

``python benchmarks/_loadgen.py SPEC.json`` where the spec holds ``url`` (base), ``paths`` (the
request paths, used in turn), ``bodies`` (a list of bytes-as-latin-1 JSON bodies, used in turn),
``concurrency``, ``seconds`` (the run stops sending at the deadline; a request in flight then is
awaited, with ``timeout_s``), ``check`` (a substring every 200 answer must hold, e.g. ``"model"``).
Prints one JSON line: requests, errors (non-200, a failed check, or a transport error, with the
first few kept), req_per_s, p50_ms, p90_ms, p99_ms, max_ms.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import aiohttp
import numpy as np


async def run(spec: dict) -> dict:
    url, paths, bodies = spec["url"].rstrip("/"), spec["paths"], [b.encode("latin-1") for b in spec["bodies"]]
    concurrency, seconds = int(spec["concurrency"]), float(spec["seconds"])
    check = spec.get("check", "").encode()
    latencies: list[float] = []
    errors: list[str] = []
    n_errors = 0
    deadline = time.perf_counter() + seconds

    async def worker(k: int, session: aiohttp.ClientSession) -> None:
        nonlocal n_errors
        i = k
        while time.perf_counter() < deadline:
            path, body = paths[i % len(paths)], bodies[i % len(bodies)]
            t0 = time.perf_counter()
            try:
                async with session.post(url + path, data=body,
                                        headers={"content-type": "application/json"}) as reply:
                    text = await reply.read()
                    ok = reply.status == 200 and check in text
                    problem = f"{reply.status} {path}: {text[:200]!r}"
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                ok, problem = False, f"{type(exc).__name__} {path}: {exc}"
            latencies.append(time.perf_counter() - t0)
            if not ok:
                n_errors += 1
                if len(errors) < 5:
                    errors.append(problem)
            i += concurrency

    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    timeout = aiohttp.ClientTimeout(total=float(spec.get("timeout_s", 60)))
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(k, session) for k in range(concurrency)))
        wall = time.perf_counter() - t0
    lat = np.asarray(latencies) * 1000 if latencies else np.zeros(1)
    return {"concurrency": concurrency, "seconds": wall, "requests": len(latencies), "errors": n_errors,
            "error_examples": errors, "req_per_s": len(latencies) / wall,
            **{f"p{q}_ms": float(np.percentile(lat, q)) for q in (50, 90, 99)}, "max_ms": float(lat.max())}


def main() -> int:
    spec = json.loads(open(sys.argv[1]).read())
    print(json.dumps(asyncio.run(run(spec))), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
