//! The architecture, checked: the server's layers import in one direction
//! only, and the client crates never compile the server.
//!
//! ```sh
//! cargo test --test architecture
//! ```
//!
//! `chatd`'s modules form layers (see `crates/server/src/lib.rs`):
//!
//! ```text
//! replica, config, signals   wiring: builds everything, serves, shuts down
//!   api/                     gRPC services, validation, the metrics endpoint
//!   raft/                    proposer, read barrier, replica transport, membership
//!   storage/                 log store, state store (openraft's traits), snapshots
//!   state/                   the pure chat state machine and its commands
//! metrics                    a leaf: anyone records into it, it imports nothing
//! ```
//!
//! A module may use its own layer and the ones below it, never one above.
//! The check reads every `crate::` path outside comments, so it needs no
//! tool beyond this test.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The server's layers, top first; a layer may import itself and below.
const LAYERS: [&str; 5] = ["wiring", "api", "raft", "storage", "state"];

/// The layer of a module at `crate::<first>`, or `None` for the leaf
/// `metrics`.
fn layer_of_module(first: &str) -> Option<usize> {
    let name = match first {
        "metrics" => return None,
        "api" | "raft" | "storage" | "state" => first,
        // lib.rs's `proto` (the generated servers) and the wiring modules.
        _ => "wiring",
    };
    LAYERS.iter().position(|l| *l == name)
}

/// The layer of the source file at `rel` (relative to `src/`).
fn layer_of_file(rel: &Path) -> Option<usize> {
    let first = rel.components().next()?.as_os_str().to_str()?;
    layer_of_module(first.trim_end_matches(".rs"))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The first segment of every `crate::` path in `source`, outside comments,
/// with the line it is on. `use crate::{a, b::c}` yields `a` and `b`.
fn crate_paths(source: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (n, line) in source.lines().enumerate() {
        let code = match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        };
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            if let Some(group) = rest.strip_prefix('{') {
                let end = group.find('}').unwrap_or(group.len());
                for item in group[..end].split(',') {
                    let first = item.trim().split("::").next().unwrap_or("").trim();
                    if !first.is_empty() {
                        found.push((n + 1, first.to_string()));
                    }
                }
            } else {
                let first: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                found.push((n + 1, first));
            }
        }
    }
    found
}

#[test]
fn server_layers_import_downwards_only() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/server/src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(
        files.len() > 20,
        "found only {} files in {}",
        files.len(),
        src.display()
    );
    let mut violations = Vec::new();
    for file in &files {
        let rel = file.strip_prefix(&src).expect("under src");
        let source = std::fs::read_to_string(file).expect("read source");
        let here = layer_of_file(rel);
        for (line, first) in crate_paths(&source) {
            let there = layer_of_module(&first);
            let allowed = match (here, there) {
                // Anyone may record metrics.
                (_, None) => true,
                // The leaf imports nothing of ours.
                (None, Some(_)) => false,
                (Some(here), Some(there)) => there >= here,
            };
            if !allowed {
                let name = |l: Option<usize>| l.map_or("metrics", |l| LAYERS[l]);
                violations.push(format!(
                    "{}:{line}: {} imports crate::{first} ({})",
                    rel.display(),
                    name(here),
                    name(there),
                ));
            }
        }
    }
    assert!(
        violations.is_empty(),
        "imports against the layering:\n{}",
        violations.join("\n")
    );
}

#[test]
fn the_checker_sees_a_violation() {
    let source = "use crate::{state::Command, api::chat_service};\n// crate::replica\n";
    let paths: Vec<String> = crate_paths(source).into_iter().map(|(_, p)| p).collect();
    assert_eq!(paths, ["state", "api"]);
    let storage = layer_of_file(Path::new("storage/log_store.rs"));
    assert!(layer_of_module("api") < storage, "api is above storage");
    assert_eq!(layer_of_file(Path::new("metrics.rs")), None);
}

/// The normal (non-dev) dependency tree of a workspace package.
fn dependency_tree(package: &str) -> String {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "tree",
            "--offline",
            "-e",
            "normal",
            "--prefix",
            "none",
            "-p",
            package,
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo tree");
    assert!(
        out.status.success(),
        "cargo tree -p {package}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 tree")
}

#[test]
fn clients_do_not_compile_the_server() {
    for package in ["raftchat-client", "raftchat-cli", "raftchat-tui"] {
        let tree = dependency_tree(package);
        for forbidden in [
            "openraft ",
            "argon2 ",
            // tonic's server side (its router).
            "axum ",
            "raftchat-server ",
            "raftchat-testkit ",
        ] {
            assert!(
                !tree.lines().any(|l| l.starts_with(forbidden)),
                "{package} depends on {forbidden}:\n{tree}"
            );
        }
    }
}

#[test]
fn product_crates_do_not_depend_on_the_testkit() {
    let tree = dependency_tree("raftchat-server");
    assert!(tree.lines().any(|l| l.starts_with("openraft ")), "{tree}");
    assert!(
        !tree.lines().any(|l| l.starts_with("raftchat-testkit ")),
        "{tree}"
    );
}
