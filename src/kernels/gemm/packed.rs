//! Operands packed once for many products: `op(B)` ([`PackedB`]) and `op(A)`
//! ([`PackedA`]), each in the layout the GEMM packs them into for itself, each remembering
//! whether it was packed transposed, so that a kernel can refuse the wrong one.

use super::*;

/// `op(B)` packed once for many products with it: the recurrent weights, which every time step
/// of a window multiplies, would otherwise be packed again at every step (at `H = 650` that
/// copy of 1.7 MB cost as much as the step's multiply-adds).
///
/// The blocks [`gemm_packed`] needs are stored in the order it uses them, each as
/// [`gemm`] packs it for itself, so a product with a packed B is bit-identical to the same
/// product by [`gemm`]. [`new`](Self::new) allocates; [`pack`](Self::pack) does not.
#[derive(Clone, Debug)]
pub struct PackedB {
    k: usize,
    n: usize,
    /// How the last [`pack`](Self::pack) read its matrix; `None` before the first.
    trans: Option<Transpose>,
    data: Vec<f32>,
}

impl PackedB {
    /// Bytes of its buffer.
    pub fn bytes(&self) -> usize {
        self.data.len() * size_of::<f32>()
    }

    /// Room for a packed `k x n` matrix, all zero until [`pack`](Self::pack)ed; `None` if that
    /// much memory cannot be had.
    pub fn new(k: usize, n: usize) -> Option<Self> {
        let data = crate::kernels::filled(n.checked_next_multiple_of(nr()).and_then(|n| n.checked_mul(k)), 0.0)?;
        Some(PackedB { k, n, trans: None, data })
    }

    /// Makes the packed matrix `k` deep (`k` at most the depth it was made with), without
    /// allocating: for products whose depth changes from call to call, such as a weight
    /// gradient over as many rows as a window has in one cluster of an adaptive softmax.
    /// Forgets the contents. Panics if `k` is 0 or larger than the room.
    pub fn set_depth(&mut self, k: usize) {
        let room = self.data.len() / self.n.next_multiple_of(nr());
        assert!(k > 0 && k <= room, "PackedB::set_depth: {k} is not in 1..={room}");
        self.k = k;
        self.trans = None;
    }

    /// Rows of the packed matrix (the depth of a product with it).
    pub fn k(&self) -> usize {
        self.k
    }

    /// Columns of the packed matrix.
    pub fn n(&self) -> usize {
        self.n
    }

    /// Whether the matrix was packed from B as stored (`No`) or from `B^T` (`Yes`); `None`
    /// until it is first packed.
    pub fn transpose(&self) -> Option<Transpose> {
        self.trans
    }

    /// Replaces the contents with `op(B)`, `k x n`, stored as for [`gemm`]'s B: `k x n` with
    /// `ldb >= n` when `trans_b` is `No`, `n x k` with `ldb >= k` when it is `Yes`. Never
    /// allocates. Panics if `b` is too short for its stated shape.
    pub fn pack(&mut self, b: &[f32], ldb: usize, trans_b: Transpose) {
        let b = Operand { data: b, ld: ldb, trans: trans_b };
        b.check("PackedB::pack", "B", self.k, self.n);
        self.trans = Some(trans_b);
        for (cols, depth) in blocks_of_b(self.k, self.n) {
            let start = self.block_start(cols, depth);
            pack_b_block(b, cols, depth, &mut self.data[start..]);
        }
    }

    /// Where block `(jc, nc), (pc, kc)` starts: every block column before it holds `NC * k`
    /// values, and every depth block before it in its own block column `kc * NR` per panel
    /// (`NR` is [`nr`]).
    fn block_start(&self, (jc, nc): (usize, usize), (pc, _): (usize, usize)) -> usize {
        jc * self.k + pc * nc.next_multiple_of(nr())
    }
}

/// `C = alpha * op(A) * B + beta * C` on the calling thread, with B packed in advance: the
/// same contract and the same result, bit for bit, as [`gemm`] with the `k x n` matrix that
/// was packed (`op(A)` is `m x k`, C is `m x n`). Never allocates.
#[allow(clippy::too_many_arguments)]
pub fn gemm_packed(
    m: usize,
    alpha: f32,
    a: &[f32],
    lda: usize,
    trans_a: Transpose,
    b: &PackedB,
    beta: f32,
    c: &mut [f32],
    ldc: usize,
) {
    gemm_packed_into(alpha, (a, lda, trans_a), b, beta, &mut OutMatrix::new("gemm_packed", c, m, b.n, ldc));
}

