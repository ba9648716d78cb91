"""Command line: ``python -m experiments {list,run,reproduce}``."""

from __future__ import annotations

import argparse
import json
import sys

from ._runner import discover, get_experiment, make_config, reproduce, run_experiment


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the experiments")
    p_run = sub.add_parser("run", help="run one experiment")
    p_run.add_argument("name")
    p_run.add_argument("--out", default="results", help="results folder (default: results)")
    p_run.add_argument("--quick", action="store_true", help="small, fast configuration")
    p_run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override one configuration value (JSON), e.g. --set length=100; "
                       "repeatable")
    p_rep = sub.add_parser("reproduce", help="run every experiment and write the report")
    p_rep.add_argument("--out", default="results", help="results folder (default: results)")
    p_rep.add_argument("--quick", action="store_true", help="small, fast configuration")
    p_rep.add_argument("--force", action="store_true", help="recompute finished experiments")
    args = parser.parse_args(argv)

    if args.command == "list":
        for name, module in discover().items():
            print(f"{name:28s} {module.DESCRIPTION}")
        return 0
    if args.command == "run":
        try:
            overrides = parse_overrides(args.set)
            config = make_config(get_experiment(args.name), quick=args.quick, **overrides)
        except ValueError as err:
            parser.error(str(err))
        summary = run_experiment(args.name, args.out, quick=args.quick, config=config)
        failed = [c["name"] for c in summary["checks"] if not c["passed"]]
        print(f"{args.name}: {len(summary['checks']) - len(failed)}/{len(summary['checks'])} "
              f"checks passed; results in {args.out}/{args.name}")
        for name in failed:
            print(f"  FAILED: {name}")
        return 0
    report = reproduce(args.out, quick=args.quick, force=args.force)
    print(f"report: {report} (and {report.with_suffix('.html')})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
