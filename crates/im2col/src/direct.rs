//! Stride-1 convolution without an im2col matrix: an implicit GEMM that
//! reads its columns straight out of a zero-padded copy of the input.
//!
//! Pad each input plane to `Hp x Wp` (`Hp = H + 2·PH`, `Wp = W + 2·PW`) and
//! compute the output on an `OH x Wp` grid instead of `OH x OW`: every output
//! row gets `Wp − OW = KW − 1` extra columns, which are thrown away. On that
//! grid output pixel `q = oy·Wp + ox` and kernel tap (`c`, `i`, `j`) read
//!
//! ```text
//! xpad[c][oy + i][ox + j] = xpad[c·Hp·Wp + i·Wp + j + q]
//! ```
//!
//! so row (`c`, `i`, `j`) of the im2col matrix *is* the contiguous slice of
//! the padded image that starts at `c·Hp·Wp + i·Wp + j`. A GEMM kernel given
//! one start offset per row needs no im2col copy and no packing of its
//! right-hand side; only the filters (a few kilobytes) are packed, once per
//! pass. The three products of [`crate::conv`] become:
//!
//! ```text
//! forward      y[o][q]  = b[o] + Σ_(c,i,j) W[o][c][i][j] · xpad[off(c,i,j) + q]
//! weight grad  dW[o][c][i][j] = Σ_n Σ_q dyw[o][q] · xpad[off(c,i,j) + q]
//!              (dyw: dy on the same OH x Wp grid, zero in the extra columns)
//! input grad   dx[c][p] = Σ_(o,i,j) W[o][c][KH−1−i][KW−1−j] · dypad[off'(o,i,j) + p]
//!              (dy padded by KH−1−PH, KW−1−PW: the full correlation with the
//!              rotated kernel, on an H x (W + KW − 1) grid)
//! ```
//!
//! The micro-kernels use AVX2 and FMA and are chosen at run time
//! ([`available`]); other machines, other strides and padding wider than
//! the kernel take the im2col path. Each output element is one
//! multiply-add chain in a fixed order, and the weight gradient is summed
//! over the same fixed chunks of the batch as in [`crate::conv`], so the
//! determinism rule holds.

use rayon::prelude::*;

use crate::conv::Activation;
use crate::ConvGeometry;

/// Output rows (channels) per micro-kernel call.
pub(crate) const MR: usize = 4;
/// f32 lanes of one AVX2 register.
const LANES: usize = 8;
/// Images per weight-gradient chunk are `batch.div_ceil(GRAD_WEIGHT_CHUNKS)`;
/// the same constant as the im2col path, for the same reason.
const GRAD_WEIGHT_CHUNKS: usize = 4;

/// Whether [`forward`] and [`backward`] can run geometry `g` on this machine:
/// x86-64 with AVX2 and FMA, stride 1, and padding smaller than the kernel.
pub fn available(g: &ConvGeometry) -> bool {
    g.stride_h == 1
        && g.stride_w == 1
        && g.pad_h < g.kernel_h
        && g.pad_w < g.kernel_w
        && cpu_has_avx2_fma()
}

#[cfg(target_arch = "x86_64")]
pub(crate) fn cpu_has_avx2_fma() -> bool {
    std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
}

#[cfg(not(target_arch = "x86_64"))]
pub(crate) fn cpu_has_avx2_fma() -> bool {
    false
}

/// Sizes of the padded grids of one geometry.
#[derive(Clone, Copy, Debug)]
struct Grid {
    /// Padded input plane, Hp x Wp.
    hp: usize,
    wp: usize,
    /// Floats per image in the padded input, slack for the last row's
    /// over-read included.
    x_stride: usize,
    /// Output pixels on the OH x Wp grid, rounded up to whole registers.
    q8: usize,
    /// Output channels rounded up to whole micro-kernel rows.
    o4: usize,
    /// dy padded for the input gradient: Hd x Wd per channel.
    hd: usize,
    wd: usize,
    dy_stride: usize,
    /// Input-gradient pixels on the H x Wd grid, rounded up.
    p8: usize,
    /// Input channels rounded up to whole micro-kernel rows.
    c4: usize,
}

impl Grid {
    fn new(g: &ConvGeometry) -> Grid {
        let (hp, wp) = (g.in_h + 2 * g.pad_h, g.in_w + 2 * g.pad_w);
        let (hd, wd) = (
            g.out_h() + 2 * (g.kernel_h - 1 - g.pad_h),
            g.out_w() + 2 * (g.kernel_w - 1 - g.pad_w),
        );
        // A row read starts at most at (KH−1)·Wp + KW−1 into a plane and runs
        // q8 ≤ OH·Wp + 7 floats, so it ends at most KW + 6 floats past the image.
        let slack = |kw: usize| kw + LANES;
        Grid {
            hp,
            wp,
            x_stride: (g.in_channels * hp * wp + slack(g.kernel_w)).next_multiple_of(LANES),
            q8: (g.out_h() * wp).next_multiple_of(LANES),
            o4: g.out_channels.next_multiple_of(MR),
            hd,
            wd,
            dy_stride: (g.out_channels * hd * wd + slack(g.kernel_w)).next_multiple_of(LANES),
            p8: (g.in_h * wd).next_multiple_of(LANES),
            c4: g.in_channels.next_multiple_of(MR),
        }
    }

