//! Plain nested-loop convolution and pooling, written straight from the
//! definitions with f64 accumulation. Slow on purpose: the tests and
//! benchmarks hold the fast kernels to these.

use crate::{ConvGeometry, PoolGeometry};

/// `x[n, c, iy, ix]` for a padded coordinate, or `None` in the zero padding.
fn at(g: &ConvGeometry, input: &[f32], n: usize, c: usize, iy: isize, ix: isize) -> Option<usize> {
    (iy >= 0 && ix >= 0 && (iy as usize) < g.in_h && (ix as usize) < g.in_w)
        .then(|| ((n * g.in_channels + c) * g.in_h + iy as usize) * g.in_w + ix as usize)
        .filter(|&i| i < input.len())
}

/// `y[n,o,oy,ox] = b[o] + Σ_{c,i,j} w[o,c,i,j] · x[n, c, oy·s + i − p, ox·s + j − p]`.
pub fn conv2d_forward(
    g: &ConvGeometry,
    batch: usize,
    input: &[f32],
    weight: &[f32],
    bias: &[f32],
) -> Vec<f32> {
    let (oh, ow) = (g.out_h(), g.out_w());
    let mut out = vec![0f32; batch * g.out_size()];
    for n in 0..batch {
        for o in 0..g.out_channels {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut acc = bias[o] as f64;
                    for c in 0..g.in_channels {
                        for i in 0..g.kernel_h {
                            for j in 0..g.kernel_w {
                                let iy = (oy * g.stride_h + i) as isize - g.pad_h as isize;
                                let ix = (ox * g.stride_w + j) as isize - g.pad_w as isize;
                                if let Some(xi) = at(g, input, n, c, iy, ix) {
                                    let wi =
                                        ((o * g.in_channels + c) * g.kernel_h + i) * g.kernel_w + j;
                                    acc += weight[wi] as f64 * input[xi] as f64;
                                }
                            }
                        }
                    }
                    out[((n * g.out_channels + o) * oh + oy) * ow + ox] = acc as f32;
                }
            }
        }
    }
    out
}

