//! `cat`: read one file of the tree, verified, to stdout or to a path.
//!
//! ```text
//! fedota-store cat --problem p1 checkpoint --round 4 > global.ckpt
//! fedota-store cat --problem p1 aggregate --selector s1 --round 3 --output agg.ckpt
//! fedota-store cat --problem p1 update --selector s1 --client 7
//! fedota-store cat --problem p1 model --output model.h5
//! ```
//!
//! The file is checked against its commit record while it is read, and read again if
//! a writer was between its renames. Nothing reaches the destination until the
//! whole file has verified: the bytes are staged in a temporary file (in `$TMPDIR`
//! for stdout, beside the destination for `--output`), then copied to stdout or
//! renamed over the destination. A failed `cat` leaves an existing destination as
//! it was. A replaced destination keeps its permission bits (not its owner, unless
//! run as root, nor its other metadata); a new one gets `0666` less the umask, as
//! the library's commits do.
//!
//! With `--round N` the stored file must be of round N, or `cat` fails (exit 1)
//! without reading it; without it, whatever is stored is read. A file without a
//! commit record (written by an older service) is read unverified, with a warning
//! on stderr, and refused with `--round`.
//!
//! # JSON
//!
//! Stdout carries the file itself unless `--output` is given; so `--json` is only
//! accepted with `--output`, and reports what was written:
//!
//! ```text
//! { "command": "cat", "schema_version": 1,
//!   "problem": string, "artifact": "model" | "checkpoint" | "aggregate" | "update",
//!   "source": string, "output": string,
//!   "size": number, "round": number | null, "weight": number | null,
//!   "verified": bool }
//! ```

use std::fs::{self, File};
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};

use fedota_store::{ArtifactKind, ClientNo, Error, ProblemId, Round, SelectorId, Snapshot, Store};
use serde::Serialize;

use crate::output::{self, Outcome, Output, Render};

/// Which file to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Which {
    /// initFiles/model.h5
    Model,
    /// initFiles/fl_checkpoint
    Checkpoint,
    /// <selector>/fl_agg_checkpoint (needs --selector)
    Aggregate,
    /// <selector>/roundFiles/checkpoint_<client> (needs --selector and --client)
    Update,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The problem
    #[arg(long, value_name = "ID")]
    problem: ProblemId,

    /// Which file to read
    #[arg(value_enum)]
    artifact: Which,

    /// The selector, for an aggregate or a client update
    #[arg(long, value_name = "ID", required_if_eq_any([("artifact", "aggregate"), ("artifact", "update")]))]
    selector: Option<SelectorId>,

    /// The client number, for a client update
    #[arg(long, value_name = "N", required_if_eq("artifact", "update"))]
    client: Option<ClientNo>,

    /// Require the stored file to be of this round
    #[arg(long, value_name = "N")]
    round: Option<Round>,

    /// Write to this path (atomically) instead of stdout
    #[arg(long, short, value_name = "PATH")]
    output: Option<PathBuf>,

    /// Report what was written as JSON (needs --output)
    #[arg(long, requires = "output")]
    pub json: bool,
}

#[derive(Debug, Serialize)]
struct CatReport {
    problem: String,
    artifact: &'static str,
    source: PathBuf,
    output: PathBuf,
    size: u64,
    round: Option<Round>,
    weight: Option<u64>,
    verified: bool,
}

pub fn run(root: &Path, args: Args, out: &Output) -> Result<Outcome, Error> {
    let store = Store::open(root)?;
    let problem = store.problem(&args.problem)?;
    let kind = artifact_kind(&args)?;
    let artifact = problem.artifact(kind);

    // Stage the bytes where they cannot be mistaken for the result.
    let (mut staged, named) = match &args.output {
        Some(path) if replaceable(path) => {
            let named = stage_beside(path)?;
            let file = named
                .reopen()
                .map_err(|e| output::io_error("cat: reopen the staging file", named.path(), e))?;
            (file, Some(named))
        }
        _ => {
            let file = tempfile::tempfile().map_err(|e| {
                output::io_error("cat: create a staging file in", &std::env::temp_dir(), e)
            })?;
            (file, None)
        }
    };

    // Each attempt of the verified read starts the staging file over.
    let copy = |r: &mut dyn Read| -> io::Result<u64> {
        staged.rewind()?;
        staged.set_len(0)?;
        io::copy(r, &mut staged)
    };
    let snapshot: Snapshot<u64> = match args.round {
        Some(round) => problem.read_artifact_of(&artifact, round, copy)?,
        None => problem.read_artifact(&artifact, copy)?,
    };
    if !snapshot.is_verified() {
        let message = format!(
            "warning: {} has no commit record; read unverified",
            artifact.data_path().display()
        );
        output::warn("cat", &message);
    }

    let destination = match (named, &args.output) {
        (Some(named), Some(path)) => {
            replace(named, path)?;
            path.clone()
        }
        (None, Some(path)) => {
            copy_into(&mut staged, path)?;
            path.clone()
        }
        _ => {
            send_to_stdout(&mut staged)?;
            PathBuf::from("<stdout>")
        }
    };

    if args.output.is_some() {
        out.report(&CatReport {
            problem: args.problem.to_string(),
            artifact: args.artifact.name(),
            source: artifact.data_path(),
            output: destination,
            size: snapshot.value,
            round: snapshot.round(),
            weight: snapshot.weight,
            verified: snapshot.is_verified(),
        })?;
    }
    Ok(Outcome::Clean)
}

