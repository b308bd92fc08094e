"""``mlwarden model`` and ``mlwarden dataset``: register, inspect, trace and run models."""

from __future__ import annotations

import json
import sys
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from mlwarden.cli.context import print_json, state
from mlwarden.cli.keys import VALID_DAYS_HELP, read_statement, valid_for, write_statement
from mlwarden.errors import InvalidInput
from mlwarden.registry.dataset_versions import get_dataset, register_dataset
from mlwarden.registry.models import STAGES, describe, get_version, lineage, list_models, parse_ref, register_model
from mlwarden.runtime.predict import predict as run_predict
from mlwarden.workspace import local_principal

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

app = typer.Typer(
    help="Register models by content hash, inspect their cards and lineage, predict.", no_args_is_help=True
)
dataset_app = typer.Typer(help="Register datasets by content hash with a column profile.", no_args_is_help=True)


@app.command()
def register(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Model name.")],
    path: Annotated[Path, typer.Argument(help="Model file (.onnx, .skops; .safetensors recorded only).")],
    card: Annotated[Path, typer.Option("--card", help="Model card (Markdown with YAML front matter).")],
    dataset: Annotated[list[str] | None, typer.Option("--dataset", help="Training data, NAME@sha256:HEX.")] = None,
    code_commit: Annotated[str | None, typer.Option("--code-commit", help="Git commit of the training code.")] = None,
    parent: Annotated[str | None, typer.Option("--parent", help="Parent model, NAME:VERSION.")] = None,
    signature: Annotated[Path | None, typer.Option("--signature", help="Signature file narrowing the inputs.")] = None,
) -> None:
    """Register the next version of NAME (stage candidate); print name, version and sha256."""
    ws = state(ctx).open()
    try:
        result = register_model(
            ws, name=name, path=path, card_path=card, principal=local_principal(), datasets=dataset or [],
            code_commit=code_commit, parent=parent, signature_path=signature,
        )  # fmt: skip
    finally:
        ws.close()
    print_json(result.to_json())


@app.command("list")
def list_(ctx: typer.Context) -> None:
    """Every registered version, one JSON object per line."""
    ws = state(ctx).open()
    try:
        for row in list_models(ws):
            print_json(row)
    finally:
        ws.close()


@app.command()
def show(ctx: typer.Context, ref: Annotated[str, typer.Argument(help="NAME or NAME:VERSION.")]) -> None:
    """Card, signature, lineage, stage and hashes of a version."""
    from mlwarden.registry.models import aliases_of

    ws = state(ctx).open()
    try:
        shown = describe(get_version(ws, *parse_ref(ref, default_version=True, ws=ws)))
        shown["aliases"] = {a: v for a, v in aliases_of(ws, shown["name"]).items() if v == shown["version"]}
        print_json(shown)
    finally:
        ws.close()


def _tree(node: dict[str, Any], indent: str = "") -> list[str]:
    lines = [f"{indent}{node['model']}  sha256:{node['sha256'][:16]}…"]
    for ds in node["datasets"]:
        lines.append(f"{indent}├── dataset {ds['name']}:{ds['version']}  sha256:{ds['sha256'][:16]}…")
    if node["code_commit"]:
        lines.append(f"{indent}├── code {node['code_commit']}")
    for parent in node["parents"]:
        lines.append(f"{indent}└── parent")
        lines.extend(_tree(parent, indent + "    "))
    return lines


@app.command("lineage")
def lineage_(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="NAME:VERSION.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the tree as JSON.")] = False,
) -> None:
    """The lineage tree: datasets by hash, code commit, parent versions."""
    name, version = parse_ref(ref)
    ws = state(ctx).open()
    try:
        tree = lineage(ws, name, version or 1)
    finally:
        ws.close()
    if as_json:
        print_json(tree)
    else:
        typer.echo("\n".join(_tree(tree)))


@app.command()
def predict(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="NAME or NAME:VERSION.")],
    input_file: Annotated[Path, typer.Option("--input", help="JSON list of rows (objects or lists).")],
    subjects: Annotated[
        list[str] | None,
        typer.Option("--subject", help="Data subject of each row, in order (repeat once per row); optional."),
    ] = None,
) -> None:
    """Validate rows, predict locally, record the decision in the ledger (inputs sealed); print the result."""
    try:
        text = input_file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"cannot read {input_file}: {exc}") from exc
    try:
        rows = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{input_file} is not valid JSON: {exc.msg} at line {exc.lineno}") from exc
    ws = state(ctx).open()
    try:
        name, version = parse_ref(ref, default_version=True, ws=ws)
        print_json(run_predict(ws, name, version, rows, local_principal(), subjects or None))
    finally:
        ws.close()


