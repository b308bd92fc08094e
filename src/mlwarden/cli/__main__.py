"""``python -m mlwarden.cli``: the same as the ``mlwarden`` command."""

from mlwarden.cli.main import entrypoint

entrypoint()
