"""The ``mlwarden`` command: the root Typer app and the one place errors become exit codes.

Exit codes: 0 success; 1 a check failed (tampering found, verification failed); 2 bad
input or usage (including a missing workspace); 3 the database is unavailable; 70 an
internal error (reported in one line; set MLWARDEN_DEBUG=1 for the traceback).
"""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path
from typing import Annotated

import typer

from mlwarden import __version__
from mlwarden.cli import alerts, audit, data, demo, gate, gateway, keys, ledger, model, privacy, redteam, watch, workspace
from mlwarden.cli.context import CliState
from mlwarden.config import Settings
from mlwarden.errors import MlwardenError

app = typer.Typer(
    name="mlwarden",
    help="mlwarden: the guarded door in front of your models and the verifiable record behind it.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(ledger.app, name="ledger")
app.add_typer(model.app, name="model")
app.add_typer(model.dataset_app, name="dataset")
app.add_typer(gate.app, name="gate")
app.add_typer(data.app, name="data")
app.add_typer(gateway.token_app, name="token")
app.add_typer(gateway.certs_app, name="certs")
app.add_typer(gateway.policy_app, name="policy")
app.add_typer(keys.app, name="keys")
app.add_typer(privacy.app, name="privacy")
app.add_typer(redteam.app, name="redteam")
app.add_typer(audit.app, name="audit")
app.add_typer(alerts.app, name="alerts")
app.command("serve")(gateway.serve)
app.command("init")(workspace.init)
app.command("demo")(demo.demo)
app.command("watch")(watch.watch)

EXIT_INTERNAL = 70


def _version(value: bool) -> None:
    if value:
        typer.echo(f"mlwarden {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    home: Annotated[
        Path | None,
        typer.Option("--home", help="Workspace folder (default: $MLWARDEN_HOME, else ./.mlwarden)."),
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """mlwarden: register, gate, serve and audit machine-learning models."""
    ctx.obj = CliState(Settings(), home)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return (and, as a script, exit with) the exit code."""
    try:
        result = app(args=argv, prog_name="mlwarden", standalone_mode=False)
        code = result if isinstance(result, int) else 0
    except MlwardenError as exc:
        sys.stderr.write("error: " + " ".join(exc.message.split()) + "\n")  # always one line
        code = exc.exit_code
    except typer.TyperException as exc:
        show = getattr(exc, "show", None)
        if callable(show):
            show()
        else:
            sys.stderr.write(f"error: {exc.format_message()}\n")
        code = exc.exit_code
    except typer.Exit as exc:
        code = exc.exit_code
    except (typer.Abort, KeyboardInterrupt):
        sys.stderr.write("aborted\n")
        code = 130
    except Exception as exc:  # the last line of defence: one line, never a traceback
        if os.environ.get("MLWARDEN_DEBUG"):
            traceback.print_exc()
        sys.stderr.write(f"error: internal error ({type(exc).__name__}); set MLWARDEN_DEBUG=1 for details\n")
        code = EXIT_INTERNAL
    sys.stdout.flush()
    return code


def entrypoint() -> None:
    """Console-script entry point."""
    sys.exit(main())
