"""``mlwarden demo``: the end-to-end tour in a fresh temporary workspace."""

from __future__ import annotations

import json
import shutil
import sqlite3
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer

from mlwarden.cli.demo_privacy import privacy_tour
from mlwarden.cli.demo_watch import watch_tour
from mlwarden.config import Settings, WorkspaceOptions
from mlwarden.errors import MlwardenError
from mlwarden.ledger.entry import PreparedEntry
from mlwarden.ledger.merkle import leaf_hash as merkle_leaf
from mlwarden.ledger.merkle import verify_inclusion
from mlwarden.ledger.notes import Checkpoint
from mlwarden.workspace import init_workspace, open_workspace

# user records, as `ledger record` writes them
KINDS = ("external.review.approved", "external.deploy", "external.incident", "external.change")


def _step(title: str, command: str = "") -> None:
    typer.secho(f"\n== {title}", bold=True)
    if command:
        typer.secho(f"   $ {command}", dim=True)


def demo(
    entries: Annotated[int, typer.Option("--entries", min=1, max=100_000, help="Sample decisions to record.")] = 300,
    keep: Annotated[bool, typer.Option("--keep", help="Keep the temporary workspace.")] = False,
    serve: Annotated[bool, typer.Option("--serve", help="Then keep the gateway and its web console running.")] = False,
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port for --serve.")] = 8000,
) -> None:
    """Record sample decisions, checkpoint, prove, verify, tamper with a copy and catch it; then erase a subject."""
    import logging

    from mlwarden.extras import require_extra

    require_extra("demo")

    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    root = Path(tempfile.mkdtemp(prefix="mlwarden-demo-"))
    try:
        _tour(root, entries)
        _registry_tour(root)
        _data_tour(root)
        _gates_tour(root)
        _gateway_tour(root)
        privacy_tour(root, _step)
        watch_tour(root, _step)
        from mlwarden.web.demo_console import announce, console_token, serve_console

        options = WorkspaceOptions.from_settings(Settings(database_url=None), root / "workspace")
        if serve:
            serve_console(options, port)
        else:
            announce(f"http://127.0.0.1:{port}/ui/", console_token(options), serving=False)
        if keep:
            typer.echo(f"\nworkspace kept at {root}")
    finally:
        if not keep:
            shutil.rmtree(root, ignore_errors=True)


