//! The page `cnn serve` serves, embedded in the binary: nothing is fetched
//! from elsewhere. The page only draws; everything it shows comes from the
//! JSON API (`routes.rs`).

/// `GET /`: the page.
pub(crate) const PAGE: &str = include_str!("serve.html");
/// `GET /serve.css`: its style sheet.
pub(crate) const CSS: &str = include_str!("serve.css");
/// `GET /serve.js`: its script (drawing, and calls to the API).
pub(crate) const JS: &str = include_str!("serve.js");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_empty_page_shows_no_broken_image_and_clear_forgets_the_answer() {
        // The "what it sees" image has no source until an answer: hidden till then.
        let input = PAGE.split("<img id=\"input\"").nth(1).unwrap();
        assert!(
            input.split('>').next().unwrap().contains(" hidden"),
            "{input}"
        );
        // Clear empties the answer and the maps, not only the pad.
        let clear = JS.split("function clearAll()").nth(1).unwrap();
        let clear = clear.split("\n}\n").next().unwrap();
        for part in ["clearPad()", "\"layers\"", "\"bars\"", "\"input\""] {
            assert!(clear.contains(part), "clearAll misses {part}: {clear}");
        }
        assert!(JS.contains("$(\"clear\").onclick = () => clearAll()"));
        // The pad is read back after every stroke.
        assert!(JS.contains("getContext(\"2d\", { willReadFrequently: true })"));
    }
}
