"""The ``edgecore`` command: the composition root.

Each command parses its arguments, builds the one ``Settings`` object and calls one
function; groups live in their own modules and are registered here.
"""

from __future__ import annotations

import typer

from edgecore.cli import stack

app = typer.Typer(no_args_is_help=True, add_completion=False, help="The edge-to-core ML loop.")
app.add_typer(stack.app, name="stack", help="The real local stack: MinIO and Kafka on 127.0.0.1.")
