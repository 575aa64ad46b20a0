//! Voicemail audio on disk: message and greeting WAVs under `<data dir>/voicemail`,
//! each written whole or not at all, and the start-up sweep of files no row names.
//!
//! Paths handed in are relative to the voicemail directory, as rows store them.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};

/// A voicemail file could not be written or read: the disk, not the database.
#[derive(Debug, thiserror::Error)]
#[error("voicemail file {}: {source}", .path.display())]
pub struct AudioFileError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// The voicemail directory.
pub struct AudioFiles {
    dir: PathBuf,
}

impl AudioFiles {
    pub fn new(data_dir: &Path) -> Self {
        Self {
            dir: data_dir.join("voicemail"),
        }
    }

    /// Where a stored relative path lives.
    pub fn path(&self, relative: &str) -> PathBuf {
        self.dir.join(relative)
    }

    /// Writes `bytes` at `relative` atomically (see [`write_atomically`]), off the
    /// runtime's threads.
    pub async fn write(&self, relative: &str, bytes: Vec<u8>) -> Result<(), AudioFileError> {
        let path = self.path(relative);
        let target = path.clone();
        let written = tokio::task::spawn_blocking(move || write_atomically(&target, &bytes))
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)));
        written.map_err(|source| AudioFileError { path, source })
    }

    pub async fn read(&self, relative: &str) -> std::io::Result<Vec<u8>> {
        tokio::fs::read(self.path(relative)).await
    }

    /// Removes a file, if it is there. A file left behind is an orphan, which the
    /// start-up sweep removes: nothing to report.
    pub async fn remove(&self, relative: &str) {
        let _ = tokio::fs::remove_file(self.path(relative)).await;
    }

    pub fn exists(&self, relative: &str) -> bool {
        self.path(relative).exists()
    }

    /// Removes every file under the directory whose relative path is not in `keep`;
    /// returns how many went.
    pub async fn remove_all_but(&self, keep: HashSet<String>) -> usize {
        let dir = self.dir.clone();
        let keep: HashSet<PathBuf> = keep.iter().map(|r| dir.join(r)).collect();
        tokio::task::spawn_blocking(move || remove_unknown_files(&dir, &keep))
            .await
            .unwrap_or(0)
    }
}

/// Writes a file so that it is either fully there or not at all: a temporary file,
/// synced, then renamed into place.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent()
        && let Ok(d) = std::fs::File::open(dir)
    {
        let _ = d.sync_all();
    }
    Ok(())
}

fn remove_unknown_files(dir: &Path, keep: &HashSet<PathBuf>) -> usize {
    let mut removed = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if !keep.contains(&path) && std::fs::remove_file(&path).is_ok() {
                removed += 1;
            }
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_writes_leave_no_temporary_file() {
        let dir = std::env::temp_dir().join(format!("sb-atomic-{}", crate::ids::lower_alnum(8)));
        let path = dir.join("a/b/x.wav");
        write_atomically(&path, b"data").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"data");
        assert!(!path.with_extension("tmp").exists());
        let keep = HashSet::new();
        assert_eq!(remove_unknown_files(&dir, &keep), 1);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn a_write_that_cannot_happen_names_the_file() {
        let dir = std::env::temp_dir().join(format!("sb-files-{}", crate::ids::lower_alnum(8)));
        std::fs::create_dir_all(&dir).unwrap();
        // A plain file where the voicemail directory should be.
        std::fs::write(dir.join("voicemail"), b"not a directory").unwrap();
        let files = AudioFiles::new(&dir);
        let err = files
            .write("p/e/m.wav", b"RIFF".to_vec())
            .await
            .unwrap_err();
        assert_eq!(err.path, files.path("p/e/m.wav"));
        let _ = std::fs::remove_dir_all(dir);
    }
}
