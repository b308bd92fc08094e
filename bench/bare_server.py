"""The baseline for bench/gateway.py: a bare FastAPI + onnxruntime endpoint, no governance at all."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import onnxruntime as ort
from fastapi import FastAPI
from pydantic import BaseModel


class Body(BaseModel):
    inputs: list[list[float]]


def app() -> FastAPI:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(os.environ["BARE_MODEL"], sess_options=options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    api = FastAPI()

    @api.post("/predict")
    def predict(body: Body) -> dict[str, Any]:
        labels, probabilities = session.run(None, {name: np.asarray(body.inputs, dtype=np.float32)})
        rows = zip(labels, probabilities, strict=True)
        return {"predictions": [{"label": int(label), "probabilities": p.tolist()} for label, p in rows]}

    return api
