"""ONNX graphs that read nothing beyond their own bytes and use only allowed operator domains.

A tensor kept in *external data* names a file (or, for onnxruntime, a memory address)
that the runtime reads when the session starts: the registry pinned the model's bytes,
not that file, so any such tensor is refused, in the main graph, in sub-graphs and in
functions. Operators outside the standard domains run code the standard does not
describe (contrib and custom ops, ``EPContext`` nodes that name cache files); they are
refused unless ``policy.yaml`` allows their domain (``runtime: {onnx_domains: [...]}``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import onnx
from onnx import AttributeProto, GraphProto, ModelProto, NodeProto, TensorProto

from mlwarden.errors import InvalidInput, UnsafeArtifact

STANDARD_DOMAINS = frozenset({"", "ai.onnx", "ai.onnx.ml"})
"""Operator domains the ONNX standard defines; always allowed."""
NEVER_ALLOWED_OPS = frozenset({"EPContext"})
"""Operators refused in every domain: they point the runtime at files outside the model."""


def _subgraphs(node: NodeProto) -> Iterator[GraphProto]:
    for attribute in node.attribute:
        if attribute.type == AttributeProto.GRAPH:
            yield attribute.g
        elif attribute.type == AttributeProto.GRAPHS:
            yield from attribute.graphs


def _all_nodes(nodes: Iterable[NodeProto]) -> Iterator[NodeProto]:
    """Every node, and every node of every sub-graph below it (If, Loop, Scan bodies...)."""
    stack = list(nodes)
    while stack:
        node = stack.pop()
        yield node
        for graph in _subgraphs(node):
            stack.extend(graph.node)


def _graphs(model: ModelProto) -> Iterator[GraphProto]:
    stack = [model.graph, *(g for f in model.functions for n in f.node for g in _subgraphs(n))]
    while stack:
        graph = stack.pop()
        yield graph
        stack.extend(g for n in graph.node for g in _subgraphs(n))


def nodes_of(model: ModelProto) -> Iterator[NodeProto]:
    """Every node of the model: main graph, sub-graphs and local functions."""
    yield from _all_nodes(model.graph.node)
    for function in model.functions:
        yield from _all_nodes(function.node)


def tensors_of(model: ModelProto) -> Iterator[TensorProto]:
    """Every tensor the model carries: initializers (dense and sparse) and tensor attributes."""
    for graph in _graphs(model):
        yield from graph.initializer
        for sparse in graph.sparse_initializer:
            yield from (sparse.values, sparse.indices)
    for node in nodes_of(model):
        for attribute in node.attribute:
            yield attribute.t
            yield from attribute.tensors
            yield from (attribute.sparse_tensor.values, attribute.sparse_tensor.indices)
            for sparse in attribute.sparse_tensors:
                yield from (sparse.values, sparse.indices)


def check_self_contained(model: ModelProto, where: str) -> None:
    """Refuse a model any of whose tensors lives outside its bytes (external data)."""
    for tensor in tensors_of(model):
        if tensor.data_location == TensorProto.EXTERNAL or len(tensor.external_data) > 0:
            location = next((e.value for e in tensor.external_data if e.key == "location"), "")
            raise UnsafeArtifact(
                f"refused {where}: tensor {tensor.name!r} keeps its data outside the model "
                f"(external data, location {location[:200]!r}); only self-contained ONNX files are registered",
                found=(location[:200],),
                kind="onnx external data",
            )


def check_domains(model: ModelProto, allowed: frozenset[str], where: str) -> None:
    """Refuse operators outside the standard domains and ``allowed``, and operators never allowed."""
    domains = STANDARD_DOMAINS | allowed
    for node in nodes_of(model):
        domain = node.domain or ""
        if node.op_type in NEVER_ALLOWED_OPS:
            raise UnsafeArtifact(
                f"refused {where}: operator {domain}.{node.op_type} points the runtime at files outside the model",
                found=(f"{domain}.{node.op_type}",),
                kind="onnx operator",
            )
        if domain not in domains:
            raise UnsafeArtifact(
                f"refused {where}: operator {node.op_type} is in domain {domain!r}, which is not standard "
                f"and not allowed by policy.yaml (runtime.onnx_domains)",
                found=(f"{domain}.{node.op_type}",),
                kind="onnx operator domain",
            )


def parse_onnx(data: bytes, where: str) -> ModelProto:
    """Parse ONNX bytes (nothing is loaded from anywhere else)."""
    try:
        return onnx.load_model_from_string(data)
    except Exception as exc:  # protobuf raises its own DecodeError and others
        raise InvalidInput(f"{where} is not an ONNX model: {str(exc)[:200]}") from exc


def check_onnx(data: bytes, *, allowed_domains: frozenset[str], where: str = "onnx model") -> ModelProto:
    """The parsed model, once it is self-contained and uses only allowed operator domains."""
    model = parse_onnx(data, where)
    check_self_contained(model, where)
    check_domains(model, allowed_domains, where)
    return model
