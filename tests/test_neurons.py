"""Neurons: the integer LIF, its float twin in quant mode, the surrogate gradient and the mask STE."""

import pytest
import torch

from train.golden import lif_step
from train.neurons import SURROGATE_ALPHA, SpikeFn, binary_mask_ste, lif_update, ste_floor, ste_round

from conftest import same

STEPS = 6


def float_lif(v, x, th):
    """The float recursion h = v + (x - v) / 2 (tau = 2), hard reset; float64, no floor anywhere."""
    h = v + (x - v) / 2
    s = h >= th
    return s, torch.where(s, torch.zeros_like(h), h)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_integer_lif_equals_float_recursion_without_rounding(seed):
    # inputs and thresholds are multiples of 2**STEPS: the membrane after t steps is a multiple of
    # 2**(STEPS - t), so no shift ever drops a bit and the integer LIF is the float recursion exactly
    g = torch.Generator().manual_seed(seed)
    shape = (64, 32)
    th = torch.randint(1, 200, shape[1:], generator=g, dtype=torch.int64) << STEPS
    vi, vf = torch.zeros(shape, dtype=torch.int64), torch.zeros(shape, dtype=torch.float64)
    for t in range(STEPS):
        x = torch.randint(-400, 600, shape, generator=g, dtype=torch.int64) << STEPS
        si, vi = lif_step(vi, x, th)
        sf, vf = float_lif(vf, x.double(), th.double())
        bad = (si != sf) | (vi.double() != vf)
        assert not bad.any(), (f"seed {seed} step {t}: first mismatch at {bad.nonzero()[0].tolist()}: "
                               f"integer ({si[bad][0].item()}, {vi[bad][0].item()}) vs float "
                               f"({sf[bad][0].item()}, {vf[bad][0].item()})")
    assert 0 < int(si.sum()) < si.numel(), "the test should see both spikes and silence"


def test_integer_lif_rounds_toward_minus_infinity():
    s, v = lif_step(torch.tensor([0, 0, 0, 0, 4]), torch.tensor([3, -3, -1, 1, 5]), 100)
    assert v.tolist() == [1, -2, -1, 0, 4] and not s.any()
    s, v = lif_step(torch.tensor([10, 10, 10]), torch.tensor([9, 10, 11]), 10)  # h = 9, 10, 10
    assert s.tolist() == [False, True, True] and v.tolist() == [9, 0, 0]  # h >= th spikes; hard reset


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_quant_lif_update_equals_integer_lif(seed, dtype):
    # arbitrary integers (odd, negative) within the accumulator range the model feeds the LIF
    g = torch.Generator().manual_seed(seed)
    shape = (128, 24)
    lim = 1 << 22
    th = torch.randint(1, 5000, shape[1:], generator=g, dtype=torch.int64)
    vi, vq = torch.zeros(shape, dtype=torch.int64), torch.zeros(shape, dtype=dtype)
    for t in range(8):
        x = torch.randint(-lim, lim, shape, generator=g, dtype=torch.int64) >> torch.randint(0, 22, shape, generator=g)
        si, vi = lif_step(vi, x, th)
        sq, vq = lif_update(vq, x.to(dtype), th.to(dtype), 7.0, quant=True)
        assert sq.dtype == dtype
        bad = (si.to(dtype) != sq) | (vi.to(dtype) != vq)
        assert not bad.any(), (f"seed {seed} step {t}: first mismatch at {bad.nonzero()[0].tolist()}: "
                               f"integer ({int(si[bad][0])}, {int(vi[bad][0])}) vs quant "
                               f"({sq[bad][0].item()}, {vq[bad][0].item()})")
    assert (vi < 0).any() and (vi % 2 == 1).any()


