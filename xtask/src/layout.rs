//! `cargo xtask layout`: the sizes a reader can hold, checked.
//!
//! Over every `src/` file of the workspace's crates, tests aside (a
//! `#[cfg(test)]` module, a `#[test]` function):
//! - no function longer than [`MAX_FUNCTION_LINES`] lines, from `fn` to its
//!   closing brace;
//! - no file longer than [`MAX_FILE_LINES`] lines;
//! - no circle of imports between the files of a crate: file A uses
//!   something of file B (`use crate::b::X`, `super::X`, a path in the code)
//!   and B, directly or through others, uses A. A name re-exported by the
//!   crate root (`pub use error::LayerError` in `lib.rs`) counts as a use
//!   of the file that defines it; the root itself, the crate's front page,
//!   is no node of the graph.
//!
//! It also checks the maps of the code in `README.md` and `docs/README.md`
//! (see `code_map.rs`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use syn::visit::Visit;

/// Longest function allowed, in lines.
pub(crate) const MAX_FUNCTION_LINES: usize = 80;
/// Longest file allowed, in lines, tests aside.
pub(crate) const MAX_FILE_LINES: usize = 600;

/// `cargo xtask layout`: prints the longest function and file and the
/// circles, and fails if a limit is broken.
pub(crate) fn run(root: &Path) -> Result<()> {
    let report = check_workspace(root)?;
    print!("{}", report.summary());
    let links = crate::code_map::check_workspace(root)?;
    match links.is_empty() {
        true => println!("README.md and docs/README.md: every named function is where they say"),
        false => links.iter().for_each(|l| println!("  {l}")),
    }
    let problems = report.problems().len() + links.len();
    if problems > 0 {
        bail!("{problems} problem(s) above");
    }
    Ok(())
}

/// One source file as the check sees it.
struct SourceFile {
    /// Path from the workspace root, for messages.
    shown: String,
    /// Its module path inside its crate: `[]` for the root, `["train", "epoch"]`.
    module: Vec<String>,
    /// Lines, tests aside.
    lines: usize,
    /// (line, name, length) of each function, tests aside.
    functions: Vec<(usize, String, usize)>,
    /// The absolute paths (`crate::a::b::X`, resolved) it uses.
    uses: Vec<Vec<String>>,
    /// For the crate root: names it re-exports, and the module each comes from.
    reexports: BTreeMap<String, Vec<String>>,
}

/// What the check found over the workspace.
#[derive(Default)]
pub(crate) struct Report {
    files: usize,
    /// The longest file: (lines, path).
    longest_file: (usize, String),
    /// The longest function: (lines, `path:line name`).
    longest_function: (usize, String),
    too_long: Vec<String>,
    circles: Vec<String>,
}

impl Report {
    /// Every broken limit, one line each.
    pub(crate) fn problems(&self) -> Vec<String> {
        self.too_long.iter().chain(&self.circles).cloned().collect()
    }

    /// What `cargo xtask layout` prints.
    pub(crate) fn summary(&self) -> String {
        let mut s = format!(
            "{} source files, tests aside\nlongest file: {} ({} lines; at most {MAX_FILE_LINES})\nlongest function: {} ({} lines; at most {MAX_FUNCTION_LINES})\n",
            self.files,
            self.longest_file.1,
            self.longest_file.0,
            self.longest_function.1,
            self.longest_function.0
        );
        match self.circles.is_empty() {
            true => s.push_str("import circles: none\n"),
            false => s.push_str("import circles:\n"),
        }
        for p in self.problems() {
            s.push_str(&format!("  {p}\n"));
        }
        s
    }
}

/// Checks every crate under `root/crates` and `root/xtask`.
pub(crate) fn check_workspace(root: &Path) -> Result<Report> {
    let mut crates: Vec<PathBuf> = std::fs::read_dir(root.join("crates"))
        .with_context(|| format!("{}: cannot list crates", root.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("src").is_dir())
        .collect();
    crates.push(root.join("xtask"));
    crates.sort();
    let mut report = Report::default();
    for dir in crates {
        let files = read_crate(root, &dir.join("src"))?;
        add_crate(&mut report, &files);
    }
    Ok(report)
}

/// Adds one crate's files to the report: sizes, then circles.
fn add_crate(report: &mut Report, files: &[SourceFile]) {
    for f in files {
        report.files += 1;
        if f.lines > report.longest_file.0 {
            report.longest_file = (f.lines, f.shown.clone());
        }
        if f.lines > MAX_FILE_LINES {
            report
                .too_long
                .push(format!("{}: {} lines", f.shown, f.lines));
        }
        for (line, name, len) in &f.functions {
            let at = format!("{}:{line} `{name}`", f.shown);
            if *len > report.longest_function.0 {
                report.longest_function = (*len, at.clone());
            }
            if *len > MAX_FUNCTION_LINES {
                report.too_long.push(format!("{at}: {len} lines"));
            }
        }
    }
    for circle in circles(files) {
        report.circles.push(circle.join(" -> "));
    }
}

/// Every `.rs` file under `src`, parsed.
fn read_crate(root: &Path, src: &Path) -> Result<Vec<SourceFile>> {
    let mut paths = Vec::new();
    collect_rs(src, &mut paths)?;
    paths.sort();
    let mut files = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("{}: cannot read", path.display()))?;
        let shown = path
            .strip_prefix(root)
            .unwrap_or(&path)
            .display()
            .to_string();
        let module = module_path(src, &path);
        let parsed = syn::parse_file(&text).with_context(|| format!("{shown}: cannot parse"))?;
        files.push(analyse(shown, module, &text, &parsed));
    }
    let modules: BTreeSet<Vec<String>> = files.iter().map(|f| f.module.clone()).collect();
    for f in &mut files {
        let own = f.module.clone();
        for u in &mut f.uses {
            *u = resolve(&own, u, &modules);
        }
    }
    Ok(files)
}

