"""Cross-check constriction's ANS coder against the pure-Python reference
decoder written from the specification (bitstream_spec.md, 5.2).

constriction encodes; ``tests/reference_rans.py`` decodes. Symbols, the
"fully consumed" verdict and (for the reference encoder) the exact words
must agree.
"""

from __future__ import annotations

import numpy as np
import pytest

constriction = pytest.importorskip("constriction")

from reference_rans import (  # noqa: E402  (tests/ is on sys.path: no __init__.py)
    PRECISION,
    ReferenceAnsDecoder,
    ReferenceRansError,
    reference_encode,
)

AnsCoder = constriction.stream.stack.AnsCoder
Categorical = constriction.stream.model.Categorical

TOTAL = 1 << PRECISION


# ----------------------------------------------------------------------------- tables


def _fix_sum(counts: np.ndarray, rng: np.random.Generator) -> list[int]:
    """Adjust non-negative integer counts so that they sum to 2**24 - n."""
    n = counts.size
    target = TOTAL - n
    counts = counts.astype(np.int64)
    diff = target - int(counts.sum())
    if diff >= 0:
        counts[int(rng.integers(n))] += diff
    else:
        # Remove the excess from the largest entries.
        for i in np.argsort(-counts):
            take = min(-diff, int(counts[i]))
            counts[i] -= take
            diff += take
            if diff == 0:
                break
    assert int(counts.sum()) == target and counts.min() >= 0
    return [int(x) for x in counts]


def random_table(rng: np.random.Generator, n: int, kind: str) -> list[int]:
    target = TOTAL - n
    if kind == "uniformish":
        w = rng.random(n) + 0.5
    elif kind == "power":  # heavy tail: many near-zero entries
        w = rng.random(n) ** float(rng.uniform(4, 40))
    elif kind == "geometric":
        w = np.exp(-np.arange(n) * float(rng.uniform(0.05, 3.0)))
        rng.shuffle(w)
    elif kind == "spike":  # one symbol takes everything, all others get count 0
        c = np.zeros(n, dtype=np.int64)
        c[int(rng.integers(n))] = target
        return _fix_sum(c, rng)
    elif kind == "spike_edges":  # spike on the first or last symbol
        c = np.zeros(n, dtype=np.int64)
        c[0 if rng.random() < 0.5 else n - 1] = target
        return _fix_sum(c, rng)
    elif kind == "sparse":
        w = np.where(rng.random(n) < 0.05, rng.random(n), 0.0)
        if w.sum() == 0:
            w[0] = 1.0
    else:
        raise AssertionError(kind)
    c = np.floor(w / w.sum() * target)
    return _fix_sum(c, rng)


TABLE_KINDS = ["uniformish", "power", "geometric", "spike", "spike_edges", "sparse"]


def random_symbols(rng: np.random.Generator, counts: list[int], length: int) -> np.ndarray:
    n = len(counts)
    p = (np.asarray(counts, dtype=np.float64) + 1.0) / TOTAL
    from_model = rng.choice(n, size=length, p=p / p.sum())
    uniform = rng.integers(0, n, size=length)  # also exercises improbable symbols
    mix = rng.random(length) < rng.choice([0.0, 0.05, 0.5, 1.0])
    return np.where(mix, uniform, from_model).astype(np.int32)


def random_length(rng: np.random.Generator) -> int:
    return int(rng.choice([0, 1, 2, 3, int(rng.integers(4, 40)), int(rng.integers(40, 600))]))


# ----------------------------------------------------------------------------- streams


