"""Command line: ``python -m experiments {list,run,reproduce}``."""

from __future__ import annotations

import argparse
import sys

from ._runner import discover, reproduce, run_experiment


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list the experiments")
    p_run = sub.add_parser("run", help="run one experiment")
    p_run.add_argument("name")
    p_run.add_argument("--out", default="results", help="results folder (default: results)")
    p_run.add_argument("--quick", action="store_true", help="small, fast configuration")
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
            summary = run_experiment(args.name, args.out, quick=args.quick)
        except ValueError as err:
            parser.error(str(err))
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
