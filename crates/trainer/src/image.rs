//! Grey-level images: reading any PNG as 8-bit grey, area-averaging resize,
//! and writing grey or RGB PNGs: for image-folder data sets, and for
//! `cnn predict` and `cnn visualize`.

use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};

/// Largest PNG (in decoded bytes) `read_png_grey` accepts: 64 MB, png's default limit.
pub const MAX_DECODED_BYTES: usize = 64 << 20;
/// Longest side, in pixels, of a PNG `read_png_grey` accepts.
pub const MAX_SIDE: usize = 8192;

/// An 8-bit grey image, row-major.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GreyImage {
    /// Columns.
    pub width: usize,
    /// Rows.
    pub height: usize,
    /// `width * height` values, 0 black to 255 white.
    pub pixels: Vec<u8>,
}

/// An 8-bit RGB image, row-major, three bytes per pixel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RgbImage {
    /// Columns.
    pub width: usize,
    /// Rows.
    pub height: usize,
    /// `3 * width * height` bytes.
    pub pixels: Vec<u8>,
}

impl GreyImage {
    /// An image of one value.
    pub fn filled(width: usize, height: usize, value: u8) -> Self {
        GreyImage {
            width,
            height,
            pixels: vec![value; width * height],
        }
    }

    /// The value at column `x`, row `y`.
    pub fn get(&self, x: usize, y: usize) -> u8 {
        self.pixels[y * self.width + x]
    }

    /// Fraction of the pixels on the outermost rows and columns brighter than mid-grey (> 127).
    pub fn bright_border_fraction(&self) -> f64 {
        if self.width == 0 || self.height == 0 {
            return 0.0;
        }
        let (mut bright, mut total) = (0usize, 0usize);
        for y in 0..self.height {
            for x in 0..self.width {
                if x == 0 || y == 0 || x + 1 == self.width || y + 1 == self.height {
                    total += 1;
                    bright += usize::from(self.get(x, y) > 127);
                }
            }
        }
        bright as f64 / total as f64
    }

    /// `255 - v` for every pixel.
    pub fn invert(&mut self) {
        for p in &mut self.pixels {
            *p = 255 - *p;
        }
    }

    /// The image centred on a square canvas of side `max(width, height)` filled with `fill`.
    pub fn pad_to_square(&self, fill: u8) -> GreyImage {
        let side = self.width.max(self.height);
        let mut out = GreyImage::filled(side, side, fill);
        let (x0, y0) = ((side - self.width) / 2, (side - self.height) / 2);
        for y in 0..self.height {
            let src = &self.pixels[y * self.width..(y + 1) * self.width];
            out.pixels[(y0 + y) * side + x0..(y0 + y) * side + x0 + self.width]
                .copy_from_slice(src);
        }
        out
    }

    /// Resized to `width` x `height` by area averaging (a box filter): each
    /// output pixel is the mean of the source area it covers, fractional
    /// pixels weighted by their overlap. Works for shrinking and enlarging.
    pub fn resize_area(&self, width: usize, height: usize) -> GreyImage {
        if width == self.width && height == self.height {
            return self.clone();
        }
        let src: Vec<f64> = self.pixels.iter().map(|&v| f64::from(v)).collect();
        let cols = resample_axis(&src, self.width, self.height, width, true);
        let both = resample_axis(&cols, width, self.height, height, false);
        GreyImage {
            width,
            height,
            pixels: both
                .iter()
                .map(|&v| v.round().clamp(0.0, 255.0) as u8)
                .collect(),
        }
    }

    /// The smallest rectangle `(x0, y0, x1, y1)` (exclusive ends) holding every
    /// pixel above `threshold`, or `None` when there is none.
    pub fn bounding_box(&self, threshold: u8) -> Option<(usize, usize, usize, usize)> {
        let mut bbox: Option<(usize, usize, usize, usize)> = None;
        for y in 0..self.height {
            for x in 0..self.width {
                if self.get(x, y) > threshold {
                    let (x0, y0, x1, y1) = bbox.unwrap_or((x, y, x + 1, y + 1));
                    bbox = Some((x0.min(x), y0.min(y), x1.max(x + 1), y1.max(y + 1)));
                }
            }
        }
        bbox
    }

