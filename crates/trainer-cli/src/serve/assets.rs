//! The page `cnn serve` serves, embedded in the binary: nothing is fetched
//! from elsewhere. The page only draws; everything it shows comes from the
//! JSON API (`routes.rs`).

/// `GET /`: the page.
pub(crate) const PAGE: &str = include_str!("serve.html");
/// `GET /serve.css`: its style sheet.
pub(crate) const CSS: &str = include_str!("serve.css");
/// `GET /serve.js`: its script (drawing, and calls to the API).
pub(crate) const JS: &str = include_str!("serve.js");