@app.command()
def promote(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[int, typer.Argument(help="Version to move.", min=1)],
    to: Annotated[str, typer.Option("--to", help=f"Target stage: {', '.join(STAGES)}.")],
    eval_file: Annotated[Path | None, typer.Option("--eval", help="Evaluation data for performance/fairness.")] = None,
) -> None:
    """Run the stage's gates and move the version only if all pass; the gateway serves production."""
    from mlwarden.errors import GateFailed
    from mlwarden.gates.reports import table
    from mlwarden.registry.governance import promote as run_promotion

    ws = state(ctx).open()
    try:
        result = run_promotion(ws, name, version, to, local_principal(), eval_path=eval_file)
    except GateFailed as exc:
        typer.echo(table(exc.results, f"gates for {name}:{version} -> {to}"))
        raise
    finally:
        ws.close()
    print_json(result)


def _approve_ref(ref: str, version: int | None) -> tuple[str, int]:
    name, in_ref = parse_ref(ref, default_version=True)
    if in_ref is not None and version is not None and in_ref != version:
        raise InvalidInput(f"{ref!r} and version {version} disagree")
    chosen = in_ref or version
    if chosen is None:
        raise InvalidInput("approve needs NAME:VERSION (or NAME VERSION)")
    return name, chosen


@app.command()
def approve(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(metavar="NAME[:VERSION]", help="Model name, or NAME:VERSION.")],
    version: Annotated[int | None, typer.Argument(help="Version (unless given as NAME:VERSION).", min=1)] = None,
    comment: Annotated[str | None, typer.Option("--comment")] = None,
    sign_with: Annotated[
        Path | None, typer.Option("--sign-with", help="Your private key (`mlwarden keys create`): a signed approval.")
    ] = None,
    approval: Annotated[
        Path | None, typer.Option("--approval", help="A signed approval made elsewhere (`--sign-with KEY --out`).")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="With --sign-with: write the signed approval here, record nothing.")
    ] = None,
    artifact: Annotated[
        Path | None, typer.Option("--artifact", help="With --out: approve this model file's sha256 (no workspace).")
    ] = None,
    policy: Annotated[
        Path | None, typer.Option("--policy", help="With --out: the policy listing your key (default: workspace's).")
    ] = None,
    valid_days: Annotated[int, typer.Option("--valid-days", min=1, max=366, help=VALID_DAYS_HELP)] = 30,
) -> None:
    """Approve a version as yourself (OS account), or with your own key; the registrant's own approval never counts."""
    from mlwarden.identity.personal_keys import load_personal_key
    from mlwarden.registry.governance import approve as record_approval
    from mlwarden.registry.governance import approve_with_key

    name, number = _approve_ref(ref, version)
    if sign_with is not None and approval is not None:
        raise InvalidInput("use either --sign-with or --approval, not both")
    if sign_with is None and (out or artifact or policy):
        raise InvalidInput("--out, --artifact and --policy go with --sign-with")
    if artifact is not None and out is None:
        raise InvalidInput("--artifact goes with --out: a signed approval for a file is carried, not recorded")
    key = load_personal_key(sign_with) if sign_with is not None else None
    if key is not None and out is not None:
        _write_signed_approval(ctx, name, number, key, out, artifact, policy, comment, valid_for(valid_days))
        return
    signed = read_statement(approval) if approval is not None else None
    ws = state(ctx).open()
    try:
        if key is not None:
            result = approve_with_key(
                ws, name, number, local_principal(), key, comment=comment, valid_for=valid_for(valid_days)
            )
        else:
            result = record_approval(ws, name, number, local_principal(), comment, signed=signed)
    finally:
        ws.close()
    print_json(result)


def _write_signed_approval(
    ctx: typer.Context,
    name: str,
    version: int,
    key: Ed25519PrivateKey,
    out: Path,
    artifact: Path | None,
    policy: Path | None,
    comment: str | None,
    validity: timedelta,
) -> None:
    from mlwarden.identity.approvers import load_approvers
    from mlwarden.registry.artifacts import sha256_file
    from mlwarden.registry.signed_approvals import sign_model_approval

    if artifact is not None:
        if not artifact.is_file():
            raise InvalidInput(f"model file {artifact} does not exist")
        sha = sha256_file(artifact)
    else:
        ws = state(ctx).open()
        try:
            sha = str(get_version(ws, name, version)["sha256"])
        finally:
            ws.close()
    approvers = load_approvers(policy or state(ctx).options().paths.policy)
    signed = sign_model_approval(
        key, approvers, name=name, version=version, sha256=sha, comment=comment, valid_for=validity
    )
    write_statement(out, signed)
    print_json({"statement": str(out), **signed.statement})


