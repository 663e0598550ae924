//! The maps of the code in `README.md` and `docs/README.md` stay true: every
//! link of the form [`Name`](path/to/file.rs) or [`Type::method`](file.rs)
//! names a file that exists and defines that item there.

use std::path::Path;

use anyhow::{Context, Result};

/// Every link to a Rust file in `markdown` (a file in `dir`) whose target
/// does not exist or does not define the linked name, one line each.
pub(crate) fn broken_links(markdown: &str, dir: &Path) -> Vec<String> {
    let mut broken = Vec::new();
    for (name, target) in code_links(markdown) {
        let path = dir.join(&target);
        let Ok(source) = std::fs::read_to_string(&path) else {
            broken.push(format!("[`{name}`]({target}): no such file"));
            continue;
        };
        let module = path.file_stem().map(|s| s.to_string_lossy().into_owned());
        if !name.ends_with(".rs") && !defines(&source, &name, module.as_deref()) {
            broken.push(format!("[`{name}`]({target}): not defined there"));
        }
    }
    broken
}

/// The `(name, path)` of each [`name`](path.rs) link.
fn code_links(markdown: &str) -> Vec<(String, String)> {
    let mut links = Vec::new();
    let mut rest = markdown;
    while let Some(start) = rest.find("[`") {
        rest = &rest[start + 2..];
        let Some(end) = rest.find("`](") else { break };
        let name = &rest[..end];
        let after = &rest[end + 3..];
        let Some(close) = after.find(')') else { break };
        let target = after[..close].split('#').next().unwrap_or_default();
        let plain = name
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == ':' || c == '.');
        if plain && target.ends_with(".rs") && !target.contains("://") {
            links.push((name.to_string(), target.to_string()));
        }
        rest = after;
    }
    links
}

/// Whether `source`, the file of module `module`, defines `name` (`f`,
/// `Type`, `Type::f` or `module::f`): an item of that name, and for
/// `Type::f` an impl of or a trait named `Type`.
fn defines(source: &str, name: &str, module: Option<&str>) -> bool {
    let (owner, item) = match name.rsplit_once("::") {
        Some((owner, item)) => (Some(owner), item),
        None => (None, name),
    };
    let item_defined = ["fn", "struct", "enum", "trait", "type", "const", "mod"]
        .iter()
        .any(|kw| has_word_pair(source, kw, item));
    let owner_defined = owner.is_none_or(|owner| {
        let owner = owner.rsplit("::").next().unwrap_or(owner);
        Some(owner) == module
            || ["struct", "enum", "trait", "for", "impl"]
                .iter()
                .any(|kw| has_word_pair(source, kw, owner))
    });
    item_defined && owner_defined
}

/// Whether `text` has `first` then `second` as whole words, separated by
/// spaces (and generic parameters after `impl`).
fn has_word_pair(text: &str, first: &str, second: &str) -> bool {
    let word = |c: char| c.is_alphanumeric() || c == '_';
    text.match_indices(first).any(|(at, _)| {
        let before_ok = text[..at].chars().next_back().is_none_or(|c| !word(c));
        let mut tail = &text[at + first.len()..];
        if first == "impl" && tail.starts_with('<') {
            let Some(end) = tail.find('>') else {
                return false;
            };
            tail = &tail[end + 1..];
        }
        let trimmed = tail.trim_start_matches(' ');
        before_ok
            && trimmed.len() < tail.len()
            && trimmed.starts_with(second)
            && trimmed[second.len()..]
                .chars()
                .next()
                .is_none_or(|c| !word(c))
    })
}

/// `README.md` and `docs/README.md` of the workspace at `root`: their broken links.
pub(crate) fn check_workspace(root: &Path) -> Result<Vec<String>> {
    let mut broken = Vec::new();
    for page in ["README.md", "docs/README.md"] {
        let path = root.join(page);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("{}: cannot read", path.display()))?;
        let dir = path.parent().unwrap_or(root);
        broken.extend(
            broken_links(&text, dir)
                .into_iter()
                .map(|b| format!("{page}: {b}")),
        );
    }
    Ok(broken)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every function and type the README and the docs' map name is
    /// defined in the file they link to.
    #[test]
    fn the_readme_and_the_docs_name_what_is_there() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let broken = check_workspace(root).unwrap();
        assert!(broken.is_empty(), "{broken:#?}");
    }

    #[test]
    fn a_link_to_the_wrong_file_or_name_is_found() {
        let source =
            "impl<'a> Network {\n    pub fn forward_train(&mut self) {}\n}\npub struct Dataset;\n";
        assert!(defines(source, "Network::forward_train", None));
        assert!(defines(source, "Dataset", None));
        assert!(defines(source, "network::forward_train", Some("network")));
        assert!(!defines(source, "Network::backward", None));
        assert!(!defines(source, "Loss::forward_train", None));
        let prefix = defines(source, "forward", None);
        assert!(!prefix, "a prefix of a name is not the name");
        let page = "See [`step`](src/step.rs) and [`a.rs`](src/a.rs), not [text](x.rs).";
        assert_eq!(
            code_links(page),
            vec![
                ("step".to_string(), "src/step.rs".to_string()),
                ("a.rs".to_string(), "src/a.rs".to_string())
            ]
        );
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("s.rs"), "pub fn step() {}\n").unwrap();
        let page = "[`step`](s.rs), [`stop`](s.rs), [`step`](t.rs)";
        assert_eq!(
            broken_links(page, dir.path()),
            vec![
                "[`stop`](s.rs): not defined there".to_string(),
                "[`step`](t.rs): no such file".to_string()
            ]
        );
    }
}