    /// Start of row (`c`, `i`, `j`) of the implicit im2col matrix of the forward pass.
    fn x_offsets(&self, g: &ConvGeometry) -> Vec<usize> {
        let mut v = Vec::with_capacity(g.patch_len());
        for c in 0..g.in_channels {
            for i in 0..g.kernel_h {
                for j in 0..g.kernel_w {
                    v.push(c * self.hp * self.wp + i * self.wp + j);
                }
            }
        }
        v
    }

    /// Start of row (`o`, `i`, `j`) of the implicit matrix of the input gradient.
    fn dy_offsets(&self, g: &ConvGeometry) -> Vec<usize> {
        let mut v = Vec::with_capacity(g.out_channels * g.kernel_h * g.kernel_w);
        for o in 0..g.out_channels {
            for i in 0..g.kernel_h {
                for j in 0..g.kernel_w {
                    v.push(o * self.hd * self.wd + i * self.wd + j);
                }
            }
        }
        v
    }
}

/// Buffers of the direct path, reused from step to step.
#[derive(Debug, Default, Clone)]
pub(crate) struct DirectScratch {
    /// The batch's padded input, N x `x_stride`; the backward pass reads it again.
    padded_input: Vec<f32>,
    /// Filters packed for the forward kernel: `o4/4` blocks of K x 4.
    packed_weight: Vec<f32>,
    x_offsets: Vec<usize>,
    /// dy on the OH x Wp grid, zero in the extra columns: N x o4 x q8.
    grad_output_wide: Vec<f32>,
    /// dy padded for the input gradient: N x `dy_stride`.
    padded_grad_output: Vec<f32>,
    /// Rotated, transposed filters for the input gradient: `c4/4` blocks of (O·KH·KW) x 4.
    packed_weight_rotated: Vec<f32>,
    dy_offsets: Vec<usize>,
    /// Partial weight gradients, one o4 x K block per batch chunk.
    grad_weight_parts: Vec<f32>,
    /// Per-image bias-gradient sums, N x O, in f64.
    grad_bias_parts: Vec<f64>,
    /// The geometry `padded_input`, `grad_output_wide` and
    /// `padded_grad_output` are laid out for, and `x_offsets` and
    /// `dy_offsets` computed for. The buffers' padding, extra columns and
    /// slack are zeroed once, when the layout changes, and never written
    /// after that: each pass writes only the interior.
    layout: Option<ConvGeometry>,
}

impl DirectScratch {
    /// Clears the padded buffers if they were laid out for another geometry,
    /// so that `resize` refills them with zeros, and recomputes the row
    /// offsets (which depend on the geometry alone).
    fn use_layout(&mut self, g: &ConvGeometry) {
        if self.layout != Some(*g) {
            self.padded_input.clear();
            self.grad_output_wide.clear();
            self.padded_grad_output.clear();
            let grid = Grid::new(g);
            self.x_offsets = grid.x_offsets(g);
            self.dy_offsets = grid.dy_offsets(g);
            self.layout = Some(*g);
        }
    }
}

fn resize<T: Clone + Default>(buf: &mut Vec<T>, len: usize) {
    if buf.len() != len {
        buf.resize(len, T::default());
    }
}

/// Copies one image (C x H x W) into the interior of its padded block
/// (C x Hp x Wp + slack), whose padding is already zero.
fn pad_image(g: &ConvGeometry, grid: &Grid, image: &[f32], dst: &mut [f32]) {
    let (ph, pw) = (g.pad_h, g.pad_w);
    for (c, plane) in image.chunks_exact(g.in_h * g.in_w).enumerate() {
        let padded = &mut dst[c * grid.hp * grid.wp..(c + 1) * grid.hp * grid.wp];
        for (y, row) in plane.chunks_exact(g.in_w).enumerate() {
            let start = (y + ph) * grid.wp + pw;
            padded[start..start + g.in_w].copy_from_slice(row);
        }
    }
}

