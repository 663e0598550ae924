//! Data augmentation: a small rotation and shift of an image.
//!
//! A [`Motion`] maps output pixel (r, c) back to the source point
//!
//! ```text
//! (x, y) = R(−θ) · (c − cx − dx, r − cy − dy) + (cx, cy)
//! ```
//!
//! (cx, cy the image centre, θ the angle, dx and dy the shift, R the rotation
//! matrix) and reads the source there by bilinear interpolation; points
//! outside the image read `background`. With θ = 0 and whole-pixel shifts
//! the weights are 0 and 1, so the result is the exactly shifted image.
//!
//! This crate only applies a motion; drawing it (from a run's random
//! stream) is the trainer's business.

/// A rotation by `angle` radians about the image centre (counter-clockwise
/// as displayed, rows growing downwards), then a shift of `dx` columns and `dy` rows.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Motion {
    /// Radians.
    pub angle: f32,
    /// Columns to the right.
    pub dx: f32,
    /// Rows down.
    pub dy: f32,
}

impl Motion {
    /// Writes the moved `src` (`rows` x `cols`, row-major) into `dst`.
    ///
    /// # Panics
    /// If `src` or `dst` does not hold `rows · cols` values.
    pub fn apply(&self, src: &[f32], rows: usize, cols: usize, background: f32, dst: &mut [f32]) {
        assert!(
            src.len() == rows * cols && dst.len() == rows * cols,
            "Motion::apply: images of {rows} x {cols} pixels"
        );
        let (sin, cos) = f64::from(self.angle).sin_cos();
        let (cx, cy) = ((cols as f64 - 1.0) / 2.0, (rows as f64 - 1.0) / 2.0);
        let at = |r: isize, c: isize| {
            if (0..rows as isize).contains(&r) && (0..cols as isize).contains(&c) {
                src[r as usize * cols + c as usize]
            } else {
                background
            }
        };
        for (r, row) in dst.chunks_exact_mut(cols).enumerate() {
            for (c, out) in row.iter_mut().enumerate() {
                let u = c as f64 - cx - f64::from(self.dx);
                let v = r as f64 - cy - f64::from(self.dy);
                // R(−θ)·(u, v), with y downwards: the inverse of the displayed rotation.
                let x = cos * u - sin * v + cx;
                let y = sin * u + cos * v + cy;
                let (x0, y0) = (x.floor(), y.floor());
                let (fx, fy) = ((x - x0) as f32, (y - y0) as f32);
                let (x0, y0) = (x0 as isize, y0 as isize);
                let top = at(y0, x0) * (1.0 - fx) + at(y0, x0 + 1) * fx;
                let bottom = at(y0 + 1, x0) * (1.0 - fx) + at(y0 + 1, x0 + 1) * fx;
                *out = top * (1.0 - fy) + bottom * fy;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(rows: usize, cols: usize) -> Vec<f32> {
        (0..rows * cols).map(|i| (i * 37 % 101) as f32).collect()
    }

    #[test]
    fn no_motion_is_the_identity() {
        let src = image(5, 7);
        let mut dst = vec![0.0; 35];
        Motion::default().apply(&src, 5, 7, -1.0, &mut dst);
        assert_eq!(dst, src);
    }

    #[test]
    fn whole_pixel_shifts_move_pixels_exactly_and_fill_the_background() {
        let src = image(6, 5);
        let mut dst = vec![0.0; 30];
        let m = Motion {
            angle: 0.0,
            dx: 2.0,
            dy: -1.0,
        };
        m.apply(&src, 6, 5, -1.0, &mut dst);
        for r in 0..6 {
            for c in 0..5 {
                let (sr, sc) = (r as isize + 1, c as isize - 2);
                let want = if (0..6).contains(&sr) && (0..5).contains(&sc) {
                    src[sr as usize * 5 + sc as usize]
                } else {
                    -1.0
                };
                assert_eq!(dst[r * 5 + c], want, "({r}, {c})");
            }
        }
    }

    /// A quarter turn of a square image permutes its pixels: the top row
    /// (left to right) becomes the left column (bottom to top), as displayed.
    #[test]
    fn a_quarter_turn_permutes_the_pixels() {
        let src = image(4, 4);
        let mut dst = vec![0.0; 16];
        let m = Motion {
            angle: std::f32::consts::FRAC_PI_2,
            dx: 0.0,
            dy: 0.0,
        };
        m.apply(&src, 4, 4, -1.0, &mut dst);
        for c in 0..4 {
            let got = dst[(3 - c) * 4];
            assert!(
                (got - src[c]).abs() < 1e-3,
                "column {c}: {got} vs {}",
                src[c]
            );
        }
    }
}