/// [`gemm_packed`] into a view of C (`m x n` is the view's shape).
pub(in crate::kernels) fn gemm_packed_into(
    alpha: f32,
    (a, lda, trans_a): (&[f32], usize, Transpose),
    b: &PackedB,
    beta: f32,
    c: &mut OutMatrix<'_>,
) {
    let n = b.n;
    assert_eq!(c.cols(), n, "gemm_packed: C has {} columns, but the packed B {n}", c.cols());
    multiply_by_columns_of_packed_b("gemm_packed", alpha, (a, lda, trans_a), b, 0, beta, c);
}

/// [`gemm_packed_into`] for the columns `first..first + n` of the packed B alone, where `n` is
/// the view's width: C is that slice of the whole product's columns. A recurrence splits each
/// step's product this way, one range of hidden units per thread. `first` must be a multiple
/// of the panel width, [`column_alignment`], so that the range starts at a packed panel. Each
/// element is computed as in the whole product, so the bits are the same.
pub(in crate::kernels) fn gemm_packed_columns_into(
    alpha: f32,
    (a, lda, trans_a): (&[f32], usize, Transpose),
    b: &PackedB,
    first: usize,
    beta: f32,
    c: &mut OutMatrix<'_>,
) {
    let n = c.cols();
    assert!(
        first.is_multiple_of(nr()) && first.checked_add(n).is_some_and(|end| end <= b.n),
        "gemm_packed_columns: columns {first}..{first} + {n} are not an aligned range of the packed B's {}",
        b.n
    );
    multiply_by_columns_of_packed_b("gemm_packed_columns", alpha, (a, lda, trans_a), b, first, beta, c);
}

/// What [`gemm_packed_into`] and [`gemm_packed_columns_into`] share once C's columns are
/// checked: `A` checked against the product's depth (the message naming `kernel`), then the
/// product with B's columns `first..first + n`.
fn multiply_by_columns_of_packed_b(
    kernel: &str,
    alpha: f32,
    (a, lda, trans_a): (&[f32], usize, Transpose),
    b: &PackedB,
    first: usize,
    beta: f32,
    c: &mut OutMatrix<'_>,
) {
    let a = Operand { data: a, ld: lda, trans: trans_a };
    a.check(kernel, "A", c.rows(), b.k);
    if !empty_product(b.k, beta, c) {
        multiply_by_packed_b(alpha, APanels::Unpacked(a), b, first, beta, c);
    }
}

/// The column ranges of B a product may be cut into (see [`gemm_packed_columns_into`]) start
/// at multiples of this: the width of a packed panel.
pub(in crate::kernels) fn column_alignment() -> usize {
    nr()
}

/// `C = alpha * op(A) * B[.., first..first + n] + beta * C` (`n` the width of C) block by
/// block of the packed B, in the order [`gemm`] takes the blocks of B, so that the sums are the
/// same. `first` is a multiple of the panel width.
fn multiply_by_packed_b(alpha: f32, a: APanels<'_>, b: &PackedB, first: usize, beta: f32, c: &mut OutMatrix<'_>) {
    let end = first + c.cols();
    for ((jc, nc), depth) in blocks_of_b(b.k, b.n) {
        let (start, stop) = (jc.max(first), (jc + nc).min(end));
        if start >= stop {
            continue;
        }
        // Panels of a block lie one after the other, `kc x NR` each.
        let skipped = (start - jc) / nr() * depth.1 * nr();
        let b_panels = BPanels::Packed { data: &b.data[b.block_start((jc, nc), depth) + skipped..], kc: depth.1 };
        let beta_block = if depth.0 == 0 { beta } else { 1.0 };
        multiply_rows(a, depth, b_panels, (start - first, stop - start), (alpha, beta_block), c);
    }
}

