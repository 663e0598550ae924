//! An image made ready for the network as MNIST's digits were made: what
//! `cnn predict` does to a PNG, and `cnn serve` and the training page to a
//! drawing, so that all three read a digit the same way.
//!
//! 1. inverted when its border is mostly bright (more than half of the
//!    outermost pixels above mid-grey): MNIST digits are white on black, a
//!    photo or scan of a digit is usually dark on white paper;
//! 2. with `mnist_style` (square inputs only): cropped to the digit's
//!    bounding box (the pixels brighter than a quarter of the way from the
//!    darkest to the brightest), padded to a square with black and resized
//!    by area averaging into a 20x20 box (the aspect ratio kept; 20/28 of
//!    the input side for other square inputs), then pasted on a black 28x28
//!    canvas so that its centre of mass lies at the centre. A small digit in
//!    the corner of a large drawing then looks like the training digits;
//! 3. otherwise, when not already the network's input size: padded to a
//!    square with black (keeping the aspect ratio), then resized by area
//!    averaging.
//!
//! Every step taken is reported as a note.

use anyhow::{bail, Result};

use crate::image::GreyImage;

/// Longest side of a drawing, in pixels: a drawing pad's canvas fits with room to spare.
pub const MAX_DRAWING_SIDE: usize = 512;

/// A drawing's grey pixels (row by row) as an image, its size checked:
/// sides of 1 to [`MAX_DRAWING_SIDE`], and `width * height` pixels.
pub fn drawing(width: usize, height: usize, pixels: Vec<u8>) -> Result<GreyImage> {
    for (name, side) in [("width", width), ("height", height)] {
        if side == 0 || side > MAX_DRAWING_SIDE {
            bail!("{name} is {side}; it must be 1 to {MAX_DRAWING_SIDE}");
        }
    }
    if pixels.len() != width * height {
        bail!(
            "pixels has {} values; a {width}x{height} drawing has {}",
            pixels.len(),
            width * height
        );
    }
    Ok(GreyImage {
        width,
        height,
        pixels,
    })
}

/// An image made ready for the network, and what was done to it.
#[derive(Clone, Debug, PartialEq)]
pub struct Prepared {
    /// Grey image of the network's input size, white digit on black.
    pub image: GreyImage,
    /// The steps taken, in words.
    pub notes: Vec<String>,
    /// Whether the digit was centred as MNIST's were (the last note says how).
    pub centred: bool,
}

/// The side of the box a digit is fitted into on a `side` x `side` input:
/// 20 for MNIST's 28, the same proportion for other sizes.
pub fn digit_box(side: usize) -> usize {
    ((side * 20 + 14) / 28).max(1)
}

