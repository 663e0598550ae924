//! Pooling kernels over NCHW batches, plane by plane.
//!
//! Average pooling: `y = (1/K²) Σ_window x`, so each input in a window gets
//! `dy / K²` back (padded zeros count in the K²). Max pooling: `y = max_window x`;
//! the gradient goes to the arg-max alone, which the forward pass records.

use rayon::prelude::*;

use crate::PoolGeometry;

/// The window of output (oy, ox): input rows/cols `[start, end)` clipped to the image.
fn window(out: usize, stride: usize, pad: usize, kernel: usize, size: usize) -> (usize, usize) {
    let start = (out * stride) as isize - pad as isize;
    let end = (start + kernel as isize).min(size as isize);
    (start.max(0) as usize, end.max(0) as usize)
}

fn check(g: &PoolGeometry, batch: usize, input: usize, output: usize, what: &str) {
    assert_eq!(input, batch * g.in_size(), "{what}: input length");
    assert_eq!(output, batch * g.out_size(), "{what}: output length");
}

/// Planes handled by one task: enough work (tens of microseconds) to amortise
/// a rayon task. Planes are independent, so the split never changes a result.
const PLANE_VALUES_PER_TASK: usize = 1 << 15;

fn planes_per_task(plane: usize) -> usize {
    (PLANE_VALUES_PER_TASK / plane.max(1)).max(1)
}

/// Non-overlapping windows that tile the plane from the corner: stride = K,
/// no padding. Every input belongs to at most one window (the last rows and
/// columns of a plane whose side is not a multiple of K to none).
fn tiled(g: &PoolGeometry) -> bool {
    g.stride == g.kernel && g.pad == 0 && g.kernel > 0
}

/// Average pooling forward for [`tiled`] geometries, a block of planes.
/// The same sums in the same order as the general loop: row by row, each
/// row's K values left to right, then times 1/K².
fn avg_forward_tiled(g: &PoolGeometry, x: &[f32], y: &mut [f32]) {
    let (k, w, ow) = (g.kernel, g.in_w, g.out_w());
    let (plane, out_plane) = (g.in_h * w, g.out_h() * ow);
    let scale = 1.0 / (k * k) as f32;
    for (x, y) in x.chunks_exact(plane).zip(y.chunks_exact_mut(out_plane)) {
        for (oy, y) in y.chunks_exact_mut(ow).enumerate() {
            let rows = &x[oy * k * w..(oy * k + k) * w];
            if k == 2 {
                let (r0, r1) = rows.split_at(w);
                for ((v, a), b) in y.iter_mut().zip(r0.chunks_exact(2)).zip(r1.chunks_exact(2)) {
                    *v = ((a[0] + a[1]) + (b[0] + b[1])) * scale;
                }
            } else {
                for (ox, v) in y.iter_mut().enumerate() {
                    let mut sum = 0.0f32;
                    for r in rows.chunks_exact(w) {
                        sum += r[ox * k..ox * k + k].iter().sum::<f32>();
                    }
                    *v = sum * scale;
                }
            }
        }
    }
}

/// Average pooling backward for [`tiled`] geometries, a block of planes.
fn avg_backward_tiled(g: &PoolGeometry, dy: &[f32], dx: &mut [f32]) {
    let (k, w, ow, oh) = (g.kernel, g.in_w, g.out_w(), g.out_h());
    let (plane, out_plane) = (g.in_h * w, oh * ow);
    let scale = 1.0 / (k * k) as f32;
    for (dy, dx) in dy.chunks_exact(out_plane).zip(dx.chunks_exact_mut(plane)) {
        for (oy, dy) in dy.chunks_exact(ow).enumerate() {
            for r in dx[oy * k * w..(oy * k + k) * w].chunks_exact_mut(w) {
                if k == 2 {
                    for (d, &v) in r.chunks_exact_mut(2).zip(dy) {
                        let share = v * scale;
                        d[0] = share;
                        d[1] = share;
                    }
                } else {
                    for (d, &v) in r.chunks_exact_mut(k).zip(dy) {
                        d.fill(v * scale);
                    }
                }
                r[ow * k..].fill(0.0);
            }
        }
        dx[oh * k * w..].fill(0.0);
    }
}

/// Average pooling forward: `output` (N x C x OH x OW) from `input` (N x C x H x W).
pub fn avg_pool_forward(g: &PoolGeometry, batch: usize, input: &[f32], output: &mut [f32]) {
    check(g, batch, input.len(), output.len(), "avg_pool_forward");
    let (plane, out_plane) = (g.in_h * g.in_w, g.out_h() * g.out_w());
    if tiled(g) {
        let per = planes_per_task(plane);
        output
            .par_chunks_mut(per * out_plane)
            .zip(input.par_chunks(per * plane))
            .for_each(|(y, x)| avg_forward_tiled(g, x, y));
        return;
    }
    let scale = 1.0 / (g.kernel * g.kernel) as f32;
    output
        .par_chunks_mut(out_plane.max(1))
        .zip(input.par_chunks(plane))
        .for_each(|(y, x)| {
            for oy in 0..g.out_h() {
                let (y0, y1) = window(oy, g.stride, g.pad, g.kernel, g.in_h);
                for ox in 0..g.out_w() {
                    let (x0, x1) = window(ox, g.stride, g.pad, g.kernel, g.in_w);
                    let mut sum = 0.0f32;
                    for iy in y0..y1 {
                        sum += x[iy * g.in_w + x0..iy * g.in_w + x1].iter().sum::<f32>();
                    }
                    y[oy * g.out_w() + ox] = sum * scale;
                }
            }
        });
}

