"""`convnp predict DIR` under mpiexec -n 2: files sharded across ranks, results printed once, in order."""
import os

from convnp.cli import main
from convnp.serve.app import DEFAULT_CHECKPOINT
from serve_helpers import mnist_test_digit, png_bytes
from test_distributed import run_mpi


def test_predict_directory_on_two_ranks_equals_one_process(tmp_path, capsys):
    labels = []
    for i in range(7):  # an odd count: the ranks get 4 and 3 files
        image, label = mnist_test_digit(i)
        (tmp_path / f"digit{i}.png").write_bytes(png_bytes(image))
        labels.append(label)
    assert main(["predict", DEFAULT_CHECKPOINT, str(tmp_path)]) == 0
    single = capsys.readouterr().out.strip().splitlines()
    code, out = run_mpi("cli_main.py", "predict", DEFAULT_CHECKPOINT, str(tmp_path))
    assert code == 0, out
    lines = [line for line in out.strip().splitlines() if line.startswith(str(tmp_path))]
    assert lines == single  # rank 0 alone prints, every file once, in the original order
    assert [os.path.basename(line.split(":")[0]) for line in lines] == [f"digit{i}.png" for i in range(7)]
    predicted = [int(line.split(": ")[1].split(" ")[0]) for line in lines]
    assert sum(p == t for p, t in zip(predicted, labels)) >= 6
