use serde::{Deserialize, Serialize};
use std::fmt;

/// The shape of one convolution: input and output planes, kernel, padding and stride.
///
/// Images are NCHW. The output size follows the usual rule
/// `out = (in + 2 * pad - kernel) / stride + 1` (rounded down).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConvGeometry {
    /// Input channels C.
    pub in_channels: usize,
    /// Input height H.
    pub in_h: usize,
    /// Input width W.
    pub in_w: usize,
    /// Output channels O (number of filters).
    pub out_channels: usize,
    /// Kernel height KH.
    pub kernel_h: usize,
    /// Kernel width KW.
    pub kernel_w: usize,
    /// Zero rows added above and below.
    pub pad_h: usize,
    /// Zero columns added left and right.
    pub pad_w: usize,
    /// Vertical step between kernel positions.
    pub stride_h: usize,
    /// Horizontal step between kernel positions.
    pub stride_w: usize,
}

/// Why a geometry cannot exist.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GeometryError(pub String);

impl fmt::Display for GeometryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for GeometryError {}

fn out_size(
    what: &str,
    input: usize,
    kernel: usize,
    pad: usize,
    stride: usize,
) -> Result<usize, GeometryError> {
    if kernel == 0 || stride == 0 {
        return Err(GeometryError(format!(
            "{what}: kernel and stride must be at least 1 (kernel {kernel}, stride {stride})"
        )));
    }
    let padded = pad
        .checked_mul(2)
        .and_then(|p| p.checked_add(input))
        .ok_or_else(|| GeometryError(format!("{what}: padding {pad} is too large")))?;
    if padded < kernel {
        return Err(GeometryError(format!(
            "{what}: kernel {kernel} is larger than the padded input {padded} ({input} + 2 x {pad})"
        )));
    }
    Ok((padded - kernel) / stride + 1)
}

impl ConvGeometry {
    /// Starts a geometry of `in_channels` to `out_channels` with a square
    /// `kernel`: set the input size with [`ConvGeometryBuilder::input`],
    /// optionally padding and stride, then [`ConvGeometryBuilder::build`].
    ///
    /// ```
    /// use im2col::ConvGeometry;
    ///
    /// let g = ConvGeometry::builder(8, 16, 3).input(14, 14).pad(1).build().unwrap();
    /// assert_eq!((g.out_h(), g.out_w(), g.stride_h), (14, 14, 1));
    /// ```
    pub fn builder(in_channels: usize, out_channels: usize, kernel: usize) -> ConvGeometryBuilder {
        ConvGeometryBuilder {
            in_channels,
            out_channels,
            kernel,
            input: None,
            pad: 0,
            stride: 1,
        }
    }

    /// Checks that every size is positive and the kernel fits the padded input.
    pub fn check(&self) -> Result<(), GeometryError> {
        if self.in_channels == 0 || self.out_channels == 0 || self.in_h == 0 || self.in_w == 0 {
            return Err(GeometryError(format!(
                "convolution with an empty dimension: {self:?}"
            )));
        }
        let out_w = out_size("width", self.in_w, self.kernel_w, self.pad_w, self.stride_w)?;
        let out_h = out_size(
            "height",
            self.in_h,
            self.kernel_h,
            self.pad_h,
            self.stride_h,
        )?;
        // Every size the kernels compute from the geometry must fit in a usize.
        let product = |factors: &[usize]| factors.iter().try_fold(1usize, |n, &f| n.checked_mul(f));
        let sizes = [
            product(&[self.in_channels, self.in_h, self.in_w]),
            product(&[self.out_channels, out_h, out_w]),
            product(&[self.in_channels, self.kernel_h, self.kernel_w, out_h, out_w]),
            product(&[
                self.out_channels,
                self.in_channels,
                self.kernel_h,
                self.kernel_w,
            ]),
        ];
        if sizes.contains(&None) {
            return Err(GeometryError(format!(
                "convolution too large: its sizes do not fit in 64 bits: {self:?}"
            )));
        }
        Ok(())
    }