/// Average pooling backward: overwrites `grad_input` with each `dy / K²` spread over its window.
pub fn avg_pool_backward(
    g: &PoolGeometry,
    batch: usize,
    grad_output: &[f32],
    grad_input: &mut [f32],
) {
    check(
        g,
        batch,
        grad_input.len(),
        grad_output.len(),
        "avg_pool_backward",
    );
    let (plane, out_plane) = (g.in_h * g.in_w, g.out_h() * g.out_w());
    if tiled(g) {
        let per = planes_per_task(plane);
        grad_input
            .par_chunks_mut(per * plane)
            .zip(grad_output.par_chunks(per * out_plane))
            .for_each(|(dx, dy)| avg_backward_tiled(g, dy, dx));
        return;
    }
    let scale = 1.0 / (g.kernel * g.kernel) as f32;
    grad_input
        .par_chunks_mut(plane)
        .zip(grad_output.par_chunks(out_plane.max(1)))
        .for_each(|(dx, dy)| {
            dx.fill(0.0);
            for oy in 0..g.out_h() {
                let (y0, y1) = window(oy, g.stride, g.pad, g.kernel, g.in_h);
                for ox in 0..g.out_w() {
                    let (x0, x1) = window(ox, g.stride, g.pad, g.kernel, g.in_w);
                    let share = dy[oy * g.out_w() + ox] * scale;
                    for iy in y0..y1 {
                        dx[iy * g.in_w + x0..iy * g.in_w + x1]
                            .iter_mut()
                            .for_each(|d| *d += share);
                    }
                }
            }
        });
}

/// Max pooling forward. `argmax` (same length as `output`) receives, for each
/// output, the index within its input plane of the maximum (the first one on ties).
pub fn max_pool_forward(
    g: &PoolGeometry,
    batch: usize,
    input: &[f32],
    output: &mut [f32],
    argmax: &mut [u32],
) {
    check(g, batch, input.len(), output.len(), "max_pool_forward");
    assert_eq!(
        argmax.len(),
        output.len(),
        "max_pool_forward: argmax length"
    );
    let (plane, out_plane) = (g.in_h * g.in_w, g.out_h() * g.out_w());
    output
        .par_chunks_mut(out_plane.max(1))
        .zip(argmax.par_chunks_mut(out_plane.max(1)))
        .zip(input.par_chunks(plane))
        .for_each(|((y, arg), x)| {
            for oy in 0..g.out_h() {
                let (y0, y1) = window(oy, g.stride, g.pad, g.kernel, g.in_h);
                for ox in 0..g.out_w() {
                    let (x0, x1) = window(ox, g.stride, g.pad, g.kernel, g.in_w);
                    let mut best = y0 * g.in_w + x0;
                    for iy in y0..y1 {
                        for ix in x0..x1 {
                            let i = iy * g.in_w + ix;
                            // A NaN beats any number, so NaNs propagate as they would in a sum.
                            if x[i] > x[best] || (x[i].is_nan() && !x[best].is_nan()) {
                                best = i;
                            }
                        }
                    }
                    y[oy * g.out_w() + ox] = x[best];
                    arg[oy * g.out_w() + ox] = best as u32;
                }
            }
        });
}

/// Max pooling backward: overwrites `grad_input`, routing each `dy` to its recorded arg-max.
pub fn max_pool_backward(
    g: &PoolGeometry,
    batch: usize,
    grad_output: &[f32],
    argmax: &[u32],
    grad_input: &mut [f32],
) {
    check(
        g,
        batch,
        grad_input.len(),
        grad_output.len(),
        "max_pool_backward",
    );
    assert_eq!(
        argmax.len(),
        grad_output.len(),
        "max_pool_backward: argmax length"
    );
    let (plane, out_plane) = (g.in_h * g.in_w, g.out_h() * g.out_w());
    grad_input
        .par_chunks_mut(plane)
        .zip(grad_output.par_chunks(out_plane.max(1)))
        .zip(argmax.par_chunks(out_plane.max(1)))
        .for_each(|((dx, dy), arg)| {
            dx.fill(0.0);
            for (&d, &a) in dy.iter().zip(arg) {
                dx[a as usize] += d;
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference;

    fn values(n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0)
            .collect()
    }

    /// The tiled fast path against the reference, seed shapes and ragged edges.
    #[test]
    fn tiled_average_pooling_matches_reference() {
        for (c, h, w, k) in [(8, 28, 28, 2), (16, 14, 14, 2), (3, 7, 9, 2), (2, 8, 7, 3)] {
            let g = PoolGeometry::new(c, h, w, k, k, 0).unwrap();
            assert!(tiled(&g));
            let batch = 3;
            let x = values(batch * g.in_size());
            let dy = values(batch * g.out_size());
            let mut y = vec![f32::NAN; dy.len()];
            avg_pool_forward(&g, batch, &x, &mut y);
            let ry = reference::avg_pool_forward(&g, batch, &x);
            for (a, b) in y.iter().zip(&ry) {
                assert!(
                    (a - b).abs() <= 1e-5 * b.abs().max(1.0),
                    "{g:?}: {a} vs {b}"
                );
            }
            let mut dx = vec![f32::NAN; x.len()];
            avg_pool_backward(&g, batch, &dy, &mut dx);
            let rdx = reference::avg_pool_backward(&g, batch, &dy);
            for (a, b) in dx.iter().zip(&rdx) {
                assert!(
                    (a - b).abs() <= 1e-6 * b.abs().max(1.0),
                    "{g:?}: {a} vs {b}"
                );
            }
        }
    }
}
