//! ARCHITECTURE.md is the code map: every source file must appear in it, so adding a
//! module without describing it fails here rather than leaving the map stale.

use std::path::{Path, PathBuf};

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_source_file_is_on_the_map() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let map = std::fs::read_to_string(root.join("ARCHITECTURE.md")).unwrap();
    let mut files = Vec::new();
    sources(&root.join("src"), &mut files);
    assert!(files.len() > 50, "found only {} source files", files.len());
    let missing: Vec<String> = files
        .iter()
        .filter_map(|path| {
            let name = path.file_name()?.to_str()?;
            // A directory's mod.rs is described under the directory's name.
            let wanted = match name {
                "lib.rs" => return None,
                "mod.rs" => format!("{}/", path.parent()?.file_name()?.to_str()?),
                _ => name.to_string(),
            };
            (!map.contains(&format!("`{wanted}")) && !map.contains(&format!("{wanted}`")))
                .then(|| path.strip_prefix(root).unwrap().display().to_string())
        })
        .collect();
    assert!(missing.is_empty(), "not in ARCHITECTURE.md: {missing:?}");
}
