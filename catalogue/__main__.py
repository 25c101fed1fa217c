"""``python -m catalogue compile``: write the current ``.mo`` beside each PO."""

from __future__ import annotations

import argparse
import sys

from catalogue import compile_all


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m catalogue", description=__doc__)
    parser.add_argument("command", choices=["compile"])
    parser.parse_args(argv)
    for path in compile_all():
        print(f"compiled {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