/// Forward pass: `output[n][o] = bias[o] + Σ W[o] ⋆ input[n]`, shapes as in
/// [`crate::conv::conv2d_forward`]. Leaves the padded input in `s` for [`backward`].
///
/// # Panics
/// If `!available(g)`, or on a slice of the wrong length.
pub(crate) fn forward(
    g: &ConvGeometry,
    batch: usize,
    input: &[f32],
    weight: &[f32],
    bias: &[f32],
    activation: Activation,
    output: &mut [f32],
    s: &mut DirectScratch,
) {
    assert!(
        available(g),
        "direct convolution is not available for {g:?}"
    );
    let grid = Grid::new(g);
    pad_input(g, batch, input, s);
    let k = g.patch_len();
    pack_rows(
        g.out_channels,
        k,
        grid.o4,
        |o, kk| weight[o * k + kk],
        &mut s.packed_weight,
    );
    let (packed, offsets) = (&s.packed_weight, &s.x_offsets);
    let (oh, ow, l) = (g.out_h(), g.out_w(), g.out_plane());
    s.padded_input
        .par_chunks(grid.x_stride)
        .zip(output.par_chunks_mut(g.out_size()))
        .for_each(|(xp, y)| {
            with_tile(MR * grid.q8, |tile| {
                for (block, a) in packed.chunks_exact(MR * k).enumerate() {
                    shifted_gemm(a, xp, offsets, grid.q8, tile);
                    for r in 0..MR.min(g.out_channels - block * MR) {
                        let o = block * MR + r;
                        let plane = &mut y[o * l..(o + 1) * l];
                        let wide = &tile[r * grid.q8..];
                        for oy in 0..oh {
                            let src = &wide[oy * grid.wp..oy * grid.wp + ow];
                            let dst = plane[oy * ow..(oy + 1) * ow].iter_mut().zip(src);
                            match activation {
                                Activation::Identity => dst.for_each(|(d, &v)| *d = v + bias[o]),
                                Activation::Relu => {
                                    dst.for_each(|(d, &v)| *d = (v + bias[o]).max(0.0))
                                }
                            }
                        }
                    }
                }
            });
        });
}

/// Pads every image of the batch into `s.padded_input`, in parallel: what
/// [`backward`] needs of the input, without running the forward pass.
pub(crate) fn pad_input(g: &ConvGeometry, batch: usize, input: &[f32], s: &mut DirectScratch) {
    let grid = &Grid::new(g);
    assert_eq!(
        input.len(),
        batch * g.in_size(),
        "direct conv: input length"
    );
    s.use_layout(g);
    resize(&mut s.padded_input, batch * grid.x_stride);
    s.padded_input
        .par_chunks_mut(grid.x_stride)
        .zip(input.par_chunks(g.in_size()))
        .for_each(|(dst, image)| pad_image(g, grid, image, dst));
}

/// Packs an R x K matrix, given by `at(r, k)`, for the micro-kernel: blocks
/// of MR rows, each stored k-major (`[k][r]`), rows past R zero.
fn pack_rows(
    rows: usize,
    k: usize,
    rows4: usize,
    at: impl Fn(usize, usize) -> f32,
    dst: &mut Vec<f32>,
) {
    resize(dst, rows4 * k);
    for (block, packed) in dst.chunks_exact_mut(MR * k).enumerate() {
        for kk in 0..k {
            for r in 0..MR {
                let row = block * MR + r;
                packed[kk * MR + r] = if row < rows { at(row, kk) } else { 0.0 };
            }
        }
    }
}

