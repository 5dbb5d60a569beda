"""The golden model against the contract (docs/integer_model.md): merge arithmetic, halting, masks, dense
mode, image checks, operation counts, and a naive per-token reference (conftest.naive_run)."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from dynaspike.artifact import IntModel
from dynaspike.config import ModelConfig
from train.golden import PJ_PER_AC, PJ_PER_MAC, GoldenModel, ImageError, layers, patches

from conftest import TINY_CFG, naive_run, random_images, random_intmodel, same

CFG = TINY_CFG
N, D, L, T, H, DH, HD = (CFG.num_tokens, CFG.dim, CFG.blocks, CFG.t_max, CFG.heads, CFG.head_dim,
                         CFG.hidden_dim)
LIF_NAMES = {"attn": ("ain", "q", "k", "v", "attn"), "mlp": ("min", "hid")}


def with_params(m: IntModel, **kw) -> IntModel:
    return IntModel(m.config, replace(m.params, **kw), dict(m.tensors), m.info).validate()


def with_tensors(m: IntModel, **kw) -> IntModel:
    t = {k: v.copy() for k, v in m.tensors.items()}
    for k, v in kw.items():
        t[k.replace("__", ".")] = np.asarray(v).astype(m.tensors[k.replace("__", ".")].dtype)
    return IntModel(m.config, m.params, t, m.info).validate()


def readout_on_constant(E, threshold):
    """Counts (B, D) of the output LIF run for T steps from rest on the constant input E (B, N, D)."""
    E = E.to(torch.int64)
    v, C = torch.zeros_like(E), torch.zeros(E.shape[0], E.shape[2], dtype=torch.int64)
    for _ in range(T):
        h = (v + E) >> 1
        s = h >= threshold
        v = torch.where(s, 0, h)
        C += s.sum(1)
    return C


def run(m, images, **kw):
    return GoldenModel(m).run(images, **kw)


# ------------------------------------------------------------------------------- naive reference
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_golden_equals_naive_reference(seed):
    """Random masks, merges and halting: every observable equals the naive per-token loops."""
    m = random_intmodel(CFG, seed)
    imgs = random_images(CFG, 6, seed)
    r = run(m, imgs)
    for b in range(len(imgs)):
        ref = naive_run(m, imgs[b])
        for key in ("logits", "counts", "rep", "size", "halt_t", "halt_l", "units"):
            got, want = getattr(r, key)[b].numpy(), np.asarray(ref[key])
            bad = np.argwhere(got != want)
            assert not len(bad), (f"seed {seed} image {b} {key}: first difference at {bad[0].tolist()}: "
                                  f"golden {got[tuple(bad[0])]}, reference {want[tuple(bad[0])]}")
    # the case is not degenerate: tokens merged, halted early, modules masked
    assert (r.size == 0).any() and (r.halt_t[r.size > 0] < T - 1).any() and (r.mask == 0).any()


def test_golden_equals_naive_reference_tiny_export(tiny):
    _, art = tiny
    imgs = random_images(CFG, 6, 7)
    r = run(art, imgs)
    for b in range(len(imgs)):
        ref = naive_run(art, imgs[b])
        assert np.array_equal(r.logits[b].numpy(), ref["logits"]), (b, r.logits[b].tolist(), ref["logits"])
        assert np.array_equal(r.halt_t[b].numpy(), ref["halt_t"]), b


def test_patches_order():
    cfg = ModelConfig(img_size=4, in_channels=2, patch_size=2, embed_kernel=2, dim=4, heads=1)
    img = torch.arange(2 * 4 * 4).reshape(1, 2, 4, 4)
    p = patches(img, cfg)
    # token 1 is the top-right patch; channel-major, then row-major inside the patch
    assert p.shape == (1, 4, 8)
    assert p[0, 1].tolist() == [2, 3, 6, 7, 18, 19, 22, 23]
    assert p[0, 2].tolist() == [8, 9, 12, 13, 24, 25, 28, 29]


def test_patches_window_with_padding():
    # 4x4 windows centred on 2x2 patches of a 4x4 image: one zero pixel of padding on each side
    cfg = ModelConfig(img_size=4, in_channels=1, patch_size=2, embed_kernel=4, dim=4, heads=1)
    img = torch.arange(1, 17).reshape(1, 1, 4, 4)
    p = patches(img, cfg)
    assert p.shape == (1, 4, 16)
    assert p[0, 0].tolist() == [0, 0, 0, 0,  0, 1, 2, 3,  0, 5, 6, 7,  0, 9, 10, 11]
    assert p[0, 3].tolist() == [6, 7, 8, 0,  10, 11, 12, 0,  14, 15, 16, 0,  0, 0, 0, 0]


def test_embedding_floor_and_clamp():
    m = random_intmodel(CFG, 0)
    emb_w = np.zeros_like(m["emb_w"])
    emb_w[0, :] = 1                                # E[k, 0] = (sum of token k's window + b) >> 8
    emb_b = np.zeros_like(m["emb_b"])
    emb_b[:, 0] = -300                             # (-300 + 255) >> 8 = -1 (floor), (-300 + 0) >> 8 = -2
    emb_b[:, 1] = 40000 << 8                       # clamps to res_max
    emb_b[:, 2] = -(40000 << 8)                    # clamps to res_min
    m = with_tensors(m, emb_w=emb_w, emb_b=emb_b)
    img = torch.zeros(1, 1, 8, 8, dtype=torch.uint8)
    img[0, 0, 0, 0] = 255                          # in token 0's window, not in token 1's
    E = run(m, img, trace=True).trace["emb"][0]
    assert E[0, :3].tolist() == [-1, 32767, -32768] and E[1, :3].tolist() == [-2, 32767, -32768]


# ------------------------------------------------------------------------------------- (a) merge
# Merge bits of the 16 tokens (D = 16; only the first 8 bits vary), merge_threshold 1, and what the greedy
# first-representative rule makes of them.
BITS = ["00000000",  # 0  rep
        "11110000",  # 1  rep (4 from 0)
        "10000000",  # 2  -> 0 (1 from 0)
        "11000000",  # 3  rep: 1 from 2, but 2 is not a representative; 2 from 0 and 1
        "11100000",  # 4  -> 1: 1 from 1 and from 3, the first representative wins
        "11000001",  # 5  -> 3
        "00000000",  # 6  -> 0
        "00001111",  # 7  rep
        "00001110",  # 8  -> 7
        "00000001",  # 9  -> 0
        "11110000",  # 10 -> 1
        "11000000",  # 11 -> 3
        "00111100",  # 12 rep (4 from 0, 4 from 7)
        "00011100",  # 13 -> 12 (3 from 0 and 7, 1 from 12)
        "01111111",  # 14 rep
        "00001111"]  # 15 -> 7
REP_T1 = [0, 1, 0, 3, 1, 3, 0, 7, 7, 0, 1, 3, 12, 12, 14, 7]
REP_T0 = [0, 1, 2, 3, 4, 5, 0, 7, 8, 9, 1, 3, 12, 13, 14, 7]  # exact duplicates only


def merge_model(merge_threshold, seed=0):
    """E[k] = 2 * res_threshold on the set bits of BITS[k], 0 elsewhere: the merge bits are BITS."""
    m = random_intmodel(CFG, seed, merge_threshold=merge_threshold)
    R = m.params.res_threshold
    emb_b = np.zeros((N, D), dtype=np.int64)
    for k, s in enumerate(BITS):
        emb_b[k, :8] = [int(c) * 2 * R << 8 for c in s]
    return with_tensors(m, emb_w=np.zeros_like(m["emb_w"]), emb_b=emb_b)


def naive_merge(bits, th):
    rep = list(range(len(bits)))
    for j in range(1, len(bits)):
        for i in range(j):
            if rep[i] == i and sum(a != b for a, b in zip(bits[i], bits[j])) <= th:
                rep[j] = i
                break
    return rep


@pytest.mark.parametrize("th, want", [(1, REP_T1), (0, REP_T0), (-1, list(range(16)))])
def test_merge_rule(th, want):
    assert th < 0 or naive_merge(BITS, th) == want  # the table above is right
    m = merge_model(th)
    img = random_images(CFG, 3, 0)                   # pixels do not matter: emb_w = 0
    r = run(m, img, trace=True)
    assert torch.equal(r.trace["merge_bits"][0, :, :8],
                       torch.tensor([[int(c) for c in s] for s in BITS], dtype=torch.int32))
    assert not r.trace["merge_bits"][0, :, 8:].any()
    for b in range(3):
        assert r.rep[b].tolist() == want, f"image {b}: rep {r.rep[b].tolist()}, expected {want}"
        want_size = [want.count(k) if want[k] == k else 0 for k in range(N)]
        assert r.size[b].tolist() == want_size, f"image {b}: size {r.size[b].tolist()}, expected {want_size}"
        assert int(r.size[b].sum()) == N
        merged = torch.tensor(want) != torch.arange(N)
        assert (r.halt_t[b][merged] == -1).all() and (r.halt_l[b][merged] == -1).all()
        assert (r.units[b] <= N - int(merged.sum())).all()
        assert int(r.units[b, 0, 0]) == N - int(merged.sum())


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4, 5])
def test_merged_tokens_are_never_computed(seed):
    m = random_intmodel(CFG, seed)
    r = run(m, random_images(CFG, 4, seed), trace=True)
    merged = r.rep != torch.arange(N)
    assert merged.any(), f"seed {seed}: nothing merged, the test sees nothing"
    same("r.size.sum(1)", r.size.sum(1), torch.full((4,), N))
    assert (r.rep[merged] < torch.arange(N).expand(4, N)[merged]).all()          # merged into an earlier token
    assert (r.rep.gather(1, r.rep) == r.rep).all()                                # ... that is a representative
    for name, v in r.trace.items():
        if name[0] == "t" and not name.endswith(("x_attn", "x_mlp")):
            assert not v[merged].any(), f"seed {seed}: merged token has spikes in {name}"


def test_merging_exact_duplicates_is_lossless():
    """Tokens with equal embeddings have equal trajectories: one representative of size s stands for s
    copies exactly (K weighted by size in KV, counts weighted by size), so logits do not change."""
    m = random_intmodel(CFG, 5)
    rng = np.random.default_rng(5)
    rows = rng.integers(-2 * 64 * 256, 6 * 64 * 256, (4, D))
    groups = rng.integers(0, 4, N)
    groups[:4] = [0, 1, 2, 3]
    emb_b = rows[groups]
    dup = with_tensors(m, emb_w=np.zeros_like(m["emb_w"]), emb_b=emb_b)
    img = random_images(CFG, 2, 0)
    merged = run(with_params(dup, merge_threshold=0), img)
    plain = run(with_params(dup, merge_threshold=-1), img)
    assert merged.rep[0].tolist() == groups.tolist(), "each group merges into its first token"
    same("logits merged vs not", merged.logits, plain.logits)
    same("counts merged vs not", merged.counts, plain.counts)
    assert (merged.acs_total < plain.acs_total).all()


# ----------------------------------------------------------------------------------- (b) halting
def order(t, l):
    return t * L + l


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_halted_token_is_never_computed_again(seed):
    m = random_intmodel(CFG, seed)
    B = 6
    r = run(m, random_images(CFG, B, seed), trace=True)
    tr = r.trace
    reps = r.rep == torch.arange(N)
    early = 0
    for b in range(B):
        for k in range(N):
            if not reps[b, k]:
                continue
            ht, hl = int(r.halt_t[b, k]), int(r.halt_l[b, k])
            assert 0 <= ht < T and 0 <= hl < L, f"seed {seed} image {b} token {k} never halted ({ht}, {hl})"
            early += order(ht, hl) < order(T - 1, L - 1)
            for t in range(T):
                for l in range(L):
                    after = order(t, l) > order(ht, hl)
                    p = f"t{t}.b{l}."
                    # active_after flips to 0 exactly at the halting (step, block) and stays 0
                    assert int(tr[p + "active_after"][b, k]) == int(order(t, l) < order(ht, hl)), \
                        f"seed {seed} image {b} token {k} active_after at ({t}, {l})"
                    if not after:
                        continue
                    for kind, names in LIF_NAMES.items():
                        for n in names:
                            if p + n in tr:
                                assert not tr[p + n][b, k].any(), \
                                    f"seed {seed} image {b} token {k} halted at ({ht}, {hl}) spikes in {p + n}"
    assert early, f"seed {seed}: no token halted early, the test sees nothing"
    # units: the tokens not halted before (t, l), representatives only
    for t in range(T):
        for l in range(L):
            alive = reps & (order(t, l) <= r.halt_t * L + r.halt_l)
            assert torch.equal(r.units[:, t, l], alive.sum(1)), f"seed {seed} units at ({t}, {l})"


@pytest.mark.parametrize("seed", [0, 1])
def test_halting_rule_from_trace(seed):
    """Recompute the cumulative score from the traced residual stream and the LUT; halting order is
    time-major (a token halting after block 0 of step 1 is not counted at block 1 of step 1), and a block
    that ran no module at a step is no halting check."""
    m = random_intmodel(CFG, seed)
    p, lut = m.params, m["halt_lut"].astype(np.int64)
    B = 4
    r = run(m, random_images(CFG, B, seed), trace=True)
    tr = r.trace
    for b in range(B):
        for k in range(N):
            if r.rep[b, k] != k:
                continue
            acc, halted = 0, None
            for t in range(T):
                x = int(tr["emb"][b, k, p.halt_channel])
                for l in range(L):
                    for n in ("x_attn", "x_mlp"):
                        if f"t{t}.b{l}.{n}" in tr:
                            x = int(tr[f"t{t}.b{l}.{n}"][b, k, p.halt_channel])
                    ran = m["mask"][2 * l, t] or m["mask"][2 * l + 1, t]  # checked only where a module ran
                    if ran:
                        acc += int(lut[min(max((x >> p.halt_shift) - p.halt_lut_min, 0), 63)])
                    if (ran and acc >= p.halt_threshold) or (t, l) == (T - 1, L - 1):
                        halted = (t, l)
                        break
                if halted:
                    break
            got = (int(r.halt_t[b, k]), int(r.halt_l[b, k]))
            assert got == halted, f"seed {seed} image {b} token {k}: halted at {got}, expected {halted}"


def test_halted_token_stands_in_at_the_readout():
    """A halted token's frozen residual keeps feeding the output LIF: only block 0's MLP runs, at step 0,
    adding nothing (fc2 zero); nothing merged, and a LUT that halts every token at that first check. The
    counts are those of the output LIF run for T steps on the constant input E, and no block runs after
    (0, 0)."""
    m = random_intmodel(CFG, 1)
    m = with_params(m, merge_threshold=-1, halt_threshold=1)
    mask = np.zeros((2 * L, T))
    mask[1, 0] = 1
    zero = np.zeros_like(m["b0.fc2_w"])
    m = with_tensors(m, mask=mask, halt_lut=np.full(64, 255), b0__fc2_w=zero, b0__fc2_b=np.zeros_like(m["b0.fc2_b"]))
    img = random_images(CFG, 3, 1)
    r = run(m, img, trace=True)
    assert (r.halt_t == 0).all() and (r.halt_l == 0).all()
    C = readout_on_constant(r.trace["emb"], m.params.res_threshold)
    assert C.any()
    same("r.counts", r.counts, C)
    assert r.units[:, 0, 0].tolist() == [N] * 3 and not r.units[:, 0, 1:].any() and not r.units[:, 1:].any()


# ---------------------------------------------------------------------------------------- (c) masks
def masked_pair(seed, module, step):
    m = random_intmodel(CFG, seed)
    on = with_tensors(m, mask=np.ones((2 * L, T)))
    mask = np.ones((2 * L, T))
    mask[module, step] = 0
    return on, with_tensors(m, mask=mask)


@pytest.mark.parametrize("module, step", [(0, 0), (1, 1), (2, 1), (3, 0)])
def test_masked_module_is_skipped(module, step):
    on, off = masked_pair(3, module, step)
    img = random_images(CFG, 4, 3)
    a, b = run(on, img, trace=True), run(off, img, trace=True)
    l, kind = module // 2, ("attn", "mlp")[module % 2]
    p = f"t{step}.b{l}."
    names = [p + n for n in LIF_NAMES[kind]] + [p + ("x_attn" if kind == "attn" else "x_mlp")]
    for n in names:
        assert n in a.trace and n not in b.trace, n
    work = 0
    for layer in (("qkv", "kv", "y", "proj") if kind == "attn" else ("fc1", "fc2")):
        assert not b.acs[f"b{l}.{layer}"][:, step].any(), f"{layer} counted while masked"
        work += int(a.acs[f"b{l}.{layer}"][:, step].sum())
    assert work, "the module does no work in the unmasked run: the test sees nothing"
    assert not torch.equal(a.logits, b.logits), "masking the module should change something"
    assert b.mask[module, step] == 0 and int(b.mask.sum()) == 2 * L * T - 1
    # everything computed before the masked module is identical
    for n in a.trace:
        t = int(n[1:n.index(".")]) if n[0] == "t" else -1
        lb = int(n.split(".")[1][1:]) if n[0] == "t" and ".b" in n else L
        before = t < step or (t == step and (lb < l or (lb == l and kind == "mlp" and n.endswith(
            tuple(LIF_NAMES["attn"]) + ("x_attn",)))))
        if n in ("hacc", "x_final"):  # state at the end of the run
            continue
        if n in ("emb", "merge_bits") or before:
            assert torch.equal(a.trace[n], b.trace[n]), f"{n} differs before the masked module"


def test_masked_module_keeps_its_lif_state():
    """A module masked at step 1 resumes at step 2 from its state after step 0. With no halting and no
    merge, block 0's attention input is X = E at every step, so the masked run's second update of its
    LIFs (at step 2) equals the unmasked run's second update (at step 1)."""
    cfg = CFG
    m = random_intmodel(cfg, 4, merge_threshold=-1)
    m = with_tensors(m, halt_lut=np.zeros(64))
    on = np.ones((2 * L, T))
    skip = on.copy()
    skip[0, 1] = 0
    img = random_images(cfg, 3, 4)
    a = run(with_tensors(m, mask=on), img, trace=True)
    b = run(with_tensors(m, mask=skip), img, trace=True)
    same("ain spikes at step 0, masked vs unmasked", b.trace["t0.b0.ain"], a.trace["t0.b0.ain"])
    same("ain spikes at step 2 masked vs step 1 unmasked", b.trace["t2.b0.ain"], a.trace["t1.b0.ain"])
    for n in ("q", "k", "v"):  # and the q/k/v LIFs, whose inputs depend only on those spikes
        same(f"{n} spikes at step 2 masked vs step 1 unmasked", b.trace[f"t2.b0.{n}"], a.trace[f"t1.b0.{n}"])
    assert not torch.equal(a.trace["t1.b0.ain"], a.trace["t0.b0.ain"])  # the state does matter


