//! What every end-to-end test of the `sluice` binary needs: run it from the repository root,
//! a scratch folder per test, and its output as text.

#![allow(dead_code)] // each test file uses its own share of these

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// What a test returns, so it can use `?`.
pub type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Runs `sluice ARGS...` in the repository root.
pub fn sluice(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .current_dir(repo())
        .output()
        .expect("the sluice binary runs")
}

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

/// An empty scratch folder named after the test file (`prefix`), this process and `name`.
pub fn scratch_in(prefix: &str, name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sluice-{prefix}-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Standard output and standard error together.
pub fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// The shipped `scenario` (a path from the repository root) with `from` replaced by `to`,
/// written under its own file name to the scratch folder `scratch_in(prefix, name)`.
pub fn edited_in(
    prefix: &str,
    scenario: &str,
    name: &str,
    from: &str,
    to: &str,
) -> Result<PathBuf, Box<dyn std::error::Error>> {
    let src = std::fs::read_to_string(repo().join(scenario))?;
    assert!(src.contains(from), "{scenario} has {from:?}");
    let file = Path::new(scenario).file_name().expect("a scenario file");
    let path = scratch_in(prefix, name).join(file);
    std::fs::write(&path, src.replace(from, to))?;
    Ok(path)
}

/// Writes `body` to `dir/name` and checks that `sluice validate` rejects it as bad input:
/// exit 2, the error at `place` (`file:line:column`) saying `hint`, and no panic.
pub fn assert_rejected(dir: &Path, name: &str, body: &str, place: &str, hint: &str) {
    let path = dir.join(name);
    std::fs::write(&path, body).expect("scratch file");
    let o = sluice(&["validate", path.to_str().expect("utf-8 path")]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(2), "{name}: {t}");
    assert!(t.contains(place), "{name}: expected {place} in:\n{t}");
    assert!(t.contains(hint), "{name}: expected {hint:?} in:\n{t}");
    assert!(!t.contains("panicked"), "{name}: {t}");
}
