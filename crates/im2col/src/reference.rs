//! Plain convolution and pooling, written straight from the definitions
//! with f64 accumulation; the convolution on ndarray views, as the post's
//! NumPy reads (pad, take each output position's window, multiply, sum). Slow on purpose: the tests and
//! benchmarks hold the fast kernels to these.

use ndarray::{s, Array4, ArrayView1, ArrayView4, Axis};

use crate::{ConvGeometry, PoolGeometry};

/// The input as an `[N, C, H + 2P, W + 2P]` array of f64, zero on the border:
/// NumPy's `np.pad(x, ((0, 0), (0, 0), (P, P), (P, P)))`.
fn padded(g: &ConvGeometry, batch: usize, input: &[f32]) -> Array4<f64> {
    let x = ArrayView4::from_shape((batch, g.in_channels, g.in_h, g.in_w), input)
        .expect("the input holds batch x C x H x W values");
    let mut xp = Array4::zeros((
        batch,
        g.in_channels,
        g.in_h + 2 * g.pad_h,
        g.in_w + 2 * g.pad_w,
    ));
    xp.slice_mut(s![
        ..,
        ..,
        g.pad_h..g.pad_h + g.in_h,
        g.pad_w..g.pad_w + g.in_w
    ])
    .assign(&x.mapv(f64::from));
    xp
}

/// The kernels as an `[O, C, KH, KW]` array of f64.
fn kernels(g: &ConvGeometry, weight: &[f32]) -> Array4<f64> {
    ArrayView4::from_shape(
        (g.out_channels, g.in_channels, g.kernel_h, g.kernel_w),
        weight,
    )
    .expect("the weights hold O x C x KH x KW values")
    .mapv(f64::from)
}

/// The window of the padded input that output `(oy, ox)` sees, for every
/// image and channel: `x_pad[:, :, oy*s : oy*s + KH, ox*s : ox*s + KW]`.
fn window_of<'a>(
    g: &ConvGeometry,
    xp: &'a Array4<f64>,
    oy: usize,
    ox: usize,
) -> ArrayView4<'a, f64> {
    let (y, x) = (oy * g.stride_h, ox * g.stride_w);
    xp.slice(s![.., .., y..y + g.kernel_h, x..x + g.kernel_w])
}

/// `y[n, o, oy, ox] = b[o] + Σ_{c,i,j} w[o, c, i, j] · x_pad[n, c, oy·s + i, ox·s + j]`:
/// for each output position, every image's window times every kernel,
/// summed over channels and taps, as the post's NumPy writes it
/// (`np.sum(window[:, None] * w[None], axis=(2, 3, 4)) + b`).
pub fn conv2d_forward(
    g: &ConvGeometry,
    batch: usize,
    input: &[f32],
    weight: &[f32],
    bias: &[f32],
) -> Vec<f32> {
    let (xp, w) = (padded(g, batch, input), kernels(g, weight));
    let b = ArrayView1::from(bias).mapv(f64::from);
    let mut y = Array4::<f64>::zeros((batch, g.out_channels, g.out_h(), g.out_w()));
    for oy in 0..g.out_h() {
        for ox in 0..g.out_w() {
            let window = window_of(g, &xp, oy, ox);
            for n in 0..batch {
                for o in 0..g.out_channels {
                    let sum = (&window.index_axis(Axis(0), n) * &w.index_axis(Axis(0), o)).sum();
                    y[[n, o, oy, ox]] = sum + b[o];
                }
            }
        }
    }
    y.iter().map(|&v| v as f32).collect()
}

/// The three gradients of [`conv2d_forward`], by the chain rule applied to
/// each term of its sum: (input, weight, bias). Each output gradient
/// `dy[n, o, oy, ox]` sends `dy · w[o]` back to the window it saw and adds
/// `dy · window` to the kernel `o`; the bias gradient is `dy` summed over
/// images and positions.
pub fn conv2d_backward(
    g: &ConvGeometry,
    batch: usize,
    input: &[f32],
    weight: &[f32],
    grad_output: &[f32],
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let (xp, w) = (padded(g, batch, input), kernels(g, weight));
    let dy = ArrayView4::from_shape((batch, g.out_channels, g.out_h(), g.out_w()), grad_output)
        .expect("the output gradient holds N x O x OH x OW values")
        .mapv(f64::from);
    let mut dxp = Array4::<f64>::zeros(xp.raw_dim());
    let mut dw = Array4::<f64>::zeros(w.raw_dim());
    for oy in 0..g.out_h() {
        for ox in 0..g.out_w() {
            let window = window_of(g, &xp, oy, ox);
            let (y, x) = (oy * g.stride_h, ox * g.stride_w);
            for n in 0..batch {
                for o in 0..g.out_channels {
                    let d = dy[[n, o, oy, ox]];
                    dw.index_axis_mut(Axis(0), o)
                        .scaled_add(d, &window.index_axis(Axis(0), n));
                    dxp.slice_mut(s![n, .., y..y + g.kernel_h, x..x + g.kernel_w])
                        .scaled_add(d, &w.index_axis(Axis(0), o));
                }
            }
        }
    }
    // The padding's share of the gradient belongs to no input.
    let dx = dxp.slice(s![
        ..,
        ..,
        g.pad_h..g.pad_h + g.in_h,
        g.pad_w..g.pad_w + g.in_w
    ]);
    let db = dy.sum_axis(Axis(3)).sum_axis(Axis(2)).sum_axis(Axis(0));
    let f32s = |v: ndarray::ArrayViewD<'_, f64>| v.iter().map(|&x| x as f32).collect();
    (
        f32s(dx.into_dyn()),
        f32s(dw.view().into_dyn()),
        f32s(db.view().into_dyn()),
    )
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
