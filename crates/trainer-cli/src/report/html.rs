//! HTML pieces of the report: escaping, base64, `<img>` elements, the page's
//! CSS and its image check, and [`Page`], the page as it is written.

/// The page being written and the `<img>` elements it holds so far.
#[derive(Default)]
pub(crate) struct Page {
    /// The HTML so far.
    pub(crate) html: String,
    /// `<img>` elements made with [`Page::img`].
    pub(crate) images: usize,
}

impl Page {
    /// An `<img>` element showing PNG bytes, counted in [`Page::images`].
    pub(crate) fn img(&mut self, png: &[u8], alt: &str, class: &str) -> String {
        self.images += 1;
        format!(
            "<img class=\"{}\" alt=\"{}\" src=\"{}\">",
            escape(class),
            escape(alt),
            png_uri(png)
        )
    }
}

/// A `data:` URI of PNG bytes, for an `<img>` or a JSON document.
pub(crate) fn png_uri(png: &[u8]) -> String {
    format!("data:image/png;base64,{}", base64(png))
}

/// Escapes `&`, `<`, `>`, `"` and `'` for HTML text and attribute values.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Standard base64 (RFC 4648, with padding).
pub(crate) fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The page's style sheet, inline.
pub(crate) const CSS: &str = "
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:24px auto;max-width:1150px;color:#222;padding:0 12px}
h1{font-size:1.6em;margin-bottom:.2em}h2{margin-top:1.6em;border-bottom:1px solid #ddd;padding-bottom:.2em}
.sub{color:#555;margin-top:0}
table{border-collapse:collapse;font-variant-numeric:tabular-nums;margin:.5em 0}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f3f3f3}
td.l,th.l{text-align:left}
.ours{background:#eef6ff}.missing{color:#aaa}
.cm td{min-width:2.6em}.cm td.diag{font-weight:bold}
.pixel{image-rendering:pixelated;image-rendering:crisp-edges}
.curves{max-width:100%;height:auto}
.fig{max-width:100%;height:auto}
.mistakes{display:grid;grid-template-columns:repeat(auto-fill,minmax(110px,1fr));gap:10px}
.mistake{border:1px solid #ddd;border-radius:4px;padding:6px;text-align:center;font-size:.8em}
.mistake img{width:84px;height:84px;display:block;margin:0 auto 4px}
.bad{color:#b2182b}.note{color:#555;font-size:.9em}
.row{display:flex;flex-wrap:wrap;gap:32px;align-items:flex-start}
";

/// Checks, run on load: did every image decode? (See the `report` module docs.)
pub(crate) const SCRIPT: &str = "window.addEventListener('load',function(){var i=Array.prototype.slice.call(document.images);var ok=i.length>0&&i.every(function(m){return m.complete&&m.naturalWidth>0&&m.naturalHeight>0&&m.getBoundingClientRect().width>0;});document.body.dataset.images=String(i.length);document.body.dataset.imagesOk=ok?'true':'false';});";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_encodes() {
        assert_eq!(
            escape("T-shirt/top <a href=\"x\">&'"),
            "T-shirt/top &lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64(&[0xff, 0xfe, 0xfd, 0x00]), "//79AA==");
    }
}
