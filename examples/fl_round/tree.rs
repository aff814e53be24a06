//! The final tree: every data file verified against its commit record, and a count of
//! the other files.

use std::error::Error;
use std::fs;
use std::path::{Path, PathBuf};

use fedota_store::layout::{RECORD_PREFIX, TEMP_PREFIX};
use fedota_store::{ArtifactKind, Problem};
use serde::Serialize;

/// One data file of the tree and what a verified read of it found.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    /// The path below the problem's directory.
    pub path: String,
    /// What it is: model, global checkpoint, aggregate, client update.
    pub kind: String,
    /// Its size in bytes, as read.
    pub size: Option<u64>,
    /// The round in its commit record.
    pub round: Option<u64>,
    /// Its weight, for aggregates and client updates.
    pub weight: Option<u64>,
    /// Whether the read checked it against a commit record.
    pub verified: bool,
    /// Why the read failed, if it did.
    pub error: Option<String>,
}

/// The whole tree.
#[derive(Debug, Clone, Serialize)]
pub struct Tree {
    /// The data files.
    pub entries: Vec<Entry>,
    /// Weight files.
    pub weight_files: usize,
    /// Commit records.
    pub records: usize,
    /// fedota-store's temporary files, left by a writer that died mid-commit.
    pub temp_files: Vec<String>,
    /// Other files: the lock, the holder record, the layout marker.
    pub other_files: Vec<String>,
}

impl Tree {
    /// Whether every data file verified.
    pub fn all_verified(&self) -> bool {
        self.entries.iter().all(|e| e.verified && e.error.is_none())
    }
}

/// Reads every artifact of `problem`, verified, and sorts the other files.
pub fn inspect(problem: &Problem) -> Result<Tree, Box<dyn Error>> {
    let dir = problem.dir();
    let mut entries = Vec::new();
    let mut data_paths = Vec::new();
    let mut weight_paths = Vec::new();

    for artifact in problem.artifacts()? {
        data_paths.push(artifact.data_path());
        weight_paths.extend(artifact.weight_path());

        let mut entry = Entry {
            path: relative(dir, &artifact.data_path()),
            kind: kind_name(artifact.kind()).to_owned(),
            size: None,
            round: None,
            weight: None,
            verified: false,
            error: None,
        };
        match problem.verify(&artifact) {
            Ok(snapshot) => {
                entry.size = Some(snapshot.value);
                entry.round = snapshot.round();
                entry.weight = snapshot.weight;
                entry.verified = snapshot.is_verified();
            }
            Err(e) => entry.error = Some(e.to_string()),
        }
        entries.push(entry);
    }

    // Everything else in the directory, sorted by what it is.
    let mut tree = Tree {
        entries,
        weight_files: 0,
        records: 0,
        temp_files: Vec::new(),
        other_files: Vec::new(),
    };
    let files =
        files_under(dir).map_err(|e| format!("list the files of {}: {e}", dir.display()))?;
    for path in files {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if data_paths.contains(&path) {
            continue;
        } else if weight_paths.contains(&path) {
            tree.weight_files += 1;
        } else if name.starts_with(RECORD_PREFIX) {
            tree.records += 1;
        } else if name.starts_with(TEMP_PREFIX) {
            tree.temp_files.push(relative(dir, &path));
        } else {
            tree.other_files.push(relative(dir, &path));
        }
    }
    Ok(tree)
}

/// Prints the tree, one data file a line.
pub fn print(problem_dir: &Path, tree: &Tree) {
    println!("\nfinal tree in {}:", problem_dir.display());
    let width = tree.entries.iter().map(|e| e.path.len()).max().unwrap_or(0);

    for e in &tree.entries {
        let size = e.size.map_or("-".to_owned(), |s| format!("{s} B"));
        let round = e.round.map_or("-".to_owned(), |r| r.to_string());
        let weight = e.weight.map_or(String::new(), |w| format!("weight {w}"));
        let status = match (&e.error, e.verified) {
            (Some(err), _) => format!("FAILED: {err}"),
            (None, true) => "verified".to_owned(),
            (None, false) => "no commit record".to_owned(),
        };
        println!(
            "  {:width$}  {size:>7}  round {round:>2}  {weight:<12}  {status}",
            e.path
        );
    }

    println!(
        "  + {} weight files, {} commit records, {} temporary files left",
        tree.weight_files,
        tree.records,
        tree.temp_files.len()
    );
    println!("  + {}", tree.other_files.join(", "));
}

/// The path of `path` below `dir`, with `/` separators.
fn relative(dir: &Path, path: &Path) -> String {
    path.strip_prefix(dir)
        .unwrap_or(path)
        .to_string_lossy()
        .into_owned()
}

/// A short name for an artifact's kind.
fn kind_name(kind: &ArtifactKind) -> &'static str {
    match kind {
        ArtifactKind::Model => "model",
        ArtifactKind::GlobalCheckpoint => "global checkpoint",
        ArtifactKind::Aggregate(_) => "aggregate",
        ArtifactKind::ClientUpdate(..) => "client update",
    }
}

/// Every regular file below `dir`, sorted.
fn files_under(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_owned()];

    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir)? {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                pending.push(entry.path());
            } else {
                files.push(entry.path());
            }
        }
    }
    files.sort();
    Ok(files)
}
