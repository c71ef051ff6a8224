//! Single-precision GEMM: `C = alpha * op(A) * op(B) + beta * C`, row-major.
//!
//! A small packed implementation in the style of BLIS and `matrixmultiply`: `op(B)` is packed
//! into blocks of `KC x NC` (panels `NR` columns wide), `op(A)` into panels of `MR x KC`, and a
//! `MR x NR` register-tiled micro-kernel does the multiply-adds. It exists because
//! `matrixmultiply` and `gemm` allocate their packing buffers on the heap at every call, and a
//! training step must not allocate: here the packing buffers are fixed-size thread-locals that
//! live in each thread's static TLS block, so they are never taken from the heap.

use super::out_matrix::{Axis, OutMatrix};
use super::simd::{lane_sum, simd, simd_level, Simd, SimdLevel};
use std::cell::RefCell;
use wide::f32x8;

pub use packed::{gemm_packed, gemm_packed_a, PackedA, PackedB};
pub(super) use packed::{gemm_packed_a_into, gemm_packed_into};

/// Whether an operand is used as stored (`No`) or transposed (`Yes`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transpose {
    /// `op(X) = X`.
    No,
    /// `op(X) = X^T`.
    Yes,
}

/// The register tile is `MR` rows by two vectors of the level in use ([`simd_level`]). With
/// AVX-512 (32 vector registers of 16 lanes) up to 14 x 32: 28 accumulators, two B vectors and
/// one broadcast A value. With AVX2 up to 6 x 16 in 8-lane registers (12 accumulators of 16
/// registers); the baseline's 4-lane tiles are up to 6 x 8 (its multiply-adds need a scratch
/// register each).
///
/// `MR` is chosen per call from these heights so that the row panels waste the fewest padded
/// rows (50 rows take five 10-row panels rather than five 12-row ones, a sixth of them
/// padding): every size keeps the loop bound by the multiply-adds (`MR + 2` loads feed `2 * MR`
/// FMAs), and the tile shape never changes the arithmetic of a `C` element, so results do not
/// depend on it.
fn tile_heights() -> &'static [usize] {
    match simd_level() {
        SimdLevel::Avx512 => &[14, 12, 10, 8],
        _ => &[6, 5, 4],
    }
}

/// The largest tile height of any level, which sizes the packing buffer for A.
const MAX_MR: usize = 14;

/// The tile height for `m` rows: the fewest padded rows, the taller tile among equals.
fn tile_rows(m: usize) -> usize {
    let heights = tile_heights().iter().copied();
    heights.min_by_key(|&mr| (m.div_ceil(mr) * mr, usize::MAX - mr)).expect("every level has tile heights")
}

/// Columns of the register tile, two vectors of the level in use: the width of B's packed
/// panels.
fn nr() -> usize {
    2 * simd_level().lanes()
}
/// Depth of one packed block: `MR x KC` of A and `KC x NR` of B (at most 46 KiB) stay in L1.
const KC: usize = 256;
/// Columns of one packed block of B: `KC x NC` (256 KiB) stays in L2.
const NC: usize = 256;

thread_local! {
    static PACK_A: RefCell<[f32; MAX_MR * KC]> = const { RefCell::new([0.0; MAX_MR * KC]) };
    static PACK_B: RefCell<[f32; KC * NC]> = const { RefCell::new([0.0; KC * NC]) };
}

/// Runs `f` on this thread's packing buffer for A (or B). A thread that is already using its
/// buffer (a GEMM started from inside a parallel GEMM's task, which rayon can schedule on a
/// thread that is waiting for its own GEMM) gets a temporary one from the heap instead.
fn with_pack_a<R>(f: impl FnOnce(&mut [f32]) -> R) -> R {
    PACK_A.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buffer) => f(&mut buffer[..]),
        Err(_) => f(&mut vec![0.0; MAX_MR * KC]),
    })
}

