"""Tasks: data generated here (nothing downloaded), each with the structure and loss it needs and the score
a user reads.

A task makes batches: `batch(rng, B)` -> (x (T, B, X), y, mask or None), reproducible from the generator's
seed. `score(pred, y, mask)` is the number its results are stated in (test MSE, accuracy). `training` holds
the task's own settings (steps, lr, hidden, batch, clip, attention) for a run that does not give them: the
budget with which the plain `gategraph train CELL --task NAME` reaches the result the README states.

Imports: numpy, gategraph.errors.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field

import numpy as np

from gategraph.errors import UsageError


@dataclass
class Task:
    name: str
    doc: str
    input_size: int
    output_size: int
    structure: str
    loss: str
    metric: str  # the metrics column its score goes in
    training: dict = field(default_factory=dict, kw_only=True)  # its own defaults for train's settings

    def batch(self, rng: np.random.Generator, B: int):
        raise NotImplementedError

    def score(self, pred, y, mask=None) -> float:
        if self.loss == "mse":
            return float(((pred - y) ** 2).mean())
        hit = (pred.argmax(axis=-1) == y).astype(float)
        return float(hit.mean() if mask is None else (hit * mask).sum() / mask.sum())


@dataclass
class Adding(Task):
    """The adding problem (Hochreiter & Schmidhuber 1997; Le, Jaitly & Hinton 2015): each step carries a
    number in [0, 1) and a marker; two steps are marked, one in each half; the target is the sum of the two
    marked numbers. Always answering 1 scores an MSE of 1/6 ≈ 0.167."""

    T: int = 100

    def batch(self, rng, B):
        x = np.zeros((self.T, B, 2))
        x[:, :, 0] = rng.uniform(0, 1, (self.T, B))
        half = self.T // 2
        first, second = rng.integers(0, half, B), rng.integers(half, self.T, B)
        x[first, np.arange(B), 1] = 1
        x[second, np.arange(B), 1] = 1
        y = (x[first, np.arange(B), 0] + x[second, np.arange(B), 0])[:, None]
        return x, y, None


@dataclass
class Future(Task):
    """For each position, which symbol comes `ahead` steps later (the last `ahead` positions are masked).
    The answer lies in the future: a model that reads only the past is at chance (1/K); a bidirectional
    one can read it off."""

    T: int = 20
    K: int = 4
    ahead: int = 2

    def batch(self, rng, B):
        s = rng.integers(0, self.K, (self.T, B))
        x = np.eye(self.K)[s]
        y = np.zeros((self.T, B), dtype=np.int64)
        y[: self.T - self.ahead] = s[self.ahead:]
        mask = np.ones((self.T, B))
        mask[self.T - self.ahead:] = 0
        return x, y, mask


TASKS = {
    "adding": lambda: Adding("adding", "the adding problem, T = 100: sum the two marked numbers (MSE; baseline 0.167)",
                             2, 1, "many-to-one", "mse", "test_mse", training=dict(steps=3000, lr=0.003)),
    "future": lambda: Future("future", "name the symbol two steps ahead: needs the future (accuracy; chance 0.25)",
                             4, 4, "many-to-many", "xent", "test_accuracy", training=dict(steps=300, lr=0.003)),
}


def get_task(name: str, **options) -> Task:
    if name not in TASKS:
        raise UsageError(f"unknown task {name!r}; the tasks: {', '.join(TASKS)}")
    task = TASKS[name]()
    for k, v in options.items():
        if v is not None:
            setattr(task, k, v)
    return task


# --- sequence to sequence: token sequences in, token sequences out ----------------------------------------------

PAD, START, END = "·", "<s>", "</s>"


@dataclass
class Seq2SeqTask(Task):
    """A task whose inputs and outputs are strings: `pairs(rng, n)` makes (source, target) strings; batches
    are token ids, the source padded with PAD on the left, the target ended with END. Scored by exact match of the
    greedy decoding."""

    source_chars: str = ""
    target_chars: str = ""
    source_length: int = 0  # sources are padded to at least this: a model reads inputs as long as in training

    def __post_init__(self):
        self.source_vocab = ([PAD] + list(self.source_chars)) if self.source_chars else None
        self.target_vocab = [START, END] + list(self.target_chars)
        self.start, self.end = 0, 1

    def pairs(self, rng, n: int, test: bool = False) -> list[tuple[str, str]]:
        raise NotImplementedError

    def encode(self, pairs) -> tuple:
        tgt_len = max(len(t) for _, t in pairs) + 1
        tgt = np.full((tgt_len, len(pairs)), self.end, dtype=np.int64)
        _place(tgt, [t for _, t in pairs], self.target_vocab, "target", left=False)
        if self.source_vocab is None:
            return None, tgt
        src_len = max(max(len(s) for s, _ in pairs), self.source_length)
        src = np.zeros((src_len, len(pairs)), dtype=np.int64)  # padded on the left: the encoder ends on the text
        _place(src, [s for s, _ in pairs], self.source_vocab, "source", left=True)
        return src, tgt

    def batch(self, rng, B, test: bool = False):
        src, tgt = self.encode(self.pairs(rng, B, test))
        return src, tgt, None

    def decode(self, tokens) -> str:
        out = []
        for k in tokens:
            if k == self.end:
                break
            out.append(self.target_vocab[k])
        return "".join(out)

    def score(self, tokens, tgt, mask=None) -> float:
        """The share of sequences decoded exactly, up to END: a column is exact when its first END (or its end)
        comes at the same step as the target's and every token before it is the target's."""
        steps = max(len(tokens), len(tgt))  # ENDs after the shorter one: it decodes as before
        tokens, tgt = (np.pad(a, ((0, steps - len(a)), (0, 0)), constant_values=self.end) for a in (tokens, tgt))
        ends = _first(tgt, self.end)
        same = ((tokens == tgt) | (np.arange(steps)[:, None] >= ends)).all(axis=0)
        return float(np.mean(same & (_first(tokens, self.end) == ends)))


def _place(out: np.ndarray, texts: list[str], vocab: list[str], what: str, left: bool) -> None:
    """Write each text's token ids into a column of `out` (L, B): from the top, or ending at the bottom
    (`left`: padded on the left). A character outside the vocabulary is a one-line UsageError."""
    table = _table(tuple(vocab))
    lengths = np.array([len(t) for t in texts])
    codes = np.frombuffer("".join(texts).encode("utf-32-le"), np.uint32)
    ids = table[np.minimum(codes, len(table) - 1)]
    if (ids < 0).any():
        bad = sorted({c for t in texts for c in t if c not in vocab})
        raise UsageError(f"the {what} holds {', '.join(map(repr, bad))}, which the task's vocabulary has not")
    at = np.arange(out.shape[0])
    rows = at >= out.shape[0] - lengths[:, None] if left else at < lengths[:, None]  # (B, L): where the text goes
    out.T[rows] = ids  # (B, L) in row order: the texts one after another, as joined


@functools.cache
def _table(vocab: tuple) -> np.ndarray:
    """Token id by code point for a vocabulary's one-character tokens (-1: none; the last entry too)."""
    chars = [c for c in vocab if len(c) == 1]
    table = np.full(max(map(ord, chars)) + 2, -1, np.int64)
    for c in chars:
        table[ord(c)] = vocab.index(c)
    return table


