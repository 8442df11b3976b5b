"""BD-rate and BD-PSNR against reference values and curves whose answer is known by construction."""

import math

import numpy as np
import pytest

from nvcodec.bdrate import bd_psnr, bd_rate, between_points

# Test data published with the `bjontegaard` package (FAU-LMS, README: x265 presets). The expected
# values were computed with bjontegaard 1.3.0 (scipy 1.17.1), whose PCHIP its authors report equal
# to the JCT-VC/JVET Excel sheet to 10 decimals.
RATE_A = [9487.76, 4593.60, 2486.44, 1358.24]
PSNR_A = [40.037, 38.615, 36.845, 34.851]
RATE_T = [9787.80, 4469.00, 2451.52, 1356.24]
PSNR_T = [40.121, 38.651, 36.970, 34.987]


def test_reference_values():
    assert bd_rate(RATE_A, PSNR_A, RATE_T, PSNR_T, "pchip") == pytest.approx(-4.417485350589045, abs=1e-9)
    assert bd_psnr(RATE_A, PSNR_A, RATE_T, PSNR_T, "pchip") == pytest.approx(0.11969278542479489, abs=1e-9)
    assert bd_rate(RATE_A, PSNR_A, RATE_T, PSNR_T, "cubic") == pytest.approx(-4.420462706125383, abs=1e-9)
    assert bd_psnr(RATE_A, PSNR_A, RATE_T, PSNR_T, "cubic") == pytest.approx(0.12040941911451103, abs=1e-9)


@pytest.mark.parametrize("method", ["pchip", "cubic"])
@pytest.mark.parametrize("saving", [-0.3, -0.05, 0.0, 0.12, 1.0])
def test_scaled_rates_give_the_scale(method, saving):
    """A curve whose every rate is (1 + s) times the anchor's, at the same PSNRs: BD-rate = s."""
    psnr = np.array([30.0, 33.0, 35.5, 38.0, 41.0])
    rate = 100 * np.exp(0.23 * psnr + 0.002 * (psnr - 35) ** 3)  # curved, monotonic
    assert bd_rate(rate, psnr, rate * (1 + saving), psnr, method) == pytest.approx(100 * saving, abs=1e-9)


def test_shifted_quality_on_a_log_linear_curve():
    """log R = a + b P: a test curve shifted by +dP dB saves exp(-b dP) - 1 exactly (pchip is exact
    on straight lines), and its BD-PSNR is dP; the test's points need not match the anchor's."""
    b, shift = 0.25, 0.8
    pa = np.array([28.0, 31.0, 34.0, 37.0, 40.0])
    pt = np.array([29.5, 32.5, 35.0, 38.5, 41.0])
    ra, rt = np.exp(1 + b * pa), np.exp(1 + b * (pt - shift))
    assert bd_rate(ra, pa, rt, pt) == pytest.approx(100 * (math.exp(-b * shift) - 1), abs=1e-9)
    assert bd_psnr(ra, pa, rt, pt) == pytest.approx(shift, abs=1e-9)


def test_order_of_points_does_not_matter():
    assert bd_rate(RATE_A[::-1], PSNR_A[::-1], RATE_T, PSNR_T) == pytest.approx(
        bd_rate(RATE_A, PSNR_A, RATE_T, PSNR_T)
    )


def test_curves_that_cannot_be_compared():
    with pytest.raises(ValueError, match="overlap"):
        bd_rate([1, 2, 3, 4], [30, 31, 32, 33], [1, 2, 3, 4], [40, 41, 42, 43])
    with pytest.raises(ValueError, match="distinct"):
        bd_rate([1, 2, 3, 4], [30, 30, 32, 33], [1, 2, 3, 4], [30, 31, 32, 33])


def test_between_points_reads_result_dicts_and_says_none_when_incomparable():
    anchor = [{"bits": r, "bpp": r / 10, "psnr_yuv": p} for r, p in zip(RATE_A, PSNR_A)]
    test = [{"bits": r, "bpp": r / 10, "psnr_yuv": p} for r, p in zip(RATE_T, PSNR_T)]
    assert between_points(anchor, test) == pytest.approx(bd_rate(RATE_A, PSNR_A, RATE_T, PSNR_T))
    assert between_points(anchor, test, bd_psnr, rate="bpp") == pytest.approx(
        bd_psnr(RATE_A, PSNR_A, RATE_T, PSNR_T)
    )
    far = [{**p, "psnr_yuv": p["psnr_yuv"] + 100} for p in test]
    assert between_points(anchor, far) is None
