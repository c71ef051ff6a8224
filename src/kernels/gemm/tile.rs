//! The register tiles: the level's tile shape, the micro-kernel, and the loops over one block
//! of B that run it, once per level (`simd!`) per row panel.

use super::*;

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
pub(super) fn tile_heights() -> &'static [usize] {
    match simd_level() {
        SimdLevel::Avx512 => &[14, 12, 10, 8],
        _ => &[6, 5, 4],
    }
}

/// The largest tile height of any level, which sizes the packing buffer for A.
pub(super) const MAX_MR: usize = 14;

/// Heights below the level's own, for products of fewer rows than its smallest tile: one
/// row (generating text, a token at a time) in an 8-row tile would multiply seven rows of
/// padding.
const SHORT_HEIGHTS: [usize; 6] = [1, 2, 3, 4, 5, 6];

/// The tile height for `m` rows: the fewest padded rows, the taller tile among equals; `m`
/// itself when it is shorter than every tile of the level and one of [`SHORT_HEIGHTS`].
pub(super) fn tile_rows(m: usize) -> usize {
    let shortest = tile_heights().iter().copied().min().expect("every level has tile heights");
    if m < shortest && SHORT_HEIGHTS.contains(&m) {
        return m;
    }
    let heights = tile_heights().iter().copied();
    heights.min_by_key(|&mr| (m.div_ceil(mr) * mr, usize::MAX - mr)).expect("every level has tile heights")
}

/// Columns of the register tile, two vectors of the level in use: the width of B's packed
/// panels.
pub(super) fn nr() -> usize {
    2 * simd_level().lanes()
}

/// One row panel of `op(A)` (rows `ir..ir + mr`, depths `pc..pc + kc`) as the micro-kernel
/// reads it.
#[derive(Clone, Copy)]
pub(super) enum ARowPanel<'a> {
    /// Packed: `kc` groups of `MR` values, depth after depth.
    Packed(&'a [f32]),
    /// In place in a row-major `op(A)` (not transposed): `data` starts at the panel's first
    /// element, its `rows` rows (at most `MR`) are `ld` apart, `kc` values each. Packing such a
    /// panel transposes it (each group takes one value from every row); reading it in place
    /// costs the same loads, one broadcast per value either way, from `MR` runs that the
    /// prefetchers follow.
    InPlace { data: &'a [f32], ld: usize, rows: usize, kc: usize },
}

impl<'a> ARowPanel<'a> {
    /// The values of a one-row panel, in depth order.
    fn single_row(self) -> &'a [f32] {
        match self {
            ARowPanel::Packed(values) => values,
            ARowPanel::InPlace { data, kc, .. } => &data[..kc],
        }
    }
}

/// The `MR x (VECS * LANES)` register tile: `sum over p of a_panel[p][i] * b_rows[p][j]`, for
/// `p` in `0..a_panel.len() / MR`. `VECS` is 2 (a whole `NR`-column panel) or 1 (an edge panel of
/// at most `LANES` columns, which would waste half of a two-vector tile). `b_rows` yields the
/// panel's rows, each at least `VECS * LANES` long: generic so that packed rows (`chunks_exact`)
/// keep a loop without length checks.
#[inline(always)]
pub(super) fn micro_kernel<'b, V: Simd, const MR: usize, const VECS: usize>(
    a_panel: &[f32],
    b_rows: impl Iterator<Item = &'b [f32]>,
) -> [[V; VECS]; MR] {
    let mut acc = [[V::zero(); VECS]; MR];
    for (a, b) in a_panel.chunks_exact(MR).zip(b_rows) {
        add_outer_product(&mut acc, |i| a[i], b);
    }
    acc
}

/// [`micro_kernel`] with A read in place: `rows` rows (at most `MR`) of `kc` values, `ld`
/// apart from the start of `data`. Rows past `rows` repeat the last one (their sums are never
/// stored).
#[inline(always)]
fn micro_kernel_in_place<'b, V: Simd, const MR: usize, const VECS: usize>(
    (data, ld): (&[f32], usize),
    (rows, kc): (usize, usize),
    b_rows: impl Iterator<Item = &'b [f32]>,
) -> [[V; VECS]; MR] {
    let starts: [usize; MR] = std::array::from_fn(|i| i.min(rows - 1) * ld);
    let data = &data[..(rows - 1) * ld + kc];
    let mut acc = [[V::zero(); VECS]; MR];
    for (p, b) in (0..kc).zip(b_rows) {
        // SAFETY: `starts[i] <= (rows - 1) * ld` and `p < kc`, so the index is below
        // `(rows - 1) * ld + kc`, the length of `data` (checked by the slicing above).
        add_outer_product(&mut acc, |i| unsafe { *data.get_unchecked(starts[i] + p) }, b);
    }
    acc
}