/// Backward pass for the input of the last [`forward`] that used `s`:
/// overwrites `grad_weight` and `grad_bias`, and `grad_input` when given.
/// Slice lengths are checked by the caller,
/// [`crate::conv::conv2d_backward_after_forward_with`].
/// With `mask` (a fused ReLU's output), dy counts only where the mask is positive.
pub(crate) fn backward(
    g: &ConvGeometry,
    batch: usize,
    weight: &[f32],
    mask: Option<&[f32]>,
    grad_output: &[f32],
    grad_input: Option<&mut [f32]>,
    grad_weight: &mut [f32],
    grad_bias: &mut [f32],
    s: &mut DirectScratch,
) {
    assert!(
        available(g),
        "direct convolution is not available for {g:?}"
    );
    let grid = Grid::new(g);
    let (o, k, l) = (g.out_channels, g.patch_len(), g.out_plane());
    let ow = g.out_w();
    assert_eq!(
        s.padded_input.len(),
        batch * grid.x_stride,
        "direct conv: no forward pass"
    );
    if batch == 0 {
        grad_weight.fill(0.0);
        grad_bias.fill(0.0);
        return;
    }
    let want_dx = grad_input.is_some();

    // dy on the wide OH x Wp grid (for dW), padded dy (for dx), and each
    // image's per-channel sums (for db), one image per task. Only interiors
    // are written; the zeros around them stay from `use_layout`.
    s.use_layout(g);
    resize(&mut s.grad_output_wide, batch * grid.o4 * grid.q8);
    resize(&mut s.grad_bias_parts, batch * o);
    resize(
        &mut s.padded_grad_output,
        if want_dx { batch * grid.dy_stride } else { 0 },
    );
    let (qd, kh1, kw1) = (grid.wd, g.kernel_h - 1 - g.pad_h, g.kernel_w - 1 - g.pad_w);
    // Image n's dy, masked, onto the wide grid; db sums over that grid (its
    // extra entries are 0), so a fused and an unfused ReLU give the same bits.
    let widen = |n: usize, wide: &mut [f32], db: &mut [f64]| {
        let at = n * g.out_size();
        let dy = &grad_output[at..at + g.out_size()];
        let y = mask.map(|y| &y[at..at + g.out_size()]);
        for ch in 0..o {
            for oy in 0..g.out_h() {
                let start = ch * grid.q8 + oy * grid.wp;
                let from = ch * l + oy * ow;
                let dst = &mut wide[start..start + ow];
                match y {
                    Some(y) => masked_copy(dst, &dy[from..from + ow], &y[from..from + ow]),
                    None => dst.copy_from_slice(&dy[from..from + ow]),
                }
            }
            db[ch] = crate::conv::sum_f64(&wide[ch * grid.q8..(ch + 1) * grid.q8]);
        }
    };
    // The same rows, moved into the padded planes of the input gradient.
    let pad = |wide: &[f32], dst: &mut [f32]| {
        for ch in 0..o {
            let padded = &mut dst[ch * grid.hd * qd..(ch + 1) * grid.hd * qd];
            for oy in 0..g.out_h() {
                let start = (oy + kh1) * qd + kw1;
                let src = ch * grid.q8 + oy * grid.wp;
                padded[start..start + ow].copy_from_slice(&wide[src..src + ow]);
            }
        }
    };
    let wide_chunks = s.grad_output_wide.par_chunks_mut(grid.o4 * grid.q8);
    let db_chunks = s.grad_bias_parts.par_chunks_mut(o);
    if want_dx {
        wide_chunks
            .zip(db_chunks)
            .zip(s.padded_grad_output.par_chunks_mut(grid.dy_stride))
            .enumerate()
            .for_each(|(n, ((wide, db), padded))| {
                widen(n, wide, db);
                pad(wide, padded);
            });
    } else {
        wide_chunks
            .zip(db_chunks)
            .enumerate()
            .for_each(|(n, (wide, db))| widen(n, wide, db));
    }
    for (ch, db) in grad_bias.iter_mut().enumerate() {
        *db = s.grad_bias_parts.iter().skip(ch).step_by(o).sum::<f64>() as f32;
    }

    let per_chunk = batch.div_ceil(GRAD_WEIGHT_CHUNKS);
    let chunks = batch.div_ceil(per_chunk);
    resize(&mut s.grad_weight_parts, chunks * grid.o4 * k);
    let (x_offsets, padded_input, dy_wide) = (&s.x_offsets, &s.padded_input, &s.grad_output_wide);
    let parts = &mut s.grad_weight_parts;
    let mut weight_grad = || {
        parts
            .par_chunks_mut(grid.o4 * k)
            .enumerate()
            .for_each(|(c, part)| {
                let images = c * per_chunk..((c + 1) * per_chunk).min(batch);
                let xs = &padded_input[images.start * grid.x_stride..images.end * grid.x_stride];
                let dys =
                    &dy_wide[images.start * grid.o4 * grid.q8..images.end * grid.o4 * grid.q8];
                shifted_dot(xs, grid.x_stride, dys, grid.o4, grid.q8, x_offsets, part);
            });
    };

    if let Some(grad_input) = grad_input {
        let (kh, kw, ks) = (g.kernel_h, g.kernel_w, g.kernel_h * g.kernel_w);
        // W'[c][(o, i, j)] = W[o][c][KH−1−i][KW−1−j].
        pack_rows(
            g.in_channels,
            o * ks,
            grid.c4,
            |c, r| {
                let (oo, i, j) = (r / ks, r / kw % kh, r % kw);
                weight[oo * k + c * ks + (kh - 1 - i) * kw + (kw - 1 - j)]
            },
            &mut s.packed_weight_rotated,
        );
        let (packed, offsets, dy_padded) = (
            &s.packed_weight_rotated,
            &s.dy_offsets,
            &s.padded_grad_output,
        );
        let plane = g.in_h * g.in_w;
        let input_grad = || {
            grad_input
                .par_chunks_mut(g.in_size())
                .zip(dy_padded.par_chunks(grid.dy_stride))
                .for_each(|(dx, dyp)| {
                    with_tile(MR * grid.p8, |tile| {
                        for (block, a) in packed.chunks_exact(MR * o * ks).enumerate() {
                            shifted_gemm(a, dyp, offsets, grid.p8, tile);
                            for r in 0..MR.min(g.in_channels - block * MR) {
                                let c = block * MR + r;
                                let wide = &tile[r * grid.p8..];
                                for y in 0..g.in_h {
                                    dx[c * plane + y * g.in_w..c * plane + (y + 1) * g.in_w]
                                        .copy_from_slice(&wide[y * qd..y * qd + g.in_w]);
                                }
                            }
                        }
                    });
                });
        };
        rayon::join(weight_grad, input_grad);
    } else {
        weight_grad();
    }

    let mut parts = s.grad_weight_parts.chunks_exact(grid.o4 * k);
    let first = parts.next().expect("at least one chunk");
    grad_weight.copy_from_slice(&first[..o * k]);
    for part in parts {
        for (dw, &p) in grad_weight.iter_mut().zip(part) {
            *dw += p;
        }
    }
}