fn with_pack_b<R>(f: impl FnOnce(&mut [f32]) -> R) -> R {
    PACK_B.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buffer) => f(&mut buffer[..]),
        Err(_) => f(&mut vec![0.0; KC * NC]),
    })
}

/// A read-only matrix operand: `op(X)` of `rows x cols` over `data` with leading dimension `ld`.
#[derive(Clone, Copy)]
struct Operand<'a> {
    data: &'a [f32],
    ld: usize,
    trans: Transpose,
}

impl Operand<'_> {
    /// Distance in `data` between consecutive rows and consecutive columns of `op(X)`.
    fn strides(&self) -> (usize, usize) {
        match self.trans {
            Transpose::No => (self.ld, 1),
            Transpose::Yes => (1, self.ld),
        }
    }

    /// `op(X)` without its first `rows` rows.
    fn skip_rows(self, rows: usize) -> Self {
        let (row_stride, _) = self.strides();
        Operand { data: &self.data[rows * row_stride..], ..self }
    }

    /// `op(X)` without its first `cols` columns.
    fn skip_cols(self, cols: usize) -> Self {
        let (_, col_stride) = self.strides();
        Operand { data: &self.data[cols * col_stride..], ..self }
    }

    /// Asserts that `op(X)` of `rows x cols` fits in `data` with a valid leading dimension;
    /// the message names `kernel` and the operand, `name`.
    #[track_caller]
    fn check(&self, kernel: &str, name: &str, rows: usize, cols: usize) {
        let (stored_rows, stored_cols) = match self.trans {
            Transpose::No => (rows, cols),
            Transpose::Yes => (cols, rows),
        };
        assert!(
            self.ld >= stored_cols.max(1),
            "{kernel}: leading dimension of {name} ({}) is below its {stored_cols} stored columns",
            self.ld
        );
        if stored_rows > 0 && stored_cols > 0 {
            let needed = (stored_rows - 1) * self.ld + stored_cols;
            assert!(
                self.data.len() >= needed,
                "{kernel}: {name} has {} elements, but a {stored_rows} x {stored_cols} matrix with ld {} needs {needed}",
                self.data.len(),
                self.ld
            );
        }
    }
}

/// Copies the block of `op(X)` made of "free" indices `free0..free0 + nfree` (at most `W`)
/// and depth indices `k0..k0 + kc` into `out` as `kc` groups of `W` values (free index
/// fastest), zero-padding free indices past `nfree`. `free_stride` and `depth_stride` are the
/// distances in `data` between consecutive free and depth indices; one of them is 1.
fn pack_panel<const W: usize>(
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
        let first = k0 * depth_stride + free0;
        simd!(V => copy_groups::<V, W>(&data[first..], (depth_stride, nfree), groups))
    }
    if nfree < W {
        for group in groups.iter_mut() {
            group[nfree..].fill(0.0);
        }
    }
}

/// `groups[p][..n] = data[p * stride..][..n]` for every group, the rest of each group untouched: a vector
/// of the level at a time rather than through a `memcpy` call per group, whose call overhead
/// dominated packing (measured), and with the level's widest registers (16-byte copies made a
/// build without `-C target-cpu` spend a quarter longer packing).
#[inline(always)]
fn copy_groups<V: Simd, const W: usize>(data: &[f32], (stride, n): (usize, usize), groups: &mut [[f32; W]]) {
    let whole = n / V::LANES * V::LANES;
    for (p, group) in groups.iter_mut().enumerate() {
        let source = &data[p * stride..][..n];
        for (dst, src) in group[..whole].chunks_exact_mut(V::LANES).zip(source.chunks_exact(V::LANES)) {
            V::load(src).store(dst);
        }
        for (dst, &src) in group[whole..n].iter_mut().zip(&source[whole..]) {
            *dst = src;
        }
    }
}

/// Loads eight values (the packing's unit, whatever the tile's vector width).
#[inline(always)]
fn load8(values: &[f32]) -> f32x8 {
    f32x8::new(values.try_into().expect("eight values"))
}

