"""`python -m benchmarks.device` keeps working on a machine without a GPU (CI): CPU rows with
numbers, "no GPU" in the GPU cells, exit status 0."""

import re
import subprocess
import sys

import pytest
import torch

from tests.conftest import ROOT, TINY_WORDS

pytestmark = pytest.mark.slow


def test_the_device_benchmark_prints_its_table_without_a_gpu(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: run the benchmark itself")
    words = tmp_path / "words.txt"
    words.write_text("\n".join(TINY_WORDS * 5) + "\n", encoding="utf-8")
    args = [sys.executable, "-m", "benchmarks.device", "--quick", "--data", str(words)]
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = {
        cells[0]: cells[1:]
        for line in proc.stdout.splitlines()
        if line.startswith("| ") and not line.startswith("| benchmark")
        for cells in [[cell.strip() for cell in line.strip("|").split(" | ")]]
    }
    for model in ("bigram", "trigram", "suffix, c = 3"):
        cpu, gpu, _ = rows[f"{model}: training step, full batch, count table"]
        assert re.fullmatch(r"[\d,]+\.\d\d ms", cpu) and float(cpu[:-3].replace(",", "")) > 0
        assert gpu == "no GPU"
        nll = rows[next(name for name in rows if name.startswith(f"{model}: val NLL"))]
        assert 0 < float(nll[0]) < 5 and nll[1] == "no GPU"
    for model in ("bigram", "trigram"):
        cpu, gpu, _ = rows[f"{model}: bf16-mixed step (Δ val NLL against float32)"]
        # the dense model's logits and NLLs stay float32 under bf16 autocast: the same fit
        assert cpu.endswith("(Δ 0.0e+00)") and gpu == "no GPU"
    assert rows["trigram fit, 1 GPU vs N GPUs"][1] == "no GPU"