/// Inverts a mostly-bright-bordered image, then either centres the digit as
/// MNIST's were (`mnist_style`, square inputs only) or pads it to a square,
/// and resizes it to `width` x `height` (see the module docs).
pub fn prepare(mut img: GreyImage, width: usize, height: usize, mnist_style: bool) -> Prepared {
    let mut notes = Vec::new();
    let bright = img.bright_border_fraction();
    if bright > 0.5 {
        img.invert();
        notes.push(format!(
            "inverted: {:.0}% of the border is bright, so this looks like a dark digit on a light background; the network was trained on light digits on black",
            100.0 * bright
        ));
    }
    if mnist_style && width == height {
        let lo = img.pixels.iter().copied().min().unwrap_or(0);
        let hi = img.pixels.iter().copied().max().unwrap_or(0);
        match img.bounding_box(lo + (hi - lo) / 4).filter(|_| hi > lo) {
            Some(bbox) => {
                let (x0, y0, x1, y1) = bbox;
                let side = digit_box(width);
                let digit = img.crop(bbox).pad_to_square(0).resize_area(side, side);
                let half = side as f64 / 2.0;
                let (cx, cy) = digit.centre_of_mass().unwrap_or((half, half));
                let at = |centre: usize, c: f64| (centre as f64 / 2.0 - c).round() as i64;
                notes.push(format!(
                    "centred as MNIST's digits are: cropped to the digit ({}x{} at column {x0}, row {y0} of {}x{}), fitted into {side}x{side} keeping the aspect ratio, placed by its centre of mass in {width}x{height}",
                    x1 - x0,
                    y1 - y0,
                    img.width,
                    img.height
                ));
                return Prepared {
                    image: digit.paste_on_black(width, height, at(width, cx), at(height, cy)),
                    notes,
                    centred: true,
                };
            }
            None => notes.push(
                "no digit found to centre (every pixel has the same value): only resized".into(),
            ),
        }
    }
    if (img.width, img.height) != (width, height) {
        let (w0, h0) = (img.width, img.height);
        if img.width != img.height && width == height {
            img = img.pad_to_square(0);
            notes.push(format!(
                "padded from {w0}x{h0} to {s}x{s} with black to keep the aspect ratio",
                s = img.width
            ));
        }
        let (w1, h1) = (img.width, img.height);
        img = img.resize_area(width, height);
        notes.push(format!(
            "resized from {w1}x{h1} to {width}x{height} by area averaging"
        ));
    }
    Prepared {
        image: img,
        notes,
        centred: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drawings_are_checked_side_by_side_and_pixel_by_pixel() {
        let ok = drawing(2, 1, vec![0, 255]).unwrap();
        assert_eq!((ok.width, ok.height, ok.pixels), (2, 1, vec![0, 255]));
        for (w, h, n, expected) in [
            (2, 1, 1, "pixels has 1 values; a 2x1 drawing has 2"),
            (0, 1, 0, "width is 0; it must be 1 to 512"),
            (1, 513, 513, "height is 513; it must be 1 to 512"),
        ] {
            let err = format!("{:#}", drawing(w, h, vec![0; n]).unwrap_err());
            assert!(err.contains(expected), "{w}x{h}, {n} pixels: {err}");
        }
    }

    #[test]
    fn prepare_inverts_pads_and_resizes() {
        // A dark bar on white paper, 40 wide and 20 high.
        let mut img = GreyImage::filled(40, 20, 255);
        for y in 5..15 {
            for x in 10..30 {
                img.pixels[y * 40 + x] = 0;
            }
        }
        let p = prepare(img, 28, 28, false);
        assert_eq!((p.image.width, p.image.height), (28, 28));
        assert_eq!(p.notes.len(), 3, "{:?}", p.notes);
        assert!(p.notes[0].starts_with("inverted"));
        assert!(p.notes[1].contains("40x20 to 40x40"));
        assert!(p.notes[2].contains("resized from 40x40 to 28x28"));
        // The bar is now bright in the middle, the padding black.
        assert_eq!(p.image.get(14, 14), 255);
        assert_eq!(p.image.get(14, 0), 0);
        let same = prepare(GreyImage::filled(28, 28, 0), 28, 28, false);
        assert!(same.notes.is_empty());
        let flat = prepare(GreyImage::filled(28, 28, 0), 28, 28, true);
        assert_eq!(flat.image, GreyImage::filled(28, 28, 0));
        assert!(
            flat.notes[0].starts_with("no digit found"),
            "{:?}",
            flat.notes
        );
    }

    /// An L, 12 wide and 30 high, drawn dark at the bottom right of a white
    /// 200x150 canvas: it comes out 8x20 (aspect kept) with its centre of mass
    /// within half a pixel of the centre of the 28x28 input.
    #[test]
    fn mnist_style_crops_fits_in_20x20_and_centres_by_mass() {
        let mut img = GreyImage::filled(200, 150, 255);
        for y in 110..140 {
            for x in 170..182 {
                if x < 174 || y >= 136 {
                    img.pixels[y * 200 + x] = 0;
                }
            }
        }
        let p = prepare(img, 28, 28, true);
        assert_eq!(p.notes.len(), 2, "{:?}", p.notes);
        assert!(p.notes[0].starts_with("inverted"));
        assert!(
            p.notes[1].contains(
                "cropped to the digit (12x30 at column 170, row 110 of 200x150), fitted into 20x20"
            ),
            "{:?}",
            p.notes
        );
        let (x0, y0, x1, y1) = p.image.bounding_box(0).unwrap();
        assert_eq!((x1 - x0, y1 - y0), (8, 20));
        let (cx, cy) = p.image.centre_of_mass().unwrap();
        assert!(
            (cx - 14.0).abs() <= 0.5 && (cy - 14.0).abs() <= 0.5,
            "{cx} {cy}"
        );
        // The bar of the L is on the left, its foot at the bottom.
        assert_eq!(p.image.get(x0, y0), 255);
        assert_eq!(p.image.get(x1 - 1, y1 - 1), 255);
        assert_eq!(p.image.get(x1 - 1, y0), 0);
    }
}