fn collect_rs(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("{}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            collect_rs(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    Ok(())
}

/// `src/lib.rs` -> `[]`, `src/a.rs` and `src/a/mod.rs` -> `["a"]`, `src/a/b.rs` -> `["a", "b"]`.
fn module_path(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap_or(file).with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

/// Sizes, functions and the paths a file uses.
fn analyse(shown: String, module: Vec<String>, text: &str, file: &syn::File) -> SourceFile {
    let mut v = Visitor::default();
    v.visit_file(file);
    let total = text.lines().count();
    let reexports = if module.is_empty() {
        root_reexports(file)
    } else {
        BTreeMap::new()
    };
    SourceFile {
        shown,
        module,
        lines: total.saturating_sub(v.test_lines),
        functions: v.functions,
        uses: v.paths,
        reexports,
    }
}

/// Whether `attrs` mark test-only code: `#[cfg(test)]` or `#[test]`.
fn is_test(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        a.path().is_ident("test")
            || (a.path().is_ident("cfg") && a.parse_args::<syn::Ident>().is_ok_and(|i| i == "test"))
    })
}

/// Lines from `first` to `last`'s end.
fn span_lines(first: proc_macro2::Span, last: proc_macro2::Span) -> (usize, usize) {
    let start = first.start().line;
    (start, last.end().line + 1 - start)
}

#[derive(Default)]
struct Visitor {
    test_lines: usize,
    functions: Vec<(usize, String, usize)>,
    paths: Vec<Vec<String>>,
}

impl Visitor {
    fn function(&mut self, sig: &syn::Signature, body: &syn::Block) {
        let (line, len) = span_lines(sig.fn_token.span, body.brace_token.span.close());
        self.functions.push((line, sig.ident.to_string(), len));
    }
}

impl<'ast> Visit<'ast> for Visitor {
    fn visit_item(&mut self, item: &'ast syn::Item) {
        let attrs = match item {
            syn::Item::Mod(m) => &m.attrs,
            syn::Item::Fn(f) => &f.attrs,
            syn::Item::Impl(i) => &i.attrs,
            syn::Item::Use(u) => &u.attrs,
            _ => return syn::visit::visit_item(self, item),
        };
        if is_test(attrs) {
            let span = syn::spanned::Spanned::span(item);
            self.test_lines += span_lines(span, span).1;
            return;
        }
        syn::visit::visit_item(self, item);
    }
    fn visit_item_fn(&mut self, f: &'ast syn::ItemFn) {
        self.function(&f.sig, &f.block);
        syn::visit::visit_item_fn(self, f);
    }
    fn visit_impl_item_fn(&mut self, f: &'ast syn::ImplItemFn) {
        if !is_test(&f.attrs) {
            self.function(&f.sig, &f.block);
        }
        syn::visit::visit_impl_item_fn(self, f);
    }
    fn visit_trait_item_fn(&mut self, f: &'ast syn::TraitItemFn) {
        if let Some(body) = &f.default {
            self.function(&f.sig, body);
        }
        syn::visit::visit_trait_item_fn(self, f);
    }
    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        let mut out = Vec::new();
        use_paths(&u.tree, &mut Vec::new(), &mut out);
        self.paths.extend(out);
    }
    fn visit_path(&mut self, p: &'ast syn::Path) {
        if p.segments.len() >= 2 {
            self.paths
                .push(p.segments.iter().map(|s| s.ident.to_string()).collect());
        }
        syn::visit::visit_path(self, p);
    }
}