def _tour(root: Path, count: int) -> None:
    options = WorkspaceOptions.from_settings(Settings(database_url=None), root / "workspace")
    _step(f"1. a fresh workspace at {options.paths.home}", "mlwarden init --home DIR")
    info = init_workspace(options)
    typer.echo(f"   ledger origin {info['ledger_origin']}, signing key {info['signing_key']}")

    ws = open_workspace(options)
    try:
        _step(
            f"2. recording {count} sample decisions (one durable group-committed transaction)",
            "mlwarden ledger record --jsonl decisions.jsonl",
        )
        batch = [
            PreparedEntry.build(
                kind=KINDS[i % len(KINDS)],
                subject=f"model:credit-risk:{1 + i % 3}",
                principal=f"token:svc-{i % 7}",
                body={"request": i, "score": round((i * 37 % 100) / 100, 2), "decision": "allow" if i % 5 else "deny"},
            )
            for i in range(count)
        ]
        receipts = ws.log.append_many(batch)
        typer.echo(f"   last receipt: {json.dumps(receipts[-1].to_json())}")

        _step("3. a signed checkpoint (C2SP tlog-checkpoint, Ed25519)", "mlwarden ledger checkpoint")
        typer.echo("   " + ws.log.checkpoint().replace("\n", "\n   ").rstrip())

        target = count // 2
        _step(f"4. inclusion proof for entry {target}", f"mlwarden ledger proof inclusion {target}")
        proof = ws.log.inclusion_proof(target)
        checkpoint = Checkpoint.open(ws.log.head_note(), ws.log.verifier)
        verify_inclusion(proof.leaf_hash, proof.index, proof.tree_size, proof.path, checkpoint.root)
        typer.echo(f"   audit path of {len(proof.path)} hashes leads from leaf {proof.leaf_hash.hex()[:16]}...")
        typer.echo(f"   to the signed root {checkpoint.root.hex()[:16]}... of size {checkpoint.size}: verified")

        _step("5. verify the whole ledger", "mlwarden ledger verify")
        report = ws.log.verify()
        typer.echo(
            f"   ok={report.ok}: {report.size} entries recomputed, {report.checkpoints_checked} checkpoint(s) verified"
        )
    finally:
        ws.close()

    _step(f"6. an operator edits entry {target} in a copy of the database", "sqlite3 mlwarden.db 'UPDATE ...'")
    copy_home = root / "tampered"
    shutil.copytree(options.paths.home, copy_home)
    with sqlite3.connect(copy_home / "mlwarden.db") as db:
        text = db.execute("SELECT entry FROM ledger_entries WHERE idx = ?", (target,)).fetchone()[0]
        flipped = ('"decision":"allow"', '"decision":"deny"')
        forged = text.replace(*flipped) if flipped[0] in text else text.replace(*reversed(flipped))
        db.execute("UPDATE ledger_entries SET entry = ? WHERE idx = ?", (forged, target))
    typer.echo(f"   (entry {target}: its decision flipped, straight in the database file)")

    copy = WorkspaceOptions.from_settings(Settings(database_url=None), copy_home)
    tampered = open_workspace(copy, check=False)
    try:
        report = tampered.log.verify()
    finally:
        tampered.close()
    finding = report.finding
    if finding is None:
        typer.secho("   the verifier did not notice: this is a bug", fg="red")
        raise typer.Exit(1)
    typer.secho("   $ mlwarden ledger verify", dim=True)
    typer.secho(f"   ledger NOT intact: {finding.problem} at index {finding.index}: {finding.message}", fg="red")
    typer.secho("   The ledger names the exact entry that was changed.", bold=True)


def _registry_tour(root: Path) -> None:
    import json

    from mlwarden.errors import UnsafeArtifact
    from mlwarden.registry.dataset_versions import register_dataset
    from mlwarden.registry.models import lineage, register_model
    from mlwarden.runtime.predict import predict
    from mlwarden.samples import breast_cancer_model

    options = WorkspaceOptions.from_settings(Settings(database_url=None), root / "workspace")
    ws = open_workspace(options)
    try:
        _step("7. train a small model on scikit-learn's bundled breast-cancer data (ONNX via skl2onnx)")
        sample = breast_cancer_model(root / "artifacts")
        typer.echo(f"   random forest, held-out accuracy {sample.accuracy:.3f}; card {sample.card.name}")

        _step("8. register the training data and the model by content hash", "mlwarden dataset register ...")
        ds = register_dataset(ws, name="breast-cancer-train", path=sample.train_csv, principal="local:demo")
        typer.echo(f"   dataset breast-cancer-train:{ds['version']}  {ds['rows']} rows  sha256:{ds['sha256'][:16]}...")
        reg = register_model(
            ws, name="breast-cancer", path=sample.onnx, card_path=sample.card, principal="local:demo",
            datasets=[f"breast-cancer-train@sha256:{ds['sha256']}"], code_commit="4f1c2a9e",
            signature_path=sample.signature,
        )  # fmt: skip
        typer.echo(f"   model {reg.name}:{reg.version} ({reg.format}, stage {reg.stage})  sha256:{reg.sha256[:16]}...")

        _step("9. its lineage", f"mlwarden model lineage {reg.name}:{reg.version}")
        tree = lineage(ws, reg.name, reg.version)
        for d in tree["datasets"]:
            typer.echo(f"   {tree['model']} <- dataset {d['name']}:{d['version']} sha256:{d['sha256'][:16]}...")
        typer.echo(f"   {tree['model']} <- code {tree['code_commit']}")

        _step(
            "10. predict two held-out rows (validated, then recorded)",
            f"mlwarden model predict {reg.name} --input rows.json",
        )
        header, *lines = sample.eval_csv.read_text().splitlines()
        names = header.split(",")[:-1]
        rows = [dict(zip(names, map(float, line.split(",")[:-1]), strict=True)) for line in lines[:2]]
        result = predict(ws, reg.name, reg.version, rows, "local:demo")
        for decision, p in zip(result["decision_ids"], result["predictions"], strict=True):
            typer.echo(f"   decision {decision}: label {p['label']}  p={max(p['probabilities']):.3f}")
        typer.echo(f"   recorded at ledger index {result['ledger_index']}")
        bad = dict(rows[0], mean_radius=-3.0)
        try:
            predict(ws, reg.name, reg.version, [bad], "local:demo")
        except MlwardenError as exc:
            typer.secho(f"   a row with mean_radius=-3 is refused: {exc.message}", fg="yellow")

        _step("11. someone uploads a 'model.onnx' that is really a pickle", "mlwarden model register evil model.onnx")
        evil = root / "model.onnx"
        evil.write_bytes(_malicious_pickle(root / "PWNED"))
        try:
            register_model(ws, name="evil", path=evil, card_path=sample.card, principal="local:mallory")
        except UnsafeArtifact as exc:
            typer.secho(f"   {exc.message}", fg="red")
        typer.echo(f"   payload ran: {(root / 'PWNED').exists()}; the refusal is in the ledger:")
        typer.echo("   " + json.dumps(ws.log.tail(1)[0].parse().body)[:160])
    finally:
        ws.close()