def build_stream(rng: np.random.Generator, max_alphabet: int = 2000):
    """Encode several segments with constriction.

    Returns (words, decode_plan) where decode_plan is a list of (symbol, counts) in
    decode order: the segment encoded last is decoded first.
    """
    coder = AnsCoder()
    segments = []
    for _ in range(int(rng.integers(1, 6))):
        n = int(rng.choice([2, 3, int(rng.integers(2, 64)), int(rng.integers(2, max_alphabet + 1))]))
        kind = TABLE_KINDS[int(rng.integers(len(TABLE_KINDS)))]
        length = random_length(rng)
        if rng.random() < 0.6:
            # i.i.d. style: one table for the whole segment.
            counts = random_table(rng, n, kind)
            syms = random_symbols(rng, counts, length)
            coder.encode_reverse(syms, Categorical(np.asarray(counts, dtype=np.float64), perfect=False))
            plan = [(int(s), counts) for s in syms]
        else:
            # batched style: one table per symbol (same alphabet size), 2-D array.
            tables = [
                random_table(rng, n, TABLE_KINDS[int(rng.integers(len(TABLE_KINDS)))])
                for _ in range(min(length, 8) or 1)
            ]
            idx = rng.integers(0, len(tables), size=length)
            syms = np.array([random_symbols(rng, tables[k], 1)[0] for k in idx], dtype=np.int32)
            probs = np.asarray([tables[k] for k in idx], dtype=np.float64).reshape(length, n)
            coder.encode_reverse(syms, Categorical(perfect=False), probs)
            plan = [(int(s), tables[k]) for s, k in zip(syms, idx)]
        segments.append(plan)
    words = coder.get_compressed()
    decode_plan = [item for seg in reversed(segments) for item in seg]
    return words, decode_plan


def _constriction_decode_one(coder, counts):
    return int(coder.decode(Categorical(np.asarray(counts, dtype=np.float64), perfect=False)))


# ----------------------------------------------------------------------------- tests


def test_empty_coder_is_empty_array():
    coder = AnsCoder()
    assert coder.get_compressed().tolist() == []
    ref = ReferenceAnsDecoder([])
    assert ref.is_empty()
    # Decoding past the end is deterministic: state 0 always yields symbol 0.
    assert ref.decode([5, TOTAL - 2 - 5]) == 0 and ref.is_empty()


def test_single_symbol_layouts():
    counts = [100, 200, TOTAL - 3 - 300]
    starts = [0, 101, 302]
    for sym in range(3):
        coder = AnsCoder()
        coder.encode_reverse(
            np.array([sym], dtype=np.int32), Categorical(np.asarray(counts, dtype=np.float64), perfect=False)
        )
        words = coder.get_compressed().tolist()
        # First symbol on an empty coder: state becomes C_sym; symbol 0 leaves it 0.
        assert words == ([] if starts[sym] == 0 else [starts[sym]])
        ref = ReferenceAnsDecoder(words)
        assert ref.decode(counts) == sym and ref.is_empty()


def test_probability_is_count_plus_one():
    # Symbol 1 has count 0, i.e. probability exactly 2**-24: 24 bits per symbol.
    counts = [TOTAL - 2, 0]
    coder = AnsCoder()
    coder.encode_reverse(
        np.ones(1000, dtype=np.int32), Categorical(np.asarray(counts, dtype=np.float64), perfect=False)
    )
    assert coder.num_valid_bits() == 24 * 1000 - 1  # leading 1 bit is not "valid"
    words = coder.get_compressed().tolist()
    assert words == reference_encode([(1, counts)] * 1000)


def test_random_streams_match_constriction():
    rng = np.random.default_rng(20240601)
    for _ in range(120):
        words, plan = build_stream(rng)
        words_list = words.tolist()
        # The reference encoder (spec, encoder side) reproduces constriction's words.
        assert reference_encode(plan) == words_list

        ref = ReferenceAnsDecoder(words_list)
        decoded = [ref.decode(counts) for _, counts in plan]
        assert decoded == [s for s, _ in plan]
        assert ref.is_empty() and ref.unread_words == 0

        # Step-by-step agreement of the emptiness verdict with constriction.
        ref = ReferenceAnsDecoder(words_list)
        dec = AnsCoder(words)
        assert ref.is_empty() == dec.is_empty()
        for sym, counts in plan:
            assert _constriction_decode_one(dec, counts) == ref.decode(counts) == sym
            assert ref.is_empty() == dec.is_empty()
        assert dec.is_empty()


