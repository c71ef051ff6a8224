//! Packing: copying blocks of the operands into the layout the micro-kernels read, into
//! buffers that live in each thread's static TLS block (never on the heap).

use super::*;

thread_local! {
    static PACK_A: RefCell<[f32; MAX_MR * KC]> = const { RefCell::new([0.0; MAX_MR * KC]) };
    static PACK_B: RefCell<[f32; KC * NC]> = const { RefCell::new([0.0; KC * NC]) };
}

/// Runs `f` on this thread's packing buffer for A (or B). A thread that is already using its
/// buffer (a GEMM started from inside a parallel GEMM's task, which rayon can schedule on a
/// thread that is waiting for its own GEMM) gets a temporary one from the heap instead.
pub(super) fn with_pack_a<R>(f: impl FnOnce(&mut [f32]) -> R) -> R {
    PACK_A.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buffer) => f(&mut buffer[..]),
        Err(_) => f(&mut vec![0.0; MAX_MR * KC]),
    })
}

pub(super) fn with_pack_b<R>(f: impl FnOnce(&mut [f32]) -> R) -> R {
    PACK_B.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buffer) => f(&mut buffer[..]),
        Err(_) => f(&mut vec![0.0; KC * NC]),
    })
}

/// Copies the block of `op(X)` made of "free" indices `free0..free0 + nfree` (at most `W`)
/// and depth indices `k0..k0 + kc` into `out` as `kc` groups of `W` values (free index
/// fastest), zero-padding free indices past `nfree`. `free_stride` and `depth_stride` are the
/// distances in `data` between consecutive free and depth indices; one of them is 1.
pub(super) fn pack_panel<const W: usize>(
    data: &[f32],
    (free_stride, depth_stride): (usize, usize),
    (free0, nfree): (usize, usize),
    (k0, kc): (usize, usize),
    out: &mut [f32],
) {
    assert!(nfree <= W);
    let (groups, _) = out[..kc * W].as_chunks_mut::<W>();
    if depth_stride == 1 {
        // Transposing: each free index's run is contiguous along the depth. Whole 8 x 8 blocks
        // (eight free indices by eight depths) are transposed in registers; the rest moves one
        // value at a time.
        let rows = |f: usize| &data[(free0 + f) * free_stride + k0..][..kc];
        let whole_free = nfree / 8 * 8;
        let whole_depth = kc / 8 * 8;
        for f in (0..whole_free).step_by(8) {
            let runs: [&[f32]; 8] = std::array::from_fn(|r| rows(f + r));
            for p in (0..whole_depth).step_by(8) {
                let block = f32x8::transpose(std::array::from_fn(|r| load8(&runs[r][p..p + 8])));
                for (i, column) in block.into_iter().enumerate() {
                    groups[p + i][f..f + 8].copy_from_slice(&column.to_array());
                }
            }
        }
        for f in 0..nfree {
            let run = rows(f);
            let first_depth = if f < whole_free { whole_depth } else { 0 };
            for (group, &value) in groups[first_depth..].iter_mut().zip(&run[first_depth..]) {
                group[f] = value;
            }
        }
    } else {
        // Under the level's target features, so that the copies use its widest registers.
        let first = k0 * depth_stride + free0;
        simd!(V => copy_groups::<W>(&data[first..], (depth_stride, nfree), groups))
    }
    if nfree < W {
        for group in groups.iter_mut() {
            group[nfree..].fill(0.0);
        }
    }
}

/// `groups[p][..n] = data[p * stride..][..n]` for every group, the rest of each group
/// untouched. A whole group (`n == W`) is one copy of a size known at compile time, which the
/// compiler turns into the level's widest moves. A `memcpy` call per group would dominate
/// packing, and copying a vector at a time lets the compiler reorder the loops into one pass
/// over B's rows per vector, which strides through memory (docs/design.md, "Choices the kernels
/// make").
#[inline(always)]
pub(super) fn copy_groups<const W: usize>(data: &[f32], (stride, n): (usize, usize), groups: &mut [[f32; W]]) {
    for (p, group) in groups.iter_mut().enumerate() {
        let source = &data[p * stride..][..n];
        if n == W {
            group.copy_from_slice(source);
        } else {
            group[..n].copy_from_slice(source);
        }
    }
}

/// Loads eight values (the packing's unit, whatever the tile's vector width).
#[inline(always)]
pub(super) fn load8(values: &[f32]) -> f32x8 {
    f32x8::new(values.try_into().expect("eight values"))
}

/// Packs columns `jc..jc + nc` and depths `pc..pc + kc` of `op(B)` into `out` as `NR`-wide
/// panels of `kc * NR` values each, one after the other.
pub(super) fn pack_b_block(b: Operand<'_>, cols: (usize, usize), depth: (usize, usize), out: &mut [f32]) {
    match nr() {
        32 => pack_b_block_as::<32>(b, cols, depth, out),
        16 => pack_b_block_as::<16>(b, cols, depth, out),
        8 => pack_b_block_as::<8>(b, cols, depth, out),
        width => unreachable!("no level has {width}-column tiles"),
    }
}

/// [`pack_b_block`] for panels `NR` columns wide.
pub(super) fn pack_b_block_as<const NR: usize>(
    b: Operand<'_>,
    (jc, nc): (usize, usize),
    (pc, kc): (usize, usize),
    out: &mut [f32],
) {
    let (row_stride, col_stride) = b.strides();
    for (jp, panel) in out.chunks_exact_mut(kc * NR).take(nc.div_ceil(NR)).enumerate() {
        let j0 = jp * NR;
        pack_panel::<NR>(b.data, (col_stride, row_stride), (jc + j0, NR.min(nc - j0)), (pc, kc), panel);
    }
}
