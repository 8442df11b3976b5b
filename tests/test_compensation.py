"""Motion compensation's luma as the encoder's search reads it: the pre-filtered phases give the
decoder's integers for every vector, block size, filter set and picture border."""

import pytest
import torch

from nvcodec.models import compensation
from nvcodec.models.compensation import (
    HEVC_FILTERS,
    SIX_TAP_FILTERS,
    InterpolatedFrame,
    LumaPhases,
    predict_plane,
)
from nvcodec.models.motion import MAX_VECTOR


def _plane(h: int, w: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (h, w), generator=g, dtype=torch.int32)


def _picture(blocks: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """The (h, w) int32 picture of (Hb, Wb, S, S) blocks."""
    hb, wb, size = blocks.shape[:3]
    return blocks.permute(0, 2, 1, 3).reshape(hb * size, wb * size)[:h, :w].to(torch.int32)


def _read(phases: LumaPhases, vectors: torch.Tensor, size: int) -> torch.Tensor:
    """What the search reads of the picture `phases` filtered."""
    h, w = phases.planes.shape[1] - 2 * phases.margin, phases.planes.shape[2] - 2 * phases.margin
    return _picture(phases.blocks(vectors, size), h, w)


def _vectors(h: int, w: int, size: int, reach: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    grid = (-(-h // size), -(-w // size), 2)
    return torch.randint(-reach, reach + 1, grid, generator=g, dtype=torch.int64)


@pytest.mark.parametrize("filters", [HEVC_FILTERS, SIX_TAP_FILTERS], ids=lambda f: f.name)
@pytest.mark.parametrize("size", [8, 16, 32])
@pytest.mark.parametrize("reach", [3, 90, MAX_VECTOR])  # quarter pels: near, across, far outside
def test_phases_read_what_the_decoder_filters(filters, size, reach):
    h, w = 72, 100  # neither a multiple of the block
    plane = _plane(h, w, seed=size)
    bank = torch.tensor(filters.luma, dtype=torch.int32)
    phases = LumaPhases(plane, bank)
    for seed in range(3):
        vectors = _vectors(h, w, size, reach, seed)
        assert torch.equal(_read(phases, vectors, size), predict_plane(plane, vectors, size, bank))


@pytest.mark.parametrize("filters", [HEVC_FILTERS, SIX_TAP_FILTERS], ids=lambda f: f.name)
def test_phases_read_10_bit_levels_as_the_decoder_filters_them(filters):
    """Version 2.14's references: quarter levels, each pass's sum shifted two bits further."""
    g = torch.Generator().manual_seed(11)
    plane = torch.randint(0, 1021, (40, 56), generator=g, dtype=torch.int32)
    bank = torch.tensor(filters.luma, dtype=torch.int32)
    phases = LumaPhases(plane, bank, extra_bits=2)
    for seed in range(3):
        vectors = _vectors(40, 56, 16, 90, seed)
        expected = predict_plane(plane, vectors, 16, bank, extra_bits=2)
        assert torch.equal(_read(phases, vectors, 16), expected)
        assert expected.min() >= 0 and expected.max() <= 255 * 64


def test_whole_pixel_vectors_read_the_levels_at_64_times():
    plane = _plane(32, 48, seed=5)
    bank = torch.tensor(HEVC_FILTERS.luma, dtype=torch.int32)
    phases = LumaPhases(plane, bank)
    assert torch.equal(_read(phases, torch.zeros(2, 3, 2, dtype=torch.int64), 16), plane * 64)
    vectors = 4 * _vectors(32, 48, 16, 40, seed=6)  # whole pixels: predict_plane's direct read
    assert torch.equal(_read(phases, vectors, 16), predict_plane(plane, vectors, 16, bank))


def test_a_plane_smaller_than_a_block_reads_its_replicated_border():
    plane = _plane(6, 10, seed=7)
    bank = torch.tensor(SIX_TAP_FILTERS.luma, dtype=torch.int32)
    vectors = _vectors(6, 10, 16, 30, seed=8)
    assert torch.equal(_read(LumaPhases(plane, bank), vectors, 16), predict_plane(plane, vectors, 16, bank))


def _frame(seed: int) -> InterpolatedFrame:
    g = torch.Generator().manual_seed(seed)
    return InterpolatedFrame(torch.randint(0, 256, (1, 6, 24, 40), generator=g).float() / 255)


def test_the_search_reads_each_filter_set_through_its_own_phases():
    ref = _frame(1)
    six = ref.through(SIX_TAP_FILTERS)
    vectors = _vectors(48, 80, 16, 40, seed=2)
    for frame in (ref, six):
        expected = predict_plane(frame.luma, vectors, 16, frame.luma_filters)
        assert torch.equal(_picture(frame.luma_blocks(vectors, 16), 48, 80), expected)
    assert set(ref._phases) == {HEVC_FILTERS, SIX_TAP_FILTERS}  # shared by the copies


def test_pictures_beyond_the_limit_filter_each_field(monkeypatch):
    monkeypatch.setattr(compensation, "PHASE_PIXELS", 100)
    ref = _frame(3)
    vectors = _vectors(48, 80, 16, 40, seed=4)
    expected = predict_plane(ref.luma, vectors, 16, ref.luma_filters)
    assert torch.equal(_picture(ref.luma_blocks(vectors, 16), 48, 80), expected)
    assert not ref._phases
