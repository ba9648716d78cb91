"""Command line: ``python -m experiments {list,run,reproduce}``.

``--help`` (and each command's ``--help``) lists the commands, their options and the
experiments; the experiments' names, descriptions and configuration keys are read from
their source files, so the help does not import them (and jax).
"""

from __future__ import annotations

import argparse
import ast
import json
import signal
import sys
import textwrap
from pathlib import Path

from ._runner import (
    _exit_on_sigterm,
    default_jobs,
    discover,
    get_experiment,
    make_config,
    reproduce,
    run_experiment,
)

DESCRIPTION = """\
Run the jaxgrad experiments (each reproduces a paper's figure or number and checks it).

commands:
  list                          list the experiments
  run NAME [--out DIR] [--quick] [--set KEY=VALUE ...]
                                run one experiment into DIR/NAME (default DIR: results)
  reproduce [--out DIR] [--quick] [--force]
                                run every experiment not yet finished in DIR and write
                                DIR/report.md and DIR/report.html

Run `python -m experiments COMMAND --help` for a command's options."""

RUN_DESCRIPTION = """\
Run one experiment and write DIR/NAME/summary.json (parameters, key numbers, checks),
DIR/NAME/data.npz and one PNG per figure.

A --set value is read as JSON (numbers, true/false, lists, "strings"; a bare word is a
string) and must have the type of the experiment's default value; counts (num_*, *_steps,
*_size, length, depth, width, ...) must be >= 1. A value the experiment refuses is
reported with its key."""

REPRODUCE_DESCRIPTION = """\
Run every experiment (skipping those already finished in DIR with the same configuration
and intact files, unless --force) and write DIR/report.md and DIR/report.html."""


def _catalogue() -> list[tuple[str, str, list[str]]]:
    """``(NAME, DESCRIPTION, config keys)`` of each experiment, read from its source.

    The keys are the fields of its ``Config`` class (or, in a module not yet converted,
    the keys of its ``DEFAULT_CONFIG`` dict).
    """
    found = []
    for path in sorted(Path(__file__).parent.glob("[!_]*.py")):
        try:
            tree = ast.parse(path.read_text())
        except (OSError, SyntaxError):
            continue
        values, keys = {}, []
        for node in tree.body:
            if isinstance(node, ast.ClassDef) and node.name == "Config":
                keys = sorted(item.target.id for item in node.body
                              if isinstance(item, ast.AnnAssign)
                              and isinstance(item.target, ast.Name))
            if isinstance(node, ast.Assign) and len(node.targets) == 1:
                target = node.targets[0]
                if isinstance(target, ast.Name) and target.id in (
                    "NAME", "DESCRIPTION", "DEFAULT_CONFIG"
                ):
                    try:
                        values[target.id] = ast.literal_eval(node.value)
                    except ValueError:
                        pass
        if isinstance(values.get("NAME"), str):
            config = values.get("DEFAULT_CONFIG")
            if not keys and isinstance(config, dict):
                keys = sorted(config)
            found.append((values["NAME"], str(values.get("DESCRIPTION", "")), keys))
    return found


def _experiments_epilog(with_keys: bool) -> str:
    lines = ["experiments:"]
    for name, description, keys in _catalogue():
        lines.append(f"  {name}")
        lines += textwrap.wrap(description, 88, initial_indent="      ",
                               subsequent_indent="      ")
        if with_keys and keys:
            lines += textwrap.wrap("--set keys: " + ", ".join(keys), 88,
                                   initial_indent="      ", subsequent_indent="        ")
    return "\n".join(lines)


def parse_overrides(pairs: list[str]) -> dict:
    """``["length=100", "tasks=[\"addition\"]"]`` -> ``{"length": 100, "tasks": ["addition"]}``.

    Values are read as JSON where they parse (numbers, lists, true/false), else as strings.
    """
    overrides = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--set takes KEY=VALUE, got {pair!r}")
        try:
            overrides[key] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key] = value
    return overrides


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def _parser() -> argparse.ArgumentParser:
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(prog="python -m experiments", description=DESCRIPTION,
                                     epilog=_experiments_epilog(False), formatter_class=raw)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("list", help="list the experiments", formatter_class=raw,
                   description="List the experiments with their descriptions.",
                   epilog=_experiments_epilog(False))
    p_run = sub.add_parser("run", help="run one experiment", formatter_class=raw,
                           description=RUN_DESCRIPTION, epilog=_experiments_epilog(True))
    p_run.add_argument("name", metavar="NAME", help="the experiment (see the list below)")
    p_run.add_argument("--out", default="results", metavar="DIR",
                       help="results folder (default: results)")
    p_run.add_argument("--quick", action="store_true", help="small, fast configuration")
    p_run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override one configuration value (JSON), e.g. --set length=100; "
                       "repeatable")
    p_rep = sub.add_parser("reproduce", help="run every experiment and write the report",
                           formatter_class=raw, description=REPRODUCE_DESCRIPTION,
                           epilog=_experiments_epilog(False))
    p_rep.add_argument("--out", default="results", metavar="DIR",
                       help="results folder (default: results)")
    p_rep.add_argument("--quick", action="store_true", help="small, fast configuration")
    p_rep.add_argument("--force", action="store_true", help="recompute finished experiments")
    p_rep.add_argument("--jobs", type=_positive_int, default=None, metavar="N",
                       help="experiments run at once, each in its own process (default: "
                       "one per CPU core, at most 4, on a CPU-only JAX; 1 with an "
                       "accelerator)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)

    if args.command == "list":
        for name, module in discover().items():
            print(f"{name:28s} {module.DESCRIPTION}")
        return 0
    if args.command == "run":
        try:
            overrides = parse_overrides(args.set)
            config = make_config(get_experiment(args.name), quick=args.quick, **overrides)
        except (ValueError, TypeError) as err:
            parser.error(str(err))
        try:
            summary = run_experiment(args.name, args.out, quick=args.quick, config=config)
        except (ValueError, TypeError) as err:
            if not overrides:
                raise
            given = ", ".join(f"{k}={json.dumps(v)}" for k, v in overrides.items())
            parser.error(f"{args.name} refused the configuration set by --set {given}: "
                         f"{type(err).__name__}: {err}")
        failed = [c["name"] for c in summary["checks"] if not c["passed"]]
        print(f"{args.name}: {len(summary['checks']) - len(failed)}/{len(summary['checks'])} "
              f"checks passed; results in {args.out}/{args.name}")
        for name in failed:
            print(f"  FAILED: {name}")
        return 0
    jobs = default_jobs() if args.jobs is None else args.jobs
    # `kill` (SIGTERM) unwinds like Ctrl-C, so reproduce stops its worker processes
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    report = reproduce(args.out, quick=args.quick, force=args.force, jobs=jobs)
    print(f"report: {report} (and {report.with_suffix('.html')})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
