"""The cycle model of the hardware components: exact cycle counts, predicted from the inputs alone.

Pure Python (no numpy, torch or Amaranth): the golden model, the testbenches and the driver import it.
Every RTL component in ``hw/`` takes its latency constants from here, and its tests assert that the RTL
takes exactly the predicted number of cycles. This file grows into the whole-inference cycle model.

Convention: a component's cycle count for a job is measured from the clock cycle of the first input
transfer (cycle 0) to the clock cycle of the last output transfer, inclusive of neither end's idle time,
with the producer always valid and the consumer always ready. Idle insertion and backpressure only ever
add cycles; they never change results.
"""

#: LIF update (hw/lif.py): one pipeline register between input and output transfer.
LIF_LATENCY = 1

#: Accumulate engine (hw/accumulate.py): one cycle of synchronous BRAM read, one cycle of addition.
ACC_LATENCY = 2


def lif_cycles(vectors: int) -> int:
    """Cycles for ``vectors`` back-to-back P-lane LIF updates: one per cycle plus the pipeline latency."""
    if vectors < 1:
        raise ValueError(f"lif_cycles needs at least one vector, got {vectors}")
    return vectors - 1 + LIF_LATENCY


def acc_beats(spikes: int) -> int:
    """Event beats the accumulate engine spends on one output row with ``spikes`` present input spikes.

    One beat (one cycle) per present spike; a row with no spike at all still needs one beat to emit its
    bias (the empty-list marker), so absent spikes cost zero cycles and an all-zero row costs one.
    """
    if spikes < 0:
        raise ValueError(f"spike count must be >= 0, got {spikes}")
    return max(1, spikes)


def acc_cycles(spike_counts) -> int:
    """Cycles for back-to-back accumulate rows with these present-spike counts (no bubbles between rows)."""
    counts = list(spike_counts)
    if not counts:
        raise ValueError("acc_cycles needs at least one row")
    return sum(acc_beats(n) for n in counts) - 1 + ACC_LATENCY


def acc_done_cycles(spike_counts) -> list:
    """Cycle of each row's output transfer (relative to the first event transfer), in order."""
    done, t = [], -1
    for n in spike_counts:
        t += acc_beats(n)
        done.append(t + ACC_LATENCY)
    return done

#: Halting unit (hw/halt.py): one cycle of LUT read, one of accumulate-and-compare.
HALT_LATENCY = 2


def halt_cycles(tokens: int) -> int:
    """Cycles for ``tokens`` back-to-back halting checks."""
    if tokens < 1:
        raise ValueError(f"halt_cycles needs at least one token, got {tokens}")
    return tokens - 1 + HALT_LATENCY

#: Token merge (hw/merge.py): one cycle of parallel comparison, one of picking the representative.
MERGE_LATENCY = 2


def merge_cycles(tokens: int) -> int:
    """Cycles to merge the ``tokens`` tokens of one image (tokens stream back to back)."""
    if tokens < 1:
        raise ValueError(f"merge_cycles needs at least one token, got {tokens}")
    return tokens - 1 + MERGE_LATENCY