/// The `MR x (VECS * LANES)` register tile: `sum over p of a_panel[p][i] * b_rows[p][j]`, for
/// `p` in `0..a_panel.len() / MR`. `VECS` is 2 (a whole `NR`-column panel) or 1 (an edge panel of
/// at most `LANES` columns, which would waste half of a two-vector tile). `b_rows` yields the
/// panel's rows, each at least `VECS * LANES` long: generic so that packed rows (`chunks_exact`)
/// keep a loop without length checks.
#[inline(always)]
fn micro_kernel<'b, V: Simd, const MR: usize, const VECS: usize>(
    a_panel: &[f32],
    b_rows: impl Iterator<Item = &'b [f32]>,
) -> [[V; VECS]; MR] {
    let mut acc = [[V::zero(); VECS]; MR];
    for (a, b) in a_panel.chunks_exact(MR).zip(b_rows) {
        let mut b_vectors = [V::zero(); VECS];
        for (v, b_vector) in b_vectors.iter_mut().enumerate() {
            *b_vector = V::load(&b[v * V::LANES..]);
        }
        for (row, &ai) in acc.iter_mut().zip(a) {
            let ai = V::splat(ai);
            for (acc_v, &b_v) in row.iter_mut().zip(&b_vectors) {
                *acc_v = ai.mul_add(b_v, *acc_v);
            }
        }
    }
    acc
}

/// `C[i][j] = alpha * acc[i][j] + beta * C[i][j]` for the `rows x cols` corner of the tile at
/// `(i0, j0)`. `beta == 0` never reads C. Full and partial tiles use the same arithmetic, so a
/// value does not depend on where the tile boundaries fall.
#[inline(always)]
fn store_tile<V: Simd, const MR: usize, const VECS: usize>(
    acc: &[[V; VECS]; MR],
    c: &mut OutMatrix<'_>,
    (i0, j0): (usize, usize),
    (rows, cols): (usize, usize),
    alpha: f32,
    beta: f32,
) {
    let alpha_v = V::splat(alpha);
    let beta_v = V::splat(beta);
    for (i, row_acc) in acc.iter().enumerate().take(rows) {
        let c_row = c.segment(i0 + i, j0, cols);
        if cols == VECS * V::LANES {
            for (part, &a) in c_row.chunks_exact_mut(V::LANES).zip(row_acc) {
                let v = if beta == 0.0 { a * alpha_v } else { a * alpha_v + V::load(part) * beta_v };
                v.store(part);
            }
        } else {
            for (part, &a) in c_row.chunks_mut(V::LANES).zip(row_acc) {
                for (c_ij, &a) in part.iter_mut().zip(a.to_array().as_ref()) {
                    *c_ij = if beta == 0.0 { a * alpha } else { a * alpha + *c_ij * beta };
                }
            }
        }
    }
}

/// `C = beta * C` for the whole of C (the product of an empty K dimension).
fn scale_c(beta: f32, c: &mut OutMatrix<'_>) {
    let n = c.cols();
    for i in 0..c.rows() {
        for c_ij in c.segment(i, 0, n) {
            *c_ij = if beta == 0.0 { 0.0 } else { *c_ij * beta };
        }
    }
}

/// Packs columns `jc..jc + nc` and depths `pc..pc + kc` of `op(B)` into `out` as `NR`-wide
/// panels of `kc * NR` values each, one after the other.
fn pack_b_block(b: Operand<'_>, cols: (usize, usize), depth: (usize, usize), out: &mut [f32]) {
    match nr() {
        32 => pack_b_block_as::<32>(b, cols, depth, out),
        16 => pack_b_block_as::<16>(b, cols, depth, out),
        8 => pack_b_block_as::<8>(b, cols, depth, out),
        width => unreachable!("no level has {width}-column tiles"),
    }
}