    /// The pixels of the rectangle `x0..x1`, `y0..y1`.
    pub fn crop(&self, (x0, y0, x1, y1): (usize, usize, usize, usize)) -> GreyImage {
        let mut pixels = Vec::with_capacity((x1 - x0) * (y1 - y0));
        for y in y0..y1 {
            pixels.extend_from_slice(&self.pixels[y * self.width + x0..y * self.width + x1]);
        }
        GreyImage {
            width: x1 - x0,
            height: y1 - y0,
            pixels,
        }
    }

    /// The intensity-weighted mean position `(x, y)` of the pixel centres
    /// (pixel `(i, j)` covers `[i, i + 1) x [j, j + 1)`), or `None` for a black image.
    pub fn centre_of_mass(&self) -> Option<(f64, f64)> {
        let (mut sum, mut sx, mut sy) = (0.0, 0.0, 0.0);
        for y in 0..self.height {
            for x in 0..self.width {
                let v = f64::from(self.get(x, y));
                sum += v;
                sx += v * (x as f64 + 0.5);
                sy += v * (y as f64 + 0.5);
            }
        }
        (sum > 0.0).then(|| (sx / sum, sy / sum))
    }

    /// A black `width` x `height` canvas with this image pasted at column
    /// `x0`, row `y0` (which may be negative); what falls outside is cut off.
    pub fn paste_on_black(&self, width: usize, height: usize, x0: i64, y0: i64) -> GreyImage {
        let mut out = GreyImage::filled(width, height, 0);
        for y in 0..self.height {
            for x in 0..self.width {
                let (tx, ty) = (x0 + x as i64, y0 + y as i64);
                if (0..width as i64).contains(&tx) && (0..height as i64).contains(&ty) {
                    out.pixels[ty as usize * width + tx as usize] = self.get(x, y);
                }
            }
        }
        out
    }

    /// The PNG file's bytes (8-bit grey).
    pub fn to_png(&self) -> Result<Vec<u8>> {
        encode_png(
            self.width,
            self.height,
            png::ColorType::Grayscale,
            &self.pixels,
        )
    }
}

impl RgbImage {
    /// An image of one colour.
    pub fn filled(width: usize, height: usize, rgb: [u8; 3]) -> Self {
        RgbImage {
            width,
            height,
            pixels: rgb.repeat(width * height),
        }
    }

    /// Sets the pixel at column `x`, row `y`.
    pub fn set(&mut self, x: usize, y: usize, rgb: [u8; 3]) {
        let i = 3 * (y * self.width + x);
        self.pixels[i..i + 3].copy_from_slice(&rgb);
    }

    /// The PNG file's bytes (8-bit RGB).
    pub fn to_png(&self) -> Result<Vec<u8>> {
        encode_png(self.width, self.height, png::ColorType::Rgb, &self.pixels)
    }
}

/// Area-averages along one axis of a `w` x `h` image: along x when `along_x`
/// (giving `n` x `h`), else along y (giving `w` x `n`).
fn resample_axis(src: &[f64], w: usize, h: usize, n: usize, along_x: bool) -> Vec<f64> {
    let m = if along_x { w } else { h };
    // For each output index: (first source index, weights of the covered source pixels).
    let ratio = m as f64 / n as f64;
    let spans: Vec<(usize, Vec<f64>)> = (0..n)
        .map(|i| {
            let (a, b) = (i as f64 * ratio, (i + 1) as f64 * ratio);
            let first = a.floor() as usize;
            let last = (b.ceil() as usize).min(m);
            let weights = (first..last)
                .map(|j| (b.min(j as f64 + 1.0) - a.max(j as f64)).max(0.0) / ratio)
                .collect();
            (first, weights)
        })
        .collect();
    let (ow, oh) = if along_x { (n, h) } else { (w, n) };
    let mut out = vec![0f64; ow * oh];
    for y in 0..oh {
        for x in 0..ow {
            let (i, fixed) = if along_x { (x, y) } else { (y, x) };
            let (first, weights) = &spans[i];
            out[y * ow + x] = weights
                .iter()
                .enumerate()
                .map(|(k, wt)| {
                    let j = first + k;
                    let v = if along_x {
                        src[fixed * w + j]
                    } else {
                        src[j * w + fixed]
                    };
                    wt * v
                })
                .sum();
        }
    }
    out
}