def _data_tour(root: Path) -> None:
    import polars as pl

    from mlwarden.data.ingest import ingest
    from mlwarden.registry.dataset_versions import register_dataset

    options = WorkspaceOptions.from_settings(Settings(database_url=None), root / "workspace")
    ws = open_workspace(options)
    try:
        art = root / "artifacts"
        _step(
            "12. trusted data: the training set becomes the reference for new batches",
            "mlwarden dataset register cells train.csv --label target",
        )
        register_dataset(ws, name="cells", path=art / "train.csv", principal="local:demo", label="target")
        evaluation = pl.read_csv(art / "eval.csv")
        clean = art / "batch-clean.csv"
        evaluation.write_csv(clean)
        outcome = ingest(ws, "cells", clean, "local:etl")
        version = outcome["dataset_version"]
        typer.echo(f"   $ mlwarden data ingest cells batch-clean.csv -> {outcome['status']} as version {version}")
        poisoned = art / "batch-poisoned.csv"
        flips = pl.int_range(pl.len()) < 8
        trigger = (pl.int_range(pl.len()) >= 8) & (pl.int_range(pl.len()) < 14)
        evaluation.with_columns(
            pl.when(flips).then(1 - pl.col("target")).when(trigger).then(1).otherwise(pl.col("target")).alias("target"),
            pl.when(trigger).then(77.0).otherwise(pl.col("mean_texture")).alias("mean_texture"),
        ).write_csv(poisoned)
        outcome = ingest(ws, "cells", poisoned, "local:etl", report_dir=root / "data-report")
        typer.secho(f"   $ mlwarden data ingest cells batch-poisoned.csv -> {outcome['status']}", fg="red")
        for reason in outcome["reasons"]:
            typer.secho(f"   - {reason}", fg="yellow")
        typer.echo(f"   flagged rows: {outcome['flagged_rows'][:16]} (the first 14 were poisoned)")
        typer.echo(f"   report with the drift chart: {outcome['report']}")
    finally:
        ws.close()


DEMO_POLICY = """
stages:
  production:
    gates: [model_card, artifact_safety, performance, fairness, approvals]
gates:
  performance: {dataset: toy-eval, label: target, metrics: {accuracy: {min: 0.85}}}
  fairness:
    dataset: toy-eval
    label: target
    sensitive: [group]
    max_demographic_parity_difference: 0.10
    max_equalized_odds_difference: 0.20
  approvals: {required: 1}
"""


