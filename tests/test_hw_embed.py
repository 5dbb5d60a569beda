# amaranth: UnusedElaboratable=no
"""hw/embed.py against hw/reference.py and dynaspike.cycles: fast tier and cocotb + Verilator."""

import pytest

from dynaspike import cycles
from hw import reference as ref
from hw.embed import Embedding, beat_stride
from sim import amaranth_tb as atb
from sim.cases import embed_case

SEED = 31


def make_case(lanes, dim, patch_dim, tokens, seed, kind="random", max_patch_dim=None):
    return embed_case(lanes, dim, patch_dim, tokens, seed, kind, stride=beat_stride(max_patch_dim or patch_dim))


def run_embed(lanes, dim, patch_dim, tokens, case, idle, stall, seed, max_patch_dim=None):
    dut = Embedding(lanes, dim, max_patch_dim or patch_dim, tokens)
    lay = dut.i.payload.shape()

    async def load(ctx):
        ctx.set(dut.chunks, case["chunks"])
        ctx.set(dut.patch_dim, patch_dim)
        ctx.set(dut.bpt, case["bpt"])
        await atb.write_rows(ctx, (dut.w_wr, case["w_rows"]), (dut.b_wr, case["b_rows"]),
                             (dut.pix_wr, case["pix_rows"]))

    delay = len(case["w_rows"]) + len(case["b_rows"]) + len(case["pix_rows"])
    drv = atb.StreamDriver(dut.i, [lay.const({"token": k}) for k in range(tokens)], idle=idle, seed=seed,
                           delay=delay)
    mon = atb.StreamMonitor(dut.o, tokens * case["chunks"], stall=stall, seed=seed + 1)
    atb.run(dut, load, drv, mon)
    return drv, mon


def check(lanes, dim, case, mon):
    want = ref.embedding(case["w"], case["b"], case["pix"])
    n = 0
    for k, row in enumerate(want):
        for c in range(case["chunks"]):
            out = mon.payloads[n]
            assert (int(out.token), int(out.chunk)) == (k, c), f"output {n}: token/chunk {int(out.token)}/{int(out.chunk)}"
            for l in range(lanes):
                d = c * lanes + l
                if d < dim:
                    assert int(out.e[l]) == row[d], f"token {k} channel {d}: got {int(out.e[l])}, expected {row[d]}"
            n += 1


@pytest.mark.parametrize("kind", ["random", "extreme", "boundary"])
@pytest.mark.parametrize("idle,stall", [(0.0, 0.0), (0.3, 0.4)])
def test_embed_matches_reference(kind, idle, stall):
    lanes, dim, patch_dim, tokens = 4, 10, 5, 4  # 3 chunks, the last one half padding
    case = make_case(lanes, dim, patch_dim, tokens, SEED, kind)
    _, mon = run_embed(lanes, dim, patch_dim, tokens, case, idle, stall, SEED)
    check(lanes, dim, case, mon)


def test_embed_smaller_model_than_capacity():
    lanes, dim, patch_dim, tokens = 4, 8, 3, 3
    case = make_case(lanes, dim, patch_dim, tokens, SEED + 1, max_patch_dim=6)
    _, mon = run_embed(lanes, dim, patch_dim, tokens, case, 0.1, 0.1, SEED, max_patch_dim=6)
    check(lanes, dim, case, mon)


def test_embed_windows_of_several_beats():
    # 13 pixels are two beats (the second with 3 pixels and 5 bytes of padding) on a memory built for three
    lanes, dim, patch_dim, tokens = 4, 8, 13, 3
    case = make_case(lanes, dim, patch_dim, tokens, SEED + 3, max_patch_dim=20)
    assert case["bpt"] == 2
    _, mon = run_embed(lanes, dim, patch_dim, tokens, case, 0.2, 0.2, SEED, max_patch_dim=20)
    check(lanes, dim, case, mon)


@pytest.mark.parametrize("seed", [SEED + 2, SEED + 4])
def test_embed_cycles_match_model(seed):
    """Zero pixels cost nothing: a (token, chunk) takes embed_beats(non-zero pixels) cycles, an all-zero
    window one."""
    lanes, dim, patch_dim, tokens = 4, 10, 13, 6
    case = make_case(lanes, dim, patch_dim, tokens, seed)
    drv, mon = run_embed(lanes, dim, patch_dim, tokens, case, 0.0, 0.0, SEED)
    check(lanes, dim, case, mon)
    per_token = [case["chunks"] * cycles.embed_beats(n) for n in case["nnz"]]
    assert min(case["nnz"]) < patch_dim and max(case["nnz"]) > 0, case["nnz"]
    assert [c - drv.cycles[0] for c in drv.cycles] == [sum(per_token[:k]) for k in range(tokens)]
    assert mon.cycles[-1] - drv.cycles[0] == cycles.embed_cycles(case["nnz"], case["chunks"])


def test_embed_all_zero_and_full_windows():
    """An all-zero window costs one cycle per chunk (the bias alone); a window without a zero pixel the
    dense ceil(patch_dim / 2)."""
    lanes, dim, patch_dim, tokens = 4, 8, 7, 4
    case = make_case(lanes, dim, patch_dim, tokens, SEED + 5, "extreme")   # windows all 255 or all 0
    drv, mon = run_embed(lanes, dim, patch_dim, tokens, case, 0.0, 0.0, SEED)
    check(lanes, dim, case, mon)
    assert case["nnz"] == [0, patch_dim, 0, patch_dim]
    assert mon.cycles[-1] - drv.cycles[0] == 2 * (1 + 4) * case["chunks"] + cycles.EMB_LATENCY


def test_embed_rejects_bad_parameters():
    with pytest.raises(ValueError, match="max_patch_dim .* got 0"):
        Embedding(4, 8, 0, 4)


@pytest.mark.sim
def test_embed_verilator():
    from sim.runner import run_cocotb

    run_cocotb("embed", Embedding, {"lanes": 16, "max_dim": 64, "max_patch_dim": 16, "max_tokens": 16},
               "tb_embed", {"seed": SEED})


def test_embed_token_ends_by_hand():
    """Token k starts when its window is in ((k + 1) * bpt) and token k - 1 is done: 2 chunks, 4 beats per
    window; windows of 6, 0 and 1 non-zero pixels take 2 x 3, 2 x 1 and 2 x 1 cycles."""
    assert cycles.embed_token_ends([6, 0, 1], 2, 4) == [4 + 6, 10 + 2, 12 + 2]
    assert cycles.embed_token_ends([0, 0], 1, 8) == [9, 17]   # the stream, not the embedding, sets the pace