def test_float_lif_update_is_the_float_recursion():
    v = torch.tensor([0.0, 0.3, -1.0, 0.9])
    x = torch.tensor([1.0, 0.5, 0.2, 1.2])
    s, new = lif_update(v, x, 0.75, 1.0, quant=False)
    sf, vf = float_lif(v.double(), x.double(), 0.75)
    assert s.tolist() == [0.0, 0.0, 0.0, 1.0] and s.tolist() == sf.double().tolist()
    same("new", new, vf.float())


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("unit", [1.0, 8.0, 113.0])
def test_surrogate_gradient(seed, unit):
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(1000, generator=g, dtype=torch.float64) * 3 * unit).requires_grad_()
    up = torch.randn(1000, generator=g, dtype=torch.float64)
    out = SpikeFn.apply(x, torch.tensor(unit, dtype=torch.float64))
    same("out", out, (x >= 0).double())
    (out * up).sum().backward()
    xr = x.detach().clone().requires_grad_()
    (torch.sigmoid(SURROGATE_ALPHA * xr / unit) * up).sum().backward()
    sig = torch.sigmoid(SURROGATE_ALPHA * x.detach() / unit)
    formula = up * SURROGATE_ALPHA * sig * (1 - sig) / unit
    # float64; the three differ only in the order of the roundings
    torch.testing.assert_close(x.grad, xr.grad, rtol=1e-12, atol=0)
    torch.testing.assert_close(x.grad, formula, rtol=1e-12, atol=0)


def test_lif_update_gradient_passes_the_floor():
    # quant mode: d spikes / d x is the surrogate at h - th (the floor is straight-through), d h / d x = 1/2
    x = torch.tensor([6.0, 9.0, -3.0], requires_grad=True)
    s, _ = lif_update(torch.zeros(3), x, 4.0, 2.0, quant=True)
    s.sum().backward()
    h = torch.floor(x.detach() / 2)
    sig = torch.sigmoid(SURROGATE_ALPHA * (h - 4.0) / 2.0)
    torch.testing.assert_close(x.grad, 0.5 * SURROGATE_ALPHA * sig * (1 - sig) / 2.0, rtol=1e-6, atol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_ste_floor_and_round_are_exact_integers(dtype):
    g = torch.Generator().manual_seed(0)
    x = torch.cat([torch.randn(20000, generator=g) * s for s in (0.3, 3, 300, 3e5)]).to(dtype)
    x = torch.cat([x, torch.tensor([0.5, 1.5, 2.5, -0.5, -2.5], dtype=dtype)])  # halves: to even
    same(f"ste_floor, {dtype}", ste_floor(x), torch.floor(x))
    same(f"ste_round, {dtype}", ste_round(x), torch.round(x))
    xg = x.clone().requires_grad_()
    (ste_floor(xg) + ste_round(xg)).sum().backward()
    same("xg.grad", xg.grad, torch.full_like(x, 2.0))


@pytest.mark.parametrize("seed", [0, 1])
def test_binary_mask_forward_is_exactly_binary(seed):
    # float32, as in training: (hard + soft) - soft would round to 0.99999994 for many scores
    g = torch.Generator().manual_seed(seed)
    s = torch.randn(4096, generator=g) * 3
    m = binary_mask_ste(s)
    bad = (m != 0) & (m != 1)
    assert not bad.any(), (f"seed {seed}: {int(bad.sum())} non-binary values, first at "
                           f"{bad.nonzero()[0].item()}: score {s[bad][0].item()!r} -> {m[bad][0].item()!r}")


@pytest.mark.parametrize("seed", [0, 1])
def test_binary_mask_ste(seed):
    g = torch.Generator().manual_seed(seed)
    s = (torch.randn(4096, generator=g, dtype=torch.float64) * 3).requires_grad_()
    up = torch.randn(4096, generator=g, dtype=torch.float64)
    m = binary_mask_ste(s)
    same(f"seed {seed} mask forward", m.detach(), (s.detach() > 0).double())
    (m * up).sum().backward()
    sig = torch.sigmoid(s.detach())
    torch.testing.assert_close(s.grad, up * sig * (1 - sig), rtol=1e-12, atol=0)
    assert binary_mask_ste(torch.tensor([0.0])).item() == 0.0  # a score of exactly 0 is off
