"""``mlwarden serve``, ``token``, ``certs`` and ``policy``: the gateway and the identities it trusts."""

from __future__ import annotations

import os
import shutil
import ssl
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from mlwarden.api.logs import LogFormat
from mlwarden.cli.context import print_json, state
from mlwarden.errors import ConfigError
from mlwarden.identity.certs import init_ca, issue
from mlwarden.identity.policy import istio_policy, load_policy
from mlwarden.identity.tokens import create_token, list_tokens, revoke_token, token_json
from mlwarden.workspace import local_principal

token_app = typer.Typer(help="API tokens: mlw_<id>_<secret>, scoped, hashed at rest.", no_args_is_help=True)
certs_app = typer.Typer(help="A development CA and SPIFFE client certificates for mTLS.", no_args_is_help=True)
policy_app = typer.Typer(help="The workspace policy (SPIFFE bindings).", no_args_is_help=True)


@token_app.command("create")
def token_create(
    ctx: typer.Context,
    name: Annotated[str, typer.Option("--name", help="Who or what the token is for.")],
    scope: Annotated[list[str], typer.Option("--scope", help="inference:read, feedback:write, audit:read, admin, …")],
    model: Annotated[
        list[str] | None, typer.Option("--model", help="Limit to these models (repeatable; omit for every model).")
    ] = None,
    expires: Annotated[str | None, typer.Option("--expires", help="Lifetime, e.g. 30d, 12h.")] = None,
    grant: Annotated[
        list[str] | None,
        typer.Option(
            "--grant",
            help="With --scope admin: a scope the token may put in tokens it creates over the API (repeatable). "
            "Without --grant an admin token may grant only inference:read, feedback:write, data:read and "
            "audit:read; --grant admin lets it create admins whose grant is within its own.",
        ),
    ] = None,
) -> None:
    """Create a token; it is printed once and only its hash is kept.

    This command is the bootstrap: on the workspace's own machine it may grant any scope.

    Over the API (POST /v1/admin/tokens) an admin token grants only its --grant, for at most its own models.
    """
    ws = state(ctx).open()
    try:
        token, record = create_token(
            ws, name=name, scopes=scope, principal=local_principal(), models=model, expires=expires, grant=grant
        )
    finally:
        ws.close()
    print_json({"token": token, **record.to_json()})
    sys.stderr.write("store this token now: it cannot be shown again\n")


@token_app.command("list")
def token_list(ctx: typer.Context) -> None:
    """Every token with its state; never a secret."""
    ws = state(ctx).open()
    try:
        for record, problem in list_tokens(ws):
            print_json(token_json(record, problem))
    finally:
        ws.close()


@token_app.command("revoke")
def token_revoke(
    ctx: typer.Context, token_id: Annotated[str, typer.Argument(help="The <id> part of mlw_<id>_…")]
) -> None:
    """Revoke a token by id."""
    ws = state(ctx).open()
    try:
        print_json(revoke_token(ws, token_id, local_principal()).to_json())
    finally:
        ws.close()


@certs_app.command("init")
def certs_init(ctx: typer.Context) -> None:
    """Create the development CA and a localhost server certificate in the workspace's keys/."""
    print_json(init_ca(state(ctx).options().paths.keys))


@certs_app.command("issue")
def certs_issue(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="File name stem for NAME.pem / NAME.key.")],
    spiffe_id: Annotated[str, typer.Option("--spiffe-id", help="spiffe://DOMAIN/PATH")],
    out: Annotated[Path, typer.Option("--out", help="Folder to write to.")] = Path(),
) -> None:
    """Issue a client certificate whose identity is SPIFFE_ID."""
    paths = issue(state(ctx).options().paths.keys, name, out=out, spiffe_id=spiffe_id)
    print_json({"cert": str(paths.cert), "key": str(paths.key), "spiffe_id": spiffe_id})


@policy_app.command("export")
def policy_export(
    ctx: typer.Context,
    target: Annotated[str, typer.Argument(help="Only 'istio' for now.")],
    namespace: Annotated[str, typer.Option("--namespace")] = "mlwarden",
) -> None:
    """Write the policy's SPIFFE bindings as an Istio AuthorizationPolicy."""
    if target != "istio":
        raise ConfigError(f"unknown export target {target!r}: use istio")
    sys.stdout.write(istio_policy(load_policy(state(ctx).options().paths.policy), namespace=namespace))