fn encode_png(width: usize, height: usize, color: png::ColorType, data: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let (w, h) = (
        u32::try_from(width).map_err(|_| anyhow!("image width {width} too large for PNG"))?,
        u32::try_from(height).map_err(|_| anyhow!("image height {height} too large for PNG"))?,
    );
    let mut enc = png::Encoder::new(&mut out, w, h);
    enc.set_color(color);
    enc.set_depth(png::BitDepth::Eight);
    let mut writer = enc.write_header().context("encoding PNG header")?;
    writer
        .write_image_data(data)
        .context("encoding PNG pixels")?;
    writer.finish().context("finishing PNG")?;
    Ok(out)
}

/// How a PNG's colours became grey, for notes to the user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decoded {
    /// The grey image.
    pub image: GreyImage,
    /// The file's colour type and bit depth, e.g. `Rgba 8-bit`.
    pub source_format: String,
    /// Whether an alpha channel was composited over white.
    pub had_alpha: bool,
}

/// A decoded PNG's 8-bit samples: `channels` per pixel (1 grey, 2 grey and
/// alpha, 3 RGB, 4 RGBA), rows `line_size` bytes apart.
struct Samples {
    buf: Vec<u8>,
    line_size: usize,
    width: usize,
    height: usize,
    channels: usize,
    /// The file's colour type and bit depth, e.g. `Rgba 8-bit`.
    source: String,
}

/// Decodes a PNG of any colour type and bit depth to 8-bit grey: palettes
/// and low bit depths are expanded, 16-bit samples cut to 8, colour turned
/// to luma (0.299 R + 0.587 G + 0.114 B), and transparency composited over
/// white (as a viewer shows it on a page). `path` only names the file in errors.
pub fn decode_png_grey(bytes: &[u8], path: &Path) -> Result<Decoded> {
    let s = decode_samples(bytes, path)?;
    let image = s.plane(|px| match px.len() {
        1 | 2 => f64::from(px[0]),
        _ => 0.299 * f64::from(px[0]) + 0.587 * f64::from(px[1]) + 0.114 * f64::from(px[2]),
    });
    Ok(Decoded {
        image,
        had_alpha: s.alpha().is_some(),
        source_format: s.source,
    })
}

/// Decodes a PNG as [`decode_png_grey`] does, but keeps the colours: the red,
/// green and blue planes (a grey image gives three equal planes;
/// transparency is composited over white).
pub fn decode_png_planes(bytes: &[u8], path: &Path) -> Result<[GreyImage; 3]> {
    let s = decode_samples(bytes, path)?;
    let plane = |c: usize| s.plane(|px| f64::from(px[if px.len() < 3 { 0 } else { c }]));
    Ok([plane(0), plane(1), plane(2)])
}

impl Samples {
    /// Where a pixel's alpha sample is, if it has one.
    fn alpha(&self) -> Option<usize> {
        match self.channels {
            2 => Some(1),
            4 => Some(3),
            _ => None,
        }
    }

    /// One grey plane: `value` of each pixel's samples, composited over
    /// white by the pixel's alpha.
    fn plane(&self, value: impl Fn(&[u8]) -> f64) -> GreyImage {
        let alpha = self.alpha();
        let mut pixels = Vec::with_capacity(self.width * self.height);
        for y in 0..self.height {
            let start = y * self.line_size;
            let row = &self.buf[start..start + self.width * self.channels];
            for px in row.chunks_exact(self.channels) {
                let a = alpha.map_or(1.0, |i| f64::from(px[i]) / 255.0);
                let over_white = value(px) * a + 255.0 * (1.0 - a);
                pixels.push(over_white.round().clamp(0.0, 255.0) as u8);
            }
        }
        GreyImage {
            width: self.width,
            height: self.height,
            pixels,
        }
    }
}

