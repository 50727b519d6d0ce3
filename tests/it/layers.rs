//! The import layers of `src/`, as docs/architecture.md draws them: a
//! module may use what sits in a lower layer, never what sits in a higher
//! one, and the Rust client (`client/`) is a peer that knows only the wire
//! types. This reads the source as text: every `crate::name` outside a
//! comment is an import of the top-level module `name`.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

/// Top-level modules by layer, bottom first (the order of `src/lib.rs`).
const LAYERS: &[&[&str]] = &[
    &["config", "error", "peer", "protocol", "request_head"],
    &["auth", "engine", "metrics", "refusal"],
    &["broadcaster"],
    &["handle"],
    &["http", "stdin_feed", "ws"],
    &["hub"],
    &["lib", "main", "logger", "testing"],
];

/// Modules in one layer that may still use each other (each pair says
/// who uses whom). Everything else in one layer is independent.
const SIDEWAYS: &[(&str, &str)] = &[
    ("request_head", "error"),
    ("config", "error"),
    ("config", "peer"),
    // `/metrics` counts refused tokens under auth's `RefusalReason`.
    ("metrics", "auth"),
];

/// The client is outside the stack: it may use only these.
const CLIENT_MAY_USE: &[&str] = &["client", "protocol"];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("src/ is readable") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file belongs to: `src/ws/serve.rs` -> `ws`.
fn owner(src: &Path, file: &Path) -> String {
    let first = file
        .strip_prefix(src)
        .expect("under src/")
        .components()
        .next();
    let name = first.expect("a path").as_os_str().to_string_lossy();
    name.trim_end_matches(".rs").to_string()
}

/// The top-level modules `text` names as `crate::name`, comments left out.
fn uses(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        for (at, _) in code.match_indices("crate::") {
            let rest = &code[at + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            // `pumphub::crate::` cannot occur; `$crate::` in macros is the
            // same crate, so it counts too.
            if !name.is_empty() {
                found.insert(name);
            }
        }
    }
    found
}

#[test]
fn no_module_imports_a_layer_above_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut wrong = Vec::new();
    for file in &files {
        let from = owner(&src, file);
        let text = fs::read_to_string(file).expect("readable source");
        for to in uses(&text) {
            if to == from {
                continue;
            }
            let allowed = if from == "client" {
                CLIENT_MAY_USE.contains(&to.as_str())
            } else {
                match (layer_of(&from), layer_of(&to)) {
                    (Some(a), Some(b)) => {
                        b < a || (a == b && SIDEWAYS.contains(&(from.as_str(), to.as_str())))
                    }
                    // Only `lib.rs` re-exports the client.
                    (Some(_), None) => from == "lib" && to == "client",
                    (None, _) => false,
                }
            };
            if !allowed {
                wrong.push(format!("{} uses crate::{to}", file.display()));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the layers:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn every_top_level_module_has_a_layer() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let unknown: BTreeSet<String> = files
        .iter()
        .map(|f| owner(&src, f))
        .filter(|m| m != "client" && layer_of(m).is_none())
        .collect();
    assert!(
        unknown.is_empty(),
        "modules missing from LAYERS: {unknown:?}"
    );
}

#[test]
fn the_check_sees_a_violation() {
    // The scanner itself: an upward import and a commented one.
    let text = "use crate::hub::Hub;\n// use crate::ws::X;\nlet x = crate::protocol::Seq(1);";
    let found: Vec<String> = uses(text).into_iter().collect();
    assert_eq!(found, ["hub", "protocol"]);
}
