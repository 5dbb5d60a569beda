"""dynaspike/ddr.py and train/traffic_model.py: the DDR buffers' layout (by hand, no overlap, every row in
place), and the traffic of an inference against a naive per-token count of the same rules, with its lower
bound, the dense run and the latency's bounds."""

import dataclasses

import numpy as np
import pytest

from conftest import TINY_CFG, random_images, random_intmodel
from dynaspike import ddr
from dynaspike.config import ModelConfig
from dynaspike.packing import PackingError
from train.golden import GoldenModel
from train.traffic_model import predict_traffic

SEED_CFG = ModelConfig(img_size=32, in_channels=3, patch_size=4, embed_kernel=4, dim=384, heads=12, blocks=4)


def test_rows_by_hand():
    assert ddr.lane_row_bytes(32) == 96                     # 32 lanes of 24 bits: 12 beats
    assert ddr.lane_row_bytes(64, 8) == 64
    # D = 64, P = 32: a q tile is its bias row (64 lanes of 32 bits), its thresholds (as many) and 64 rows of
    # 64 bytes
    assert ddr.tile_bytes(64, 32, thresholds=True) == 256 + 256 + 64 * 64
    assert ddr.tile_bytes(256, 32, thresholds=False) == 256 + 256 * 64
    for bad in (0, 4, 12, 33):
        with pytest.raises(ValueError, match="multiple of 8"):
            ddr.lane_row_bytes(bad)


def test_weight_buffer_in_pass_order_without_gaps():
    buf = ddr.weight_buffer(SEED_CFG, 32)
    pos = 0
    for l in range(SEED_CFG.blocks):
        for name in ("q", "k", "v", "proj", "fc1", "fc2"):
            t = buf[f"b{l}.{name}"]
            assert t["offset"] == pos and t["offset"] % ddr.BEAT_BYTES == 0
            pos += t["tile_bytes"] * t["tiles"]
    assert buf["_bytes"] == pos
    # the seed's 7.1 M weights, one byte each, plus a bias row per tile and thresholds for q, k, v, fc1
    weights = SEED_CFG.blocks * 12 * SEED_CFG.dim ** 2
    assert weights < buf["_bytes"] < 1.02 * weights


def test_state_rows_distinct_and_inside():
    cfg, lanes = TINY_CFG, 8
    buf = ddr.state_buffer(cfg, lanes)
    row = buf["_row_bytes"]
    seen = set()
    for key, s in buf.items():
        if key.startswith("_"):
            continue
        for c in range(s["chunks"]):
            for n in range(cfg.num_tokens):
                off = ddr.state_row(buf, cfg, key, c, n)
                assert off % row == 0 and 0 <= off < buf["_bytes"] and off not in seen
                seen.add(off)
                if c % 2:   # a token's two chunks of one engine row lie side by side
                    assert off == ddr.state_row(buf, cfg, key, c - 1, n) + row
    assert len(seen) == (cfg.blocks * (6 * cfg.dim + cfg.hidden_dim) + cfg.dim) // lanes * cfg.num_tokens
    with pytest.raises(ValueError, match="chunk 2 of 2"):
        ddr.state_row(buf, cfg, "out", 2, 0)
    with pytest.raises(ValueError, match="unknown state layer"):
        ddr.state_width(cfg, "proj")


def test_memory_checks():
    with pytest.raises(ValueError, match="read_latency"):
        ddr.Memory(read_latency=-1)
    with pytest.raises(ValueError, match="ports is 1"):
        ddr.Memory(ports=3)
    with pytest.raises(ValueError, match="bytes_per_cycle"):
        ddr.Memory(bytes_per_cycle=0)


def test_ports_and_the_ddr_limit():
    """A second port for the membranes never slows a pass; a DDR slower than the ports bounds every pass by
    its bytes; neither changes the bytes."""
    model = random_intmodel(TINY_CFG, 4)
    images = random_images(TINY_CFG, 4, 4)
    one = predict_traffic(model, images, 8)
    two = predict_traffic(model, images, 8, memory=ddr.Memory(ports=2))
    slow = predict_traffic(model, images, 8, memory=ddr.Memory(bytes_per_cycle=1))
    assert (two.latency_cycles <= one.latency_cycles).all() and (two.latency_cycles < one.latency_cycles).any()
    assert (two.total == one.total).all() and (slow.total == one.total).all()
    # at one byte a cycle the transfers take at least their bytes (less the first tiles, read as fills)
    assert (slow.transfer_cycles >= one.total - slow.weight_read).all()
    assert (slow.latency_cycles > one.latency_cycles).all()