/// The three gradients of [`conv2d_forward`], by the chain rule applied to
/// each term of its sum: (input, weight, bias).
pub fn conv2d_backward(
    g: &ConvGeometry,
    batch: usize,
    input: &[f32],
    weight: &[f32],
    grad_output: &[f32],
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let (oh, ow) = (g.out_h(), g.out_w());
    let mut gx = vec![0f64; input.len()];
    let mut gw = vec![0f64; weight.len()];
    let mut gb = vec![0f64; g.out_channels];
    for n in 0..batch {
        for o in 0..g.out_channels {
            for oy in 0..oh {
                for ox in 0..ow {
                    let dy = grad_output[((n * g.out_channels + o) * oh + oy) * ow + ox] as f64;
                    gb[o] += dy;
                    for c in 0..g.in_channels {
                        for i in 0..g.kernel_h {
                            for j in 0..g.kernel_w {
                                let iy = (oy * g.stride_h + i) as isize - g.pad_h as isize;
                                let ix = (ox * g.stride_w + j) as isize - g.pad_w as isize;
                                if let Some(xi) = at(g, input, n, c, iy, ix) {
                                    let wi =
                                        ((o * g.in_channels + c) * g.kernel_h + i) * g.kernel_w + j;
                                    gx[xi] += dy * weight[wi] as f64;
                                    gw[wi] += dy * input[xi] as f64;
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    let f = |v: Vec<f64>| v.into_iter().map(|x| x as f32).collect();
    (f(gx), f(gw), f(gb))
}

/// The input gradient as the post derives it, for stride 1: the *full*
/// correlation of the output gradient (padded by K − 1 − P) with the kernel
/// rotated by 180° and its in/out channels swapped.
///
/// `dx[n,c,y,x] = Σ_{o,i,j} dy[n, o, y + P − i, x + P − j] · w[o, c, i, j]`,
/// which, with `i' = KH − 1 − i`, is a correlation with `w[o, c, KH−1−i', KW−1−j']`.
pub fn conv2d_input_grad_rotated(
    g: &ConvGeometry,
    batch: usize,
    weight: &[f32],
    grad_output: &[f32],
) -> Vec<f32> {
    assert_eq!(
        (g.stride_h, g.stride_w),
        (1, 1),
        "the rotated-kernel form is written for stride 1"
    );
    let (oh, ow) = (g.out_h() as isize, g.out_w() as isize);
    let (kh, kw) = (g.kernel_h, g.kernel_w);
    let mut gx = vec![0f32; batch * g.in_size()];
    for n in 0..batch {
        for c in 0..g.in_channels {
            for y in 0..g.in_h {
                for x in 0..g.in_w {
                    let mut acc = 0f64;
                    for o in 0..g.out_channels {
                        for ri in 0..kh {
                            for rj in 0..kw {
                                // Rotated kernel tap (ri, rj) is the original tap (KH−1−ri, KW−1−rj).
                                let (i, j) = (kh - 1 - ri, kw - 1 - rj);
                                let oy = y as isize + g.pad_h as isize - i as isize;
                                let ox = x as isize + g.pad_w as isize - j as isize;
                                if oy < 0 || ox < 0 || oy >= oh || ox >= ow {
                                    continue; // the zero border of the full correlation
                                }
                                let dy = grad_output[((n * g.out_channels + o) * oh as usize
                                    + oy as usize)
                                    * ow as usize
                                    + ox as usize];
                                let w = weight[((o * g.in_channels + c) * kh + i) * kw + j];
                                acc += dy as f64 * w as f64;
                            }
                        }
                    }
                    gx[((n * g.in_channels + c) * g.in_h + y) * g.in_w + x] = acc as f32;
                }
            }
        }
    }
    gx
}

/// Input rows or columns of a pooling window, clipped to the image.
fn window(out: usize, p: &PoolGeometry, size: usize) -> impl Iterator<Item = usize> {
    let start = (out * p.stride) as isize - p.pad as isize;
    (start..start + p.kernel as isize)
        .filter(move |&v| v >= 0 && (v as usize) < size)
        .map(|v| v as usize)
}

/// Average pooling: the window's sum divided by K² (padding counts as zeros).
pub fn avg_pool_forward(p: &PoolGeometry, batch: usize, input: &[f32]) -> Vec<f32> {
    let (oh, ow) = (p.out_h(), p.out_w());
    let mut out = vec![0f32; batch * p.out_size()];
    for nc in 0..batch * p.channels {
        for oy in 0..oh {
            for ox in 0..ow {
                let mut sum = 0f64;
                for iy in window(oy, p, p.in_h) {
                    for ix in window(ox, p, p.in_w) {
                        sum += input[(nc * p.in_h + iy) * p.in_w + ix] as f64;
                    }
                }
                out[(nc * oh + oy) * ow + ox] = (sum / (p.kernel * p.kernel) as f64) as f32;
            }
        }
    }
    out
}

/// Each output gradient divided by K², given to every input of its window.
pub fn avg_pool_backward(p: &PoolGeometry, batch: usize, grad_output: &[f32]) -> Vec<f32> {
    let (oh, ow) = (p.out_h(), p.out_w());
    let mut gx = vec![0f32; batch * p.in_size()];
    for nc in 0..batch * p.channels {
        for oy in 0..oh {
            for ox in 0..ow {
                let share = grad_output[(nc * oh + oy) * ow + ox] / (p.kernel * p.kernel) as f32;
                for iy in window(oy, p, p.in_h) {
                    for ix in window(ox, p, p.in_w) {
                        gx[(nc * p.in_h + iy) * p.in_w + ix] += share;
                    }
                }
            }
        }
    }
    gx
}

/// Max pooling: the window's largest value and its index in the plane (first on ties).
pub fn max_pool_forward(p: &PoolGeometry, batch: usize, input: &[f32]) -> (Vec<f32>, Vec<u32>) {
    let (oh, ow) = (p.out_h(), p.out_w());
    let mut out = vec![0f32; batch * p.out_size()];
    let mut arg = vec![0u32; out.len()];
    for nc in 0..batch * p.channels {
        for oy in 0..oh {
            for ox in 0..ow {
                let mut best: Option<(f32, usize)> = None;
                for iy in window(oy, p, p.in_h) {
                    for ix in window(ox, p, p.in_w) {
                        let v = input[(nc * p.in_h + iy) * p.in_w + ix];
                        if best.is_none_or(|(b, _)| v > b) {
                            best = Some((v, iy * p.in_w + ix));
                        }
                    }
                }
                let (v, i) = best.expect("a window holds at least one input");
                out[(nc * oh + oy) * ow + ox] = v;
                arg[(nc * oh + oy) * ow + ox] = i as u32;
            }
        }
    }
    (out, arg)
}

/// The whole output gradient of each window, given to its maximum.
pub fn max_pool_backward(
    p: &PoolGeometry,
    batch: usize,
    grad_output: &[f32],
    argmax: &[u32],
) -> Vec<f32> {
    let out_plane = p.out_h() * p.out_w();
    let mut gx = vec![0f32; batch * p.in_size()];
    for (k, (&d, &a)) in grad_output.iter().zip(argmax).enumerate() {
        let nc = k / out_plane;
        gx[nc * p.in_h * p.in_w + a as usize] += d;
    }
    gx
}

/// A fully connected layer, `y[n][o] = b[o] + Σ_i W[o][i] · x[n][i]`, as nested loops.
pub fn dense_forward(n: usize, i: usize, o: usize, x: &[f32], w: &[f32], b: &[f32]) -> Vec<f32> {
    let mut y = vec![0.0; n * o];
    for r in 0..n {
        for j in 0..o {
            let dot: f64 = (0..i)
                .map(|k| x[r * i + k] as f64 * w[j * i + k] as f64)
                .sum();
            y[r * o + j] = (dot + b[j] as f64) as f32;
        }
    }
    y
}

/// The gradients of [`dense_forward`] given `dy`: (dx, dW), as nested loops.
pub fn dense_backward(
    n: usize,
    i: usize,
    o: usize,
    x: &[f32],
    w: &[f32],
    dy: &[f32],
) -> (Vec<f32>, Vec<f32>) {
    let mut dx = vec![0.0; n * i];
    let mut dw = vec![0.0; o * i];
    for r in 0..n {
        for k in 0..i {
            let s: f64 = (0..o)
                .map(|j| dy[r * o + j] as f64 * w[j * i + k] as f64)
                .sum();
            dx[r * i + k] = s as f32;
        }
    }
    for j in 0..o {
        for k in 0..i {
            let s: f64 = (0..n)
                .map(|r| dy[r * o + j] as f64 * x[r * i + k] as f64)
                .sum();
            dw[j * i + k] = s as f32;
        }
    }
    (dx, dw)
}
