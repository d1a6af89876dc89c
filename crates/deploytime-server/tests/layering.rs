//! The server's layers import only downwards, and its modules never import each
//! other in circles: read from the sources themselves, so a new upward import
//! or a new circle fails the suite (docs/architecture.md shows the layers).
//!
//! Every `use` and every path in code under `src/` is resolved to the module
//! (file) it names; re-exports (`pub use`) are followed to the module that
//! defines the item and are not dependencies of their own. Test code
//! (`#[cfg(test)]`) and paths inside macro invocations are not read.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic here is a failed test

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use syn::visit::Visit;

/// Each top-level module and its layer; a module may import from its own layer
/// and the ones below (a lower number), never from one above.
const LAYERS: &[(&str, u8)] = &[
    ("db", 1),
    ("access", 2),
    ("gate", 2),
    ("http", 3),
    ("settings", 4),
    ("telemetry", 4),
    ("startup", 4),
    ("testing", 5),
];

/// A module path, `["db", "queries"]` for `crate::db::queries`.
type ModulePath = Vec<String>;

#[derive(Default)]
struct Module {
    /// Items named by this module's own code: `use` trees that are not
    /// re-exports, and paths in code, each as written (with `crate`, `super`...).
    uses: Vec<Vec<String>>,
    /// Names this module re-exports, and the path they re-export.
    reexports: BTreeMap<String, Vec<String>>,
    /// Child modules declared under `#[cfg(test)]`.
    test_children: BTreeSet<String>,
}

fn is_cfg_test(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|attr| {
        attr.path().is_ident("cfg")
            && attr
                .parse_args::<syn::Meta>()
                .is_ok_and(|meta| meta.path().is_ident("test"))
    })
}

/// Flattens a use tree into its paths; a rename keeps the original path.
fn use_paths(tree: &syn::UseTree, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    match tree {
        syn::UseTree::Path(p) => {
            prefix.push(p.ident.to_string());
            use_paths(&p.tree, prefix, out);
            prefix.pop();
        }
        syn::UseTree::Name(n) => {
            let mut path = prefix.clone();
            if n.ident != "self" {
                path.push(n.ident.to_string());
            }
            out.push(path);
        }
        syn::UseTree::Rename(r) => {
            let mut path = prefix.clone();
            if r.ident != "self" {
                path.push(r.ident.to_string());
            }
            out.push(path);
        }
        syn::UseTree::Glob(_) => out.push(prefix.clone()),
        syn::UseTree::Group(g) => {
            for item in &g.items {
                use_paths(item, prefix, out);
            }
        }
    }
}

/// The name a use tree's leaf is known by (for re-exports).
fn exported_names(
    tree: &syn::UseTree,
    prefix: &mut Vec<String>,
    out: &mut Vec<(String, Vec<String>)>,
) {
    match tree {
        syn::UseTree::Path(p) => {
            prefix.push(p.ident.to_string());
            exported_names(&p.tree, prefix, out);
            prefix.pop();
        }
        syn::UseTree::Name(n) => {
            let mut path = prefix.clone();
            path.push(n.ident.to_string());
            out.push((n.ident.to_string(), path));
        }
        syn::UseTree::Rename(r) => {
            let mut path = prefix.clone();
            path.push(r.ident.to_string());
            out.push((r.rename.to_string(), path));
        }
        syn::UseTree::Glob(_) => {}
        syn::UseTree::Group(g) => {
            for item in &g.items {
                exported_names(item, prefix, out);
            }
        }
    }
}

/// Collects what one file names, with the inline modules it is in.
struct Collector<'a> {
    module: &'a mut Module,
    /// Inline modules (`mod x { … }`) around the current item.
    inline: Vec<String>,
}

impl Collector<'_> {
    /// A path is recorded with the inline modules it was written in, as
    /// leading `self` segments resolved later.
    fn record(&mut self, path: Vec<String>) {
        let mut full: Vec<String> = Vec::new();
        if !self.inline.is_empty()
            && matches!(path.first().map(String::as_str), Some("super" | "self"))
        {
            full.extend(self.inline.iter().map(|m| format!("inline:{m}")));
        }
        full.extend(path);
        self.module.uses.push(full);
    }
}

