"""The benchmark's own correctness: its baselines compute the same outputs as the library, its
report is written whole, and ratios are judged against their targets the right way round.
(No timing is asserted here: speed is measured by `make bench`, never by a test.)"""

from __future__ import annotations

import json

import numpy as np
import pytest

from bench import run as bench_run
from bench.inference import _Embedder, input_order
from w2s.core.models.batching import encode, predict_logits

TEXTS = [
    "a",
    "a much longer text with many more tokens than the first",
    "short one",
    "mid sized text here",
    "x y",
    "another fairly long sentence to pad against",
    "z",
]


def test_input_order_baselines_compute_the_library_embeddings(minilm_2layer):
    tokenizer, model = minilm_2layer
    embed = _Embedder(model)
    enc = encode(tokenizer, TEXTS, 16)
    sorted_ = predict_logits(embed, enc, batch_size=3)
    for width in (None, 16):
        np.testing.assert_allclose(input_order(embed, enc, 3, width), sorted_, atol=1e-5)


def test_targets_are_judged_in_the_right_direction():
    assert bench_run._met(1.2, ">= 1.2") and not bench_run._met(1.19, ">= 1.2")
    assert bench_run._met(0.15, "<= 0.2") and not bench_run._met(0.21, "<= 0.2")
    assert bench_run._met(0.9, "< 1") and not bench_run._met(1.0, "< 1")
    assert bench_run._met(3.0, "(info)") is None


def test_ratios_come_from_the_same_report():
    report = {
        "training": {
            "contenders": {
                "w2s trainer": {"examples_per_s": 30.0},
                "plain PyTorch loop": {"examples_per_s": 20.0},
                "HF Trainer": {"examples_per_s": 20.0},
                "HF Trainer (group_by_length)": {"examples_per_s": 30.0},
            },
            "w2s_gflops": 50.0,
        },
        "machine": {"matmul": {"gflops": 100.0}},
        "inference": {
            "length_sorted": {"texts_per_s": 150.0},
            "input_order": {"texts_per_s": 100.0},
            "input_order_max_length": {"texts_per_s": 75.0},
        },
    }
    rows = {name: (value, met) for name, value, _, met in bench_run.ratios(report)}
    assert rows["training: w2s / plain PyTorch (examples/s)"] == (1.5, True)
    assert rows["training: w2s / HF Trainer (examples/s)"] == (1.5, True)
    assert rows["embedding: length-sorted / input order"] == (1.5, True)
    assert rows["training FLOP/s / matmul FLOP/s"] == (0.5, None)


def test_bench_writes_its_report_and_table(tmp_path, capsys):
    out = tmp_path / "report.json"
    assert bench_run.main(["--only", "machine", "--quick", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["machine"]["matmul"]["gflops"] > 0
    assert report["machine"]["cores_usable"] >= 1
    assert not out.with_suffix(".tmp").exists()
    assert "GFLOP/s" in capsys.readouterr().out


def test_unknown_section_is_refused(capsys):
    with pytest.raises(SystemExit) as exc:
        bench_run.main(["--only", "warp-drive"])
    assert exc.value.code == 2
    assert "unknown section" in capsys.readouterr().err


def test_ingest_figures_compare_sizes_and_paths_of_the_same_run(tmp_path):
    from bench.ingest import generate_csv, measure_one

    def run(mb: float, rss: float, rows_per_s: int) -> dict:
        return {"file_mb": mb, "peak_rss_mb": rss, "rows_per_s": rows_per_s}

    report = {
        "ingest": {
            "sizes_mb": [10, 100, 1000],
            "streamed": {"10MB": run(10, 400, 50), "100MB": run(100, 500, 60), "1000MB": run(1000, 1000, 70)},
            "in-memory": {"10MB": run(10, 450, 100), "100MB": run(100, 1000, 120)},
        }
    }
    rows = {name: (value, met) for name, value, _, met in bench_run.ratios(report)}
    assert rows["ingest: peak RSS on the 1000MB CSV (MB)"] == (1000, True)
    assert rows["ingest: peak RSS 1000MB / 100MB (file ratio 10)"] == (2.0, True)
    assert rows["ingest: streamed / in-memory peak RSS (100MB)"] == (0.5, True)
    assert rows["ingest: streamed / in-memory rows/s (100MB)"] == (0.5, None)

    csv = tmp_path / "g.csv"  # the generator writes what the ingest it measures accepts
    rows_written = generate_csv(csv, 1)
    assert csv.stat().st_size >= 10**6 and rows_written >= 3600
    assert measure_one(csv, "in-memory")["rows"] == measure_one(csv, "streamed")["rows"] == rows_written


def test_predict_ratios_compare_the_larger_file_and_the_whole_file_baseline():
    from bench.predict import ratios

    def fig(mb, rows, rss, rate):
        return {"file_mb": mb, "rows": rows, "peak_rss_mb": rss, "rows_per_s": rate}

    report = {
        "sizes_mb": [4, 8],
        "streamed": {"4MB": fig(4.2, 20000, 1000.0, 300), "8MB": fig(8.4, 40000, 1100.0, 330)},
        "whole-file": {"4MB": fig(4.2, 20000, 1000.0, 300), "8MB": fig(8.4, 40000, 2200.0, 300)},
    }
    (growth, value1, target1), (_, value2, target2), (_, value3, _) = ratios(report)
    assert "file ratio 2" in growth and value1 == pytest.approx(1.1) and bench_run._met(value1, target1)
    assert value2 == pytest.approx(0.5) and bench_run._met(value2, target2)
    assert value3 == pytest.approx(1.1)