def naive_traffic(model, images, lanes):
    """Bytes read and written per image by the rules of dynaspike/ddr.py, token by token."""
    cfg = model.config
    r = GoldenModel(model).run(images, trace=True)
    wbuf, sbuf = ddr.weight_buffer(cfg, lanes), ddr.state_buffer(cfg, lanes)
    row, mask, T, L, N = sbuf["_row_bytes"], r.mask.numpy(), cfg.t_max, cfg.blocks, cfg.num_tokens
    out = []
    for b in range(len(images)):
        reps = [n for n in range(N) if int(r.rep[b, n]) == n]
        active, written = set(reps), set()
        weights = reads = writes = needed = 0

        def update(key, module, t, tokens):
            nonlocal reads, writes, needed
            chunks = sbuf[key]["chunks"]
            for n in tokens:
                if (key, n) in written:
                    reads += chunks * row
                    needed += chunks * row
                again = t < T - 1 if module is None else any(mask[module, u] for u in range(t + 1, T))
                if again:
                    writes += chunks * row
                    written.add((key, n))
        for t in range(T):
            for l in range(L):
                for module, layers, states in ((2 * l, ("q", "k", "v", "proj"), ("ain", "q", "k", "v", "attn")),
                                               (2 * l + 1, ("fc1", "fc2"), ("min", "hid"))):
                    if mask[module, t]:
                        if active:
                            weights += sum(wbuf[f"b{l}.{n}"]["tile_bytes"] * wbuf[f"b{l}.{n}"]["tiles"] for n in layers)
                        for s in states:
                            update(f"b{l}.{s}", module, t, active)
                after = r.trace[f"t{t}.b{l}.active_after"][b]
                active = {n for n in active if after[n]}
            update("out", None, t, reps)
        out.append((weights, reads, writes, weights + 2 * needed))
    return np.array(out)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_traffic_equals_a_naive_count(seed):
    model = random_intmodel(TINY_CFG, seed)
    images = random_images(TINY_CFG, 6, seed)
    p = predict_traffic(model, images, 8)
    want = naive_traffic(model, images, 8)
    assert np.array_equal(np.stack([p.weight_read, p.state_read, p.state_write, p.bound], 1), want)
    assert (p.total >= p.bound).all() and (p.read == p.weight_read + p.state_read).all()
    # the estimate overlaps compute and transfer within a pass: never below either alone
    assert (p.latency_cycles >= p.compute_cycles).all() and (p.latency_cycles >= p.transfer_cycles).all()
    assert sum(p.by_pass.values()).tolist() == p.total.tolist()


def test_halted_merged_and_masked_work_moves_less():
    model = random_intmodel(TINY_CFG, 3)
    images = random_images(TINY_CFG, 6, 3)
    dyn, dense = predict_traffic(model, images, 8), predict_traffic(model, images, 8, dense=True)
    assert (dyn.total < dense.total).all()
    # dense: every module at every step, every token to the end: the bound, exactly
    assert (dense.total == dense.bound).all()
    # a module masked off reads none of its weights (no early halting here, so the same tokens run)
    t = dict(model.tensors, halt_lut=np.zeros_like(model.tensors["halt_lut"]))
    on = dataclasses.replace(model, tensors=t)
    off = dataclasses.replace(model, tensors=dict(t, mask=t["mask"].copy()))
    off.tensors["mask"][1] = 0       # block 0's MLP
    buf = ddr.weight_buffer(TINY_CFG, 8)
    mlp0 = sum(buf[f"b0.{n}"]["tile_bytes"] * buf[f"b0.{n}"]["tiles"] for n in ("fc1", "fc2"))
    steps = int(t["mask"][1].sum())
    assert steps > 0
    got = predict_traffic(off, images, 8).weight_read
    assert (got == predict_traffic(on, images, 8).weight_read - steps * mlp0).all()
    # slower memory: more cycles, same bytes
    slow = predict_traffic(model, images, 8, memory=ddr.Memory(read_latency=400))
    assert (slow.total == dyn.total).all() and (slow.latency_cycles > dyn.latency_cycles).all()


@pytest.mark.parametrize("cfg, lanes", [(TINY_CFG, 8), (TINY_CFG, 16), (ModelConfig(dim=96, heads=4), 32)])
def test_weight_buffer_round_trip(cfg, lanes):
    """Every tensor of the spike layers comes back from the DDR bytes; the tiles sit where the layout says
    (an odd chunk count at D = 96, P = 32 pads a group's second threshold row)."""
    model = random_intmodel(cfg, 5)
    buf = ddr.pack_weights(model, lanes)
    lay = ddr.weight_buffer(cfg, lanes)
    assert len(buf) == lay["_bytes"]
    back = ddr.unpack_weights(buf, cfg, lanes)
    assert sorted(back) == sorted(k for k in model.tensors if k.startswith("b") and "_" in k)
    for k, v in back.items():
        assert np.array_equal(v, model[k]) and v.dtype == model[k].dtype, k
    # tile 0 of block 0's q starts with its bias row: q's biases of outputs 0 .. 2P - 1
    q = lay["b0.q"]
    got = ddr.unpack_lanes(buf[q["offset"]:], 2 * lanes, ddr.SIDE_BITS)
    want = np.zeros(2 * lanes, np.int64)
    n = min(2 * lanes, cfg.dim)
    want[:n] = model["b0.q_b"][:n]
    assert np.array_equal(got, want)
    with pytest.raises(PackingError, match="bytes, got"):
        ddr.unpack_weights(buf[:-8], cfg, lanes)


def test_lanes_pack_and_refuse():
    v = np.array([0, 1, -1, (1 << 23) - 1, -(1 << 23)])
    assert np.array_equal(ddr.unpack_lanes(ddr.pack_lanes(v), 5), v)
    assert ddr.pack_lanes([-2], 24) == b"\xfe\xff\xff"
    with pytest.raises(PackingError, match="do not fit 24-bit"):
        ddr.pack_lanes([1 << 23])
    with pytest.raises(PackingError, match="need 3 lanes"):
        ddr.unpack_lanes(b"\x00" * 8, 3)