/// The paths a `use` tree names, each whole (`a::b::{c, d}` -> `a::b::c`, `a::b::d`).
fn use_paths(tree: &syn::UseTree, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    match tree {
        syn::UseTree::Path(p) => {
            prefix.push(p.ident.to_string());
            use_paths(&p.tree, prefix, out);
            prefix.pop();
        }
        syn::UseTree::Name(n) => out.push([prefix.clone(), vec![n.ident.to_string()]].concat()),
        syn::UseTree::Rename(r) => out.push([prefix.clone(), vec![r.ident.to_string()]].concat()),
        syn::UseTree::Glob(_) => out.push(prefix.clone()),
        syn::UseTree::Group(g) => g.items.iter().for_each(|t| use_paths(t, prefix, out)),
    }
}

/// The names the crate root re-exports with `pub use`, and their modules.
fn root_reexports(file: &syn::File) -> BTreeMap<String, Vec<String>> {
    let mut map = BTreeMap::new();
    for item in &file.items {
        if let syn::Item::Use(u) = item {
            if matches!(u.vis, syn::Visibility::Public(_)) {
                let mut out = Vec::new();
                use_paths(&u.tree, &mut Vec::new(), &mut out);
                for mut path in out {
                    if let Some(name) = path.pop() {
                        map.insert(name, path);
                    }
                }
            }
        }
    }
    map
}

/// `path`, as used in module `own`, made absolute within the crate
/// (`crate::` dropped): `super::x` and `self::x` and a child module's name
/// resolved; anything else (another crate) left as it is, with a leading `::`.
fn resolve(own: &[String], path: &[String], modules: &BTreeSet<Vec<String>>) -> Vec<String> {
    let Some(first) = path.first() else {
        return Vec::new();
    };
    let mut base: Vec<String> = match first.as_str() {
        "crate" => Vec::new(),
        "self" => own.to_vec(),
        "super" => own[..own.len().saturating_sub(1)].to_vec(),
        _ => {
            let child = [own.to_vec(), vec![first.clone()]].concat();
            if !modules.contains(&child) {
                return [vec!["::".to_string()], path.to_vec()].concat();
            }
            return [own.to_vec(), path.to_vec()].concat();
        }
    };
    let mut rest = &path[1..];
    while rest.first().is_some_and(|s| s == "super") {
        base.pop();
        rest = &rest[1..];
    }
    base.extend(rest.iter().cloned());
    base
}

/// The file (by index) that a resolved path lands in: the longest module
/// prefix; through the root's re-exports when it lands in the root.
fn target(files: &[SourceFile], path: &[String]) -> Option<usize> {
    if path.first().is_some_and(|s| s == "::") {
        return None;
    }
    let find = |p: &[String]| {
        (0..=p.len())
            .rev()
            .find_map(|n| files.iter().position(|f| f.module == p[..n]))
    };
    let at = find(path)?;
    if !files[at].module.is_empty() {
        return Some(at);
    }
    // In the root: a re-exported name counts as its defining module.
    let root = &files[at];
    let name = path.first()?;
    let from = root.reexports.get(name)?;
    let resolved = resolve(
        &[],
        &[vec!["crate".to_string()], from.clone()].concat(),
        &BTreeSet::new(),
    );
    find(&resolved).filter(|&i| !files[i].module.is_empty())
}

/// Every circle of imports between the files of one crate (the root aside),
/// as the files in order, the first repeated at the end.
fn circles(files: &[SourceFile]) -> Vec<Vec<String>> {
    let n = files.len();
    let mut edges: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); n];
    for (i, f) in files.iter().enumerate() {
        if f.module.is_empty() {
            continue;
        }
        for u in &f.uses {
            if let Some(j) = target(files, u) {
                if j != i {
                    edges[i].insert(j);
                }
            }
        }
    }
    let mut found = Vec::new();
    for scc in strongly_connected(&edges) {
        if scc.len() > 1 {
            let cycle = cycle_in(&edges, &scc);
            found.push(cycle.iter().map(|&i| files[i].shown.clone()).collect());
        }
    }
    found
}

