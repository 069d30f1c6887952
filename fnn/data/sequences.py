"""Synthetic sequence tasks for a small language model, in the style of minGPT's demos.

Each task is a set of token sequences: a prompt, then its answer. A decoder-only
model reads the sequence and predicts each next token; only the answer's
tokens are scored (the prompt is given, not predicted):

    sequence  s = prompt (P tokens) + answer (A tokens)
    x = s[:-1],  y = s[1:]            (n, T), T = P + A − 1: y[t] is the token after x[:t + 1]
    mask[t] = t ≥ P − 1               the positions whose next token is part of the answer

Tasks (tokens are the digits 0–9):

    sort    P = A = length: digits in any order, then the same digits sorted
    add     P = 2d, A = d + 1: the d digits of a and of b (most significant first), then
            the d + 1 digits of a + b least significant first (the order in which a
            person carries, and in which a left-to-right model can compute them)

split_task keeps the test sequences out of the training set, so test accuracy
is on prompts the model never trained on.
"""
from typing import Any, NamedTuple, Tuple

import jax
import numpy as np

from fnn.errors import InputError
from fnn.typing import DTypeLike, PRNGKey
from fnn.validate import check_key, check_positive_int

__all__ = ["SequenceTask", "sort_digits", "add_numbers", "split_task", "answer_targets",
           "SEQUENCE_TASKS", "get_sequence_task"]

VOCAB = 10


class SequenceTask(NamedTuple):
    """Token sequences of one task: x, y, mask (n, T) and the prompt and answer lengths."""
    name: str
    x: np.ndarray          # (n, T) int32: the sequence without its last token
    y: np.ndarray          # (n, T) int32: the next tokens
    mask: np.ndarray       # (n, T) bool: True where y[t] is an answer token
    prompt_length: int     # P
    answer_length: int     # A
    vocab: int

    @property
    def sequences(self) -> np.ndarray:
        """(n, P + A) int32: the whole sequences, prompt then answer."""
        return np.concatenate([self.x[:, :1], self.y], axis=1)

    @property
    def prompts(self) -> np.ndarray:
        """(n, P) int32: the prompts."""
        return self.sequences[:, :self.prompt_length]

    @property
    def answers(self) -> np.ndarray:
        """(n, A) int32: the answers."""
        return self.sequences[:, self.prompt_length:]

    @property
    def n(self) -> int:
        """The number of sequences (len() of a NamedTuple counts its fields)."""
        return len(self.x)

    def take(self, rows: Any) -> "SequenceTask":
        """The task with the sequences at `rows` only.

        Args:
          rows: a numpy index into the sequences: an int array, a slice or a bool mask.

        Returns:
          A SequenceTask with x, y and mask indexed by rows.
        """
        return self._replace(x=self.x[rows], y=self.y[rows], mask=self.mask[rows])


def _rng(key):
    """A NumPy generator seeded from a PRNG key (the data is drawn on the host)."""
    check_key("key", key)
    return np.random.default_rng(np.asarray(jax.random.key_data(key)).ravel().tolist())


def _task(name, sequences, prompt_length):
    s = np.asarray(sequences, np.int32)
    T = s.shape[1] - 1
    mask = np.broadcast_to(np.arange(T) >= prompt_length - 1, (len(s), T))
    return SequenceTask(name, s[:, :-1], s[:, 1:], np.array(mask), prompt_length,
                        s.shape[1] - prompt_length, VOCAB)


def sort_digits(key: PRNGKey, n: int, *, length: int = 8) -> SequenceTask:
    """n prompts of `length` random digits 0–9, each followed by the same digits sorted.

    Args:
      key: PRNG key the digits are drawn from.
      n: the number of sequences.
      length: P = A, the digits per prompt.

    Returns:
      The SequenceTask "sort", T = 2·length − 1.

    Raises:
      InputError / InputTypeError: for a key that is not a PRNG key, or n or length < 1.
    """
    n = check_positive_int("sort_digits: n", n)
    length = check_positive_int("sort_digits: length", length)
    digits = _rng(key).integers(0, VOCAB, (n, length))
    return _task("sort", np.concatenate([digits, np.sort(digits, axis=1)], axis=1), length)


