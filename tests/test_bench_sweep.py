"""The sweep benchmark runs end to end in quick mode and its store checks hold."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_benchmark_quick(tmp_path):
    spec = importlib.util.spec_from_file_location("bench_sweep",
                                                  ROOT / "benchmarks" / "bench_sweep.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "bench.md"
    assert bench.main(["--quick", "--out", str(out)]) == 0
    text = out.read_text()
    assert "runner overhead" in text and "(consistent)" in text