/// A PNG's samples, checked: at most [`MAX_SIDE`] pixels a side and
/// [`MAX_DECODED_BYTES`] decoded, 8 bits each.
fn decode_samples(bytes: &[u8], path: &Path) -> Result<Samples> {
    let p = path.display();
    if !bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        bail!("{p}: not a PNG file (it does not start with the PNG signature)");
    }
    let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder
        .read_info()
        .map_err(|e| anyhow!("{p}: unreadable PNG header: {e}"))?;
    let source = {
        let info = reader.info();
        // Checked before anything is decoded: preparing an image pads it to a
        // square of its longer side, so a 1 x 60,000,000 sliver must not pass.
        if info.width as usize > MAX_SIDE || info.height as usize > MAX_SIDE {
            bail!(
                "{p}: image of {}x{} pixels; at most {MAX_SIDE} pixels a side are read",
                info.width,
                info.height
            );
        }
        format!("{:?} {}-bit", info.color_type, info.bit_depth as u8)
    };
    let size = reader
        .output_buffer_size()
        .filter(|&s| s <= MAX_DECODED_BYTES)
        .ok_or_else(|| {
            anyhow!("{p}: image too large (more than {MAX_DECODED_BYTES} bytes decoded)")
        })?;
    let mut buf = vec![0u8; size];
    let frame = reader
        .next_frame(&mut buf)
        .map_err(|e| anyhow!("{p}: corrupt PNG data: {e}"))?;
    let (width, height) = (frame.width as usize, frame.height as usize);
    if width == 0 || height == 0 {
        bail!("{p}: empty image ({width}x{height})");
    }
    let channels = match frame.color_type {
        png::ColorType::Grayscale => 1,
        png::ColorType::GrayscaleAlpha => 2,
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        png::ColorType::Indexed => bail!("{p}: palette not expanded by the decoder"),
    };
    if frame.bit_depth != png::BitDepth::Eight {
        bail!(
            "{p}: decoder gave {:?}-bit samples, expected 8",
            frame.bit_depth
        );
    }
    Ok(Samples {
        buf,
        line_size: frame.line_size,
        width,
        height,
        channels,
        source,
    })
}

/// Reads a PNG file as 8-bit grey (see [`decode_png_grey`]).
pub fn read_png_grey(path: &Path) -> Result<Decoded> {
    let bytes = crate::files::read_limited(path, crate::files::MAX_PNG_BYTES, "a PNG image")?;
    decode_png_grey(&bytes, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn area_resize_averages_blocks() {
        let img = GreyImage {
            width: 4,
            height: 2,
            pixels: vec![0, 100, 200, 200, 0, 100, 0, 0],
        };
        let r = img.resize_area(2, 1);
        assert_eq!(r.pixels, vec![50, 100]);
        let up = GreyImage {
            width: 1,
            height: 1,
            pixels: vec![7],
        }
        .resize_area(3, 3);
        assert_eq!(up.pixels, vec![7; 9]);
        // 3 -> 2: the middle source pixel is split between both outputs.
        let third = GreyImage {
            width: 3,
            height: 1,
            pixels: vec![0, 90, 180],
        }
        .resize_area(2, 1);
        assert_eq!(third.pixels, vec![30, 150]);
    }

    #[test]
    fn png_round_trip_and_rgb_luma() {
        let img = GreyImage {
            width: 3,
            height: 2,
            pixels: vec![0, 1, 2, 253, 254, 255],
        };
        let d = decode_png_grey(&img.to_png().unwrap(), Path::new("x.png")).unwrap();
        assert_eq!(d.image, img);
        let mut rgb = RgbImage::filled(2, 1, [255, 255, 255]);
        rgb.set(1, 0, [255, 0, 0]);
        let d = decode_png_grey(&rgb.to_png().unwrap(), Path::new("x.png")).unwrap();
        assert_eq!(d.image.pixels, vec![255, 76]);
        let err = decode_png_grey(b"hello", Path::new("dir/x.png")).unwrap_err();
        assert!(format!("{err:#}").contains("dir/x.png"), "{err:#}");
    }

    #[test]
    fn pad_and_border() {
        let img = GreyImage::filled(2, 4, 255);
        let sq = img.pad_to_square(0);
        assert_eq!((sq.width, sq.height), (4, 4));
        assert_eq!(sq.pixels[0..4], [0, 255, 255, 0]);
        assert_eq!(GreyImage::filled(5, 5, 200).bright_border_fraction(), 1.0);
        assert_eq!(sq.bright_border_fraction(), 4.0 / 12.0);
    }
}