/// [`pack_b_block`] for panels `NR` columns wide.
fn pack_b_block_as<const NR: usize>(
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

/// Where the micro-kernel finds the `kc x NR` panels of one `kc x nc` block of `op(B)`
/// (`NR` is [`nr`]).
#[derive(Clone, Copy)]
enum BPanels<'a> {
    /// Packed by [`pack_b_block`] for a depth of `kc`: panel `jp` at `jp * kc * NR`, its rows
    /// `NR` apart.
    Packed { data: &'a [f32], kc: usize },
    /// In place in a row-major `op(B)` (not transposed): `data` starts at the block's first
    /// element and its rows are `ld` apart. Only a ragged last panel is packed, into `edge`.
    InPlace { data: &'a [f32], ld: usize, whole_panels: usize, edge: &'a [f32] },
}

impl BPanels<'_> {
    /// Panel `jp`, and the distance between its rows.
    fn panel(&self, jp: usize, nr: usize) -> (&[f32], usize) {
        match *self {
            BPanels::Packed { data, kc } => (&data[jp * kc * nr..], nr),
            BPanels::InPlace { data, ld, whole_panels, edge } => {
                if jp < whole_panels {
                    (&data[jp * nr..], ld)
                } else {
                    (edge, nr)
                }
            }
        }
    }
}

/// Where the micro-kernel finds the `MR x kc` row panels of `op(A)`.
#[derive(Clone, Copy)]
enum APanels<'a> {
    /// Packed here, one row panel at a time, into the thread's buffer.
    Unpacked(Operand<'a>),
    /// Packed in advance, for the whole of `op(A)`.
    Packed(&'a PackedA),
}

impl APanels<'_> {
    /// Rows per panel for a product with `m` rows: a packed A's own.
    fn tile_rows(&self, m: usize) -> usize {
        match self {
            APanels::Unpacked(_) => tile_rows(m),
            APanels::Packed(packed) => packed.mr,
        }
    }
}

/// `$f::<MR>` for the tile height `$mr`, one monomorphised copy per height (so that the
/// accumulators stay in registers); the arms cover `tile_heights()` of every level.
macro_rules! at_tile_height {
    ($mr:expr, $f:ident) => {
        match $mr {
            14 => $f::<14>,
            12 => $f::<12>,
            10 => $f::<10>,
            8 => $f::<8>,
            6 => $f::<6>,
            5 => $f::<5>,
            4 => $f::<4>,
            _ => unreachable!("tile heights come from tile_heights()"),
        }
    };
}

/// Adds `alpha * op(A)[.., pc..pc + kc] * op(B)[pc..pc + kc, jc..jc + nc]` into
/// `C[.., jc..jc + nc]` (scaling C by `beta` first), one row panel of A at a time.
fn multiply_rows(
    a: APanels<'_>,
    depth: (usize, usize),
    b_panels: BPanels<'_>,
    cols: (usize, usize),
    (alpha, beta): (f32, f32),
    c: &mut OutMatrix<'_>,
) {
    let run = at_tile_height!(a.tile_rows(c.rows()), multiply_rows_tiled);
    run(a, depth, b_panels, cols, (alpha, beta), c)
}

/// [`multiply_rows`] with a tile height fixed at compile time.
fn multiply_rows_tiled<const MR: usize>(
    a: APanels<'_>,
    (pc, kc): (usize, usize),
    b_panels: BPanels<'_>,
    (jc, nc): (usize, usize),
    (alpha, beta): (f32, f32),
    c: &mut OutMatrix<'_>,
) {
    let m = c.rows();
    // Row panel `ir` of A against every panel of this block of B.
    let multiply_panel = |ir: usize, a_panel: &[f32], c: &mut OutMatrix<'_>| {
        let rows = (ir, MR.min(m - ir));
        simd!(V => multiply_panel_with::<V, MR>(a_panel, rows, b_panels, (jc, nc), (alpha, beta), c))
    };
    match a {
        APanels::Unpacked(a) => with_pack_a(|pack_a| {
            for ir in (0..m).step_by(MR) {
                pack_panel::<MR>(a.data, a.strides(), (ir, MR.min(m - ir)), (pc, kc), pack_a);
                multiply_panel(ir, &pack_a[..kc * MR], c);
            }
        }),
        APanels::Packed(packed) => {
            for ir in (0..m).step_by(MR) {
                multiply_panel(ir, packed.panel(ir, (pc, kc)), c);
            }
        }
    }
}

