"""fnn.data.sequences: the sort and add tasks, their split and their answer-only targets."""
import jax
import numpy as np
import pytest

from fnn.data import sequences as S
from fnn.errors import InputError, InputTypeError


def test_sort_task_is_a_prompt_then_its_sorted_digits():
    t = S.sort_digits(jax.random.key(0), 50, length=8)
    s = t.sequences
    assert s.shape == (50, 16) and t.x.shape == t.y.shape == t.mask.shape == (50, 15)
    np.testing.assert_array_equal(t.answers, np.sort(t.prompts, axis=1))
    np.testing.assert_array_equal(t.x[:, 1:], t.y[:, :-1])                  # y is x shifted by one
    assert t.mask[0].tolist() == [False] * 7 + [True] * 8                   # y[7:] are the answer
    assert s.min() >= 0 and s.max() <= 9 and t.x.dtype == np.int32


def test_add_task_answers_the_sum_least_significant_digit_first():
    t = S.add_numbers(jax.random.key(1), 200, digits=3)
    p, a = t.prompts, t.answers
    assert p.shape == (200, 6) and a.shape == (200, 4) and t.mask[0].tolist() == [False] * 5 + [True] * 4
    value = lambda d: (d * 10 ** np.arange(d.shape[1] - 1, -1, -1)).sum(axis=1)
    np.testing.assert_array_equal(value(p[:, :3]) + value(p[:, 3:]), value(a[:, ::-1]))
    assert (value(a[:, ::-1]) >= 1000).any()                                  # a carry into the 4th digit


def test_split_keeps_every_test_prompt_out_of_training():
    task = S.add_numbers(jax.random.key(2), 5000, digits=2)                  # 10^4 pairs: many repeats
    train, test = S.split_task(task, 300)
    seen = {p.tobytes() for p in train.prompts}
    assert test.n == 300 and not any(p.tobytes() in seen for p in test.prompts)
    assert len({p.tobytes() for p in test.prompts}) == 300
    assert train.n + test.n < task.n                                         # the repeats were dropped


def test_answer_targets_are_one_hot_on_the_answer_only():
    t = S.sort_digits(jax.random.key(3), 4, length=3)
    y = S.answer_targets(t)
    assert y.shape == (4, 5, 10)
    np.testing.assert_array_equal(y.sum(axis=-1), t.mask.astype(np.float32))
    np.testing.assert_array_equal(y.argmax(-1)[t.mask], t.y[t.mask])


def test_draws_take_a_key_and_bad_settings_are_named():
    a, b = S.sort_digits(jax.random.key(4), 10), S.sort_digits(jax.random.key(4), 10)
    np.testing.assert_array_equal(a.x, b.x)
    with pytest.raises(InputTypeError, match="key"):
        S.sort_digits(0, 10)
    with pytest.raises(InputError, match="length"):
        S.sort_digits(jax.random.key(0), 10, length=0)
    with pytest.raises(InputError, match="unknown sequence task 'mul'"):
        S.get_sequence_task("mul", jax.random.key(0), 10)
    with pytest.raises(InputError, match="distinct prompts"):
        S.split_task(S.sort_digits(jax.random.key(0), 5, length=1), 10)