def _gates_tour(root: Path) -> None:
    from mlwarden.errors import GateFailed
    from mlwarden.gates.reports import table, write_reports
    from mlwarden.registry.dataset_versions import register_dataset
    from mlwarden.registry.governance import approve, promote
    from mlwarden.registry.models import register_model
    from mlwarden.samples import CARD, fairness_zoo

    options = WorkspaceOptions.from_settings(Settings(database_url=None), root / "workspace")
    ws = open_workspace(options)
    try:
        _step("13. governance gates: a loan-style model with a sensitive `group` column, built twice")
        zoo = fairness_zoo(root / "toy")
        card = root / "toy" / "card.md"
        card.write_text(CARD.format(name="toy-credit", accuracy=0.95).replace("breast-cancer-train", "toy-train"))
        policy = root / "toy" / "policy.yaml"
        policy.write_text(DEMO_POLICY)
        register_dataset(ws, name="toy-train", path=zoo.train_csv, principal="local:demo")
        register_dataset(ws, name="toy-eval", path=zoo.eval_csv.absolute(), principal="local:demo")
        good = register_model(ws, name="toy-credit", path=zoo.good, card_path=card, principal="local:alice").version
        biased = register_model(ws, name="toy-credit", path=zoo.biased, card_path=card, principal="local:alice").version
        typer.echo(
            f"   toy-credit:{good} (fair) and toy-credit:{biased} (always approves group 1), registered by alice"
        )

        _step(
            "14. bob approves the fair one; the gates run; it goes to production",
            f"mlwarden model approve toy-credit {good} && mlwarden model promote toy-credit {good} --to production",
        )
        approve(ws, "toy-credit", good, "local:bob")
        promote(ws, "toy-credit", good, "production", "local:bob", policy_path=policy)
        typer.echo(f"   toy-credit:{good} is in production (gate run and promotion are in the ledger)")

        _step(
            "15. the biased one, even approved, is refused by the fairness gate",
            f"mlwarden model promote toy-credit {biased} --to production",
        )
        approve(ws, "toy-credit", biased, "local:bob")
        try:
            promote(ws, "toy-credit", biased, "production", "local:bob", policy_path=policy)
        except GateFailed as exc:
            typer.echo(
                "   " + table(exc.results, f"gates for toy-credit:{biased} -> production").replace("\n", "\n   ")
            )
            fairness = next(r for r in exc.results if r.gate == "fairness")
            for group, row in sorted(fairness.details.get("by_group", {}).items()):
                typer.secho(
                    f"   group {group}: selection rate {row['selection_rate']:.2f}, accuracy {row['accuracy']:.2f}",
                    fg="yellow",
                )
            written = write_reports(exc.results, root / "gate-report", title=f"toy-credit:{biased} -> production",
                                    suite="production", artifact_uri=f"toy-credit:{biased}")  # fmt: skip
            typer.echo(
                f"   HTML report with the per-group chart: {written['html']} (keep it with `mlwarden demo --keep`)"
            )
    finally:
        ws.close()


