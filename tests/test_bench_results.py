"""benchmarks/results.py keeps RESULTS.md's current-figures table in step with the dated log."""

import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

from results import BEGIN, END, Figure, _rows, record, update_table  # noqa: E402

START = f"# Benchmark results\n\nintro\n\n{BEGIN}\n| benchmark | what | ours | peer | ratio | date | machine |\n" \
        f"|---|---|---|---|---|---|---|\n| a | x | 1 s | 2 s | 2.0x | 2026-01-01 | cpu |\n{END}\n\n## Dated log\n"


def test_update_replaces_the_row_of_the_same_key_and_appends_new_ones():
    text = update_table(START, [Figure("a", "x", "0.5 s", "2 s", "4.0x", "cpu"), Figure("b", "y", "3", machine="gpu")],
                        "2026-02-02")
    rows = _rows(text)
    assert list(rows) == ["a", "b"]
    assert rows["a"] == "| a | x | 0.5 s | 2 s | 4.0x | 2026-02-02 | cpu |"
    assert rows["b"] == "| b | y | 3 |  |  | 2026-02-02 | gpu |"
    assert text.startswith("# Benchmark results\n\nintro\n\n") and text.endswith(f"{END}\n\n## Dated log\n")


def test_record_appends_to_the_log_and_updates_the_table_in_one_write(tmp_path):
    path = tmp_path / "RESULTS.md"
    path.write_text(START)
    record("Thing, CPU", "| t |\n", [Figure("a", "x", "0.25 s", "2 s", "8.0x", "cpu")], path)
    text = path.read_text()
    assert "| a | x | 0.25 s | 2 s | 8.0x |" in text and text.count("| a |") == 1
    assert text.rstrip().endswith("| t |") and "\n## Thing, CPU (" in text


def test_the_stored_results_file_has_the_table_at_the_top():
    text = (BENCHMARKS / "RESULTS.md").read_text()
    rows = _rows(text)
    assert text.index(BEGIN) < text.index("## Dated log")
    assert {"bench_sparse: windowed attention", "bench_vit_vs_timm", "bench_fsdp", "bench_var_kv_cache"} <= set(rows)
    assert all(row.count(" | ") == 6 for row in rows.values())