def _first(tokens: np.ndarray, token: int) -> np.ndarray:
    """For each column of tokens (T, B), the step of its first `token` (T if it has none)."""
    hit = tokens == token
    return np.where(hit.any(axis=0), hit.argmax(axis=0), len(tokens))


MONTHS = ["january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
          "november", "december"]
DAYS = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]


@dataclass
class Dates(Seq2SeqTask):
    """Written dates to ISO 8601: "26 november 2026", "november 26, 2026" or "26 nov 2026" -> "2026-11-26".
    Dates whose day + month + year is a multiple of 7 are held out: the test set has only those."""

    def pairs(self, rng, n, test=False):
        out = []
        while len(out) < n:
            y, m = int(rng.integers(1950, 2050)), int(rng.integers(1, 13))
            d = int(rng.integers(1, DAYS[m - 1] + 1))
            if ((d + m + y) % 7 == 0) != test:
                continue
            name = MONTHS[m - 1]
            form = int(rng.integers(3))
            source = (f"{d} {name} {y}", f"{name} {d}, {y}", f"{d} {name[:3]} {y}")[form]
            out.append((source, f"{y:04d}-{m:02d}-{d:02d}"))
        return out

    @staticmethod
    def copies(source: str) -> list[int | None]:
        """For each character of the ISO date written from `source`, the index of the source character it
        copies (None for what is not copied: the dashes, the month, a day's leading zero):
        copies("3 may 1999") == [6, 7, 8, 9, None, None, None, None, None, 0]."""
        runs = [m.span() for m in re.finditer(r"\d+", source)]
        year = next(((a, b) for a, b in runs if b - a == 4), None)
        day = next(((a, b) for a, b in runs if b - a in (1, 2)), None)
        if year is None or day is None:
            raise UsageError(f"{source!r} is not a date the dates task writes (a day and a four-digit year)")
        days = [None] * (2 - (day[1] - day[0])) + list(range(*day))
        return [*range(*year), None, None, None, None, *days]


