//! `gc`: remove the temporary files that killed writers left behind.
//!
//! Only files named `.fedota-tmp.*`, in a problem's `initFiles`, selector and
//! `roundFiles` directories, and older than `--older-than` (default 10 minutes), are
//! removed. Never a data file, a commit record, or an NFS `.nfsXXXX` file. Age is
//! the time since the file's modification time, which on NFS the server's clock
//! sets; a writer that is streaming keeps it fresh. `--dry-run` lists what would go.
//!
//! A problem whose directories cannot be listed (a malformed layout marker, a
//! `roundFiles` that is not a directory), and a leftover that cannot be removed, are
//! reported under `errors`; the other problems are still cleaned. `gc` then exits
//! with the worst code it met (2 for an I/O error, 1 for a malformed marker).
//!
//! # JSON
//!
//! ```text
//! { "command": "gc", "schema_version": 1, "root": string,
//!   "older_than_s": number, "dry_run": bool,
//!   "files": [ { "path": string, "age_s": number, "size": number, "stale": bool } ],
//!   "errors": [Failure] }
//! ```
//!
//! `files` lists what was removed, or with `--dry-run` what would be. `Failure` is
//! the error object documented in `check.rs`.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use fedota_store::{Error, Leftover, Store};
use serde::Serialize;

use crate::check::Failure;
use crate::output::{self, Outcome, Output, OutputArgs, Render};

/// The default age past which a temporary file is a leftover.
pub const DEFAULT_OLDER_THAN: Duration = Duration::from_secs(10 * 60);

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Remove temporary files older than this (such as 30s, 10m, 2h)
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = humantime::parse_duration)]
    older_than: Duration,

    /// Only list what would be removed
    #[arg(long)]
    dry_run: bool,

    #[command(flatten)]
    pub out: OutputArgs,
}

/// A temporary file, as `gc` and `status` report it.
#[derive(Debug, Clone, Serialize)]
pub struct TempReport {
    pub path: PathBuf,
    pub age_s: u64,
    pub size: u64,
    /// Older than [`DEFAULT_OLDER_THAN`].
    pub stale: bool,
}

impl From<Leftover> for TempReport {
    fn from(l: Leftover) -> Self {
        Self {
            stale: l.age >= DEFAULT_OLDER_THAN,
            path: l.path,
            age_s: l.age.as_secs(),
            size: l.size,
        }
    }
}

#[derive(Debug, Serialize)]
struct GcReport {
    root: PathBuf,
    older_than_s: u64,
    dry_run: bool,
    files: Vec<TempReport>,
    errors: Vec<Failure>,
}

pub fn run(root: &Path, args: Args, out: &Output) -> Result<Outcome, Error> {
    let store = Store::open(root)?;
    let mut files = Vec::new();
    let mut errors = Vec::new();

    // Problem by problem, so one that cannot be read keeps no other from its cleanup.
    for id in store.problems()? {
        let found = store
            .problem(&id)
            .and_then(|problem| problem.temporaries(args.older_than));
        let leftovers = match found {
            Ok(leftovers) => leftovers,
            Err(e) => {
                errors.push(Failure::new(&id, None, &e));
                continue;
            }
        };

        for leftover in leftovers {
            if !args.dry_run {
                match remove(&leftover) {
                    Ok(true) => {}
                    Ok(false) => continue,
                    Err(e) => {
                        errors.push(Failure::new(&id, None, &e));
                        continue;
                    }
                }
            }
            files.push(TempReport::from(leftover));
        }
    }

    let outcome = errors.iter().map(|e| e.outcome).max().unwrap_or_default();
    out.report(&GcReport {
        root: root.to_owned(),
        older_than_s: args.older_than.as_secs(),
        dry_run: args.dry_run,
        files,
        errors,
    })?;
    Ok(outcome)
}

/// Removes one leftover: `Ok(false)` if it was gone already (its writer finished, or
/// another cleanup got it).
fn remove(leftover: &Leftover) -> Result<bool, Error> {
    match fs::remove_file(&leftover.path) {
        Ok(()) => {
            tracing::info!(path = %leftover.path.display(), age_s = leftover.age.as_secs(), "removed a leftover temporary file");
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(output::io_error(
            "remove the leftover temporary file",
            &leftover.path,
            e,
        )),
    }
}

impl Render for GcReport {
    fn render(&self, w: &mut dyn Write) -> io::Result<()> {
        let verb = if self.dry_run {
            "would remove"
        } else {
            "removed"
        };

        for f in &self.files {
            writeln!(
                w,
                "{verb} {}  ({} old, {})",
                f.path.display(),
                output::age(Duration::from_secs(f.age_s)),
                output::bytes(f.size)
            )?;
        }

        for e in &self.errors {
            writeln!(w, "ERROR {}", e.error)?;
        }

        let total: u64 = self.files.iter().map(|f| f.size).sum();
        writeln!(
            w,
            "gc: {verb} {} ({}) older than {} under {}",
            output::count(self.files.len(), "temporary file"),
            output::bytes(total),
            output::age(Duration::from_secs(self.older_than_s)),
            self.root.display()
        )
    }
}
