"""scripts/throughput.py on tiny sizes: its JSON figures are consistent; bad flags are one-line errors."""
import json

import pytest

from fnn import cli
from conftest import load_script


@pytest.fixture(scope="module")
def throughput():
    return load_script("throughput")


def test_flops_per_step_counts_three_matmuls_per_dense_layer(throughput):
    assert throughput.flops_per_step([784, 4096, 4096, 10], 1) == 6 * (784 * 4096 + 4096 * 4096 + 4096 * 10)
    assert throughput.parse_sizes("8-16-4") == [8, 16, 4]


def test_tiny_run_writes_consistent_json(throughput, tmp_path, capsys):
    path = tmp_path / "t.json"
    argv = ["--sizes", "16-32-4", "--batch", "8", "--steps", "3", "--repeats", "2", "--matmul-size", "64",
            "--json", str(path)]
    assert throughput.main(argv) == 0
    printed = capsys.readouterr().out
    assert "device: cpu" in printed and "TFLOP/s" in printed
    r = json.loads(path.read_text())
    assert r["sizes"] == [16, 32, 4] and r["batch"] == 8 and r["precision"] == "fp32"
    assert r["matmul"]["n"] == 64 and r["matmul"]["flops_per_second"] > 0
    assert [m["method"] for m in r["results"]] == ["manual", "autodiff"]
    for m in r["results"]:
        assert m["loss_finite"]
        assert m["flops_per_step"] == 6 * 8 * (16 * 32 + 32 * 4)
        assert m["samples_per_second"] == pytest.approx(8 / m["step_seconds"])
        assert m["flops_per_second"] == pytest.approx(m["flops_per_step"] / m["step_seconds"])
        assert m["matmul_fraction"] == pytest.approx(m["flops_per_second"] / r["matmul"]["flops_per_second"])


def test_bf16_run(throughput, tmp_path):
    path = tmp_path / "t.json"
    assert throughput.main(["--sizes", "16-32-4", "--batch", "8", "--steps", "2", "--repeats", "1",
                            "--matmul-size", "32", "--grad", "manual", "--precision", "bf16",
                            "--json", str(path)]) == 0
    r = json.loads(path.read_text())
    assert r["compute_dtype"] == "bfloat16" and r["matmul"]["dtype"] == "bfloat16"
    assert len(r["results"]) == 1 and r["results"][0]["loss_finite"]


@pytest.mark.parametrize("argv, message", [
    (["--sizes", "784-x-10"], "--sizes must be two or more positive widths"),
    (["--sizes", "784"], "--sizes must be two or more positive widths"),
    (["--batch", "0"], "--batch"),
    (["--precision", "fp8"], "--precision"),
])
def test_bad_flags_are_one_line_errors(throughput, capsys, argv, message):
    try:
        code = cli.run(throughput.main, argv)
    except SystemExit as e:                       # argparse's own errors exit from parse_args
        code = e.code
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
