//! The pages `cnn serve` serves (the drawing page and the training page), embedded in the binary: nothing is fetched
//! from elsewhere. The page only draws; everything it shows comes from the
//! JSON API (`routes.rs`).

/// `GET /`: the page.
pub(crate) const PAGE: &str = include_str!("serve.html");
/// `GET /serve.css`: its style sheet.
pub(crate) const CSS: &str = include_str!("serve.css");
/// `GET /serve.js`: its script (drawing, and calls to the API).
pub(crate) const JS: &str = include_str!("serve.js");
/// `GET /train`: the training page.
pub(crate) const TRAIN_PAGE: &str = include_str!("train.html");
/// `GET /train.css`: its style sheet.
pub(crate) const TRAIN_CSS: &str = include_str!("train.css");
/// `GET /train.js`: its script (controls, curves, pictures, the drawing pad).
pub(crate) const TRAIN_JS: &str = include_str!("train.js");
/// `GET /train-worker.js`: the Web Worker that loads the module and trains.
pub(crate) const TRAIN_WORKER_JS: &str = include_str!("train-worker.js");

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