/// `C = alpha * A * B + beta * C` with both operands packed in advance (`m x k` and `k x n`):
/// the same result, bit for bit, as [`gemm`] with the matrices that were packed (`C` is the
/// view's `m x n`). The output layer's loss-only pass multiplies the same packed `hs` by each
/// panel of `W`, packed once for many passes. Never allocates.
pub(in crate::kernels) fn gemm_packed_both_into(
    alpha: f32,
    a: &PackedA,
    b: &PackedB,
    beta: f32,
    c: &mut OutMatrix<'_>,
) {
    let (k, n) = (b.k, b.n);
    assert_eq!(c.rows(), a.m, "gemm_packed_both: C has {} rows, but the packed A {}", c.rows(), a.m);
    assert_eq!(c.cols(), n, "gemm_packed_both: C has {} columns, but the packed B {n}", c.cols());
    assert_eq!(a.k, k, "gemm_packed_both: the packed A is {} deep, the packed B {k}", a.k);
    if empty_product(k, beta, c) {
        return;
    }
    multiply_by_packed_b(alpha, APanels::Packed(a), b, 0, beta, c);
}

/// `op(A)` packed once for many products with it: the output layer multiplies the same hidden
/// states by each of its panels of `W` (forward), and their transpose by each panel of the
/// gradient (backward); packed per product, the same copy was made forty times per pass.
///
/// The row panels are stored as [`gemm`] packs them for itself, so a product with a packed A
/// ([`gemm_packed_a`]) is bit-identical to the same product by [`gemm`]. [`new`](Self::new)
/// allocates; [`pack`](Self::pack) does not.
#[derive(Clone, Debug)]
pub struct PackedA {
    m: usize,
    k: usize,
    /// How the last [`pack`](Self::pack) read its matrix; `None` before the first.
    trans: Option<Transpose>,
    /// Rows per panel, `tile_rows(m)`.
    pub(super) mr: usize,
    /// Depth block after depth block (`KC` deep, the last one shorter), each holding the row
    /// panels one after the other, `kc x mr` values each (rows past `m` are zero).
    data: Vec<f32>,
}

impl PackedA {
    /// Bytes of its buffer.
    pub fn bytes(&self) -> usize {
        self.data.len() * size_of::<f32>()
    }

    /// Room for a packed `m x k` matrix, all zero until [`pack`](Self::pack)ed; `None` if that
    /// much memory cannot be had.
    pub fn new(m: usize, k: usize) -> Option<Self> {
        let mr = tile_rows(m);
        let data = crate::kernels::filled(m.checked_next_multiple_of(mr).and_then(|m| m.checked_mul(k)), 0.0)?;
        Some(PackedA { m, k, trans: None, mr, data })
    }

    /// Room for up to `m` rows of `k` columns, made `m` rows high at first: with
    /// [`set_rows`](Self::set_rows), for products whose number of rows changes from call to
    /// call without allocating. `None` if that much memory cannot be had.
    pub fn with_room(m: usize, k: usize) -> Option<Self> {
        let tallest = tile_heights().iter().copied().max().expect("every level has tile heights");
        let data = crate::kernels::filled(m.checked_add(tallest).and_then(|m| m.checked_mul(k)), 0.0)?;
        Some(PackedA { m, k, trans: None, mr: tile_rows(m), data })
    }

    /// Makes the packed matrix `m` rows high (with the tile height [`gemm`] would choose for
    /// `m` rows), without allocating. Forgets the contents. Panics if `m` is 0 or the rows, with
    /// their tile's padding, do not fit in the room.
    pub fn set_rows(&mut self, m: usize) {
        let mr = tile_rows(m.max(1));
        let fits = m.checked_next_multiple_of(mr).and_then(|padded| padded.checked_mul(self.k));
        assert!(
            m > 0 && fits.is_some_and(|len| len <= self.data.len()),
            "PackedA::set_rows: {m} rows of {} do not fit in the room of {} values",
            self.k,
            self.data.len()
        );
        (self.m, self.mr, self.trans) = (m, mr, None);
    }