impl Which {
    fn name(self) -> &'static str {
        match self {
            Which::Model => "model",
            Which::Checkpoint => "checkpoint",
            Which::Aggregate => "aggregate",
            Which::Update => "update",
        }
    }
}

/// The artifact the arguments name. Clap has checked that the needed ids are there.
fn artifact_kind(args: &Args) -> Result<ArtifactKind, Error> {
    let selector = || {
        args.selector.clone().ok_or_else(|| {
            let e = io::Error::new(io::ErrorKind::InvalidInput, "--selector is required");
            output::io_error("cat", Path::new(args.problem.as_str()), e)
        })
    };

    Ok(match args.artifact {
        Which::Model => ArtifactKind::Model,
        Which::Checkpoint => ArtifactKind::GlobalCheckpoint,
        Which::Aggregate => ArtifactKind::Aggregate(selector()?),
        Which::Update => ArtifactKind::ClientUpdate(selector()?, args.client.unwrap_or_default()),
    })
}

/// Whether `--output` may be replaced by rename: it does not exist yet, or it is a
/// regular file. A device such as `/dev/null`, a FIFO or a symbolic link must be
/// written into instead, or the rename would replace the special file itself.
fn replaceable(path: &Path) -> bool {
    match fs::symlink_metadata(path) {
        Ok(meta) => meta.is_file(),
        Err(_) => true,
    }
}

/// Copies the verified staging file into `path`, opened for writing as it is.
fn copy_into(staged: &mut File, path: &Path) -> Result<(), Error> {
    staged
        .rewind()
        .map_err(|e| output::io_error("cat: rewind the staging file for", path, e))?;

    let mut dest =
        File::create(path).map_err(|e| output::io_error("cat: open the output", path, e))?;
    io::copy(staged, &mut dest)
        .and_then(|_| dest.flush())
        .map_err(|e| output::io_error("cat: write to", path, e))?;
    Ok(())
}

/// A temporary file in the destination's directory, so the final rename is atomic.
/// Its mode is `0666` less the umask, as for any new file; [`replace`] gives it an
/// existing destination's instead.
fn stage_beside(path: &Path) -> Result<tempfile::NamedTempFile, Error> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };

    let mut builder = tempfile::Builder::new();
    builder.prefix(".fedota-cat.");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(fs::Permissions::from_mode(0o666));
    }
    builder
        .tempfile_in(dir)
        .map_err(|e| output::io_error("cat: create a staging file in", dir, e))
}

/// Renames the verified staging file over `path`, with the permissions `path` has
/// if it exists. They are copied just before the rename, and exactly (the umask does
/// not apply to a chmod), so a read-only destination stays read-only.
fn replace(named: tempfile::NamedTempFile, path: &Path) -> Result<(), Error> {
    if let Ok(meta) = fs::metadata(path) {
        named
            .as_file()
            .set_permissions(meta.permissions())
            .map_err(|e| output::io_error("cat: copy the permissions of", path, e))?;
    }

    named
        .persist(path)
        .map_err(|e| output::io_error("cat: rename the verified copy over", path, e.error))?;
    Ok(())
}

/// Copies the verified staging file to stdout. A reader that went away is not an
/// error.
fn send_to_stdout(staged: &mut File) -> Result<(), Error> {
    let stdout_path = Path::new("<stdout>");
    staged
        .rewind()
        .map_err(|e| output::io_error("cat: rewind the staging file", stdout_path, e))?;

    let mut stdout = io::stdout().lock();
    match io::copy(staged, &mut stdout).and_then(|_| stdout.flush()) {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => {
            Err(output::io_error("cat: write to", stdout_path, e))
        }
        _ => Ok(()),
    }
}

impl Render for CatReport {
    fn render(&self, w: &mut dyn Write) -> io::Result<()> {
        let round = self
            .round
            .map_or("no record".to_owned(), |r| format!("round {r}"));
        let weight = self
            .weight
            .map_or(String::new(), |w| format!(", weight {w}"));
        let verified = if self.verified {
            "verified"
        } else {
            "UNVERIFIED"
        };

        writeln!(
            w,
            "wrote {} ({round}, {}{weight}, {verified}) to {}",
            self.source.display(),
            output::bytes(self.size),
            self.output.display()
        )
    }
}
