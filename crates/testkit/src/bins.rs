//! The workspace's binaries (`chatd`, `chatctl`, `chat-tui`) for tests and
//! examples.
//!
//! They live in other crates of the workspace, so cargo neither builds them
//! for the top-level tests and examples nor tells those where they are. The
//! first call in a process runs `cargo build` for all three with the profile
//! of the running executable (a no-op when they are up to date), so a test
//! or an example never runs a stale binary; it then finds them in that
//! profile's directory. `CHATD_BIN` names another `chatd`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The path of binary `name` (`chatd`, `chatctl` or `chat-tui`), built first
/// if needed. Panics with the reason when it cannot be built or found.
pub fn path(name: &str) -> PathBuf {
    try_path(name).unwrap_or_else(|e| panic!("{e}"))
}

/// [`path`], as a `Result` for examples that report errors themselves.
pub fn try_path(name: &str) -> Result<PathBuf, String> {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    if name == "chatd" {
        if let Some(p) = std::env::var_os("CHATD_BIN") {
            return Ok(PathBuf::from(p));
        }
    }
    let dir = profile_dir()?;
    BUILT.get_or_init(|| build(&dir)).clone()?;
    let path = dir.join(name);
    if path.exists() {
        Ok(path)
    } else {
        Err(format!(
            "{} does not exist; build it with `cargo build --bins`",
            path.display()
        ))
    }
}

/// `target/<profile>`: tests run from `target/<profile>/deps`, examples from
/// `target/<profile>/examples`.
fn profile_dir() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    exe.parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .ok_or_else(|| format!("{} is not inside a cargo target dir", exe.display()))
}

/// Runs `cargo build --workspace --bins` with the profile `dir` was built
/// with. Without cargo (a binary copied elsewhere) it builds nothing.
///
/// The build also names an example: the running one, or all of them from a
/// test (`cargo test` builds them anyway). Examples, like tests, need the
/// dev-dependencies, so cargo then resolves features exactly as it did for
/// the running executable and reuses its artifacts instead of compiling the
/// workspace a second time with other features.
fn build(dir: &Path) -> Result<(), String> {
    let Some(cargo) = std::env::var_os("CARGO") else {
        return Ok(());
    };
    let profile = match dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") => "dev",
        Some(other) => other,
        None => return Err(format!("{}: no profile name", dir.display())),
    };
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../../Cargo.toml");
    let mut cmd = Command::new(cargo);
    cmd.args([
        "build",
        "--quiet",
        "--workspace",
        "--bins",
        "--profile",
        profile,
    ])
    .args(["--manifest-path", manifest]);
    match running_example() {
        Some(name) => cmd.arg("--example").arg(name),
        None => cmd.arg("--examples"),
    };
    // The target dir is the one holding `dir`, whatever it is called.
    if let Some(target) = dir.parent() {
        cmd.env("CARGO_TARGET_DIR", target);
    }
    // Cargo runs tests and examples with their own package's variables set
    // (CARGO_MANIFEST_DIR, CARGO_PKG_NAME, ...). Build scripts such as
    // ring's ask to rerun when those change, so passing them on would
    // rebuild ring and everything above it on every switch between this
    // build and a plain `cargo` run.
    for (name, _) in std::env::vars_os() {
        if package_variable(&name.to_string_lossy()) {
            cmd.env_remove(name);
        }
    }
    let status = cmd
        .status()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{cmd:?} failed ({status})"))
    }
}

/// Whether `name` is one of the variables cargo sets for a package's
/// build, tests or binaries, not one that configures cargo itself.
fn package_variable(name: &str) -> bool {
    const PREFIXES: [&str; 5] = [
        "CARGO_PKG_",
        "CARGO_MANIFEST_",
        "CARGO_CRATE_",
        "CARGO_BIN_",
        "CARGO_CFG_",
    ];
    const NAMES: [&str; 4] = [
        "OUT_DIR",
        "CARGO_PRIMARY_PACKAGE",
        "CARGO_TARGET_TMPDIR",
        "CARGO_RUSTC_CURRENT_DIR",
    ];
    PREFIXES.iter().any(|p| name.starts_with(p)) || NAMES.contains(&name)
}

/// The name of the running example, when this is one.
fn running_example() -> Option<OsString> {
    let exe = std::env::current_exe().ok()?;
    let in_examples = exe.parent()?.file_name()? == "examples";
    in_examples
        .then(|| exe.file_stem().map(OsString::from))
        .flatten()
}
