"""Coding integer symbols with the probability tables and constriction's ANS stack coder.

One substream holds a sequence of groups. A group is a set of symbols whose table indices the
decoder knows before reading them; it is coded table by table (ascending k, raster order within
each table), then the escaped values of the group (bitstream_spec.md, 5.3).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import constriction
import numpy as np

from nvcodec.entropy.tables import PRECISION, binary_counts, uniform_counts
from nvcodec.errors import BitstreamError, NvcError

_AnsCoder = constriction.stream.stack.AnsCoder
_Categorical = constriction.stream.model.Categorical

EXP_BITS = 32  # escape exponents use a uniform table of 32; encoders use at most 30 (5.3)
CHUNK_BITS = 16
MAGNITUDES = 2048  # magnitude_bits looks values up to here


def _model(counts: np.ndarray):
    return _Categorical(np.asarray(counts, dtype=np.float64), perfect=False)


@dataclass
class ProbabilityTables:
    """The packed tables (radius per index, counts padded with -1) and their coder models."""

    radius: np.ndarray
    counts: np.ndarray
    _models: dict = field(default_factory=dict, repr=False)
    _magnitude_bits: np.ndarray | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.radius)

    def model(self, k: int):
        if k not in self._models:
            row = self.counts[k]
            self._models[k] = _model(row[row >= 0])
        return self._models[k]

    def code_lengths(self, k: int) -> np.ndarray:
        """Bits of each symbol of table k: values -R..R, then the escape symbol."""
        row = self.counts[k]
        return PRECISION - np.log2(row[row >= 0] + 1.0)

    def bits(self, k: int, values: np.ndarray) -> np.ndarray:
        """Bits of each integer value under table k, escapes included (Exp-Golomb, 5.3)."""
        r = int(self.radius[k])
        lengths = self.code_lengths(k)
        mag = np.abs(values)
        escape = lengths[-1] + np.log2(EXP_BITS) + 1 + np.floor(np.log2(np.maximum(mag - r, 1)))
        return np.where(mag <= r, lengths[np.clip(values + r, 0, 2 * r)], escape)

    def magnitude_bits(self, k: np.ndarray, values: np.ndarray) -> np.ndarray:
        """Bits of values under tables k (broadcast), from one lookup of |value| (the positive
        side; beyond MAGNITUDES as at MAGNITUDES - 1): an estimate for the encoder's decisions."""
        if self._magnitude_bits is None:
            self._magnitude_bits = np.stack([self.bits(t, np.arange(MAGNITUDES)) for t in range(len(self))])
        return self._magnitude_bits[k, np.minimum(np.abs(values), MAGNITUDES - 1)]

    def uniform(self, n: int):
        key = ("uniform", n)
        if key not in self._models:
            self._models[key] = _model(uniform_counts(n))
        return self._models[key]

    def binary(self, p: int):
        """The binary table whose symbol 1 has probability p / 256 (5.1.4)."""
        key = ("binary", p)
        if key not in self._models:
            self._models[key] = _model(binary_counts(p))
        return self._models[key]


