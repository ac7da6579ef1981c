"""python -m infra.observability [--check]: write the generated alerting files, or (--check)
exit 1 naming those that differ from what the catalogue generates."""

from __future__ import annotations

import argparse
import sys

from .generate import REPO, outputs


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.observability", description=__doc__)
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args()
    stale = []
    for path, text in outputs().items():
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path.relative_to(REPO)))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {path.relative_to(REPO)}")
    if stale:
        print(f"out of date (run python -m infra.observability): {', '.join(stale)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
