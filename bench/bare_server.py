"""The baselines for bench/gateway.py: bare FastAPI + onnxruntime endpoints, no governance at all.

Two variants, both the strongest honest form of a bare endpoint: an ``async`` handler that
runs the onnxruntime session inline (no thread-pool hop), one intra-op thread.

* ``orjson_app``: reads the body and parses it with orjson, answers with orjson bytes;
* ``pydantic_app``: a pydantic body model (``list[list[float]]``), FastAPI's JSON answer.

bench/gateway.py runs both and takes the faster as the baseline.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import onnxruntime as ort
import orjson
from fastapi import FastAPI, Request, Response
from pydantic import BaseModel


class Body(BaseModel):
    inputs: list[list[float]]


def _session() -> tuple[ort.InferenceSession, str]:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(os.environ["BARE_MODEL"], sess_options=options, providers=["CPUExecutionProvider"])
    return session, session.get_inputs()[0].name


def _predictions(session: ort.InferenceSession, name: str, rows: Any) -> list[dict[str, Any]]:
    labels, probabilities = session.run(None, {name: np.asarray(rows, dtype=np.float32)})
    return [{"label": int(label), "probabilities": p.tolist()} for label, p in zip(labels, probabilities, strict=True)]


def orjson_app() -> FastAPI:
    """orjson in, orjson out."""
    session, name = _session()
    api = FastAPI()

    @api.post("/predict")
    async def predict(request: Request) -> Response:
        body = orjson.loads(await request.body())
        content = orjson.dumps({"predictions": _predictions(session, name, body["inputs"])})
        return Response(content, media_type="application/json")

    return api


def pydantic_app() -> FastAPI:
    """A pydantic body model, FastAPI's own serialisation."""
    session, name = _session()
    api = FastAPI()

    @api.post("/predict")
    async def predict(body: Body) -> dict[str, Any]:
        return {"predictions": _predictions(session, name, body.inputs)}

    return api