    /// Makes the packed matrix `k` deep (at most the depth it was made with), without
    /// allocating. Forgets the contents. Panics if `k` is 0 or larger than the room.
    pub fn set_depth(&mut self, k: usize) {
        let room = self.data.len() / self.m.next_multiple_of(self.mr);
        assert!(k > 0 && k <= room, "PackedA::set_depth: {k} is not in 1..={room}");
        self.k = k;
        self.trans = None;
    }

    /// Rows of the packed matrix.
    pub fn m(&self) -> usize {
        self.m
    }

    /// Columns of the packed matrix (the depth of a product with it).
    pub fn k(&self) -> usize {
        self.k
    }

    /// Whether the matrix was packed from A as stored (`No`) or from `A^T` (`Yes`); `None`
    /// until it is first packed.
    pub fn transpose(&self) -> Option<Transpose> {
        self.trans
    }

    /// Replaces the contents with `op(A)`, `m x k`, stored as for [`gemm`]'s A: `m x k` with
    /// `lda >= k` when `trans_a` is `No`, `k x m` with `lda >= m` when it is `Yes`. Never
    /// allocates. Panics if `a` is too short for its stated shape.
    pub fn pack(&mut self, a: &[f32], lda: usize, trans_a: Transpose) {
        let a = Operand { data: a, ld: lda, trans: trans_a };
        a.check("PackedA::pack", "A", self.m, self.k);
        self.trans = Some(trans_a);
        let pack = at_tile_height!(self.mr, pack_panel);
        let (m, k, mr) = (self.m, self.k, self.mr);
        for pc in (0..k).step_by(KC) {
            let kc = KC.min(k - pc);
            for ir in (0..m).step_by(mr) {
                let start = self.panel_start(ir, pc, kc);
                pack(a.data, a.strides(), (ir, mr.min(m - ir)), (pc, kc), &mut self.data[start..start + kc * mr]);
            }
        }
    }

    /// Where the row panel starting at row `ir` of the depth block `(pc, kc)` starts: every
    /// depth block before it is `KC` deep and holds all the (padded) rows.
    fn panel_start(&self, ir: usize, pc: usize, kc: usize) -> usize {
        pc * self.m.next_multiple_of(self.mr) + ir / self.mr * kc * self.mr
    }

    /// The row panel starting at row `ir` of the depth block `(pc, kc)`.
    pub(super) fn panel(&self, ir: usize, (pc, kc): (usize, usize)) -> &[f32] {
        &self.data[self.panel_start(ir, pc, kc)..][..kc * self.mr]
    }
}

/// `C = alpha * A * op(B) + beta * C` on the calling thread, with A packed in advance: the
/// same contract as [`gemm`] with the `m x k` matrix that was packed (`op(B)` is `k x n`, C is
/// `m x n`), and the same result bit for bit, except where [`gemm`] would compute `A * B^T` by
/// dot products (a deep, narrow product: `k >= 512`, `k >= 4 n`, `n <= 256`), which group the
/// sums differently. Never allocates.
#[allow(clippy::too_many_arguments)]
pub fn gemm_packed_a(
    n: usize,
    alpha: f32,
    a: &PackedA,
    b: &[f32],
    ldb: usize,
    trans_b: Transpose,
    beta: f32,
    c: &mut [f32],
    ldc: usize,
) {
    gemm_packed_a_into(alpha, a, (b, ldb, trans_b), beta, &mut OutMatrix::new("gemm_packed_a", c, a.m, n, ldc));
}

/// [`gemm_packed_a`] into a view of C (`m x n` is the view's shape).
pub(in crate::kernels) fn gemm_packed_a_into(
    alpha: f32,
    a: &PackedA,
    (b, ldb, trans_b): (&[f32], usize, Transpose),
    beta: f32,
    c: &mut OutMatrix<'_>,
) {
    assert_eq!(c.rows(), a.m, "gemm_packed_a: C has {} rows, but the packed A {}", c.rows(), a.m);
    let b = Operand { data: b, ld: ldb, trans: trans_b };
    b.check("gemm_packed_a", "B", a.k, c.cols());
    if empty_product(a.k, beta, c) {
        return;
    }
    // Never by dot products (`use_dot_products`): they read A in place, and a packed A exists
    // to be reused by many products, which dot products could not exploit either.
    multiply_by_blocks_of_b(a.k, alpha, APanels::Packed(a), b, beta, c);
}
