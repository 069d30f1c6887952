"""scripts/transformer.py: greedy decoding, exact match, a short run's output, JSON and picture."""
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnn
from conftest import load_script
from fnn.data import sequences

script = load_script("transformer", "transformer_script_under_test")


@pytest.fixture(scope="module")
def tiny():
    """A random 1-block gpt on the sort task of length 4 (T = 7), and some prompts."""
    task = sequences.sort_digits(jax.random.key(0), 6, length=4)
    model = fnn.layers.gpt(task.vocab, task.x.shape[1], 16, 2, 1)
    _, params = model.init(jax.random.key(1), (-1, task.x.shape[1]))
    return model, params, task


def test_greedy_decoding_feeds_each_token_back_and_never_reads_ahead(tiny):
    model, params, task = tiny
    P, A = task.prompt_length, task.answer_length
    got = np.asarray(script.greedy_decode(model, params, task.prompts, A))
    # Reference: grow the sequence one token at a time, the model reading only what exists,
    # with any padding after it: causal attention must make the padding irrelevant.
    seq = np.array(task.prompts)
    for i in range(A):
        pad = np.full((len(seq), P + A - 1 - seq.shape[1]), 7, np.int32)   # not 0, as decode pads
        logits = model.apply(params, jnp.asarray(np.concatenate([seq, pad], axis=1)))
        seq = np.concatenate([seq, np.argmax(np.asarray(logits)[:, seq.shape[1] - 1], -1)[:, None]], axis=1)
    np.testing.assert_array_equal(got, seq[:, P:])


def test_exact_match_counts_a_sequence_only_when_every_token_is_right(tiny, monkeypatch):
    model, params, task = tiny
    wrong_last = np.array(task.answers)
    wrong_last[:3, -1] = (wrong_last[:3, -1] + 1) % 10            # 3 of 6 sequences off by one token
    monkeypatch.setattr(script, "greedy_decode", lambda m, p, prompts, a: jnp.asarray(wrong_last[:len(prompts)]))
    exact, per_token = script.exact_match(model, params, task)
    assert exact == pytest.approx(0.5) and per_token == pytest.approx(1 - 3 / 24)


def test_a_short_run_prints_its_figures_and_writes_json_and_the_picture(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(script.RECIPES, "sort", dict(script.RECIPES["sort"], n_train=600, n_test=100))
    out = tmp_path / "t.json"
    png = tmp_path / "attn.png"
    assert script.main(["--task", "sort", "--steps", "40", "--json", str(out), "--figure", str(png)]) == 0
    text = capsys.readouterr().out
    assert "sort: exact match" in text and "40 steps" in text
    run = json.loads(out.read_text())["runs"][0]
    assert run["task"] == "sort" and run["steps"] == 40 and run["test_examples"] == 100
    assert 0 <= run["test_exact_match"] <= run["test_token_accuracy"] <= 1
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_attention_maps_are_causal_distributions(tiny):
    model, params, task = tiny
    maps = script.attention_maps(model, params, jnp.asarray(task.x))
    assert len(maps) == 1 and maps[0].shape == (6, 2, 7, 7)
    np.testing.assert_allclose(maps[0].sum(-1), 1.0, rtol=1e-5)
    assert np.all(np.triu(maps[0], k=1) == 0)


@pytest.mark.parametrize("argv", [["--task", "mul"], ["--steps", "0"], ["--json", "/no/such/folder/x.json"],
                                  ["--seed", "-1"]])
def test_bad_flags_are_one_line_and_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as e:
        script.parse_args(argv)
    assert e.value.code == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