/// The strongly connected components of a graph (Tarjan's algorithm, iteratively).
fn strongly_connected(edges: &[BTreeSet<usize>]) -> Vec<Vec<usize>> {
    let n = edges.len();
    let (mut index, mut low) = (vec![usize::MAX; n], vec![0; n]);
    let (mut on_stack, mut stack, mut out) = (vec![false; n], Vec::new(), Vec::new());
    let mut next = 0;
    for root in 0..n {
        if index[root] != usize::MAX {
            continue;
        }
        let mut work: Vec<(usize, Vec<usize>)> = vec![(root, Vec::new())];
        index[root] = next;
        low[root] = next;
        next += 1;
        stack.push(root);
        on_stack[root] = true;
        work[0].1 = edges[root].iter().copied().rev().collect();
        while let Some((v, pending)) = work.last_mut() {
            let v = *v;
            if let Some(w) = pending.pop() {
                if index[w] == usize::MAX {
                    index[w] = next;
                    low[w] = next;
                    next += 1;
                    stack.push(w);
                    on_stack[w] = true;
                    work.push((w, edges[w].iter().copied().rev().collect()));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
                continue;
            }
            work.pop();
            if let Some((parent, _)) = work.last() {
                low[*parent] = low[*parent].min(low[v]);
            }
            if low[v] == index[v] {
                let mut scc = Vec::new();
                while let Some(w) = stack.pop() {
                    on_stack[w] = false;
                    scc.push(w);
                    if w == v {
                        break;
                    }
                }
                out.push(scc);
            }
        }
    }
    out
}

/// One circle through the smallest node of `scc`: a shortest path back to it.
fn cycle_in(edges: &[BTreeSet<usize>], scc: &[usize]) -> Vec<usize> {
    let inside: BTreeSet<usize> = scc.iter().copied().collect();
    let start = *scc.iter().min().expect("a component has a node");
    let mut from: BTreeMap<usize, usize> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(v) = queue.pop_front() {
        for &w in edges[v].iter().filter(|w| inside.contains(w)) {
            if w == start {
                // start -> ... -> v, then back to start.
                let mut path = vec![v];
                while let Some(&p) = from.get(path.last().expect("not empty")) {
                    path.push(p);
                }
                path.reverse();
                if path[0] != start {
                    path.insert(0, start);
                }
                path.push(start);
                return path;
            }
            if let std::collections::btree_map::Entry::Vacant(e) = from.entry(w) {
                e.insert(v);
                queue.push_back(w);
            }
        }
    }
    vec![start, start]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(module: &[&str], text: &str) -> SourceFile {
        let module: Vec<String> = module.iter().map(|s| s.to_string()).collect();
        let shown = format!("{}.rs", module.join("/"));
        analyse(shown, module, text, &syn::parse_file(text).unwrap())
    }

    fn crate_of(mut files: Vec<SourceFile>) -> Vec<SourceFile> {
        let modules: BTreeSet<Vec<String>> = files.iter().map(|f| f.module.clone()).collect();
        for f in &mut files {
            let own = f.module.clone();
            for u in &mut f.uses {
                *u = resolve(&own, u, &modules);
            }
        }
        files
    }

    /// The workspace itself keeps every limit.
    #[test]
    fn the_workspace_keeps_its_layout() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let report = check_workspace(root).unwrap();
        assert!(report.files > 50, "{} files", report.files);
        assert!(report.problems().is_empty(), "{}", report.summary());
    }

    /// A circle through three files is found, through `crate::`, `super::`
    /// and a root re-export alike; a chain is not a circle.
    #[test]
    fn circles_are_found_and_chains_are_not() {
        let files = crate_of(vec![
            file(&[], "mod a; mod b; mod c; pub use c::Thing;"),
            file(&["a"], "use crate::b::f; fn g() { f() }"),
            file(&["b"], "pub fn f() { let _ = crate::Thing; }"),
            file(&["c"], "pub struct Thing; fn h() { super::a::g() }"),
        ]);
        let found = circles(&files);
        assert_eq!(found, vec![vec!["a.rs", "b.rs", "c.rs", "a.rs"]]);
        let chain = crate_of(vec![
            file(&[], "mod a; mod b;"),
            file(&["a"], "use crate::b::f;"),
            file(&["b"], "pub fn f() { std::mem::drop(1) }"),
        ]);
        assert!(circles(&chain).is_empty());
    }

    /// A parent module and its child that use each other are a circle.
    #[test]
    fn a_parent_and_child_using_each_other_are_a_circle() {
        let files = crate_of(vec![
            file(&["run"], "mod step; use step::go; pub fn when() {}"),
            file(&["run", "step"], "pub fn go() { super::when() }"),
        ]);
        assert_eq!(circles(&files).len(), 1);
    }

    /// Function lengths run from `fn` to the closing brace; test code and
    /// doc comments do not count.
    #[test]
    fn functions_and_files_are_measured_without_tests() {
        let body = "    let x = 1;\n".repeat(81);
        let text = format!(
            "/// Doc.\n/// More.\nfn long() {{\n{body}}}\n\nfn short() {{}}\n\n#[cfg(test)]\nmod tests {{\n    fn huge() {{\n{body}    }}\n}}\n"
        );
        let f = file(&["x"], &text);
        assert_eq!(
            f.functions,
            vec![(3, "long".to_string(), 83), (87, "short".to_string(), 1)]
        );
        assert_eq!(f.lines, 88);
        let mut report = Report::default();
        add_crate(&mut report, &[f]);
        assert_eq!(
            report.problems(),
            vec!["x.rs:3 `long`: 83 lines".to_string()]
        );
    }
}
