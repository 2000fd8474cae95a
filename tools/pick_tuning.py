"""Apply the tuning rule of `w2s.pipeline.tuning` to a finished tuning sweep:

    python -m tools.pick_tuning SWEEP_DIR                 # print the picks and the scores behind them
    python -m tools.pick_tuning SWEEP_DIR --write CONFIG  # also write them into a confirmation config

SWEEP_DIR is the tuning sweep's folder (it holds `points.json`). `--write` replaces the lines
between `# BEGIN tuned` and `# END tuned` in CONFIG (a sweep config's `overrides:` block) with
the student's pick (`strong.*`) and the budget baseline's (`strong.budget.*`), and notes the
source and the rule above them.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

BEGIN, END = "# BEGIN tuned", "# END tuned"


def write_block(config: Path, result: dict, source: str) -> None:
    """Replace the tuned block of a sweep config, keeping its indentation."""
    import yaml

    lines = config.read_text().splitlines()
    starts = [i for i, line in enumerate(lines) if line.strip().startswith(BEGIN)]
    ends = [i for i, line in enumerate(lines) if line.strip().startswith(END)]
    if len(starts) != 1 or len(ends) != 1 or ends[0] < starts[0]:
        raise SystemExit(f"{config}: needs exactly one '{BEGIN}' line and one '{END}' line after it")
    indent = lines[starts[0]][: len(lines[starts[0]]) - len(lines[starts[0]].lstrip())]
    block = [
        f"{indent}{BEGIN} from {source}: {result['rule']}",
        f"{indent}# student {result['student']['metric']} {result['student']['score']:.4f}, "
        f"budget {result['budget']['metric']} {result['budget']['score']:.4f} "
        f"(mean over {result['student']['seeds']} tuning seeds)",
        *(
            f"{indent}{k}: {yaml.safe_dump(v).strip().removesuffix('...').strip()}"
            for k, v in result["overrides"].items()
        ),
    ]
    config.write_text("\n".join([*lines[: starts[0]], *block, *lines[ends[0] :]]) + "\n")


def main(argv: list[str] | None = None) -> int:
    from w2s.pipeline.tuning import tuned_overrides

    parser = argparse.ArgumentParser(prog="python -m tools.pick_tuning", description=__doc__.split("\n\n")[0])
    parser.add_argument("sweep_dir", type=Path, help="the tuning sweep's folder (holds points.json)")
    parser.add_argument(
        "--write", type=Path, metavar="CONFIG", help="confirmation sweep config to write the picks into"
    )
    args = parser.parse_args(argv)
    points = args.sweep_dir / "points.json"
    if not points.is_file():
        print(f"error: {points} not found", file=sys.stderr)
        return 2
    try:
        result = tuned_overrides(json.loads(points.read_text()))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2))
    if args.write:
        write_block(args.write, result, args.sweep_dir.name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
