//! What the dispatching functions of `mod.rs` and the x86-64 kernels both
//! need: the micro-kernels' block sizes, and the portable masked copy whose
//! order the vector one keeps (and finishes its tail with).

/// Output rows per call of the matrix micro-kernels.
pub(crate) const MR: usize = 4;
/// f32 lanes of one AVX2 register.
pub(crate) const LANES: usize = 8;

/// `dst[i] = src[i]` where `mask[i] > 0`, else 0: a ReLU's backward pass.
#[inline(always)]
pub(crate) fn masked_copy_portable(dst: &mut [f32], src: &[f32], mask: &[f32]) {
    for ((d, &v), &m) in dst.iter_mut().zip(src).zip(mask) {
        *d = if m > 0.0 { v } else { 0.0 };
    }
}