    /// Output height.
    pub fn out_h(&self) -> usize {
        (self.in_h + 2 * self.pad_h - self.kernel_h) / self.stride_h + 1
    }

    /// Output width.
    pub fn out_w(&self) -> usize {
        (self.in_w + 2 * self.pad_w - self.kernel_w) / self.stride_w + 1
    }

    /// Values in one input image: C x H x W.
    pub fn in_size(&self) -> usize {
        self.in_channels * self.in_h * self.in_w
    }

    /// Values in one output image: O x OH x OW.
    pub fn out_size(&self) -> usize {
        self.out_channels * self.out_plane()
    }

    /// Output pixels per channel: OH x OW (the columns im2col makes per image).
    pub fn out_plane(&self) -> usize {
        self.out_h() * self.out_w()
    }

    /// Length of one unrolled patch: C x KH x KW (the rows of the im2col matrix,
    /// and the columns of the weight matrix).
    pub fn patch_len(&self) -> usize {
        self.in_channels * self.kernel_h * self.kernel_w
    }

    /// Values in the weight tensor: O x C x KH x KW.
    pub fn weight_len(&self) -> usize {
        self.out_channels * self.patch_len()
    }

    /// Multiply-adds of one image's forward pass, times two: the FLOP count.
    pub fn forward_flops(&self) -> u64 {
        2 * (self.out_channels * self.patch_len() * self.out_plane()) as u64
    }
}

/// A square-kernel [`ConvGeometry`] with the same padding and stride in both
/// directions, from [`ConvGeometry::builder`]; [`ConvGeometryBuilder::build`]
/// checks it, so a geometry it gives always has at least one output pixel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGeometryBuilder {
    in_channels: usize,
    out_channels: usize,
    kernel: usize,
    input: Option<(usize, usize)>,
    pad: usize,
    stride: usize,
}

impl ConvGeometryBuilder {
    /// The input image's height and width (required).
    pub fn input(self, height: usize, width: usize) -> Self {
        ConvGeometryBuilder {
            input: Some((height, width)),
            ..self
        }
    }

    /// Zero padding on every side (default 0).
    pub fn pad(self, pad: usize) -> Self {
        ConvGeometryBuilder { pad, ..self }
    }

    /// Step between kernel positions, both directions (default 1).
    pub fn stride(self, stride: usize) -> Self {
        ConvGeometryBuilder { stride, ..self }
    }

    /// The checked geometry, or why it cannot exist.
    pub fn build(self) -> Result<ConvGeometry, GeometryError> {
        let (in_h, in_w) = self.input.ok_or_else(|| {
            GeometryError("convolution geometry without an input size (call `.input(h, w)`)".into())
        })?;
        let g = ConvGeometry {
            in_channels: self.in_channels,
            in_h,
            in_w,
            out_channels: self.out_channels,
            kernel_h: self.kernel,
            kernel_w: self.kernel,
            pad_h: self.pad,
            pad_w: self.pad,
            stride_h: self.stride,
            stride_w: self.stride,
        };
        g.check()?;
        Ok(g)
    }
}

/// The shape of one pooling: planes, window, padding and stride.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolGeometry {
    /// Channels C (pooling works plane by plane).
    pub channels: usize,
    /// Input height.
    pub in_h: usize,
    /// Input width.
    pub in_w: usize,
    /// Window side K.
    pub kernel: usize,
    /// Step between windows (equal to `kernel` for the usual non-overlapping pooling).
    pub stride: usize,
    /// Padding on every side. Average pooling counts padded zeros (divides by
    /// K²); max pooling never picks them.
    pub pad: usize,
}

