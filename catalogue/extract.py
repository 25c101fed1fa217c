"""A Babel extractor for Kivy ``.kv`` files (``babel.cfg``: ``catalogue.extract.extract_kv``).

A ``.kv`` rule's property values are Python expressions (``text: tr("Done",
root.language)``), indented the Kivy way. The lines are reduced to those
expressions, line for line, and handed to Babel's Python extractor, so
keywords, contexts, plurals and ``# Translators:`` comments work as in ``.py``
files. (Electrum's Kivy GUI feeds its ``.kv`` files to xgettext as Python; the
indentation of rules and widgets would trip a Python tokenizer, hence this.)
"""

from __future__ import annotations

import io
import re
from collections.abc import Collection, Generator, Mapping
from typing import IO, Any

from babel.messages.extract import extract_python

_PROPERTY = re.compile(r"^[A-Za-z_][\w.]*\s*:\s*(.*)$")
_RULE_OR_WIDGET = re.compile(r"^(<.*>|\[.*\]|[A-Z][\w.@+]*(\(.*\))?)\s*:\s*$")


def kv_as_python(text: str) -> str:
    """The expressions of a ``.kv`` file, one per line, at the lines they came from."""
    lines = []
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#:") or _RULE_OR_WIDGET.match(line):
            lines.append("")
        elif line.startswith("#"):
            lines.append(line)  # "# Translators: ..." reaches the catalogue
        elif match := _PROPERTY.match(line):
            lines.append(match.group(1))
        else:
            lines.append(line)  # the body of a multi-line handler
    return "\n".join(lines) + "\n"


def extract_kv(
    fileobj: IO[bytes],
    keywords: Mapping[str, Any],
    comment_tags: Collection[str],
    options: Mapping[str, Any],
) -> Generator[tuple[int, str, Any, list[str]], None, None]:
    """Babel's extractor interface: ``(line, funcname, message, comments)``."""
    text = fileobj.read().decode(options.get("encoding", "utf-8"))
    python = io.BytesIO(kv_as_python(text).encode("utf-8"))
    yield from extract_python(python, keywords, comment_tags, {"encoding": "utf-8"})