def test_length_zero_and_one_segments():
    rng = np.random.default_rng(7)
    for n in [2, 3, 17, 256, 2000]:
        for kind in TABLE_KINDS:
            counts = random_table(rng, n, kind)
            model = Categorical(np.asarray(counts, dtype=np.float64), perfect=False)
            for length in (0, 1):
                syms = random_symbols(rng, counts, length)
                coder = AnsCoder()
                coder.encode_reverse(syms, model)
                words = coder.get_compressed().tolist()
                assert len(words) <= 1
                ref = ReferenceAnsDecoder(words)
                assert [ref.decode(counts) for _ in range(length)] == syms.tolist()
                assert ref.is_empty()


def test_arbitrary_words_decode_identically():
    """On arbitrary (corrupted) input both decoders still agree exactly."""
    rng = np.random.default_rng(99)
    for _ in range(150):
        length = int(rng.integers(0, 8))
        words = rng.integers(0, 1 << 32, size=length, dtype=np.uint64).astype(np.uint32)
        if length and rng.random() < 0.3:
            words[-1] = int(rng.integers(1, 4))  # small top word: short initial state
        if length and words[-1] == 0:
            words[-1] = 1
        n = int(rng.integers(2, 300))
        counts = random_table(rng, n, TABLE_KINDS[int(rng.integers(len(TABLE_KINDS)))])
        ref = ReferenceAnsDecoder(words.tolist())
        dec = AnsCoder(words)
        for _ in range(int(rng.integers(0, 40))):
            assert _constriction_decode_one(dec, counts) == ref.decode(counts)
            assert ref.is_empty() == dec.is_empty()


def test_trailing_zero_word_rejected():
    with pytest.raises(ValueError):
        AnsCoder(np.array([5, 0], dtype=np.uint32))
    with pytest.raises(ReferenceRansError):
        ReferenceAnsDecoder([5, 0])


def test_fully_consumed_implies_canonical():
    """If decoding ends with the substream fully consumed, re-encoding the decoded
    symbols reproduces the words exactly (so extra/garbage words are detectable)."""
    rng = np.random.default_rng(5)
    hits = 0
    for _ in range(3000):
        words = [int(w) for w in rng.integers(1, 1 << 32, size=int(rng.integers(1, 3)), dtype=np.uint64)]
        if rng.random() < 0.5:
            words[-1] = int(rng.integers(1, 256))
        n = int(rng.integers(2, 300))
        if rng.random() < 0.5:
            # Many tiny slots at the bottom of the range make state 0 reachable.
            counts = [0] * (n - 1) + [TOTAL - n]
        else:
            counts = random_table(rng, n, TABLE_KINDS[int(rng.integers(len(TABLE_KINDS)))])
        ref = ReferenceAnsDecoder(words)
        plan = []
        for _ in range(12):
            plan.append((ref.decode(counts), counts))
            if ref.is_empty():
                hits += 1
                assert reference_encode(plan) == words
                break
    assert hits > 0
    # And a valid stream with one extra word on top (appended) is not fully consumed.
    words, plan = build_stream(np.random.default_rng(11))
    for extra in ([1], [12345], [0xFFFFFFFF]):
        ref = ReferenceAnsDecoder(words.tolist() + extra)
        for _, counts in plan:
            ref.decode(counts)
        assert not ref.is_empty()


def test_flag_groups_decode_with_the_spec_binary_tables():
    """A flag group written by the codec's encoder (5.3.4) reads back with the reference decoder
    and the binary tables of 5.1.4 written out from the spec's formula."""
    from nvcodec.entropy.coder import SymbolEncoder
    from nvcodec.models.config import TINY
    from nvcodec.models.nvc import NvcModel

    rng = np.random.default_rng(11)
    flags = (rng.random(60) < 0.3).astype(int)
    probabilities = rng.choice([24, 72, 112, 144], size=60)
    encoder = SymbolEncoder(NvcModel(TINY).probability_tables())
    encoder.add_flags(flags, probabilities)
    words = np.frombuffer(encoder.finish(), dtype="<u4").tolist()
    ref = ReferenceAnsDecoder(words)
    order = sorted(range(60), key=lambda i: (probabilities[i], i))  # ascending p, then position
    for i in order:
        p = int(probabilities[i])
        assert ref.decode([TOTAL - p * 2**16 - 1, p * 2**16 - 1]) == flags[i]
    assert ref.is_empty()
