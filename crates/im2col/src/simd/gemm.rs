//! A bounds-checked front to `matrixmultiply::sgemm`.

/// A matrix view into a slice: `rows x cols`, element (i, j) at `offset + i * row_stride + j * col_stride`.
#[derive(Clone, Copy, Debug)]
pub struct MatLayout {
    /// Number of rows.
    pub rows: usize,
    /// Number of columns.
    pub cols: usize,
    /// Distance between rows.
    pub row_stride: usize,
    /// Distance between columns.
    pub col_stride: usize,
}

impl MatLayout {
    /// A dense row-major `rows x cols` matrix.
    pub fn row_major(rows: usize, cols: usize) -> Self {
        MatLayout {
            rows,
            cols,
            row_stride: cols,
            col_stride: 1,
        }
    }

    /// The transpose of this view (no data moves).
    pub fn t(self) -> Self {
        MatLayout {
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
        }
    }

    /// The largest index the view touches, plus one (0 for an empty view).
    fn extent(&self) -> usize {
        if self.rows == 0 || self.cols == 0 {
            0
        } else {
            (self.rows - 1) * self.row_stride + (self.cols - 1) * self.col_stride + 1
        }
    }
}

/// `c = alpha * a x b + beta * c`, every view checked against its slice.
///
/// With `beta == 0` the old contents of `c` are ignored (NaNs included).
///
/// # Panics
/// If the inner dimensions disagree or a view runs past its slice: that is a
/// bug in the caller, never a data error.
pub fn sgemm(
    alpha: f32,
    a: &[f32],
    la: MatLayout,
    b: &[f32],
    lb: MatLayout,
    beta: f32,
    c: &mut [f32],
    lc: MatLayout,
) {
    assert_eq!(la.cols, lb.rows, "gemm: inner dimensions");
    assert_eq!((la.rows, lb.cols), (lc.rows, lc.cols), "gemm: output shape");
    assert!(
        la.extent() <= a.len(),
        "gemm: A view {la:?} past its slice of {}",
        a.len()
    );
    assert!(
        lb.extent() <= b.len(),
        "gemm: B view {lb:?} past its slice of {}",
        b.len()
    );
    assert!(
        lc.extent() <= c.len(),
        "gemm: C view {lc:?} past its slice of {}",
        c.len()
    );
    if lc.rows == 0 || lc.cols == 0 {
        return;
    }
    if la.cols == 0 {
        // matrixmultiply handles k = 0, but make beta's meaning explicit.
        for i in 0..lc.rows {
            for j in 0..lc.cols {
                let x = &mut c[i * lc.row_stride + j * lc.col_stride];
                *x = if beta == 0.0 { 0.0 } else { beta * *x };
            }
        }
        return;
    }
    // SAFETY: the extents above keep every access inside the slices, and `c`
    // is borrowed mutably, so it aliases neither `a` nor `b`.
    unsafe {
        matrixmultiply::sgemm(
            la.rows,
            la.cols,
            lb.cols,
            alpha,
            a.as_ptr(),
            la.row_stride as isize,
            la.col_stride as isize,
            b.as_ptr(),
            lb.row_stride as isize,
            lb.col_stride as isize,
            beta,
            c.as_mut_ptr(),
            lc.row_stride as isize,
            lc.col_stride as isize,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_product_and_transpose() {
        // [1 2; 3 4] x [5 6; 7 8] = [19 22; 43 50]
        let a = [1.0, 2.0, 3.0, 4.0];
        let b = [5.0, 6.0, 7.0, 8.0];
        let mut c = [0.0; 4];
        let l = MatLayout::row_major(2, 2);
        sgemm(1.0, &a, l, &b, l, 0.0, &mut c, l);
        assert_eq!(c, [19.0, 22.0, 43.0, 50.0]);
        // a^T x b = [1 3; 2 4] x [5 6; 7 8] = [26 30; 38 44], accumulated onto c.
        sgemm(1.0, &a, l.t(), &b, l, 1.0, &mut c, l);
        assert_eq!(c, [45.0, 52.0, 81.0, 94.0]);
    }

    #[test]
    #[should_panic(expected = "past its slice")]
    fn views_are_checked() {
        let a = [0.0; 3];
        let mut c = [0.0; 4];
        let l = MatLayout::row_major(2, 2);
        sgemm(1.0, &a, l, &a, l, 0.0, &mut c, l);
    }
}