@app.command()
def attach(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="NAME:VERSION.")],
    report: Annotated[Path, typer.Option("--report", help="pip-audit, OSV, Trivy or CycloneDX JSON.")],
) -> None:
    """Attach a vulnerability report to a version (judged by the vulnerabilities gate)."""
    from mlwarden.registry.governance import attach_report

    name, version = parse_ref(ref)
    ws = state(ctx).open()
    try:
        print_json(attach_report(ws, name, version or 1, report, local_principal()))
    finally:
        ws.close()


@app.command()
def alias(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Model name.")],
    alias_name: Annotated[str, typer.Argument(metavar="ALIAS", help="e.g. champion, challenger.")],
    version: Annotated[int, typer.Argument(help="Version the alias points at.", min=1)],
) -> None:
    """Point an alias at a version (use it as NAME@ALIAS in show and predict)."""
    from mlwarden.registry.governance import set_alias

    ws = state(ctx).open()
    try:
        print_json(set_alias(ws, name, alias_name, version, local_principal()))
    finally:
        ws.close()


@app.command()
def rollback(ctx: typer.Context, name: Annotated[str, typer.Argument(help="Model name.")]) -> None:
    """Serve the previous production version again (recorded)."""
    from mlwarden.registry.governance import rollback as do_rollback

    ws = state(ctx).open()
    try:
        print_json(do_rollback(ws, name, local_principal()))
    finally:
        ws.close()


@app.command()
def archive(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Model name.")],
    version: Annotated[int, typer.Argument(help="Version.", min=1)],
) -> None:
    """Archive a version (it is no longer served; archiving the production version withdraws it, said on stderr)."""
    from mlwarden.registry.governance import promote as run_promotion

    ws = state(ctx).open()
    try:
        result = run_promotion(ws, name, version, "archived", local_principal())
    finally:
        ws.close()
    print_json(result)
    if result.get("previous_stage") == "production":
        sys.stderr.write(f"{name}:{version} was in production: the gateway no longer serves {name}\n")


@app.command()
def check(ctx: typer.Context) -> None:
    """Compare every version's stage with the ledger; report (and record) any changed directly in the database."""
    from mlwarden.registry.governance import report_drift

    ws = state(ctx).open()
    try:
        drift = report_drift(ws, local_principal())
    finally:
        ws.close()
    for item in drift:
        print_json(item)
    if drift:
        raise typer.Exit(1)
    typer.echo("every stage matches the ledger")


def _reject_constant(name: str) -> Any:
    raise InvalidInput(f"input contains {name}, which JSON cannot carry")


@dataset_app.command("register")
def dataset_register(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Dataset name.")],
    path: Annotated[Path | None, typer.Argument(help="CSV, Parquet or JSON lines file.")] = None,
    from_dvc: Annotated[
        Path | None, typer.Option("--from-dvc", help="Record a DVC-tracked file by its .dvc md5.")
    ] = None,
    label: Annotated[str | None, typer.Option("--label", help="The label column (for label-flip screening).")] = None,
    contract: Annotated[
        Path | None, typer.Option("--contract", help="Data contract YAML kept with the dataset.")
    ] = None,
) -> None:
    """Register a dataset version: sha256, rows, schema fingerprint, column profile (the first is the reference)."""
    ws = state(ctx).open()
    try:
        result = register_dataset(
            ws, name=name, path=path, principal=local_principal(), dvc=from_dvc, label=label, contract=contract
        )
    finally:
        ws.close()
    print_json(result)


@dataset_app.command("list")
def dataset_list(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line instead of a table.")] = False,
) -> None:
    """Every dataset version: name, version, rows, sha256, created, label, whether it has a contract."""
    from mlwarden.cli.tables import print_rows
    from mlwarden.registry.dataset_versions import list_datasets

    ws = state(ctx).open()
    try:
        found = list_datasets(ws)
    finally:
        ws.close()
    columns = [("name", "name", None), ("version", "version", None), ("rows", "rows", None),
               ("sha256", "sha256", 16), ("created", "created", None), ("label", "label", None),
               ("has_contract", "contract", None), ("signed", "signed", None)]  # fmt: skip
    print_rows(found, columns, as_json=as_json, empty="no datasets registered")


@dataset_app.command("show")
def dataset_show(ctx: typer.Context, ref: Annotated[str, typer.Argument(help="NAME or NAME:VERSION.")]) -> None:
    """A dataset version with its profile."""
    name, version = parse_ref(ref, default_version=True)
    ws = state(ctx).open()
    try:
        print_json(get_dataset(ws, name, version))
    finally:
        ws.close()