/// One depth of the register tile: `acc[i][..] += a(i) * b[..VECS * LANES]`.
#[inline(always)]
fn add_outer_product<V: Simd, const MR: usize, const VECS: usize>(
    acc: &mut [[V; VECS]; MR],
    a: impl Fn(usize) -> f32,
    b: &[f32],
) {
    let mut b_vectors = [V::zero(); VECS];
    for (v, b_vector) in b_vectors.iter_mut().enumerate() {
        *b_vector = V::load(&b[v * V::LANES..]);
    }
    for (i, row) in acc.iter_mut().enumerate() {
        let ai = V::splat(a(i));
        for (acc_v, &b_v) in row.iter_mut().zip(&b_vectors) {
            *acc_v = ai.mul_add(b_v, *acc_v);
        }
    }
}

/// `C[i][j] = alpha * acc[i][j] + beta * C[i][j]` for the `rows x cols` corner of the tile at
/// `(i0, j0)`. `beta == 0` never reads C. Full and partial tiles use the same arithmetic, so a
/// value does not depend on where the tile boundaries fall.
#[inline(always)]
pub(super) fn store_tile<V: Simd, const MR: usize, const VECS: usize>(
    acc: &[[V; VECS]; MR],
    c: &mut OutMatrix<'_>,
    (i0, j0): (usize, usize),
    (rows, cols): (usize, usize),
    alpha: f32,
    beta: f32,
) {
    for (i, row_acc) in acc.iter().enumerate().take(rows) {
        let c_row = c.segment(i0 + i, j0, cols);
        if cols == VECS * V::LANES {
            store_vectors(c_row, row_acc, alpha, beta);
        } else {
            for (part, &a) in c_row.chunks_mut(V::LANES).zip(row_acc) {
                for (c_ij, &a) in part.iter_mut().zip(a.to_array().as_ref()) {
                    *c_ij = if beta == 0.0 { a * alpha } else { a * alpha + *c_ij * beta };
                }
            }
        }
    }
}

/// `c_row = alpha * acc + beta * c_row` for whole vectors (`c_row` is `acc.len() * LANES` long);
/// `beta == 0` never reads C.
#[inline(always)]
fn store_vectors<V: Simd>(c_row: &mut [f32], acc: &[V], alpha: f32, beta: f32) {
    let (alpha_v, beta_v) = (V::splat(alpha), V::splat(beta));
    for (part, &a) in c_row.chunks_exact_mut(V::LANES).zip(acc) {
        let v = if beta == 0.0 { a * alpha_v } else { a * alpha_v + V::load(part) * beta_v };
        v.store(part);
    }
}

/// Asks for the cache lines of the tile of C at `(i0, j0)` (`rows x cols`) while the
/// micro-kernel runs. A window's logits (`rows x classes`, tens of MB for a large vocabulary)
/// are written where nothing has been for a whole step, and the SGD update reads `W`'s rows
/// `classes` floats apart: without the hint each store or load of such a tile waits for memory.
#[inline(always)]
fn prefetch_tile(c: &mut OutMatrix<'_>, (i0, j0): (usize, usize), (rows, cols): (usize, usize)) {
    #[cfg(target_arch = "x86_64")]
    for i in 0..rows {
        let row = c.segment(i0 + i, j0, cols);
        for offset in (0..cols).step_by(16) {
            // SAFETY: a prefetch is a hint: it reads nothing into the program and never
            // faults; the address is inside C (segment checked it).
            unsafe {
                std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                    row[offset..].as_ptr().cast::<i8>(),
                )
            };
        }
    }
}

/// Where the micro-kernel finds the `kc x NR` panels of one `kc x nc` block of `op(B)`
/// (`NR` is [`nr`]).
#[derive(Clone, Copy)]
pub(super) enum BPanels<'a> {
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
pub(super) enum APanels<'a> {
    /// Packed here, one row panel at a time, into the thread's buffer.
    Unpacked(Operand<'a>),
    /// Packed in advance, for the whole of `op(A)`.
    Packed(&'a PackedA),
}

impl APanels<'_> {
    /// Rows per panel for a product with `m` rows: a packed A's own.
    pub(super) fn tile_rows(&self, m: usize) -> usize {
        match self {
            APanels::Unpacked(_) => tile_rows(m),
            APanels::Packed(packed) => packed.mr,
        }
    }
}