def _escape_layout(nbits: np.ndarray) -> list[tuple[int, int, np.ndarray]]:
    """(chunk, width, positions) triples in coding order for Exp-Golomb mantissas of nbits bits."""
    layout = []
    for chunk in range(-(-(EXP_BITS - 1) // CHUNK_BITS)):
        width = np.clip(nbits - chunk * CHUNK_BITS, 0, CHUNK_BITS)
        for w in range(1, CHUNK_BITS + 1):
            positions = np.flatnonzero(width == w)
            if positions.size:
                layout.append((chunk, w, positions))
    return layout


class SymbolEncoder:
    """Collects groups of symbols in decoding order; finish() returns the substream bytes."""

    def __init__(self, tables: ProbabilityTables) -> None:
        self.tables = tables
        self._chunks: list[tuple[np.ndarray, object]] = []

    def _put(self, symbols: np.ndarray, model) -> None:
        if symbols.size:
            self._chunks.append((symbols.astype(np.int32), model))

    def add(self, values: np.ndarray, indices: np.ndarray) -> None:
        """One group: integer values with their table indices (same shape, raster order)."""
        values = np.asarray(values, dtype=np.int64).ravel()
        indices = np.asarray(indices, dtype=np.int64).ravel()
        radius = self.tables.radius[indices]
        escaped = np.abs(values) > radius
        for k in np.unique(indices):
            sel = indices == k
            r = int(self.tables.radius[k])
            alphabet = np.where(escaped[sel], 2 * r + 1, values[sel] + r)
            self._put(alphabet, self.tables.model(int(k)))
        if escaped.any():
            self._add_escapes(values[escaped], radius[escaped])

    def add_flags(self, flags: np.ndarray, probabilities: np.ndarray) -> None:
        """One group of binary symbols, each with its probability of 1 in 1/256 (same shape):
        coded probability by probability (ascending), raster order within each."""
        flags = np.asarray(flags, dtype=np.int64).ravel()
        probabilities = np.asarray(probabilities, dtype=np.int64).ravel()
        for p in np.unique(probabilities):
            self._put(flags[probabilities == p], self.tables.binary(int(p)))

    def _add_escapes(self, values: np.ndarray, radius: np.ndarray) -> None:
        mantissa = np.abs(values) - radius  # >= 1
        if mantissa.max() >= 1 << (EXP_BITS - 1):
            raise NvcError(f"symbol value {int(np.abs(values).max())} too large to code")
        nbits = np.floor(np.log2(mantissa)).astype(np.int64)
        nbits += (mantissa >> (nbits + 1)) > 0  # guard against log2 rounding
        nbits -= (mantissa >> nbits) == 0
        self._put(nbits, self.tables.uniform(EXP_BITS))
        rest = mantissa - (np.int64(1) << nbits)
        for chunk, w, pos in _escape_layout(nbits):
            self._put((rest[pos] >> (chunk * CHUNK_BITS)) & ((1 << w) - 1), self.tables.uniform(1 << w))
        self._put((values < 0).astype(np.int64), self.tables.uniform(2))

    def finish(self, before: bytes = b"") -> bytes:
        """The substream of the groups added, followed (in decoding order) by the symbols of the
        substream `before`, whose coding is left as it is."""
        coder = _AnsCoder(_words(before)) if before else _AnsCoder()
        for symbols, model in reversed(self._chunks):
            coder.encode_reverse(symbols, model)
        return coder.get_compressed().astype("<u4").tobytes()


def _words(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype="<u4").astype(np.uint32)


class SymbolDecoder:
    """Reads groups back from a substream, given the table indices of each group."""

    def __init__(self, tables: ProbabilityTables, data: bytes) -> None:
        if len(data) % 4:
            raise BitstreamError("substream length is not a multiple of 4 bytes")
        self.tables = tables
        try:
            self._coder = _AnsCoder(_words(data))
        except ValueError:  # constriction refuses a stream whose last word is zero
            raise BitstreamError("substream ends with a zero word (not a valid ANS stream)") from None

    def _get(self, model, count: int) -> np.ndarray:
        if count == 0:
            return np.zeros(0, dtype=np.int64)
        try:
            return np.asarray(self._coder.decode(model, count), dtype=np.int64)
        except Exception as exc:  # constriction reports exhausted or invalid data this way
            raise BitstreamError(f"entropy decoding failed: {exc}") from None

    def read(self, indices: np.ndarray) -> np.ndarray:
        """Decode one group; returns values in the shape of `indices`."""
        shape = np.shape(indices)
        indices = np.asarray(indices, dtype=np.int64).ravel()
        values = np.zeros(indices.size, dtype=np.int64)
        escaped = np.zeros(indices.size, dtype=bool)
        for k in np.unique(indices):
            sel = np.flatnonzero(indices == k)
            r = int(self.tables.radius[k])
            alphabet = self._get(self.tables.model(int(k)), sel.size)
            values[sel] = alphabet - r
            escaped[sel] = alphabet == 2 * r + 1
        if escaped.any():
            pos = np.flatnonzero(escaped)
            values[pos] = self._read_escapes(self.tables.radius[indices[pos]].astype(np.int64))
        return values.reshape(shape)

    def read_flags(self, probabilities: np.ndarray) -> np.ndarray:
        """Decode one group of binary symbols (add_flags); returns booleans shaped like
        `probabilities`."""
        shape = np.shape(probabilities)
        probabilities = np.asarray(probabilities, dtype=np.int64).ravel()
        flags = np.zeros(probabilities.size, dtype=bool)
        for p in np.unique(probabilities):
            sel = np.flatnonzero(probabilities == p)
            flags[sel] = self._get(self.tables.binary(int(p)), sel.size) == 1
        return flags.reshape(shape)

    def _read_escapes(self, radius: np.ndarray) -> np.ndarray:
        nbits = self._get(self.tables.uniform(EXP_BITS), radius.size)
        if nbits.size and nbits.max() >= EXP_BITS - 1:
            raise BitstreamError(f"escape exponent {int(nbits.max())} above the limit {EXP_BITS - 2}")
        rest = np.zeros(radius.size, dtype=np.int64)
        for chunk, w, pos in _escape_layout(nbits):
            rest[pos] |= self._get(self.tables.uniform(1 << w), pos.size) << (chunk * CHUNK_BITS)
        negative = self._get(self.tables.uniform(2), radius.size).astype(bool)
        magnitude = radius + (np.int64(1) << nbits) + rest
        return np.where(negative, -magnitude, magnitude)

    def rest(self) -> bytes:
        """The symbols not read yet, as a substream of their own (SymbolEncoder.finish's `before`)."""
        return self._coder.get_compressed().astype("<u4").tobytes()

    def finish(self) -> None:
        """Refuse a substream with data left over after its last symbol."""
        if not self._coder.is_empty():
            raise BitstreamError("substream has data left after its last symbol")
