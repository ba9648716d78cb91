"""Griffe extension: jaxgrad's ``Example:`` sections are griffe's ``Examples`` sections.

The docstrings follow the Google style with an ``Example:`` heading (STYLE.md); griffe
knows only ``Examples:``, and would render the ``>>>`` lines as Markdown. Read as an
Examples section, each ``>>>`` line and its output become a highlighted code block.
"""

from __future__ import annotations

import re

import griffe

HEADING = re.compile(r"^(\s*)Example:[ \t]*$", re.MULTILINE)


class ExampleSections(griffe.Extension):
    def on_instance(self, *, obj: griffe.Object, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = HEADING.sub(r"\1Examples:", obj.docstring.value)
