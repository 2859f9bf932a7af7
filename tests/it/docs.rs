//! The documents name files of the project (tests, modules, units):
//! each named path must exist, so a file that moves takes its mentions
//! along.

use std::path::Path;

/// The documents whose paths are checked.
const DOCS: [&str; 5] = [
    "README.md",
    "SECURITY.md",
    "BENCHMARKS.md",
    "docs/PROTOCOL.md",
    "docs/DEPLOY.md",
];

/// Paths in backticks that start with one of the project's folders.
fn named_paths(text: &str) -> Vec<&str> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .filter(|quoted| {
            ["src/", "tests/", "benches/", "dist/", "fuzz/", "docs/"]
                .iter()
                .any(|folder| quoted.starts_with(folder))
        })
        .filter(|quoted| {
            quoted.ends_with(".rs") || quoted.ends_with(".md") || quoted.contains("dist/")
        })
        .filter(|quoted| !quoted.contains(char::is_whitespace) && !quoted.contains('*'))
        .collect()
}

#[test]
fn every_path_the_documents_name_exists() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut missing = Vec::new();
    for doc in DOCS {
        let text = std::fs::read_to_string(root.join(doc)).unwrap();
        for path in named_paths(&text) {
            if !root.join(path).exists() {
                missing.push(format!("{doc}: {path}"));
            }
        }
    }
    assert!(missing.is_empty(), "paths that do not exist: {missing:#?}");
}
