"""The README's Python examples run as written, and its Quickstart is the two promised commands."""
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()


def test_python_examples_each_run_on_their_own(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)                                  # files the examples write land here
    blocks = re.findall(r"```python\n(.*?)```", README, flags=re.S)
    assert len(blocks) >= 5
    # The MNIST-1D fit example trains 6000 steps; tests/test_train.py trains that run over
    # several seeds and checks its accuracy, so here it only has to run: 300 steps.
    fits = [i for i, b in enumerate(blocks) if "steps=6000" in b]
    assert len(fits) == 1
    blocks[fits[0]] = blocks[fits[0]].replace("steps=6000", "steps=300")
    # the "Use a trained model" example loads runs/latest: a tiny run made the way a reader makes one
    from fnn import cli, commands
    assert cli.run(commands.main, ["train", "--dataset", "xor", "--hidden", "4", "--steps", "5",
                                   "--no-progress"]) == 0
    steps = []
    for block in blocks:
        namespace = {}                                           # each block alone, as a reader pastes it
        exec(compile(block, "README.md", "exec"), namespace)   # noqa: S102 - our own README
        if "result" in namespace:
            steps.append(namespace.pop("result").steps)
    assert steps == [300, 80]                                    # MNIST-1D fit, then the report's fit
    assert (tmp_path / "report.html").stat().st_size > 0


def test_quickstart_is_two_commands_and_ci_runs_the_test_one():
    quickstart = README.split("## Quickstart", 1)[1].split("##", 1)[0]
    commands = re.findall(r"```bash\n(.*?)```", quickstart, flags=re.S)[0].strip().splitlines()
    assert len(commands) == 2
    assert commands[0].endswith("fnn train")
    assert "pytest" in commands[1]
    ci = open(os.path.join(ROOT, ".ci", "run"), encoding="utf-8").read()
    assert commands[1] in ci