impl<'ast> Visit<'ast> for Collector<'_> {
    fn visit_item(&mut self, item: &'ast syn::Item) {
        let attrs: &[syn::Attribute] = match item {
            syn::Item::Fn(i) => &i.attrs,
            syn::Item::Impl(i) => &i.attrs,
            syn::Item::Mod(i) => &i.attrs,
            syn::Item::Use(i) => &i.attrs,
            syn::Item::Struct(i) => &i.attrs,
            syn::Item::Enum(i) => &i.attrs,
            syn::Item::Const(i) => &i.attrs,
            syn::Item::Static(i) => &i.attrs,
            syn::Item::Type(i) => &i.attrs,
            syn::Item::Trait(i) => &i.attrs,
            _ => &[],
        };
        if is_cfg_test(attrs) {
            if let syn::Item::Mod(m) = item
                && m.content.is_none()
                && self.inline.is_empty()
            {
                self.module.test_children.insert(m.ident.to_string());
            }
            return;
        }
        syn::visit::visit_item(self, item);
    }

    fn visit_item_mod(&mut self, item: &'ast syn::ItemMod) {
        if item.content.is_some() {
            self.inline.push(item.ident.to_string());
            syn::visit::visit_item_mod(self, item);
            self.inline.pop();
        }
    }

    fn visit_item_use(&mut self, item: &'ast syn::ItemUse) {
        let reexport = !matches!(item.vis, syn::Visibility::Inherited);
        if reexport && self.inline.is_empty() {
            let mut names = Vec::new();
            exported_names(&item.tree, &mut Vec::new(), &mut names);
            self.module.reexports.extend(names);
            return;
        }
        let mut paths = Vec::new();
        use_paths(&item.tree, &mut Vec::new(), &mut paths);
        for path in paths {
            self.record(path);
        }
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        if path.segments.len() > 1 {
            self.record(path.segments.iter().map(|s| s.ident.to_string()).collect());
        }
        syn::visit::visit_path(self, path);
    }
}