impl PoolGeometry {
    /// A checked geometry.
    pub fn new(
        channels: usize,
        in_h: usize,
        in_w: usize,
        kernel: usize,
        stride: usize,
        pad: usize,
    ) -> Result<Self, GeometryError> {
        if channels == 0 || in_h == 0 || in_w == 0 {
            return Err(GeometryError(format!(
                "pooling over an empty input {channels}x{in_h}x{in_w}"
            )));
        }
        if pad >= kernel && kernel > 0 {
            // A window made only of padding has no maximum and no meaning.
            return Err(GeometryError(format!(
                "pooling padding {pad} must be smaller than the window {kernel}"
            )));
        }
        let out_h = out_size("height", in_h, kernel, pad, stride)?;
        let out_w = out_size("width", in_w, kernel, pad, stride)?;
        let sizes = [channels.checked_mul(in_h), channels.checked_mul(out_h)];
        if sizes
            .iter()
            .any(|s| s.and_then(|n| n.checked_mul(in_w.max(out_w))).is_none())
        {
            return Err(GeometryError(format!(
                "pooling too large: its sizes do not fit in 64 bits ({channels}x{in_h}x{in_w})"
            )));
        }
        Ok(PoolGeometry {
            channels,
            in_h,
            in_w,
            kernel,
            stride,
            pad,
        })
    }

    /// Output height.
    pub fn out_h(&self) -> usize {
        (self.in_h + 2 * self.pad - self.kernel) / self.stride + 1
    }

    /// Output width.
    pub fn out_w(&self) -> usize {
        (self.in_w + 2 * self.pad - self.kernel) / self.stride + 1
    }

    /// Values in one input image.
    pub fn in_size(&self) -> usize {
        self.channels * self.in_h * self.in_w
    }

    /// Values in one output image.
    pub fn out_size(&self) -> usize {
        self.channels * self.out_h() * self.out_w()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_network_sizes() {
        let g = ConvGeometry::builder(1, 8, 3)
            .input(28, 28)
            .pad(1)
            .build()
            .unwrap();
        assert_eq!((g.out_h(), g.out_w(), g.patch_len()), (28, 28, 9));
        let g = ConvGeometry::builder(8, 16, 5)
            .input(14, 14)
            .stride(2)
            .build()
            .unwrap();
        assert_eq!((g.out_h(), g.out_w()), (5, 5));
        let p = PoolGeometry::new(8, 28, 28, 2, 2, 0).unwrap();
        assert_eq!((p.out_h(), p.out_w()), (14, 14));
        let p = PoolGeometry::new(1, 7, 7, 2, 2, 0).unwrap();
        assert_eq!((p.out_h(), p.out_w()), (3, 3));
    }

    #[test]
    fn builder_sets_every_field() {
        let g = ConvGeometry::builder(3, 16, 5)
            .input(11, 7)
            .pad(2)
            .stride(3)
            .build()
            .unwrap();
        let literal = ConvGeometry {
            in_channels: 3,
            in_h: 11,
            in_w: 7,
            out_channels: 16,
            kernel_h: 5,
            kernel_w: 5,
            pad_h: 2,
            pad_w: 2,
            stride_h: 3,
            stride_w: 3,
        };
        assert_eq!(g, literal);
    }

    #[test]
    fn impossible_geometries_are_errors() {
        let conv = ConvGeometry::builder;
        assert!(conv(1, 1, 5).input(2, 2).build().is_err());
        assert!(conv(1, 1, 3).input(4, 4).stride(0).build().is_err());
        assert!(conv(0, 1, 3).input(4, 4).build().is_err());
        assert!(conv(1, 1, 3).build().is_err());
        assert!(PoolGeometry::new(1, 4, 4, 2, 2, 2).is_err());
        assert!(PoolGeometry::new(1, 1, 1, 2, 2, 0).is_err());
    }

    /// Sizes from a hostile config: errors, never an overflow.
    #[test]
    fn sizes_that_overflow_are_errors() {
        let conv = ConvGeometry::builder;
        assert!(conv(1, 1, 3)
            .input(4, 4)
            .pad(usize::MAX / 2 + 1)
            .build()
            .is_err());
        assert!(conv(1, 1, 1).input(1 << 40, 1 << 40).build().is_err());
        assert!(conv(1 << 40, 1 << 40, 1).input(1, 1).build().is_err());
        assert!(PoolGeometry::new(1, 4, 4, 2, 2, usize::MAX / 2 + 1).is_err());
        assert!(PoolGeometry::new(1 << 40, 1 << 40, 1, 1, 1, 0).is_err());
    }
}