/// One row panel of A (rows `ir..ir + mr`) against every panel of B in columns `jc..jc + nc`,
/// with vectors `V`. The level is chosen around this (by `simd!`), once per row panel: the
/// loops outside are not compiled per level, and a choice per tile cost a few percent at
/// `H = 100`.
#[inline(always)]
fn multiply_panel_with<V: Simd, const MR: usize>(
    a_panel: &[f32],
    (ir, mr): (usize, usize),
    b_panels: BPanels<'_>,
    (jc, nc): (usize, usize),
    (alpha, beta): (f32, f32),
    c: &mut OutMatrix<'_>,
) {
    let nr = 2 * V::LANES;
    for jp in 0..nc.div_ceil(nr) {
        let j0 = jp * nr;
        let (b_panel, b_stride) = b_panels.panel(jp, nr);
        let cols = nr.min(nc - j0);
        let tile = ((ir, jc + j0), (mr, cols));
        if cols <= V::LANES {
            multiply_tile::<V, MR, 1>(a_panel, (b_panel, b_stride), c, tile, alpha, beta);
        } else {
            multiply_tile::<V, MR, 2>(a_panel, (b_panel, b_stride), c, tile, alpha, beta);
        }
    }
}

/// One register tile: the micro-kernel over a panel of B whose rows are `b_stride` apart, then
/// the store into C at `position` (`size` rows x columns).
#[inline(always)]
fn multiply_tile<V: Simd, const MR: usize, const VECS: usize>(
    a_panel: &[f32],
    (b_panel, b_stride): (&[f32], usize),
    c: &mut OutMatrix<'_>,
    (position, size): ((usize, usize), (usize, usize)),
    alpha: f32,
    beta: f32,
) {
    let nr = 2 * V::LANES;
    let acc = if b_stride == nr {
        micro_kernel::<V, MR, VECS>(a_panel, b_panel.chunks_exact(nr))
    } else {
        micro_kernel::<V, MR, VECS>(a_panel, b_panel.chunks(b_stride))
    };
    store_tile(&acc, c, position, size, alpha, beta);
}

/// Rows and columns of C that one dot-product tile computes: 24 accumulators.
const DOT_ROWS: usize = 3;
const DOT_COLS: usize = 8;
/// Depth of one dot-product block: 8 rows of B (32 KiB) stay in L1.
const DOT_KC: usize = 1024;

/// Whether `C = A * B^T` is better done as dot products: both operands are then contiguous along
/// the depth, and when the depth dominates and C is narrow (say `dlogits * W^T` over a whole
/// vocabulary, K = 10,000 and N = 100) packing would have to transpose both for little reuse.
/// Dot products need no packing at all. (Measured when the model still made that call: c3 steps
/// a few percent faster, c4's N = 650 slower. The fused output layer's per-panel products have
/// K = 256 and no longer come here.)
fn use_dot_products(a: &Operand<'_>, b: &Operand<'_>, n: usize, k: usize) -> bool {
    a.trans == Transpose::No && b.trans == Transpose::Yes && n <= 256 && k >= 512 && k >= 4 * n
}

/// `C = alpha * A * B^T + beta * C` by dot products: `A` row-major `m x k`, `B` row-major
/// `n x k`, both read in place. Each `C[i][j]` sums its depth in blocks of `DOT_KC`, each block
/// in `LANES` partial sums added up in a fixed order, so the result does not depend on where
/// `(i, j)` falls.
fn gemm_dot(k: usize, alpha: f32, a: Operand<'_>, b: Operand<'_>, beta: f32, c: &mut OutMatrix<'_>) {
    simd!(V => gemm_dot_with::<V>(k, alpha, a, b, beta, c))
}

