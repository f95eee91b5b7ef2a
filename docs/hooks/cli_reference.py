"""MkDocs hook: renders `docs/cli.md`'s marker into every command's `--help`.

The CLI reference is generated from the argparse tree itself, so it can never
drift from what `elliptio COMMAND --help` prints.
"""

from __future__ import annotations

import argparse
from typing import Any

MARKER = "<!-- cli-reference -->"


def _sections() -> str:
    from elliptio._cli import _parser

    parser = _parser()
    parser.prog = "elliptio"
    out = ["## elliptio", "", "```text", parser.format_help().rstrip(), "```", ""]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                out += [f"## elliptio {name}", "", "```text", sub.format_help().rstrip(), "```", ""]
    return "\n".join(out)


def on_page_markdown(markdown: str, page: Any, **_: Any) -> str:
    if MARKER in markdown:
        return markdown.replace(MARKER, _sections())
    return markdown
