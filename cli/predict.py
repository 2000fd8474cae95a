"""`w2s predict`: batch inference with a registered version over a file of texts."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def cmd_predict(args: argparse.Namespace) -> int:
    """Batch inference with a registered version over a file of texts."""
    from w2s.core.progress import Progress, interval
    from w2s.ops import predict, tracking
    from w2s.project import Project

    project = Project.discover()
    tracking.configure(project)
    with Progress("predict", "row", every_s=interval(10.0)) as shown:
        result = predict.predict_file(
            args.model,
            Path(args.input),
            Path(args.output),
            text_column=args.text_column,
            id_column=args.id_column,
            progress=shown.update,
        )
    if args.json:
        print(json.dumps(result.as_dict(), indent=2))
    else:
        print(
            f"{result.rows} rows -> {result.output} with {result.model}/{result.version} "
            f"({result.seconds:.1f} s; record: {predict.sidecar(Path(result.output))})"
        )
    return 0


def add_predict(sub: argparse._SubParsersAction, fmt: type[argparse.HelpFormatter]) -> None:
    """The `predict` verb."""
    pd_ = sub.add_parser(
        "predict",
        formatter_class=fmt,
        help="batch inference with a registered model version",
        description="Read INPUT (CSV, TSV, JSONL or Parquet) in batches, predict every text with MODEL and write "
        "id, label and one p_<label> probability column per class to OUTPUT (.parquet, .csv or .jsonl, "
        "written whole or not at all). Ids come from --id-column, else the input's `id` column, else "
        "the row number. OUTPUT.json records the model version, its run and the input's md5.",
        epilog="examples:\n  w2s predict w2s-strong@champion --input new.csv --output scores.parquet\n"
        "  w2s predict w2s-strong/3 --input posts.jsonl --output out.csv --text-column body",
    )
    pd_.add_argument("model", help="<name>/<version> or <name>@<alias>")
    pd_.add_argument("--input", required=True, metavar="FILE", help="texts to predict")
    pd_.add_argument("--output", required=True, metavar="FILE", help="where the predictions go")
    pd_.add_argument("--text-column", default="text", help="the column holding the texts (default text)")
    pd_.add_argument("--id-column", default=None, help="the column of row ids (default: id, else row numbers)")
    pd_.add_argument("--json", action="store_true", help="print the record as JSON")
    pd_.set_defaults(func=cmd_predict)


PARSERS = (add_predict,)