/// `dst = src` where `mask > 0`, else 0: the ReLU's backward pass. Compiled
/// for AVX where the CPU has it (the same selects, so the same bits).
fn masked_copy(dst: &mut [f32], src: &[f32], mask: &[f32]) {
    #[inline(always)]
    fn portable(dst: &mut [f32], src: &[f32], mask: &[f32]) {
        for ((d, &v), &m) in dst.iter_mut().zip(src).zip(mask) {
            *d = if m > 0.0 { v } else { 0.0 };
        }
    }
    #[cfg(target_arch = "x86_64")]
    if cpu_has_avx2_fma() {
        #[target_feature(enable = "avx2")]
        fn avx2(dst: &mut [f32], src: &[f32], mask: &[f32]) {
            portable(dst, src, mask)
        }
        // SAFETY: the CPU has AVX2.
        return unsafe { avx2(dst, src, mask) };
    }
    portable(dst, src, mask)
}

thread_local! {
    /// One output tile per worker thread, so the kernels allocate nothing per step.
    static TILE: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
    /// One packing buffer per worker thread, likewise.
    static PACK: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs `f` on this thread's packing buffer, `len` long.
pub(crate) fn with_pack<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    PACK.with(|t| {
        let mut t = t.borrow_mut();
        if t.len() < len {
            t.resize(len, 0.0);
        }
        f(&mut t[..len])
    })
}

pub(crate) fn with_tile(len: usize, f: impl FnOnce(&mut [f32])) {
    TILE.with(|t| {
        let mut t = t.borrow_mut();
        if t.len() < len {
            t.resize(len, 0.0);
        }
        f(&mut t[..len]);
    });
}

/// `out[r][q] = Σ_k a[k·MR + r] · src[offsets[k] + q]` for r < MR, q < q8
/// (`out` is MR rows of q8). `src` must hold every such read.
pub(crate) fn shifted_gemm(a: &[f32], src: &[f32], offsets: &[usize], q8: usize, out: &mut [f32]) {
    shifted_gemm_on(cpu_has_avx512(), a, src, offsets, q8, out)
}

/// Whether the CPU has AVX-512F, for the 16-lane blocks of `shifted_gemm`.
#[cfg(target_arch = "x86_64")]
fn cpu_has_avx512() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
}

#[cfg(not(target_arch = "x86_64"))]
fn cpu_has_avx512() -> bool {
    false
}