@dataclass
class Reverse(Seq2SeqTask):
    """Digit strings, written backwards: "30718" -> "81703"."""

    length: int = 8

    def pairs(self, rng, n, test=False):
        seqs = ["".join(map(str, rng.integers(0, 10, self.length))) for _ in range(n)]
        return [(s, s[::-1]) for s in seqs]


WHEELS = "the wheels on the bus go round and round"


@dataclass
class Wheels(Seq2SeqTask):
    """Next-character prediction on one line of the lecture's text: the decoder alone (a language model)
    learns to write it from <s> to </s>."""

    text: str = WHEELS

    def pairs(self, rng, n, test=False):
        return [("", self.text)] * n


TASKS.update({
    "reverse": lambda: Reverse("reverse", "write a string of 8 digits backwards (exact match)", 0, 0, "seq2seq", "xent",
                               "test_exact_match", "0123456789", "0123456789"),
    "dates": lambda: Dates("dates", "normalise written dates: '26 november 2026' -> '2026-11-26' (exact match)",
                           0, 0, "seq2seq", "xent", "test_exact_match", "0123456789abcdefghijklmnopqrstuvwxyz ,",
                           "0123456789-", len("september 30, 2049"),
                           training=dict(steps=1500, lr=0.003, attention="general")),
    "wheels": lambda: Wheels("wheels", "write 'the wheels on the bus go round and round' (a language model)",
                             0, 0, "seq2seq", "xent", "test_exact_match", "", "".join(sorted(set(WHEELS)))),
})


# --- many to one on words ------------------------------------------------------------------------------------

SUBJECTS = ["the film", "the movie", "the plot", "the acting", "the music", "the ending", "this book", "the story"]
VERBS = ["was", "is", "felt", "seemed"]
GOOD = ["good", "great", "wonderful", "funny", "moving", "clever", "beautiful", "fresh"]
BAD = ["bad", "awful", "boring", "dull", "silly", "weak", "tedious", "flat"]
INTENSIFIERS = ["very", "really", "quite", "rather"]


@dataclass
class Sentiment(Task):
    """Short reviews written here from a small grammar ("the plot was not very clever"): positive or
    negative. A "not" flips the word after it, so the label depends on the order of the words, and the
    deciding word may be followed by others ("..., but the music was great")."""

    T: int = 14

    def __post_init__(self):
        words = {w for phrase in SUBJECTS for w in phrase.split()} | set(VERBS + GOOD + BAD + INTENSIFIERS)
        self.vocab = ["·"] + sorted(words | {"not", "but", "and"})
        self.input_size = len(self.vocab)

    def sentence(self, rng) -> tuple[str, int]:
        def clause():
            good = bool(rng.integers(2))
            neg = bool(rng.integers(2))
            words = [SUBJECTS[rng.integers(len(SUBJECTS))], VERBS[rng.integers(len(VERBS))]]
            if neg:
                words.append("not")
            if rng.integers(2):
                words.append(INTENSIFIERS[rng.integers(len(INTENSIFIERS))])
            words.append((GOOD if good else BAD)[rng.integers(len(GOOD))])
            return " ".join(words), good != neg

        text, label = clause()
        if rng.integers(2):  # "a but b": b decides; "a and b" with the same feeling
            second, label2 = clause()
            if rng.integers(2):
                text, label = f"{text} but {second}", label2
            elif label2 == label:
                text = f"{text} and {second}"
        return text, int(label)

    def encode(self, texts: list[str]) -> np.ndarray:
        x = np.zeros((self.T, len(texts), self.input_size))
        for b, text in enumerate(texts):
            words = text.split()[: self.T]
            ids = [self.vocab.index(w) for w in words] + [0] * (self.T - len(words))
            x[np.arange(self.T), b, ids] = 1
        return x

    def batch(self, rng, B):
        pairs = [self.sentence(rng) for _ in range(B)]
        return self.encode([t for t, _ in pairs]), np.array([label for _, label in pairs]), None


TASKS["sentiment"] = lambda: Sentiment("sentiment", "is a short review positive? 'not' and 'but' decide (accuracy)",
                                       0, 2, "many-to-one", "xent", "test_accuracy")
