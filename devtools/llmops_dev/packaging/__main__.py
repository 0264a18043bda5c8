"""``python -m llmops_dev.packaging [--check] [--repo DIR]``: regenerate, or check, the packaging files."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from llmops_dev.packaging.generate import GenerateError, out_of_date, write


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m llmops_dev.packaging", description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if a generated file is out of date")
    parser.add_argument("--repo", type=Path, default=Path.cwd(), help="repository root (default: .)")
    args = parser.parse_args(argv)
    try:
        report = out_of_date(args.repo) if args.check else write(args.repo)
    except GenerateError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    verb = "out of date" if args.check else "regenerated"
    for path in report.changed:
        print(f"{verb}: {path}")
    for path in report.stale:
        print(f"{'stale' if args.check else 'removed'}: {path}")
    if args.check and report:
        print("run `make manifests` to regenerate them", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