def test_all_masked_reads_out_the_embedding():
    """Every module masked, no halting, no merge: X stays E, and the logits are head_b plus head_w times
    the output LIF's spike counts on the constant input E."""
    m = random_intmodel(CFG, 2)
    m = with_params(m, merge_threshold=-1)
    m = with_tensors(m, mask=np.zeros((2 * L, T)), halt_lut=np.zeros(64))
    img = random_images(CFG, 4, 2)
    r = run(m, img, trace=True)
    C = readout_on_constant(r.trace["emb"], m.params.res_threshold)
    assert C.any()
    same("r.counts", r.counts, C)
    want = torch.from_numpy(m["head_b"].astype(np.int64)) + C @ torch.from_numpy(m["head_w"].astype(np.int64)).T
    same("logits", r.logits, want)
    assert all(not a.any() for n, a in r.acs.items() if n != "readout")
    same("r.acs['readout'].sum(1)", r.acs["readout"].sum(1), C.sum(1))


@pytest.mark.parametrize("l", [0, 1])
def test_attention_masked_everywhere_equals_zero_projection(l):
    """Masking block l's attention at every step gives the logits of the unmasked model whose attention
    adds nothing to the residual stream (proj weights and bias 0): its LIF layers are its own, so skipping
    them changes nothing else."""
    m = random_intmodel(CFG, 6)
    on = np.ones((2 * L, T))
    off = on.copy()
    off[2 * l] = 0
    img = random_images(CFG, 4, 6)
    a = run(with_tensors(m, mask=off), img)
    zeroed = with_tensors(m, mask=on, **{f"b{l}__proj_w": np.zeros((D, D)), f"b{l}__proj_b": np.zeros(D)})
    b = run(zeroed, img)
    same(f"logits, attention {l} masked vs zero projection", a.logits, b.logits)
    same(f"halt_t, attention {l} masked vs zero projection", a.halt_t, b.halt_t)
    assert not torch.equal(a.logits, run(with_tensors(m, mask=on), img).logits)  # attention did matter