/// Every module of a crate's `src/` (the library only: `lib.rs`, not the
/// binary's files), by module path.
fn read_modules(src: &Path) -> BTreeMap<ModulePath, Module> {
    let mut files = Vec::new();
    collect_files(src, &mut files);
    let mut modules = BTreeMap::new();
    for file in files {
        let relative = file.strip_prefix(src).unwrap();
        let mut path: ModulePath = relative
            .with_extension("")
            .iter()
            .map(|c| c.to_string_lossy().into_owned())
            .collect();
        match path.last().map(String::as_str) {
            Some("mod") => {
                path.pop();
            }
            Some("lib") if path.len() == 1 => path.clear(),
            // The binary and its own modules are above every layer.
            Some("main" | "cli") if path.len() == 1 => continue,
            _ => {}
        }
        let text = std::fs::read_to_string(&file).unwrap();
        let syntax = syn::parse_file(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let mut module = Module::default();
        Collector {
            module: &mut module,
            inline: Vec::new(),
        }
        .visit_file(&syntax);
        modules.insert(path, module);
    }
    // Files of test modules are test code.
    let tests: Vec<ModulePath> = modules
        .iter()
        .flat_map(|(path, module)| {
            module.test_children.iter().map(move |child| {
                let mut child_path = path.clone();
                child_path.push(child.clone());
                child_path
            })
        })
        .collect();
    for test in tests {
        modules.retain(|path, _| !path.starts_with(&test));
    }
    modules
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module a path written in `from` names, following re-exports to the
/// module that defines the item; `None` for other crates and local names.
fn resolve(
    modules: &BTreeMap<ModulePath, Module>,
    from: &ModulePath,
    path: &[String],
) -> Option<ModulePath> {
    resolve_from(modules, from, path, 0)
}

fn resolve_from(
    modules: &BTreeMap<ModulePath, Module>,
    from: &ModulePath,
    path: &[String],
    depth: usize,
) -> Option<ModulePath> {
    let mut base = from.clone();
    let mut rest = path;
    while let Some(first) = rest.first() {
        if let Some(inline) = first.strip_prefix("inline:") {
            base.push(inline.to_owned());
        } else {
            break;
        }
        rest = &rest[1..];
    }
    let absolute: Vec<String> = match rest.first().map(String::as_str) {
        Some("crate") => rest[1..].to_vec(),
        Some("super") => {
            let mut at = base.clone();
            let mut rest = rest;
            while rest.first().map(String::as_str) == Some("super") {
                at.pop();
                rest = &rest[1..];
            }
            at.extend(rest.iter().cloned());
            at
        }
        Some("self") => {
            let mut at = base.clone();
            at.extend(rest[1..].iter().cloned());
            at
        }
        Some(name) => {
            let mut child = from.clone();
            child.push(name.to_owned());
            if !modules.contains_key(&child) {
                return None;
            }
            let mut at = from.clone();
            at.extend(rest.iter().cloned());
            at
        }
        None => return None,
    };
    // The longest prefix that is a module, inline modules dropped.
    let mut module: ModulePath = absolute.clone();
    while !module.is_empty() && !modules.contains_key(&module) {
        module.pop();
    }
    if !modules.contains_key(&module) {
        return None;
    }
    // An item re-exported by that module: the module that defines it (a
    // re-export of a re-export is followed a few steps at most).
    if depth < 8
        && let Some(item) = absolute.get(module.len())
        && let Some(target) = modules[&module].reexports.get(item)
    {
        return resolve_from(modules, &module, target, depth + 1).or(Some(module));
    }
    Some(module)
}

/// Every module's dependencies on other modules.
fn dependencies(
    modules: &BTreeMap<ModulePath, Module>,
) -> BTreeMap<ModulePath, BTreeSet<ModulePath>> {
    modules
        .iter()
        .map(|(path, module)| {
            let targets = module
                .uses
                .iter()
                .filter_map(|used| resolve(modules, path, used))
                .filter(|target| target != path && !target.is_empty())
                .collect();
            (path.clone(), targets)
        })
        .collect()
}

fn layer(path: &ModulePath) -> Option<u8> {
    let top = path.first()?;
    LAYERS
        .iter()
        .find(|(name, _)| name == top)
        .map(|(_, rank)| *rank)
}

fn show(path: &ModulePath) -> String {
    format!("crate::{}", path.join("::"))
}

/// Imports from a higher layer than the importer's, and modules that belong to
/// no layer.
fn upward_imports(modules: &BTreeMap<ModulePath, Module>) -> Vec<String> {
    let mut found = Vec::new();
    for (from, targets) in dependencies(modules) {
        if from.is_empty() {
            continue;
        }
        let Some(own) = layer(&from) else {
            found.push(format!("{} belongs to no layer", show(&from)));
            continue;
        };
        for target in targets {
            if let Some(theirs) = layer(&target)
                && theirs > own
            {
                found.push(format!("{} imports {}", show(&from), show(&target)));
            }
        }
    }
    found
}

/// The cycles among modules, each as the modules it goes through.
fn cycles(modules: &BTreeMap<ModulePath, Module>) -> Vec<Vec<ModulePath>> {
    let graph = dependencies(modules);
    let mut found = Vec::new();
    let mut done: BTreeSet<ModulePath> = BTreeSet::new();
    fn visit(
        node: &ModulePath,
        graph: &BTreeMap<ModulePath, BTreeSet<ModulePath>>,
        stack: &mut Vec<ModulePath>,
        done: &mut BTreeSet<ModulePath>,
        found: &mut Vec<Vec<ModulePath>>,
    ) {
        if let Some(at) = stack.iter().position(|n| n == node) {
            found.push(stack[at..].to_vec());
            return;
        }
        if done.contains(node) {
            return;
        }
        stack.push(node.clone());
        for next in graph.get(node).into_iter().flatten() {
            visit(next, graph, stack, done, found);
        }
        stack.pop();
        done.insert(node.clone());
    }
    for node in graph.keys() {
        visit(node, &graph, &mut Vec::new(), &mut done, &mut found);
    }
    found
}

fn server_modules() -> BTreeMap<ModulePath, Module> {
    read_modules(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"))
}

#[test]
fn layers_import_only_downwards() {
    let modules = server_modules();
    assert!(
        modules.len() > 20,
        "the sources were not found: {:?}",
        modules.keys()
    );
    let found = upward_imports(&modules);
    assert!(found.is_empty(), "upward imports:\n{}", found.join("\n"));
}

#[test]
fn modules_never_import_each_other_in_circles() {
    let found = cycles(&server_modules());
    let shown: Vec<String> = found
        .iter()
        .map(|cycle| {
            let mut names: Vec<String> = cycle.iter().map(show).collect();
            names.push(show(&cycle[0]));
            names.join(" -> ")
        })
        .collect();
    assert!(shown.is_empty(), "import cycles:\n{}", shown.join("\n"));
}

/// The checker itself: it must see an upward import, through a re-export and a
/// `super` path, and a cycle, or the two tests above could pass on anything.
#[test]
fn the_checker_finds_an_upward_import_and_a_cycle() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    let write = |path: &str, text: &str| {
        let file = src.join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, text).unwrap();
    };
    write("lib.rs", "pub mod db;\npub mod http;\n");
    write(
        "db/mod.rs",
        "mod store;\nmod error;\npub use error::DbError;\n#[cfg(test)]\nmod tests;\n",
    );
    // Test code may use anything.
    write("db/tests.rs", "use crate::http::ApiError;\n");
    write("db/error.rs", "pub struct DbError;\n");
    // Names the HTTP layer (upward), and a sibling that names it back (a cycle).
    write(
        "db/store.rs",
        "use crate::http::ApiError;\nuse super::DbError;\npub fn f() -> Option<ApiError> { None }\n",
    );
    write(
        "http/mod.rs",
        "pub struct ApiError;\npub fn g() { let _ = crate::db::DbError; }\n",
    );
    let modules = read_modules(src);
    assert_eq!(
        upward_imports(&modules),
        ["crate::db::store imports crate::http"]
    );
    assert!(cycles(&modules).is_empty(), "no cycle yet");
    write("db/error.rs", "pub struct DbError;\nuse super::store::f;\n");
    write("db/store.rs", "use super::DbError;\npub fn f() {}\n");
    let cycles = cycles(&read_modules(src));
    assert_eq!(cycles.len(), 1, "{cycles:?}");
    let mut members: Vec<String> = cycles[0].iter().map(show).collect();
    members.sort();
    assert_eq!(members, ["crate::db::error", "crate::db::store"]);
}
