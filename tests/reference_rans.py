"""Pure-Python reference decoder for the entropy-coded substreams.

Written from the normative description in ``bitstream_spec.md, 5.2`` ("Entropy
coder"); it depends on nothing outside the standard library. It exists to
prove that the specification is complete: ``tests/test_reference_rans.py``
encodes with constriction's ``stack.AnsCoder`` and decodes with this class.

Parameters (fixed by the format):

* words are unsigned 32-bit integers (stored little-endian in the file);
* the coder state is an unsigned integer below 2**64;
* probabilities have 24 fractional bits: a table of ``n`` counts
  ``c_0 .. c_{n-1}`` (each >= 0, ``sum(c) == 2**24 - n``) gives symbol ``i``
  the probability ``(c_i + 1) / 2**24`` and the slot range
  ``[C_i, C_i + c_i + 1)`` with ``C_i = sum_{j<i} (c_j + 1)``.
"""

from __future__ import annotations

from bisect import bisect_right
from itertools import accumulate

PRECISION = 24
WORD_BITS = 32
WORD_MASK = (1 << WORD_BITS) - 1
QUANTILE_MASK = (1 << PRECISION) - 1
# While words remain unread, the state is kept at or above this bound.
STATE_LOWER_BOUND = 1 << WORD_BITS


class ReferenceRansError(ValueError):
    """The substream or a probability table violates the specification."""


def cumulative_starts(counts: list[int]) -> list[int]:
    """Validate a count table and return ``[C_0, C_1, ..., C_n]`` (``C_n == 2**24``)."""
    n = len(counts)
    if n < 2:
        raise ReferenceRansError("a table needs at least two symbols")
    starts = [0]
    starts.extend(accumulate(c + 1 for c in counts))
    if any(c < 0 for c in counts):
        raise ReferenceRansError("negative count")
    if starts[-1] != 1 << PRECISION:
        raise ReferenceRansError(
            f"counts must sum to 2**{PRECISION} - n = {(1 << PRECISION) - n}, got {starts[-1] - n}"
        )
    return starts


class ReferenceAnsDecoder:
    """Decodes one substream, given as the list of its u32 words in file order."""

    def __init__(self, words: list[int]) -> None:
        self._words = [int(w) for w in words]
        if any(w < 0 or w > WORD_MASK for w in self._words):
            raise ReferenceRansError("word out of u32 range")
        # Words are consumed from the END of the list towards its start.
        self._unread = len(self._words)
        self._state = 0
        if self._unread == 0:
            return  # empty substream: state 0
        top = self._pop_word()
        if top == 0:
            raise ReferenceRansError("a non-empty substream never ends in a zero word")
        self._state = top
        if self._unread > 0:
            # top != 0, so one more word lifts the state to >= 2**32.
            self._state = (self._state << WORD_BITS) | self._pop_word()

    def _pop_word(self) -> int:
        self._unread -= 1
        return self._words[self._unread]

    def decode(self, counts: list[int]) -> int:
        starts = cumulative_starts(counts)
        quantile = self._state & QUANTILE_MASK
        # Largest i with starts[i] <= quantile (starts[0] == 0 <= quantile < 2**24).
        symbol = bisect_right(starts, quantile) - 1
        left = starts[symbol]
        probability = starts[symbol + 1] - left  # == counts[symbol] + 1
        self._state = (self._state >> PRECISION) * probability + (quantile - left)
        if self._state < STATE_LOWER_BOUND and self._unread > 0:
            self._state = (self._state << WORD_BITS) | self._pop_word()
        return symbol

    def is_empty(self) -> bool:
        """True iff the substream is fully consumed (state 0; then no words remain)."""
        return self._state == 0

    @property
    def unread_words(self) -> int:
        return self._unread

    @property
    def state(self) -> int:
        return self._state


def reference_encode(symbol_table_pairs: list[tuple[int, list[int]]]) -> list[int]:
    """Reference encoder: returns the words that make ``ReferenceAnsDecoder``
    yield ``symbol_table_pairs`` in the given (decode) order."""
    words: list[int] = []
    state = 0
    for symbol, counts in reversed(symbol_table_pairs):
        starts = cumulative_starts(counts)
        left = starts[symbol]
        probability = starts[symbol + 1] - left
        if (state >> (64 - PRECISION)) >= probability:
            words.append(state & WORD_MASK)
            state >>= WORD_BITS
        state = ((state // probability) << PRECISION) | (left + state % probability)
    while state:
        words.append(state & WORD_MASK)
        state >>= WORD_BITS
    return words
