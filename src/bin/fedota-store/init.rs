//! `init`: create a problem with its model and the global checkpoint of round 0.
//!
//! Without `--checkpoint`, `fl_checkpoint` of round 0 is empty: there are no global
//! weights yet, and services start from `model.h5`. The model must not be empty. Both
//! inputs are opened, and their first bytes read, before anything is created, so a
//! missing, unreadable or empty input leaves the tree as it was. An existing problem is refused
//! unless `--force` is given, which replaces the model and resets the global
//! checkpoint to round 0 (selector directories are left alone). The coordinator lock
//! is held while the files are written, so `init` fails while a coordinator runs.
//!
//! # JSON
//!
//! ```text
//! { "command": "init", "schema_version": 1,
//!   "problem": string, "dir": string,
//!   "model": CommitRecord, "checkpoint": CommitRecord }
//! ```
//!
//! A `CommitRecord` is the commit record as stored beside the file: `layout`,
//! `artifact`, `round`, `size`, `crc32c` (a number), `weight`, `writer` {`role`,
//! `host`, `pid`, `session`}, `generation`, `committed_at`, `commit_id`. Unlike the
//! rest of a report, its optional keys are left out when they have no value, as on
//! disk: `weight` is there only for aggregates and client updates (so never in
//! `init`'s report), `generation` only for commits made under the coordinator lock
//! (so never in a selector's), and the `earlier` commits a record file keeps are
//! never in a report.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use fedota_store::{ArtifactKind, CommitRecord, CreateOptions, Error, ProblemId, Store};
use serde::Serialize;

use crate::input;
use crate::output::{self, Outcome, Output, OutputArgs, Render};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The problem to create
    #[arg(long, value_name = "ID")]
    problem: ProblemId,

    /// The model file to store as model.h5 (`-` for stdin)
    #[arg(long, value_name = "FILE")]
    model: PathBuf,

    /// The initial global checkpoint, round 0 (`-` for stdin) [default: empty]
    #[arg(long, value_name = "FILE")]
    checkpoint: Option<PathBuf>,

    /// Replace an existing problem's model and reset its checkpoint to round 0
    #[arg(long)]
    force: bool,

    #[command(flatten)]
    pub out: OutputArgs,
}

#[derive(Debug, Serialize)]
struct InitReport {
    problem: String,
    dir: PathBuf,
    model: CommitRecord,
    checkpoint: CommitRecord,
}

pub fn run(root: &Path, args: Args, out: &Output) -> Result<Outcome, Error> {
    let store = Store::open(root)?;

    // Stdin can feed one file only.
    if args.model == Path::new("-") && args.checkpoint.as_deref() == Some(Path::new("-")) {
        return Err(output::io_error(
            "read both the model and the checkpoint from",
            Path::new(input::STDIN),
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "stdin can feed only one of them",
            ),
        ));
    }

    // Check both inputs before anything is created.
    let mut model = input::open(&args.model, "model")?;
    if model.is_empty() {
        let e = io::Error::new(
            io::ErrorKind::InvalidInput,
            "it is empty, and a problem needs a model",
        );
        return Err(output::io_error(
            "read the model to commit from",
            model.name(),
            e,
        ));
    }
    let mut checkpoint: Box<dyn io::Read> = match &args.checkpoint {
        Some(path) => Box::new(input::open(path, "checkpoint")?),
        None => Box::new(io::empty()),
    };
    let options = if args.force {
        CreateOptions::force()
    } else {
        CreateOptions::default()
    };

    let problem = store.create_problem(&args.problem, &mut model, &mut checkpoint, options)?;

    // Report what was committed, from the records just written, without the earlier
    // commits they keep (after --force, those of the problem's previous life).
    let record = |kind| {
        let artifact = problem.artifact(kind);
        let mut record = problem
            .record(&artifact)?
            .ok_or_else(|| Error::Unrecorded {
                op: "read back the commit record just written".to_owned(),
                path: artifact.data_path(),
            })?;
        record.earlier.clear();
        Ok::<_, Error>(record)
    };
    let report = InitReport {
        problem: args.problem.to_string(),
        dir: problem.dir().to_owned(),
        model: record(ArtifactKind::Model)?,
        checkpoint: record(ArtifactKind::GlobalCheckpoint)?,
    };
    out.report(&report)?;
    Ok(Outcome::Clean)
}

impl Render for InitReport {
    fn render(&self, w: &mut dyn Write) -> io::Result<()> {
        writeln!(
            w,
            "created problem {} in {}",
            self.problem,
            self.dir.display()
        )?;
        for record in [&self.model, &self.checkpoint] {
            writeln!(
                w,
                "  {:<14} {:>10}  round {}  crc32c {:08x}",
                record.artifact,
                output::bytes(record.size),
                record.round,
                record.crc32c
            )?;
        }
        Ok(())
    }
}