# ---------------------------------------------------------------------------------------- (d) dense
@pytest.mark.parametrize("seed", [0, 1])
def test_dense_ignores_mask_halting_and_merge(seed):
    m = random_intmodel(CFG, seed)
    img = random_images(CFG, 4, seed)
    d = run(m, img, dense=True)
    same("d.units", d.units, torch.full((4, T, L), N))
    assert int(d.units[0].sum()) == N * L * T
    same("d.size", d.size, torch.ones(4, N, dtype=torch.int64))
    same("d.rep", d.rep, torch.arange(N).expand(4, N))
    assert (d.halt_t == T - 1).all() and (d.halt_l == L - 1).all()
    same("d.mask", d.mask, torch.ones(2 * L, T, dtype=torch.uint8))
    # ... and equals the dynamic run of the same model with everything switched off by its tensors
    static = with_tensors(with_params(m, merge_threshold=-1), mask=np.ones((2 * L, T)), halt_lut=np.zeros(64))
    s = run(static, img)
    for key in ("logits", "counts", "units", "halt_t", "halt_l", "rep", "size"):
        same(f"seed {seed} dense vs static {key}", getattr(d, key), getattr(s, key))
    assert not torch.equal(d.logits, run(m, img).logits)


# ---------------------------------------------------------------------------------------- (e) images
@pytest.mark.parametrize("images, text", [
    (torch.zeros(2, 1, 8, 7, dtype=torch.uint8), r"shape \(B, 1, 8, 8\) or \(1, 8, 8\), got \(2, 1, 8, 7\)"),
    (torch.zeros(2, 3, 8, 8, dtype=torch.uint8), r"got \(2, 3, 8, 8\)"),
    (torch.zeros(1, 1, 1, 8, 8, dtype=torch.uint8), r"got \(1, 1, 1, 8, 8\)"),
    (torch.zeros(64, dtype=torch.uint8), r"got \(64,\)"),
    (torch.zeros(2, 1, 8, 8), r"must be uint8, got dtype torch.float32"),
    (torch.zeros(2, 1, 8, 8, dtype=torch.int16), r"must be uint8, got dtype torch.int16"),
    (np.zeros((2, 1, 8, 8)), r"must be uint8, got dtype float64"),
    (np.zeros((2, 1, 8, 8), dtype=np.int16), r"must be uint8, got dtype int16"),
    ([[[0] * 8] * 8], r"numpy array or torch tensor, got list"),
    (None, r"numpy array or torch tensor, got NoneType"),
])
def test_bad_images(tiny, images, text):
    with pytest.raises(ImageError, match=text):
        GoldenModel(tiny[1]).run(images)