/// [`gemm_dot`] with vectors `V`.
#[inline(always)]
fn gemm_dot_with<V: Simd>(k: usize, alpha: f32, a: Operand<'_>, b: Operand<'_>, beta: f32, c: &mut OutMatrix<'_>) {
    let (m, n) = (c.rows(), c.cols());
    for pc in (0..k).step_by(DOT_KC) {
        let kc = DOT_KC.min(k - pc);
        let whole = kc / V::LANES * V::LANES;
        let beta_block = if pc == 0 { beta } else { 1.0 };
        // Eight rows of B (32 KiB) stay in L1 while every row of A streams past them.
        for j0 in (0..n).step_by(DOT_COLS) {
            let cols = DOT_COLS.min(n - j0);
            // Rows past the edge repeat the last real row; their sums are not stored.
            let b_rows: [&[f32]; DOT_COLS] =
                std::array::from_fn(|j| &b.data[(j0 + j.min(cols - 1)) * b.ld + pc..][..kc]);
            for i0 in (0..m).step_by(DOT_ROWS) {
                let rows = DOT_ROWS.min(m - i0);
                let a_rows: [&[f32]; DOT_ROWS] =
                    std::array::from_fn(|r| &a.data[(i0 + r.min(rows - 1)) * a.ld + pc..][..kc]);
                let mut acc = [[V::zero(); DOT_COLS]; DOT_ROWS];
                for p in (0..whole).step_by(V::LANES) {
                    let mut a_vectors = [V::zero(); DOT_ROWS];
                    for (a_vector, a_row) in a_vectors.iter_mut().zip(&a_rows) {
                        *a_vector = V::load(&a_row[p..]);
                    }
                    for (j, b_row) in b_rows.iter().enumerate() {
                        let b_vector = V::load(&b_row[p..]);
                        for (row_acc, a_vector) in acc.iter_mut().zip(&a_vectors) {
                            row_acc[j] = a_vector.mul_add(b_vector, row_acc[j]);
                        }
                    }
                }
                for (r, row_acc) in acc.iter().enumerate().take(rows) {
                    let c_row = c.segment(i0 + r, j0, cols);
                    for (j, c_ij) in c_row.iter_mut().enumerate() {
                        let tail: f32 = a_rows[r][whole..].iter().zip(&b_rows[j][whole..]).map(|(x, y)| x * y).sum();
                        let dot = lane_sum(row_acc[j]) + tail;
                        *c_ij = if beta_block == 0.0 { dot * alpha } else { dot * alpha + *c_ij * beta_block };
                    }
                }
            }
        }
    }
}

/// Rows of C up to which a row-major `op(B)` is read in place rather than packed: B is then
/// reused by at most a few row panels, too few to pay for copying it (the RNN's per-step GEMMs,
/// `x * Wx` and c1's output layer), and the micro-kernel reads each of its rows as two vector
/// loads either way. Measured single-threaded on c1's shapes, several alternating runs:
/// `h * Wh` (10 x 100 x 100) 29-41 -> 57-68 GFLOP/s, `x * Wx` (50 x 100 x 100) 50-54 -> 81-85.
const IN_PLACE_MAX_ROWS: usize = 64;

/// The product of an empty matrix, if it is one: nothing to do when C is empty, `C = beta * C`
/// when the depth is 0. Returns whether it handled the product.
fn empty_product(k: usize, beta: f32, c: &mut OutMatrix<'_>) -> bool {
    if c.rows() == 0 || c.cols() == 0 {
        return true;
    }
    if k == 0 {
        scale_c(beta, c);
        return true;
    }
    false
}

/// The serial driver over an already validated problem; C is `m x n`.
fn gemm_serial(k: usize, alpha: f32, a: Operand<'_>, b: Operand<'_>, beta: f32, c: &mut OutMatrix<'_>) {
    if empty_product(k, beta, c) {
        return;
    }
    if use_dot_products(&a, &b, c.cols(), k) {
        gemm_dot(k, alpha, a, b, beta, c);
        return;
    }
    multiply_by_blocks_of_b(k, alpha, APanels::Unpacked(a), b, beta, c);
}