/// Adds `alpha * op(A)[.., pc..pc + kc] * op(B)[pc..pc + kc, jc..jc + nc]` into
/// `C[.., jc..jc + nc]` (scaling C by `beta` first), one row panel of A at a time.
pub(super) fn multiply_rows(
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
pub(super) fn multiply_rows_tiled<const MR: usize>(
    a: APanels<'_>,
    (pc, kc): (usize, usize),
    b_panels: BPanels<'_>,
    (jc, nc): (usize, usize),
    (alpha, beta): (f32, f32),
    c: &mut OutMatrix<'_>,
) {
    let m = c.rows();
    // Row panel `ir` of A against every panel of this block of B.
    let multiply_panel = |ir: usize, a_panel: ARowPanel<'_>, c: &mut OutMatrix<'_>| {
        let rows = (ir, MR.min(m - ir));
        simd!(V => multiply_panel_with::<V, MR>(a_panel, rows, b_panels, (jc, nc), (alpha, beta), c))
    };
    match a {
        APanels::Unpacked(a) if a.trans == Transpose::No => {
            for ir in (0..m).step_by(MR) {
                let (data, ld, rows) = (&a.data[ir * a.ld + pc..], a.ld, MR.min(m - ir));
                multiply_panel(ir, ARowPanel::InPlace { data, ld, rows, kc }, c);
            }
        }
        APanels::Unpacked(a) => with_pack_a(|pack_a| {
            for ir in (0..m).step_by(MR) {
                pack_panel::<MR>(a.data, a.strides(), (ir, MR.min(m - ir)), (pc, kc), pack_a);
                multiply_panel(ir, ARowPanel::Packed(&pack_a[..kc * MR]), c);
            }
        }),
        APanels::Packed(packed) => {
            for ir in (0..m).step_by(MR) {
                multiply_panel(ir, ARowPanel::Packed(packed.panel(ir, (pc, kc))), c);
            }
        }
    }
}

/// One row panel of A (rows `ir..ir + mr`) against every panel of B in columns `jc..jc + nc`,
/// with vectors `V`. The level is chosen around this (by `simd!`), once per row panel: the
/// loops outside are not compiled per level, and a choice per tile cost a few percent at
/// `H = 100`.
#[inline(always)]
pub(super) fn multiply_panel_with<V: Simd, const MR: usize>(
    a_panel: ARowPanel<'_>,
    (ir, mr): (usize, usize),
    b_panels: BPanels<'_>,
    (jc, nc): (usize, usize),
    (alpha, beta): (f32, f32),
    c: &mut OutMatrix<'_>,
) {
    let nr = 2 * V::LANES;
    let first_panel =
        if MR == 1 { multiply_row_wide::<V>(a_panel.single_row(), ir, b_panels, jc, (alpha, beta), c) } else { 0 };
    for jp in first_panel..nc.div_ceil(nr) {
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

/// Panels of B multiplied at once by a single row of A: `WIDE_PANELS x NR` columns.
const WIDE_PANELS: usize = 8;

/// A single row of A (row `ir` of C) against B read in place, `WIDE_PANELS` panels at a time:
/// each row of B is then read as one contiguous run instead of two vectors per panel, which
/// the prefetchers follow (one row of logits reads all of `W`, from the last-level cache).
/// Each element is the same sum in the same order as [`micro_kernel`]'s, stored as
/// [`store_tile`] stores it, so the bits do not change. Returns the panels done (none unless B
/// is in place).
#[inline(always)]
fn multiply_row_wide<V: Simd>(
    a_row: &[f32],
    ir: usize,
    b_panels: BPanels<'_>,
    jc: usize,
    (alpha, beta): (f32, f32),
    c: &mut OutMatrix<'_>,
) -> usize {
    let BPanels::InPlace { data, ld, whole_panels, .. } = b_panels else { return 0 };
    let nr = 2 * V::LANES;
    let groups = whole_panels / WIDE_PANELS;
    for group in 0..groups {
        let j0 = group * WIDE_PANELS * nr;
        let mut acc = [V::zero(); 2 * WIDE_PANELS];
        for (k, &a) in a_row.iter().enumerate() {
            let (a, b) = (V::splat(a), &data[k * ld + j0..]);
            for (v, acc_v) in acc.iter_mut().enumerate() {
                *acc_v = a.mul_add(V::load(&b[v * V::LANES..]), *acc_v);
            }
        }
        store_vectors(c.segment(ir, jc + j0, WIDE_PANELS * nr), &acc, alpha, beta);
    }
    groups * WIDE_PANELS
}

/// One register tile: the micro-kernel over a panel of B whose rows are `b_stride` apart, then
/// the store into C at `position` (`size` rows x columns).
#[inline(always)]
pub(super) fn multiply_tile<V: Simd, const MR: usize, const VECS: usize>(
    a_panel: ARowPanel<'_>,
    (b_panel, b_stride): (&[f32], usize),
    c: &mut OutMatrix<'_>,
    (position, size): ((usize, usize), (usize, usize)),
    alpha: f32,
    beta: f32,
) {
    let nr = 2 * V::LANES;
    prefetch_tile(c, position, size);
    let acc = match a_panel {
        ARowPanel::Packed(a) if b_stride == nr => micro_kernel::<V, MR, VECS>(a, b_panel.chunks_exact(nr)),
        ARowPanel::Packed(a) => micro_kernel::<V, MR, VECS>(a, b_panel.chunks(b_stride)),
        ARowPanel::InPlace { data, ld, rows, kc } if b_stride == nr => {
            micro_kernel_in_place::<V, MR, VECS>((data, ld), (rows, kc), b_panel.chunks_exact(nr))
        }
        ARowPanel::InPlace { data, ld, rows, kc } => {
            micro_kernel_in_place::<V, MR, VECS>((data, ld), (rows, kc), b_panel.chunks(b_stride))
        }
    };
    store_tile(&acc, c, position, size, alpha, beta);
}
