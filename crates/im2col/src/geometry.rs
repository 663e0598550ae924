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
    let padded = input + 2 * pad;
    if padded < kernel {
        return Err(GeometryError(format!(
            "{what}: kernel {kernel} is larger than the padded input {padded} ({input} + 2 x {pad})"
        )));
    }
    Ok((padded - kernel) / stride + 1)
}

impl ConvGeometry {
    /// A square-kernel geometry with the same padding and stride in both directions,
    /// checked so that at least one output pixel exists.
    pub fn square(
        in_channels: usize,
        in_h: usize,
        in_w: usize,
        out_channels: usize,
        kernel: usize,
        pad: usize,
        stride: usize,
    ) -> Result<Self, GeometryError> {
        let g = ConvGeometry {
            in_channels,
            in_h,
            in_w,
            out_channels,
            kernel_h: kernel,
            kernel_w: kernel,
            pad_h: pad,
            pad_w: pad,
            stride_h: stride,
            stride_w: stride,
        };
        g.check()?;
        Ok(g)
    }

    /// Checks that every size is positive and the kernel fits the padded input.
    pub fn check(&self) -> Result<(), GeometryError> {
        if self.in_channels == 0 || self.out_channels == 0 || self.in_h == 0 || self.in_w == 0 {
            return Err(GeometryError(format!(
                "convolution with an empty dimension: {self:?}"
            )));
        }
        out_size(
            "height",
            self.in_h,
            self.kernel_h,
            self.pad_h,
            self.stride_h,
        )?;
        out_size("width", self.in_w, self.kernel_w, self.pad_w, self.stride_w)?;
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
        out_size("height", in_h, kernel, pad, stride)?;
        out_size("width", in_w, kernel, pad, stride)?;
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
        let g = ConvGeometry::square(1, 28, 28, 8, 3, 1, 1).unwrap();
        assert_eq!((g.out_h(), g.out_w(), g.patch_len()), (28, 28, 9));
        let g = ConvGeometry::square(8, 14, 14, 16, 5, 0, 2).unwrap();
        assert_eq!((g.out_h(), g.out_w()), (5, 5));
        let p = PoolGeometry::new(8, 28, 28, 2, 2, 0).unwrap();
        assert_eq!((p.out_h(), p.out_w()), (14, 14));
        let p = PoolGeometry::new(1, 7, 7, 2, 2, 0).unwrap();
        assert_eq!((p.out_h(), p.out_w()), (3, 3));
    }

    #[test]
    fn impossible_geometries_are_errors() {
        assert!(ConvGeometry::square(1, 2, 2, 1, 5, 0, 1).is_err());
        assert!(ConvGeometry::square(1, 4, 4, 1, 3, 0, 0).is_err());
        assert!(ConvGeometry::square(0, 4, 4, 1, 3, 0, 1).is_err());
        assert!(PoolGeometry::new(1, 4, 4, 2, 2, 2).is_err());
        assert!(PoolGeometry::new(1, 1, 1, 2, 2, 0).is_err());
    }
}