/// [`shifted_gemm`], with 16-lane AVX-512 blocks or without. Each output is
/// the same chain of fused multiply-adds in the same order either way, so
/// the two give the same bits (a test holds them to it).
fn shifted_gemm_on(
    avx512: bool,
    a: &[f32],
    src: &[f32],
    offsets: &[usize],
    q8: usize,
    out: &mut [f32],
) {
    assert!(q8.is_multiple_of(LANES), "shifted_gemm: q8");
    assert!(a.len() >= offsets.len() * MR, "shifted_gemm: packed rows");
    assert!(out.len() >= MR * q8, "shifted_gemm: output tile");
    let last = offsets.iter().max().map_or(0, |m| m + q8);
    assert!(last <= src.len(), "shifted_gemm: reads past the source");
    #[cfg(target_arch = "x86_64")]
    {
        assert!(cpu_has_avx2_fma(), "shifted_gemm needs AVX2 and FMA");
        let (a, src, out) = (a.as_ptr(), src.as_ptr(), out.as_mut_ptr());
        if avx512 {
            assert!(cpu_has_avx512(), "the 16-lane blocks need AVX-512F");
            // SAFETY: as below, and the CPU has AVX-512F.
            unsafe { avx2::shifted_gemm_avx512(a, src, offsets, q8, out) }
        } else {
            // SAFETY: the CPU has AVX2 and FMA (checked above); every read is
            // inside `a` and `src` and every write inside `out` (asserted above).
            unsafe { avx2::shifted_gemm(a, src, offsets, q8, out) }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    unreachable!("direct convolution is only available on x86-64")
}

/// Adds `Σ_n Σ_q dy[n][r][q] · xs[n][offsets[k] + q]` into `part[r][k]`
/// (overwriting it) for r < rows4, k < K: the weight gradient of a run of
/// images. `xs` holds the images' padded inputs (stride `x_stride`) and `dys`
/// their wide output gradients (rows4 x q8 each).
pub(crate) fn shifted_dot(
    xs: &[f32],
    x_stride: usize,
    dys: &[f32],
    rows4: usize,
    q8: usize,
    offsets: &[usize],
    part: &mut [f32],
) {
    shifted_dot_on(
        cpu_has_avx512(),
        xs,
        x_stride,
        dys,
        rows4,
        q8,
        offsets,
        part,
    )
}

/// [`shifted_dot`] with or without AVX-512. The AVX-512 block keeps two
/// taps' 8-lane sums in the two halves of each register, each half summed
/// exactly as the AVX2 block sums it, so both give the same bits.
fn shifted_dot_on(
    avx512: bool,
    xs: &[f32],
    x_stride: usize,
    dys: &[f32],
    rows4: usize,
    q8: usize,
    offsets: &[usize],
    part: &mut [f32],
) {
    let images = xs.len() / x_stride;
    assert_eq!(xs.len(), images * x_stride, "shifted_dot: inputs");
    assert_eq!(dys.len(), images * rows4 * q8, "shifted_dot: gradients");
    assert_eq!(part.len(), rows4 * offsets.len(), "shifted_dot: output");
    assert!(
        q8.is_multiple_of(LANES) && rows4.is_multiple_of(MR),
        "shifted_dot: sizes"
    );
    let last = offsets.iter().max().map_or(0, |m| m + q8);
    assert!(last <= x_stride, "shifted_dot: reads past an image");
    #[cfg(target_arch = "x86_64")]
    {
        assert!(cpu_has_avx2_fma(), "shifted_dot needs AVX2 and FMA");
        // SAFETY: AVX2 and FMA are present; reads stay inside each image's
        // block of `xs` and `dys`, writes inside `part` (asserted above).
        unsafe {
            avx2::shifted_dot(
                avx512 && cpu_has_avx512(),
                xs.as_ptr(),
                x_stride,
                dys.as_ptr(),
                images,
                rows4,
                q8,
                offsets,
                part.as_mut_ptr(),
            )
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    unreachable!("direct convolution is only available on x86-64")
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    //! The two micro-kernels. Each keeps a 4 x (8·V) block of sums in 12 or
    //! fewer registers and walks the inner dimension once, in order.
    use super::{LANES, MR};
    use std::arch::x86_64::*;

    /// See [`super::shifted_gemm`].
    ///
    /// # Safety
    /// AVX2 and FMA present; `a` readable for `offsets.len()·MR` floats;
    /// `src` readable at `offsets[k] + q` for q < q8; `out` writable for MR·q8.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn shifted_gemm(
        a: *const f32,
        src: *const f32,
        offsets: &[usize],
        q8: usize,
        out: *mut f32,
    ) {
        let mut q = 0;
        while q + 2 * LANES <= q8 {
            gemm_block::<2>(a, src, offsets, q, q8, out);
            q += 2 * LANES;
        }
        while q < q8 {
            gemm_block::<1>(a, src, offsets, q, q8, out);
            q += LANES;
        }
    }

    /// [`shifted_gemm`] with 64- and 16-pixel blocks in AVX-512 registers
    /// first, and the AVX2 8-pixel block for what is left.
    ///
    /// # Safety
    /// As [`shifted_gemm`], and the CPU has AVX-512F.
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub(super) unsafe fn shifted_gemm_avx512(
        a: *const f32,
        src: *const f32,
        offsets: &[usize],
        q8: usize,
        out: *mut f32,
    ) {
        const W: usize = 16;
        let mut q = 0;
        while q + 4 * W <= q8 {
            gemm_block_512::<4>(a, src, offsets, q, q8, out);
            q += 4 * W;
        }
        while q + W <= q8 {
            gemm_block_512::<1>(a, src, offsets, q, q8, out);
            q += W;
        }
        while q < q8 {
            gemm_block::<1>(a, src, offsets, q, q8, out);
            q += LANES;
        }
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn gemm_block_512<const V: usize>(
        a: *const f32,
        src: *const f32,
        offsets: &[usize],
        q: usize,
        ld: usize,
        out: *mut f32,
    ) {
        let mut acc = [[_mm512_setzero_ps(); V]; MR];
        for (k, &off) in offsets.iter().enumerate() {
            let s = src.add(off + q);
            let mut b = [_mm512_setzero_ps(); V];
            for (v, bv) in b.iter_mut().enumerate() {
                *bv = _mm512_loadu_ps(s.add(v * 16));
            }
            for (r, row) in acc.iter_mut().enumerate() {
                let ar = _mm512_set1_ps(*a.add(k * MR + r));
                for (v, acc) in row.iter_mut().enumerate() {
                    *acc = _mm512_fmadd_ps(ar, b[v], *acc);
                }
            }
        }
        for (r, row) in acc.iter().enumerate() {
            for (v, acc) in row.iter().enumerate() {
                _mm512_storeu_ps(out.add(r * ld + q + v * 16), *acc);
            }
        }
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn gemm_block<const V: usize>(
        a: *const f32,
        src: *const f32,
        offsets: &[usize],
        q: usize,
        ld: usize,
        out: *mut f32,
    ) {
        let mut acc = [[_mm256_setzero_ps(); V]; MR];
        for (k, &off) in offsets.iter().enumerate() {
            let s = src.add(off + q);
            let mut b = [_mm256_setzero_ps(); V];
            for (v, bv) in b.iter_mut().enumerate() {
                *bv = _mm256_loadu_ps(s.add(v * LANES));
            }
            for (r, row) in acc.iter_mut().enumerate() {
                let ar = _mm256_broadcast_ss(&*a.add(k * MR + r));
                for (v, acc) in row.iter_mut().enumerate() {
                    *acc = _mm256_fmadd_ps(ar, b[v], *acc);
                }
            }
        }
        for (r, row) in acc.iter().enumerate() {
            for (v, acc) in row.iter().enumerate() {
                _mm256_storeu_ps(out.add(r * ld + q + v * LANES), *acc);
            }
        }
    }

    /// See [`super::shifted_dot`].
    ///
    /// # Safety
    /// As asserted by the caller: AVX2 and FMA present, `xs` readable for
    /// `images·x_stride`, every `offsets[k] + q8 ≤ x_stride`, `dys` readable
    /// for `images·rows4·q8`, `part` writable for `rows4·offsets.len()`.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn shifted_dot(
        avx512: bool,
        xs: *const f32,
        x_stride: usize,
        dys: *const f32,
        images: usize,
        rows4: usize,
        q8: usize,
        offsets: &[usize],
        part: *mut f32,
    ) {
        let k = offsets.len();
        for block in 0..rows4 / MR {
            let mut kk = 0;
            if avx512 {
                while kk + 8 <= k {
                    dot_block_512(
                        xs,
                        x_stride,
                        dys,
                        images,
                        rows4,
                        q8,
                        block,
                        &offsets[kk..kk + 8],
                        part.add(block * MR * k + kk),
                        k,
                    );
                    kk += 8;
                }
            }
            while kk + 2 <= k {
                dot_block::<2>(
                    xs,
                    x_stride,
                    dys,
                    images,
                    rows4,
                    q8,
                    block,
                    &offsets[kk..kk + 2],
                    part.add(block * MR * k + kk),
                    k,
                );
                kk += 2;
            }
            while kk < k {
                dot_block::<1>(
                    xs,
                    x_stride,
                    dys,
                    images,
                    rows4,
                    q8,
                    block,
                    &offsets[kk..kk + 1],
                    part.add(block * MR * k + kk),
                    k,
                );
                kk += 1;
            }
        }
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn dot_block<const V: usize>(
        xs: *const f32,
        x_stride: usize,
        dys: *const f32,
        images: usize,
        rows4: usize,
        q8: usize,
        block: usize,
        offsets: &[usize],
        out: *mut f32,
        ld: usize,
    ) {
        let mut acc = [[_mm256_setzero_ps(); V]; MR];
        for n in 0..images {
            let x = xs.add(n * x_stride);
            let dy = dys.add((n * rows4 + block * MR) * q8);
            let mut q = 0;
            while q < q8 {
                let mut b = [_mm256_setzero_ps(); V];
                for (v, bv) in b.iter_mut().enumerate() {
                    *bv = _mm256_loadu_ps(x.add(offsets[v] + q));
                }
                for (r, row) in acc.iter_mut().enumerate() {
                    let d = _mm256_loadu_ps(dy.add(r * q8 + q));
                    for (v, acc) in row.iter_mut().enumerate() {
                        *acc = _mm256_fmadd_ps(d, b[v], *acc);
                    }
                }
                q += LANES;
            }
        }
        for (r, row) in acc.iter().enumerate() {
            for (v, acc) in row.iter().enumerate() {
                *out.add(r * ld + v) = horizontal_sum(*acc);
            }
        }
    }

    /// [`dot_block`] for 8 taps at once: register `p` of row `r` holds the
    /// 8-lane sums of taps 2p (low half) and 2p + 1 (high half), each half
    /// updated by the same fused multiply-adds in the same order as the AVX2
    /// block's register for that tap, and summed by the same
    /// [`horizontal_sum`].
    #[inline]
    #[target_feature(enable = "avx512f,avx2,fma")]
    unsafe fn dot_block_512(
        xs: *const f32,
        x_stride: usize,
        dys: *const f32,
        images: usize,
        rows4: usize,
        q8: usize,
        block: usize,
        offsets: &[usize],
        out: *mut f32,
        ld: usize,
    ) {
        const P: usize = 4;
        let pair = |lo: __m256, hi: __m256| {
            _mm512_castpd_ps(_mm512_insertf64x4::<1>(
                _mm512_castps_pd(_mm512_castps256_ps512(lo)),
                _mm256_castps_pd(hi),
            ))
        };
        let mut acc = [[_mm512_setzero_ps(); P]; MR];
        for n in 0..images {
            let x = xs.add(n * x_stride);
            let dy = dys.add((n * rows4 + block * MR) * q8);
            let mut q = 0;
            while q < q8 {
                let mut b = [_mm512_setzero_ps(); P];
                for (p, bp) in b.iter_mut().enumerate() {
                    *bp = pair(
                        _mm256_loadu_ps(x.add(offsets[2 * p] + q)),
                        _mm256_loadu_ps(x.add(offsets[2 * p + 1] + q)),
                    );
                }
                for (r, row) in acc.iter_mut().enumerate() {
                    let d8 = _mm256_loadu_ps(dy.add(r * q8 + q));
                    let d = _mm512_castpd_ps(_mm512_broadcast_f64x4(_mm256_castps_pd(d8)));
                    for (p, acc) in row.iter_mut().enumerate() {
                        *acc = _mm512_fmadd_ps(d, b[p], *acc);
                    }
                }
                q += LANES;
            }
        }
        for (r, row) in acc.iter().enumerate() {
            for (p, acc) in row.iter().enumerate() {
                let lo = _mm512_castps512_ps256(*acc);
                let hi = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(*acc)));
                *out.add(r * ld + 2 * p) = horizontal_sum(lo);
                *out.add(r * ld + 2 * p + 1) = horizontal_sum(hi);
            }
        }
    }

    /// Lanes summed as ((0+4)+(2+6)) + ((1+5)+(3+7)): a fixed order.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn horizontal_sum(v: __m256) -> f32 {
        let quad = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
        let pair = _mm_add_ps(quad, _mm_movehl_ps(quad, quad));
        let single = _mm_add_ss(pair, _mm_shuffle_ps::<0b01>(pair, pair));
        _mm_cvtss_f32(single)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The AVX-512 blocks give the bits of the AVX2 ones, for widths that
    /// use every kind of block (64, 16 and 8 pixels). On a CPU without
    /// AVX-512 there is nothing to compare.
    #[test]
    fn avx512_blocks_give_the_avx2_bits() {
        if !(cpu_has_avx2_fma() && cpu_has_avx512()) {
            return;
        }
        let value = |i: usize| ((i * 7919 % 2003) as f32 - 1001.0) / 1001.0;
        for q8 in [8, 16, 24, 64, 72, 88, 224, 840] {
            for k in [1, 9, 72] {
                let a: Vec<f32> = (0..k * MR).map(value).collect();
                let offsets: Vec<usize> = (0..k).map(|j| j * 3).collect();
                let src: Vec<f32> = (0..3 * k + q8).map(|i| value(i + 5)).collect();
                let run = |avx512| {
                    let mut out = vec![f32::NAN; MR * q8];
                    shifted_gemm_on(avx512, &a, &src, &offsets, q8, &mut out);
                    out.iter().map(|v| v.to_bits()).collect::<Vec<u32>>()
                };
                assert_eq!(run(true), run(false), "q8 {q8}, k {k}");
            }
        }
    }

    /// The same for the dot-product kernel, over several images and tap
    /// counts that leave 0 to 7 taps for the AVX2 blocks.
    #[test]
    fn avx512_dot_blocks_give_the_avx2_bits() {
        if !(cpu_has_avx2_fma() && cpu_has_avx512()) {
            return;
        }
        let value = |i: usize| ((i * 7919 % 2003) as f32 - 1001.0) / 1001.0;
        for (q8, k, images, rows4) in [
            (8, 8, 1, 4),
            (24, 9, 3, 8),
            (224, 72, 5, 16),
            (16, 15, 2, 4),
        ] {
            let offsets: Vec<usize> = (0..k).map(|j| j * 3).collect();
            let x_stride = 3 * k + q8;
            let xs: Vec<f32> = (0..images * x_stride).map(|i| value(i + 3)).collect();
            let dys: Vec<f32> = (0..images * rows4 * q8).map(|i| value(i + 11)).collect();
            let run = |avx512| {
                let mut part = vec![f32::NAN; rows4 * k];
                shifted_dot_on(avx512, &xs, x_stride, &dys, rows4, q8, &offsets, &mut part);
                part.iter().map(|v| v.to_bits()).collect::<Vec<u32>>()
            };
            assert_eq!(run(true), run(false), "q8 {q8}, k {k}");
        }
    }
}