def test_image_forms_agree(tiny):
    g = GoldenModel(tiny[1])
    img = random_images(CFG, 1, 0)
    a = g.run(img).logits
    same("(C, H, W) image", g.run(img[0]).logits, a)
    same("numpy image", g.run(img.numpy()).logits, a)
    same("non-contiguous numpy image", g.run(img.numpy()[..., ::-1][..., ::-1]).logits, a)


# ------------------------------------------------------------------------------ (f) op counts
@pytest.mark.parametrize("seed", [0, 2, 3])
def test_acs_from_trace(seed):
    m = random_intmodel(CFG, seed)
    B = 4
    r = run(m, random_images(CFG, B, seed), trace=True)
    tr = r.trace
    assert list(r.acs) == layers(CFG)
    nnz = lambda x: x.to(torch.int64).sum(dim=(1, 2))
    for t in range(T):
        for l in range(L):
            p, b = f"t{t}.b{l}.", f"b{l}."
            want = {}
            if p + "ain" in tr:
                K = tr[p + "k"].view(B, N, H, DH).to(torch.int64)
                V = tr[p + "v"].view(B, N, H, DH).to(torch.int64)
                kv = torch.zeros(B, dtype=torch.int64)
                for j in range(N):          # by hand: dh * sum_j sum_h nnz(K_jh) * [V_jh != 0]
                    for h in range(H):
                        kv += DH * K[:, j, h].sum(-1) * (V[:, j, h].sum(-1) > 0)
                want.update({"qkv": 3 * D * nnz(tr[p + "ain"]), "kv": kv, "y": DH * nnz(tr[p + "q"]),
                             "proj": D * nnz(tr[p + "attn"])})
            else:
                want.update({n: torch.zeros(B, dtype=torch.int64) for n in ("qkv", "kv", "y", "proj")})
            if p + "min" in tr:
                want.update({"fc1": HD * nnz(tr[p + "min"]), "fc2": D * nnz(tr[p + "hid"])})
            else:
                want.update({n: torch.zeros(B, dtype=torch.int64) for n in ("fc1", "fc2")})
            for n, w in want.items():
                assert torch.equal(r.acs[b + n][:, t], w), \
                    f"seed {seed} {b + n} step {t}: {r.acs[b + n][:, t].tolist()}, expected {w.tolist()}"
        same(f"seed {seed} readout ACs at step {t}", r.acs["readout"][:, t], nnz(tr[f"t{t}.out"]))
    assert all(r.acs[n].any() for n in r.acs), "every layer should do some work in this test"
    same("r.acs_total", r.acs_total, sum(a.sum(1) for a in r.acs.values()))