def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535)] = 8000,
    workers: Annotated[int, typer.Option("--workers", min=1, max=64)] = 1,
    tls_cert: Annotated[Path | None, typer.Option("--tls-cert", help="Server certificate (PEM).")] = None,
    tls_key: Annotated[Path | None, typer.Option("--tls-key", help="Server key (PEM).")] = None,
    client_ca: Annotated[
        Path | None, typer.Option("--client-ca", help="Require client certificates from this CA.")
    ] = None,
    health_port: Annotated[
        int | None,
        typer.Option(
            "--health-port",
            min=1,
            max=65535,
            help="Also answer GET /healthz over plain HTTP on 127.0.0.1:PORT (for probes when mTLS is on).",
        ),
    ] = None,
    log_format: Annotated[
        LogFormat | None,
        typer.Option("--log-format", help="json (default) or console; also $MLWARDEN_LOG_FORMAT. Every worker."),
    ] = None,
) -> None:
    """Run the gateway (FastAPI + uvicorn) for this workspace.

    One ledger writer process records for every worker: it starts first, workers hand it
    their entries over a private socket in the workspace, and it is restarted if it dies.
    """
    import uvicorn

    from mlwarden.api.factory import log_format_from_env
    from mlwarden.api.health import HealthListener, port_accepts
    from mlwarden.api.logs import LOG_FORMAT_ENV, configure_logging
    from mlwarden.api.tls import MutualTLS, check_supported, recording_protocol
    from mlwarden.cli.ledger_writer import WriterSupervisor
    from mlwarden.cli.watch import WatcherProcess

    if (tls_cert is None) != (tls_key is None) or (client_ca is not None and tls_cert is None):
        raise ConfigError("--tls-cert and --tls-key go together, and --client-ca needs them")
    if tls_cert is not None and tls_key is not None:
        check_tls_files(tls_cert, tls_key, client_ca)
    cli_state = state(ctx)
    options = cli_state.options()
    if health_port is not None and health_port == port:
        raise ConfigError(f"--health-port must differ from --port ({port})")
    chosen = log_format or log_format_from_env()
    cli_state.open().close()  # migrate, set WAL and check the ledger once, before any worker starts
    os.environ["MLWARDEN_HOME"] = str(options.paths.home)
    if cli_state.settings.database_url:
        os.environ["MLWARDEN_DATABASE_URL"] = cli_state.settings.database_url
    os.environ[LOG_FORMAT_ENV] = chosen.value  # the workers configure themselves from it
    configure_logging(chosen)
    kwargs: dict[str, object] = {}
    if client_ca is not None and tls_cert is not None and tls_key is not None:
        check_supported()  # TLS is served by our protocol, which counts refused client certificates
        kwargs |= {"http": recording_protocol(MutualTLS(str(tls_cert), str(tls_key), str(client_ca)))}
    elif tls_cert is not None:
        kwargs |= {"ssl_certfile": str(tls_cert), "ssl_keyfile": str(tls_key)}
    health = None
    if health_port is not None:
        try:
            health = HealthListener(health_port, port_accepts(host, port)).start()
        except OSError as exc:
            raise ConfigError(f"cannot listen for health checks on 127.0.0.1:{health_port}: {exc.strerror}") from exc
    writer: WriterSupervisor | None = None
    watcher = None
    try:
        writer = WriterSupervisor(options.paths.home / f"ledger-writer-{os.getpid()}.sock").start()
        watcher = WatcherProcess().start(options.paths.policy)  # one per workspace: it holds lease monitor.watcher
        os.environ["MLWARDEN_LEDGER_WRITER_SOCKET"] = str(writer.socket_path)  # the workers record through it
        with _metrics_dir(workers):
            uvicorn.run(
                "mlwarden.api.factory:app", factory=True, host=host, port=port, workers=workers, access_log=False,
                log_level="warning", **kwargs,  # type: ignore[arg-type]
            )  # fmt: skip
    finally:
        if watcher is not None:
            watcher.stop()
        if writer is not None:
            writer.stop()  # after the workers: it commits what they handed over and signs the head
            os.environ.pop("MLWARDEN_LEDGER_WRITER_SOCKET", None)
        if health is not None:
            health.close()


@contextmanager
def _metrics_dir(workers: int) -> Iterator[None]:
    """With several workers, a Prometheus multiprocess folder for this run: emptied first, removed after.

    ``$PROMETHEUS_MULTIPROC_DIR`` names it if set (emptied of old values, kept; also with one
    worker, which then uses it too); else a new temporary folder. The workers inherit the
    variable, so every one of them writes its values there and ``/metrics`` adds them all up.
    """
    from mlwarden.api.metrics import MULTIPROC_ENV, reset_multiprocess_dir

    given = os.environ.get(MULTIPROC_ENV)
    if workers == 1 and not given:
        yield
        return
    folder = Path(given) if given else Path(tempfile.mkdtemp(prefix="mlwarden-metrics-"))
    try:
        reset_multiprocess_dir(folder)
    except OSError as exc:
        raise ConfigError(f"cannot prepare {MULTIPROC_ENV} {folder}: {exc.strerror}") from exc
    os.environ[MULTIPROC_ENV] = str(folder)
    try:
        yield
    finally:
        if not given:
            shutil.rmtree(folder, ignore_errors=True)
            os.environ.pop(MULTIPROC_ENV, None)


def check_tls_files(cert: Path, key: Path, client_ca: Path | None) -> None:
    """Load the server certificate, its key and the client CA as the server will, before it starts.

    A missing, unreadable or mismatched file is a one-line :class:`ConfigError`, not a worker's traceback.
    """
    for flag, path in (("--tls-cert", cert), ("--tls-key", key), ("--client-ca", client_ca)):
        if path is not None and not path.is_file():
            raise ConfigError(f"{flag} {path} does not exist or is not a file")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert, key, password=_no_password(key))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"--tls-cert {cert} and --tls-key {key} cannot be used: {_ssl_reason(exc)}") from exc
    if client_ca is not None:
        try:
            context.load_verify_locations(cafile=client_ca)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"--client-ca {client_ca} cannot be used: {_ssl_reason(exc)}") from exc


def _no_password(key: Path) -> Callable[[], str]:
    def refuse() -> str:
        raise ConfigError(f"--tls-key {key} is encrypted: serve needs a key file without a password")

    return refuse


def _ssl_reason(exc: OSError) -> str:
    reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or str(exc)
    return str(reason).lower().replace("_", " ")
