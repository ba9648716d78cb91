"""mkdocs hooks: pages generated from the code, so they cannot drift from it.

- ``<!-- api-package: jaxgrad.models -->`` becomes the package's docstring and one
  mkdocstrings block per public module under it (a new module gets its section without
  editing the docs).
- ``<!-- api-names jaxgrad.models -->`` becomes a table of the names in the ``__all__`` of
  that package or module (its face; ``jaxgrad`` alone: the curated top level), each linked to
  its entry in the reference. ``api-package`` pages get this table too, under the
  package's docstring.
- ``<!-- experiments -->`` becomes the table of experiments from each script's ``NAME`` and
  ``DESCRIPTION`` (read with ``ast``, nothing is imported or run).

Everything is read statically (griffe, ast): building the docs imports neither jax nor
jaxgrad.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MARKER = re.compile(r"<!--\s*(api-package|api-names|experiments)\s*(.*?)\s*-->")


def _public_modules(package: str, *, subpackages: bool) -> list[str]:
    """Dotted names of the public modules in ``package``'s folder, sorted."""
    folder = ROOT.joinpath(*package.split("."))
    names = []
    for path in sorted(folder.iterdir()):
        if path.name.startswith("_"):
            continue
        if path.suffix == ".py":
            names.append(f"{package}.{path.stem}")
        elif subpackages and (path / "__init__.py").is_file():
            names.append(f"{package}.{path.name}")
            names.extend(_public_modules(f"{package}.{path.name}", subpackages=True))
    return names


def _package_page(package: str) -> str:
    blocks = [f"::: {package}\n    options:\n      members: false\n      show_root_heading: false",
              f"**Every public name** (``{package}.<name>``):\n\n{_names_table(package)}"]
    for module in _public_modules(package, subpackages=True):
        blocks.append(f"::: {module}")
    return "\n\n".join(blocks)


def _summary(obj) -> str:
    doc = obj.docstring.value.strip() if obj.docstring else ""
    line = doc.split("\n\n")[0].replace("\n", " ")
    return line.replace("|", "\\|")


def _target(obj):
    """What a public name of a face documents: should a face re-export a name over a
    module of the same name, griffe resolves it to the module (Python, to the function):
    the function of that name inside it is meant."""
    target = obj.final_target if obj.is_alias else obj
    if target.is_module and obj.name in target.members:
        target = target.members[obj.name]
        target = target.final_target if target.is_alias else target
    return target


def _names_table(package: str) -> str:
    import griffe

    root = griffe.load("jaxgrad", search_paths=[str(ROOT)], resolve_aliases=True)
    module = root if package == "jaxgrad" else root[package.removeprefix("jaxgrad.")]
    names = [str(name) for name in module.exports or ()]
    rows = ["| name | what |", "|---|---|"]
    for name in names:
        target = _target(module.members[name])
        private = any(part.startswith("_") for part in target.path.split("."))
        # mkdocstrings renders (so a link can reach) public objects with a docstring.
        ref = f"`{name}`" if private or not target.docstring else f"[`{name}`][{target.path}]"
        rows.append(f"| {ref} | {_summary(target)} |")
    return "\n".join(rows)


def _experiments_table() -> str:
    rows = ["| name | what it reproduces | script |", "|---|---|---|"]
    for path in sorted((ROOT / "experiments").glob("[!_]*.py")):
        values = {}
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.Assign) and len(node.targets) == 1:
                target = node.targets[0]
                if isinstance(target, ast.Name) and target.id in ("NAME", "DESCRIPTION"):
                    values[target.id] = ast.literal_eval(node.value)
        if "NAME" in values:
            description = values.get("DESCRIPTION", "").replace("|", "\\|")
            rows.append(f"| `{values['NAME']}` | {description} | `experiments/{path.name}` |")
    return "\n".join(rows)


def on_page_markdown(markdown: str, page, config, files) -> str:
    def expand(match: re.Match) -> str:
        kind, args = match.group(1), match.group(2)
        if kind == "api-package":
            return _package_page(args)
        if kind == "api-names":
            return _names_table(args or "jaxgrad")
        return _experiments_table()

    return MARKER.sub(expand, markdown)