def test_macs_and_energy(tiny):
    images = random_images(CFG, 3, 0)
    images[0, :, :, :3] = 0    # zero pixels: the embedding skips them
    r = GoldenModel(tiny[1]).run(images)
    # the non-zero pixels of every window, by hand: pad, cut each token's window, count
    k, pad, p = CFG.embed_kernel, CFG.embed_pad, CFG.patch_size
    padded = torch.nn.functional.pad(images.to(torch.int64), (pad, pad, pad, pad))
    side = CFG.img_size // p
    nnz = [sum(int((padded[b, :, i * p:i * p + k, j * p:j * p + k] != 0).sum()) for i in range(side)
               for j in range(side)) for b in range(3)]
    macs = [D * z + CFG.num_classes * D for z in nnz]
    assert r.macs.tolist() == macs and max(macs) < N * D * CFG.patch_dim + CFG.num_classes * D
    assert (PJ_PER_MAC, PJ_PER_AC) == (4.6, 0.9)
    for b in range(3):
        acs = sum(int(a[b].sum()) for a in r.acs.values())
        want = (4.6 * macs[b] + 0.9 * acs) * 1e-6
        assert r.energy_uj[b].item() == pytest.approx(want, rel=1e-14, abs=0)
    # a hand value: 1000 MACs and 2000 ACs cost 4600 + 1800 pJ
    r.macs = torch.tensor([1000])
    r.acs = {"x": torch.tensor([[1500, 500]])}
    assert r.energy_uj.item() == pytest.approx(6.4e-3, rel=1e-14, abs=0)


