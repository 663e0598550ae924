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

/// Average pooling forward: `output` (N x C x OH x OW) from `input` (N x C x H x W).
pub fn avg_pool_forward(g: &PoolGeometry, batch: usize, input: &[f32], output: &mut [f32]) {
    check(g, batch, input.len(), output.len(), "avg_pool_forward");
    let (plane, out_plane) = (g.in_h * g.in_w, g.out_h() * g.out_w());
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