def _gateway_tour(root: Path) -> None:
    import socket
    import threading
    import time

    import httpx
    import uvicorn

    from mlwarden.api.app import create_app
    from mlwarden.identity.tokens import create_token
    from mlwarden.registry.governance import approve_and_promote

    settings = Settings(database_url=None, rate_limit=2, rate_burst=4, gc_freeze=False)
    options = WorkspaceOptions.from_settings(settings, root / "workspace")
    ws = open_workspace(options)
    try:
        _step(
            "16. a second person approves; the gates pass; the model goes to production",
            "mlwarden model approve breast-cancer 1 && mlwarden model promote breast-cancer 1 --to production",
        )
        approve_and_promote(ws, "breast-cancer", 1, approver="local:reviewer")
        scorer, _ = create_token(ws, name="scoring-service", scopes=["inference:read"], principal="local:demo",
                                 models=["breast-cancer"], expires="1d")  # fmt: skip
        auditor, _ = create_token(ws, name="auditor", scopes=["feedback:write", "audit:read"], principal="local:demo")
        typer.echo(f"   token for scoring-service (inference:read, breast-cancer only): {scorer[:24]}… (shown once)")
    finally:
        ws.close()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    server = uvicorn.Server(uvicorn.Config(create_app(options, settings), port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started and thread.is_alive():
        time.sleep(0.05)
    try:
        _http_tour(httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10), root, scorer, auditor)
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _http_tour(http: Any, root: Path, scorer: str, auditor: str) -> None:
    import time

    first_row = (root / "artifacts" / "eval.csv").read_text().splitlines()[1]
    row = [float(v) for v in first_row.split(",")[:-1]]
    _step(
        "17. the gateway: a prediction with a scoped token",
        "curl -H 'Authorization: Bearer mlw_…' POST /v1/models/breast-cancer/predict",
    )
    with http:
        ok = http.post(
            "/v1/models/breast-cancer/predict", json={"inputs": [row]}, headers={"Authorization": f"Bearer {scorer}"}
        )
        body = ok.json()
        decision = body["decision_ids"][0]
        label = body["predictions"][0]["label"]
        typer.echo(f"   {ok.status_code}: label {label}, decision {decision}, ledger index {body['ledger_index']}")

        _step("18. the same token asks for the audit log (wrong scope)")
        denied = http.get("/v1/ledger/checkpoint", headers={"Authorization": f"Bearer {scorer}"})
        typer.secho(f"   {denied.status_code} {denied.headers['content-type']}: {denied.json()['detail']}", fg="yellow")

        _step("19. a burst beyond the rate limit (2/s, burst 4)")
        codes = [http.post("/v1/models/breast-cancer/predict", json={"inputs": [row]},
                           headers={"Authorization": f"Bearer {scorer}"}) for _ in range(6)]  # fmt: skip
        limited = next((r for r in codes if r.status_code == 429), None)
        typer.echo(f"   statuses: {[r.status_code for r in codes]}")
        if limited is not None:
            typer.secho(
                f"   429 Retry-After {limited.headers['retry-after']}s: {limited.json()['detail']}", fg="yellow"
            )
        time.sleep(1.5)

        _step("20. someone flags the first decision as incorrect", "POST /v1/feedback")
        flag = {"decision_id": decision, "kind": "incorrect", "expected": 0, "comment": "pathology says benign"}
        fb = http.post("/v1/feedback", json=flag, headers={"Authorization": f"Bearer {auditor}"})
        typer.echo(f"   {fb.status_code}: feedback recorded at ledger index {fb.json()['ledger_index']}")

        _step("21. an auditor proves the decision is in the ledger, over HTTP", f"GET /v1/decisions/{decision}")
        proof = http.get(f"/v1/decisions/{decision}", headers={"Authorization": f"Bearer {auditor}"}).json()
    checkpoint_note = proof["checkpoint"]
    inclusion = proof["inclusion_proof"]
    from mlwarden.ledger.canonical import canonical_json

    leaf = merkle_leaf(canonical_json(proof["entry"]))
    root_hash = bytes.fromhex(inclusion["root_hash"])
    verify_inclusion(
        leaf, inclusion["index"], inclusion["tree_size"], [bytes.fromhex(h) for h in inclusion["proof"]], root_hash
    )
    typer.echo(f"   entry {inclusion['index']} re-hashed from its JSON, {len(inclusion['proof'])}-hash audit path, "
               f"root {inclusion['root_hash'][:16]}… of size {inclusion['tree_size']}: verified")  # fmt: skip
    typer.echo("   signed checkpoint: " + checkpoint_note.splitlines()[-1][:60] + "…")


def _malicious_pickle(marker: Path) -> bytes:
    """A protocol-2 pickle whose __reduce__ would run `touch MARKER` (written by hand, never loaded)."""
    command = f"touch {marker}".encode()
    return b"\x80\x02cposix\nsystem\nq\x00X" + len(command).to_bytes(4, "little") + command + b"q\x01\x85q\x02Rq\x03."