def test_batch_equals_single_images(tiny):
    g = GoldenModel(tiny[1])
    imgs = random_images(CFG, 8, 11)
    r = g.run(imgs)
    for b in range(8):
        s = g.run(imgs[b:b + 1])
        for key in ("logits", "counts", "macs", "units", "halt_t", "halt_l", "rep", "size"):
            assert torch.equal(getattr(s, key)[0], getattr(r, key)[b]), f"image {b}: {key}"
        for n in r.acs:
            assert torch.equal(s.acs[n][0], r.acs[n][b]), f"image {b}: acs {n}"


def test_every_lif_layer_starts_at_rest():
    """At step 0 every LIF layer is at rest, so block l's input LIF spikes exactly where
    (X >> 1) >= res_threshold, X being the residual stream entering block l."""
    m = random_intmodel(CFG, 0, merge_threshold=-1)
    m = with_tensors(m, mask=np.ones((2 * L, T)), halt_lut=np.zeros(64))
    r = run(m, random_images(CFG, 4, 0), trace=True)
    R = m.params.res_threshold
    for l in range(L):
        X = r.trace["emb"] if l == 0 else r.trace[f"t0.b{l - 1}.x_mlp"]
        want = ((X.to(torch.int64) >> 1) >= R).to(torch.int32)
        got = r.trace[f"t0.b{l}.ain"]
        bad = (got != want).nonzero()
        assert not len(bad), f"block {l} ain at step 0: first difference at {bad[0].tolist()}"


def test_bad_image_shape_reported_as_given(tiny):
    # a 3-d array is one image (C, H, W); the error reports the shape the caller passed
    with pytest.raises(ImageError, match=r"got \(5, 8, 8\)"):
        GoldenModel(tiny[1]).run(torch.zeros(5, 8, 8, dtype=torch.uint8))