def _digits(values, d):
    """(n, d) decimal digits of values, most significant first."""
    return (values[:, None] // 10 ** np.arange(d - 1, -1, -1)) % 10


def add_numbers(key: PRNGKey, n: int, *, digits: int = 3) -> SequenceTask:
    """n prompts a, b (each `digits` digits, leading zeros kept), followed by a + b reversed (digits + 1).

    Args:
      key: PRNG key a and b are drawn from.
      n: the number of sequences.
      digits: d, the digits of a and of b, 1 to 9.

    Returns:
      The SequenceTask "add", P = 2d, A = d + 1.

    Raises:
      InputError / InputTypeError: for a key that is not a PRNG key, or n or digits out of range.
    """
    n = check_positive_int("add_numbers: n", n)
    d = check_positive_int("add_numbers: digits", digits, maximum=9)
    ab = _rng(key).integers(0, 10 ** d, (n, 2))
    total = _digits(ab.sum(axis=1), d + 1)[:, ::-1]                     # least significant first
    return _task("add", np.concatenate([_digits(ab[:, 0], d), _digits(ab[:, 1], d), total], axis=1), 2 * d)


SEQUENCE_TASKS = {"sort": sort_digits, "add": add_numbers}


def get_sequence_task(name: str, key: PRNGKey, n: int, **kwargs: Any) -> SequenceTask:
    """SEQUENCE_TASKS[name](key, n, **kwargs), or InputError naming the tasks.

    Args:
      name: "sort" or "add" (SEQUENCE_TASKS).
      key: PRNG key the task draws from.
      n: the number of sequences.
      **kwargs: the task's options: length= for sort, digits= for add.

    Returns:
      The SequenceTask.

    Raises:
      InputError: for an unknown name, or as the task's own function.
    """
    if name not in SEQUENCE_TASKS:
        raise InputError(f"unknown sequence task {name!r}; expected one of {', '.join(SEQUENCE_TASKS)}")
    return SEQUENCE_TASKS[name](key, n, **kwargs)


def split_task(task: SequenceTask, n_test: int) -> Tuple[SequenceTask, SequenceTask]:
    """(train, test): the last n_test distinct prompts for testing, every copy of them out of train.

    Drawn prompts can repeat (10^8 digit strings for sort, 10^6 pairs for add); a test
    prompt also seen in training would measure memory, not what was learned.

    Args:
      task: a SequenceTask.
      n_test: the number of distinct test prompts, a positive int.

    Returns:
      (train, test) SequenceTasks that share no prompt.

    Raises:
      InputError: if the task has no more than n_test distinct prompts.
    """
    n_test = check_positive_int("split_task: n_test", n_test)
    prompts = task.prompts
    _, first = np.unique(prompts, axis=0, return_index=True)
    distinct = np.sort(first)
    if len(distinct) <= n_test:
        raise InputError(f"split_task: {len(distinct)} distinct prompts, expected more than n_test = {n_test}")
    test_rows = distinct[-n_test:]
    test_set = {p.tobytes() for p in prompts[test_rows]}
    train_rows = np.array([i for i in range(task.n) if prompts[i].tobytes() not in test_set])
    return task.take(train_rows), task.take(test_rows)


def answer_targets(task: SequenceTask, dtype: DTypeLike = np.float32) -> np.ndarray:
    """(n, T, vocab) one-hot targets on the answer positions, zero rows on the prompt's.

    fnn's softmax cross-entropy leaves out the terms with target 0, so the prompt's
    positions add nothing to the loss or its gradient: the model is trained on the answers.

    Args:
      task: a SequenceTask.
      dtype: the targets' floating-point dtype.

    Returns:
      A numpy array (n, T, vocab).
    """
    onehot = np.eye(task.vocab, dtype=dtype)[task.y]
    return onehot * task.mask[..., None].astype(dtype)