/// The packed product: B packed (or read in place) one `KC x NC` block at a time, each block
/// multiplied by all of A's row panels.
fn multiply_by_blocks_of_b(k: usize, alpha: f32, a: APanels<'_>, b: Operand<'_>, beta: f32, c: &mut OutMatrix<'_>) {
    let (m, n) = (c.rows(), c.cols());
    // In place only where a block of B spans no more memory than its packed copy would: rows
    // far apart (W with ld = V) would touch a page per row.
    let in_place = b.trans == Transpose::No && m <= IN_PLACE_MAX_ROWS && KC.min(k) * b.ld <= KC * NC;
    with_pack_b(|pack_b| {
        for ((jc, nc), (pc, kc)) in blocks_of_b(k, n) {
            let b_panels = if in_place {
                let nr = nr();
                let whole_panels = nc / nr;
                let edge_cols = nc - whole_panels * nr;
                if edge_cols > 0 {
                    pack_b_block(b, (jc + whole_panels * nr, edge_cols), (pc, kc), pack_b);
                }
                BPanels::InPlace { data: &b.data[pc * b.ld + jc..], ld: b.ld, whole_panels, edge: &pack_b[..kc * nr] }
            } else {
                pack_b_block(b, (jc, nc), (pc, kc), pack_b);
                BPanels::Packed { data: pack_b, kc }
            };
            let beta_block = if pc == 0 { beta } else { 1.0 };
            multiply_rows(a, (pc, kc), b_panels, (jc, nc), (alpha, beta_block), c);
        }
    });
}

/// The `(jc, nc), (pc, kc)` blocks of a `k x n` matrix B in the order the drivers multiply
/// them: `KC x NC` blocks, depth fastest, so that each block of C columns is finished before the
/// next is started.
fn blocks_of_b(k: usize, n: usize) -> impl Iterator<Item = ((usize, usize), (usize, usize))> {
    (0..n)
        .step_by(NC)
        .flat_map(move |jc| (0..k).step_by(KC).map(move |pc| ((jc, NC.min(n - jc)), (pc, KC.min(k - pc)))))
}

