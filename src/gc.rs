//! Finding and removing the temporary files that killed writers leave behind.
//!
//! Only files whose name starts with `.fedota-tmp.` are ever touched: never the data
//! files, never the records, never `.nfsXXXX` files (which an NFS client uses to keep
//! a deleted but still open file alive, and removes by itself).
//!
//! # Caveats
//!
//! Age is measured from the file's modification time, which on NFS is set by the
//! server's clock. A writer that is still streaming keeps updating it; a writer that
//! has staged its data and waits (for example one handed back by a failed commit)
//! does not, so pick a threshold longer than any such wait. The default of the
//! command-line tool is 10 minutes.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::error::{Error, IoContext};
use crate::layout::{INIT_DIR, ROUND_DIR, TEMP_PREFIX};
use crate::store::{Problem, Store};

/// A temporary file left behind by a writer.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Leftover {
    /// Its path.
    pub path: PathBuf,
    /// How long ago it was last modified (zero if its time is in the future).
    pub age: Duration,
    /// Its size in bytes.
    pub size: u64,
}

impl Problem {
    /// The temporary files in this problem's directories that are older than
    /// `older_than`.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if a directory cannot be listed.
    pub fn temporaries(&self, older_than: Duration) -> Result<Vec<Leftover>, Error> {
        let mut dirs = vec![self.dir().join(INIT_DIR)];
        for selector in self.selectors()? {
            let dir = self.dir().join(&selector);
            dirs.push(dir.join(ROUND_DIR));
            dirs.push(dir);
        }

        let mut found = Vec::new();
        for dir in dirs {
            scan(&dir, older_than, &mut found)?;
        }
        found.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(found)
    }
}

impl Store {
    /// The temporary files of every problem that are older than `older_than`.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if a directory cannot be listed.
    pub fn temporaries(&self, older_than: Duration) -> Result<Vec<Leftover>, Error> {
        let mut found = Vec::new();
        for id in self.problems()? {
            found.extend(self.problem(&id)?.temporaries(older_than)?);
        }
        Ok(found)
    }

    /// Removes the temporary files of every problem that are older than
    /// `older_than`, and returns what it removed. A file that vanished meanwhile
    /// (its writer finished or another cleanup got it) is skipped.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if a directory cannot be listed or a file cannot be removed.
    pub fn remove_temporaries(&self, older_than: Duration) -> Result<Vec<Leftover>, Error> {
        let mut removed = Vec::new();

        for leftover in self.temporaries(older_than)? {
            match fs::remove_file(&leftover.path) {
                Ok(()) => {
                    tracing::info!(path = %leftover.path.display(), age_s = leftover.age.as_secs(), "removed a leftover temporary file");
                    removed.push(leftover);
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(Error::io(
                        "remove leftover temporary file",
                        &leftover.path,
                        e,
                    ));
                }
            }
        }
        Ok(removed)
    }
}

/// Adds the crate's temporary files in `dir` that are older than `older_than`.
fn scan(dir: &Path, older_than: Duration, found: &mut Vec<Leftover>) -> Result<(), Error> {
    let op = "look for leftover temporary files in";
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io(op, dir, e)),
    };
    let now = SystemTime::now();

    for entry in entries {
        let entry = entry.context(op, dir)?;
        let is_ours = entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.starts_with(TEMP_PREFIX));
        if !is_ours {
            continue;
        }

        // It may be committed or removed between the listing and this look.
        let Ok(meta) = fs::symlink_metadata(entry.path()) else {
            continue;
        };
        if !meta.is_file() {
            continue;
        }

        let age = meta
            .modified()
            .ok()
            .and_then(|m| now.duration_since(m).ok())
            .unwrap_or(Duration::ZERO);
        if age >= older_than {
            found.push(Leftover {
                path: entry.path(),
                age,
                size: meta.len(),
            });
        }
    }
    Ok(())
}
