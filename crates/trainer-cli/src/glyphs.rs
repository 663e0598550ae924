//! Text in the PNG figures: a plotters bitmap backend whose text is laid out
//! glyph by glyph with ab_glyph, each glyph placed at the pen plus its left
//! side bearing.
//!
//! plotters 0.3.7's own text drawing puts each glyph's ink at the pen
//! position, dropping the left side bearing; letters after a stem (`p`, `k`,
//! `b`, `n`) then stand apart from the next ("ep och", "numb ered"). Every
//! figure `cnn` draws as PNG goes through [`Bitmap`], which draws text here
//! and forwards everything else to plotters' `BitMapBackend`. The text's size
//! (for anchors and layout) is plotters' own, from the same advances.

use std::sync::OnceLock;

use ab_glyph::{point, Font, FontRef, ScaleFont};
use plotters::backend::BitMapBackend;
use plotters_backend::text_anchor::{HPos, VPos};
use plotters_backend::{
    BackendColor, BackendCoord, BackendStyle, BackendTextStyle, DrawingBackend, DrawingErrorKind,
};

/// The font every figure's text uses: DejaVu Sans, a Latin subset (`assets/`).
pub(crate) static FONT: &[u8] = include_bytes!("../assets/DejaVuSans-subset.ttf");

/// The embedded font, parsed once.
fn font() -> Option<&'static FontRef<'static>> {
    static PARSED: OnceLock<Option<FontRef<'static>>> = OnceLock::new();
    PARSED
        .get_or_init(|| FontRef::try_from_slice(FONT).ok())
        .as_ref()
}

/// Calls `put(x, y, coverage)` for every pixel of `text` at `size` pixels,
/// relative to the pen's start; `y` counts down from `size / 2` above the
/// baseline, as plotters lays out a line.
pub(crate) fn rasterize(text: &str, size: f32, mut put: impl FnMut(i32, i32, f32)) {
    let Some(font) = font() else { return };
    let font = font.as_scaled(size);
    let mut pen = 0f32;
    let mut prev = None;
    for c in text.chars() {
        let id = font.glyph_id(c);
        if let Some(p) = prev {
            pen += font.kern(p, id);
        }
        prev = Some(id);
        // Positioned at the pen: the outline's bounds then include the side
        // bearing and the fraction of a pixel, and rasterize with it.
        let glyph = id.with_scale_and_position(size, point(pen, 0.0));
        if let Some(outline) = font.outline_glyph(glyph) {
            let bounds = outline.px_bounds();
            let (x0, y0) = (bounds.min.x as i32, (size / 2.0 + bounds.min.y) as i32);
            outline.draw(|x, y, c| put(x0 + x as i32, y0 + y as i32, c));
        }
        pen += font.h_advance(id);
    }
}

/// plotters' `BitMapBackend`, drawing text with [`rasterize`].
pub(crate) struct Bitmap<'a>(pub(crate) BitMapBackend<'a>);

impl<'a> Bitmap<'a> {
    /// A backend drawing into `buf`, RGB, `size` = (width, height).
    pub(crate) fn with_buffer(buf: &'a mut [u8], size: (u32, u32)) -> Self {
        Bitmap(BitMapBackend::with_buffer(buf, size))
    }
}

type Failure<'a> = DrawingErrorKind<<BitMapBackend<'a> as DrawingBackend>::ErrorType>;

impl<'a> DrawingBackend for Bitmap<'a> {
    type ErrorType = <BitMapBackend<'a> as DrawingBackend>::ErrorType;