/// The operands of a GEMM call, checked; panics with a message naming the operand otherwise.
#[track_caller]
fn checked_operands<'a>(
    kernel: &str,
    (m, n, k): (usize, usize, usize),
    (a, lda, trans_a): (&'a [f32], usize, Transpose),
    (b, ldb, trans_b): (&'a [f32], usize, Transpose),
) -> (Operand<'a>, Operand<'a>) {
    let a = Operand { data: a, ld: lda, trans: trans_a };
    let b = Operand { data: b, ld: ldb, trans: trans_b };
    a.check(kernel, "A", m, k);
    b.check(kernel, "B", k, n);
    (a, b)
}

/// `C = alpha * op(A) * op(B) + beta * C` on the calling thread.
///
/// Shapes: `op(A)` is `m x k`, `op(B)` is `k x n`, `C` is `m x n`. Every matrix is row-major
/// with its own leading dimension: `A` is stored `m x k` (`lda >= k`) when `trans_a` is `No` and
/// `k x m` (`lda >= m`) when it is `Yes`; likewise `B` is stored `k x n` or `n x k`; `C[i][j]` is
/// `c[i * ldc + j]` with `ldc >= n`. When `beta == 0`, `C` is not read (it may hold NaN).
///
/// Each `C[i][j]` is accumulated over `p = 0..k` in order, with one fused multiply-add per
/// term, in blocks of 256: the result is the same wherever `(i, j)` falls in the matrix.
/// Never allocates. Panics if a slice is too short for its stated shape.
///
/// ```
/// use rnnlm::kernels::{gemm, Transpose};
/// // C (2 x 2) = A (2 x 3) * B (3 x 2), all row-major.
/// let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
/// let b = [1.0, 0.0, 0.0, 1.0, 1.0, 1.0];
/// let mut c = [0.0; 4];
/// gemm(2, 2, 3, 1.0, &a, 3, Transpose::No, &b, 2, Transpose::No, 0.0, &mut c, 2);
/// assert_eq!(c, [4.0, 5.0, 10.0, 11.0]);
/// ```
#[allow(clippy::too_many_arguments)]
pub fn gemm(
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: &[f32],
    lda: usize,
    trans_a: Transpose,
    b: &[f32],
    ldb: usize,
    trans_b: Transpose,
    beta: f32,
    c: &mut [f32],
    ldc: usize,
) {
    let (a, b) = checked_operands("gemm", (m, n, k), (a, lda, trans_a), (b, ldb, trans_b));
    gemm_serial(k, alpha, a, b, beta, &mut OutMatrix::new("gemm", c, m, n, ldc));
}

/// Work (multiply-adds) below which [`gemm_parallel`] stays on the calling thread: waking
/// another thread and handing it a block costs tens of microseconds, about what 4M
/// multiply-adds take here (measured: the chapter's 2M-multiply-add GEMMs ran 20% slower
/// overall when split).
pub(super) const PARALLEL_MIN_WORK: usize = 1 << 22;

/// [`gemm`] split over the current rayon pool.
///
/// Same contract as [`gemm`], and the same result bit for bit, whatever the number of threads:
/// the work is cut into blocks of whole rows or columns of C, by the shape and the number of
/// threads, but each element of C is computed by one block with [`gemm`]'s arithmetic. Small
/// problems run on the calling thread.
///
/// Each thread takes one block of whole rows of C (when C is at least as tall as it is wide)
/// or of whole columns, and runs [`gemm`] on it, packing for itself all of B (rows) or all of A
/// (columns): whichever is the smaller copy to repeat. On c4's shapes (700 x 650 x 650 and
/// 650 x 650 x 700) that measured 12 - 15 % faster than sharing each packed block of B, which
/// needs all threads to meet after every block, and than four blocks per thread, which pack
/// twice as often.
#[allow(clippy::too_many_arguments)]
pub fn gemm_parallel(
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    a: &[f32],
    lda: usize,
    trans_a: Transpose,
    b: &[f32],
    ldb: usize,
    trans_b: Transpose,
    beta: f32,
    c: &mut [f32],
    ldc: usize,
) {
    let (a, b) = checked_operands("gemm_parallel", (m, n, k), (a, lda, trans_a), (b, ldb, trans_b));
    let mut c = OutMatrix::new("gemm_parallel", c, m, n, ldc);
    let threads = rayon::current_num_threads();
    let mr = tile_rows(m);
    if threads == 1 || m * n * k < PARALLEL_MIN_WORK {
        gemm_serial(k, alpha, a, b, beta, &mut c);
    } else if use_dot_products(&a, &b, n, k) {
        // Dot products read the operands in place: blocks of rows share nothing.
        let per_block = m.div_ceil(threads).next_multiple_of(DOT_ROWS);
        c.par_blocks(Axis::Rows, per_block, |i0, c_block| gemm_dot(k, alpha, a.skip_rows(i0), b, beta, c_block));
    } else if n <= m && m.div_ceil(mr) >= threads {
        let per_block = m.div_ceil(mr).div_ceil(threads) * mr;
        c.par_blocks(Axis::Rows, per_block, |i0, c_block| gemm_serial(k, alpha, a.skip_rows(i0), b, beta, c_block));
    } else {
        let per_block = n.div_ceil(threads).next_multiple_of(nr());
        c.par_blocks(Axis::Cols, per_block, |j0, c_block| gemm_serial(k, alpha, a, b.skip_cols(j0), beta, c_block));
    }
}

// After the macros above, which the packed operands use too.
mod packed;
#[cfg(test)]
mod tests;
