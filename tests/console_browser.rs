//! The reception console in a real browser: runs `tests/browser/console.test.mjs`
//! (playwright-core driving Debian's chromium) against the real binary. Screenshots of
//! the board land in `artifacts/`.

#[test]
fn the_console_works_in_a_real_browser() {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = std::process::Command::new("node")
        .arg(format!("{root}/tests/browser/console.test.mjs"))
        .env("SWITCHBOARD_BIN", crate::common::BIN)
        .env("ARTIFACTS", format!("{root}/artifacts"))
        .output()
        .expect("node runs (Node.js with tests/browser/node_modules: see scripts/test)");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "browser checks failed:\n{text}");
    assert!(
        text.contains("console: all browser checks passed"),
        "{text}"
    );
}