    fn get_size(&self) -> (u32, u32) {
        self.0.get_size()
    }
    fn ensure_prepared(&mut self) -> Result<(), Failure<'a>> {
        self.0.ensure_prepared()
    }
    fn present(&mut self) -> Result<(), Failure<'a>> {
        self.0.present()
    }
    fn draw_pixel(&mut self, p: BackendCoord, c: BackendColor) -> Result<(), Failure<'a>> {
        self.0.draw_pixel(p, c)
    }
    fn draw_line<S: BackendStyle>(
        &mut self,
        from: BackendCoord,
        to: BackendCoord,
        style: &S,
    ) -> Result<(), Failure<'a>> {
        self.0.draw_line(from, to, style)
    }
    fn draw_rect<S: BackendStyle>(
        &mut self,
        a: BackendCoord,
        b: BackendCoord,
        style: &S,
        fill: bool,
    ) -> Result<(), Failure<'a>> {
        self.0.draw_rect(a, b, style, fill)
    }
    fn draw_path<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        path: I,
        style: &S,
    ) -> Result<(), Failure<'a>> {
        self.0.draw_path(path, style)
    }
    fn draw_circle<S: BackendStyle>(
        &mut self,
        centre: BackendCoord,
        radius: u32,
        style: &S,
        fill: bool,
    ) -> Result<(), Failure<'a>> {
        self.0.draw_circle(centre, radius, style, fill)
    }
    fn fill_polygon<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        vert: I,
        style: &S,
    ) -> Result<(), Failure<'a>> {
        self.0.fill_polygon(vert, style)
    }
    fn blit_bitmap(
        &mut self,
        pos: BackendCoord,
        size: (u32, u32),
        src: &[u8],
    ) -> Result<(), Failure<'a>> {
        self.0.blit_bitmap(pos, size, src)
    }
    fn estimate_text_size<T: BackendTextStyle>(
        &self,
        text: &str,
        style: &T,
    ) -> Result<(u32, u32), Failure<'a>> {
        self.0.estimate_text_size(text, style)
    }

    /// As plotters' default `draw_text` (anchor, rotation, clipping), with
    /// the glyphs from [`rasterize`].
    fn draw_text<T: BackendTextStyle>(
        &mut self,
        text: &str,
        style: &T,
        pos: BackendCoord,
    ) -> Result<(), Failure<'a>> {
        let color = style.color();
        if color.alpha == 0.0 {
            return Ok(());
        }
        let ((min_x, min_y), (max_x, max_y)) = style
            .layout_box(text)
            .map_err(|e| DrawingErrorKind::FontError(Box::new(e)))?;
        let (width, height) = (max_x - min_x, max_y - min_y);
        let dx = match style.anchor().h_pos {
            HPos::Left => 0,
            HPos::Right => -width,
            HPos::Center => -width / 2,
        };
        let dy = match style.anchor().v_pos {
            VPos::Top => 0,
            VPos::Center => -height / 2,
            VPos::Bottom => -height,
        };
        let trans = style.transform();
        let (w, h) = self.get_size();
        let mut result = Ok(());
        rasterize(text, style.size() as f32, |x, y, coverage| {
            let (x, y) = trans.transform(x + dx - min_x, y + dy - min_y);
            let (x, y) = (pos.0 + x, pos.1 + y);
            if result.is_ok() && x >= 0 && x < w as i32 && y >= 0 && y < h as i32 {
                let c = BackendColor {
                    alpha: color.alpha * f64::from(coverage),
                    rgb: color.rgb,
                };
                result = self.0.draw_pixel((x, y), c);
            }
        });
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The columns with ink, as runs `[start, end)` from left to right.
    fn ink_runs(text: &str, size: f32) -> Vec<(i32, i32)> {
        let mut cols = std::collections::BTreeSet::new();
        rasterize(text, size, |x, _, c| {
            if c > 0.3 {
                cols.insert(x);
            }
        });
        let mut runs: Vec<(i32, i32)> = vec![];
        for x in cols {
            match runs.last_mut() {
                Some(r) if r.1 == x => r.1 = x + 1,
                _ => runs.push((x, x + 1)),
            }
        }
        runs
    }

    #[test]
    fn each_letter_starts_at_the_pen_plus_its_left_side_bearing() {
        // Letters with a stem on the left ("p", "k", "b", "n", "h") have a
        // side bearing of about 0.09 em; dropped, they stand apart from the
        // letter before them ("ep och").
        let (text, size) = ("epochkbn", 100.0);
        let font = font().unwrap().as_scaled(size);
        let runs = ink_runs(text, size);
        assert_eq!(runs.len(), text.len(), "{runs:?}");
        let mut pen = 0f32;
        let mut prev = None;
        for (c, run) in text.chars().zip(&runs) {
            let id = font.glyph_id(c);
            if let Some(p) = prev {
                pen += font.kern(p, id);
            }
            prev = Some(id);
            let want = pen + font.h_side_bearing(id);
            assert!(
                (run.0 as f32 - want).abs() <= 1.0,
                "{c}: ink from x = {}, the pen plus its side bearing is {want}",
                run.0
            );
            pen += font.h_advance(id);
        }
        // "p" has a stem: its side bearing is a visible 5+ pixels at 100 px.
        let p = font.glyph_id('p');
        assert!(font.h_side_bearing(p) > 5.0);
    }
}
