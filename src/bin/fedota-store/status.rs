//! `status`: what each problem looks like now.
//!
//! For each problem: the round of the global checkpoint; the coordinator lock's
//! holder or "free"; the model and the global checkpoint, each read whole and
//! verified; each selector's aggregate, read whole and verified, with its round and
//! weight, and how many client updates its `roundFiles` holds; and the temporary
//! files in the problem's directories.
//!
//! Status reads the model, the checkpoint and every aggregate in full, so on a large
//! tree it takes as long as reading them; client updates are only counted (`verify`
//! reads them too). It exits 1 if one of the files it read is a problem (see
//! `check`), 0 otherwise; stale aggregates and legacy files are shown but are not
//! problems.
//!
//! # JSON
//!
//! ```text
//! { "command": "status", "schema_version": 1, "root": string,
//!   "problems": [ {
//!     "problem": string, "dir": string,
//!     "layout_version": number | null,        null for a tree made by older services
//!     "round": number | null,                 null if fl_checkpoint has no record
//!     "lock": { "state": "free" | "held",
//!               "holder": { "host", "pid", "since", "generation", "role" } | null }
//!             | null,
//!     "model": File | null, "checkpoint": File | null,
//!     "selectors": [ { "selector": string, "aggregate": File,
//!                      "round_files": number | null } ],
//!     "temporaries": [ { "path": string, "age_s": number, "size": number,
//!                        "stale": bool } ] | null,  stale: older than gc's default, 10 min
//!     "errors": [Failure]
//!   } ] }
//! ```
//!
//! `File` is the checked-file object and `Failure` the error object, both documented
//! in `check.rs`. A field is null when what it shows could not be read, and the error
//! is in `errors`: a problem that cannot be opened (its layout marker is malformed,
//! say) has `lock`, `model`, `checkpoint` and `temporaries` null and no selectors;
//! a selector whose `roundFiles` cannot be listed has `round_files` null. Status goes on with the other problems and
//! exits with the worst code it met: 2 if something could not be read, else 1 if a
//! file is a problem, else 0. With `--problem`, a problem that cannot be opened is
//! the verb's error.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use fedota_store::{
    ArtifactKind, Error, LockHolder, LockStatus, Problem, ProblemId, ProblemLayout, Round,
    SelectorId, Store,
};
use serde::Serialize;

use crate::check::{self, Failure, FileReport, ReadArgs, State};
use crate::gc::{DEFAULT_OLDER_THAN, TempReport};
use crate::output::{self, Outcome, Output, OutputArgs, Render};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only this problem [default: every problem under the root]
    #[arg(long, value_name = "ID")]
    problem: Option<ProblemId>,

    #[command(flatten)]
    read: ReadArgs,

    #[command(flatten)]
    pub out: OutputArgs,
}

#[derive(Debug, Serialize)]
struct StatusReport {
    root: PathBuf,
    problems: Vec<ProblemStatus>,
}

#[derive(Debug, Serialize)]
struct ProblemStatus {
    problem: String,
    dir: PathBuf,
    layout_version: Option<u32>,
    round: Option<Round>,
    lock: Option<LockReport>,
    model: Option<FileReport>,
    checkpoint: Option<FileReport>,
    selectors: Vec<SelectorStatus>,
    temporaries: Option<Vec<TempReport>>,
    errors: Vec<Failure>,
}

#[derive(Debug, Serialize)]
struct LockReport {
    state: &'static str,
    holder: Option<LockHolder>,
}

#[derive(Debug, Serialize)]
struct SelectorStatus {
    selector: String,
    aggregate: FileReport,
    round_files: Option<usize>,
}

pub fn run(root: &Path, args: Args, out: &Output) -> Result<Outcome, Error> {
    let store = Store::open(root)?.with_retry_policy(args.read.policy());

    // A problem named on the command line must open; among all the problems, one
    // that does not is reported and the others are still shown.
    let problems: Vec<ProblemStatus> = match args.problem {
        Some(id) => vec![problem_status(&store.problem(&id)?)],
        None => store
            .problems()?
            .iter()
            .map(|id| match store.problem(id) {
                Ok(problem) => problem_status(&problem),
                Err(e) => ProblemStatus::unopened(root, id, &e),
            })
            .collect(),
    };

    let outcome = problems
        .iter()
        .map(ProblemStatus::outcome)
        .max()
        .unwrap_or_default();
    out.report(&StatusReport {
        root: root.to_owned(),
        problems,
    })?;
    Ok(outcome)
}

/// Everything status shows about one problem. What cannot be read is listed in
/// `errors` and left out (null).
fn problem_status(problem: &Problem) -> ProblemStatus {
    let mut errors = Vec::new();

    let model = check::check(problem, &problem.artifact(ArtifactKind::Model), None);
    let checkpoint = check::check(
        problem,
        &problem.artifact(ArtifactKind::GlobalCheckpoint),
        None,
    );
    let round = match checkpoint.state {
        State::Ok => checkpoint.round,
        _ => problem.global_round().ok(),
    };

    let layout_version = noted(problem.layout_version(), &mut errors, problem, None).flatten();
    let lock =
        noted(problem.lock_status(), &mut errors, problem, None).map(|status| match status {
            LockStatus::Free => LockReport {
                state: "free",
                holder: None,
            },
            LockStatus::Held(holder) => LockReport {
                state: "held",
                holder,
            },
        });

    // An aggregate that was never committed is not a problem: the selector has not
    // finished its first round yet.
    let ids = noted(problem.selectors(), &mut errors, problem, None).unwrap_or_default();
    let mut selectors = Vec::with_capacity(ids.len());
    for id in ids {
        let artifact = problem.artifact(ArtifactKind::Aggregate(id.clone()));
        let mut aggregate = if artifact.data_path().exists() || artifact.record_path().exists() {
            check::check(problem, &artifact, None)
        } else {
            FileReport::absent(&artifact)
        };
        aggregate.judge_staleness(round);

        let clients = noted(problem.client_updates(&id), &mut errors, problem, Some(&id));
        selectors.push(SelectorStatus {
            selector: id.to_string(),
            aggregate,
            round_files: clients.map(|c| c.len()),
        });
    }

    let temporaries = noted(
        problem.temporaries(Duration::ZERO),
        &mut errors,
        problem,
        None,
    )
    .map(|found| found.into_iter().map(TempReport::from).collect());

    ProblemStatus {
        problem: problem.id().to_string(),
        dir: problem.dir().to_owned(),
        layout_version,
        round,
        lock,
        model: Some(model),
        checkpoint: Some(checkpoint),
        selectors,
        temporaries,
        errors,
    }
}

/// The value of `result`, or `None` with its error added to `errors`.
fn noted<T>(
    result: Result<T, Error>,
    errors: &mut Vec<Failure>,
    problem: &Problem,
    selector: Option<&SelectorId>,
) -> Option<T> {
    result
        .map_err(|e| errors.push(Failure::new(problem.id(), selector, &e)))
        .ok()
}

impl ProblemStatus {
    /// A problem that could not be opened at all.
    fn unopened(root: &Path, id: &ProblemId, error: &Error) -> Self {
        Self {
            problem: id.to_string(),
            dir: ProblemLayout::new(root, id).dir().to_owned(),
            layout_version: None,
            round: None,
            lock: None,
            model: None,
            checkpoint: None,
            selectors: Vec::new(),
            temporaries: None,
            errors: vec![Failure::new(id, None, error)],
        }
    }

    /// What this problem makes the exit code: the worst of its errors and files.
    fn outcome(&self) -> Outcome {
        let files = self
            .model
            .iter()
            .chain(&self.checkpoint)
            .chain(self.selectors.iter().map(|s| &s.aggregate));
        let found_problem = files.into_iter().any(|f| f.state.is_problem());

        self.errors
            .iter()
            .map(|e| e.outcome)
            .fold(Outcome::problems_if(found_problem), Outcome::max)
    }

    fn render(&self, w: &mut dyn Write) -> io::Result<()> {
        let layout = match (self.layout_version, &self.model) {
            (_, None) => "could not be opened".to_owned(),
            (Some(v), _) => format!("layout {v}"),
            (None, _) => "no layout marker: made by older services".to_owned(),
        };
        writeln!(
            w,
            "problem {}  {}  ({layout})",
            self.problem,
            self.dir.display()
        )?;
        for e in &self.errors {
            writeln!(w, "  ERROR        {}", e.error)?;
        }
        let (Some(model), Some(checkpoint)) = (&self.model, &self.checkpoint) else {
            return Ok(());
        };

        let round = self.round.map_or("unknown".to_owned(), |r| r.to_string());
        writeln!(w, "  round        {round}")?;
        match &self.lock {
            None => writeln!(w, "  lock         unknown (see the error above)")?,
            Some(LockReport { state: "free", .. }) => writeln!(w, "  lock         free")?,
            Some(LockReport {
                holder: Some(h), ..
            }) => writeln!(w, "  lock         held by {h}")?,
            Some(_) => writeln!(w, "  lock         held (no readable holder record)")?,
        }

        file_line(w, "model", model, "")?;
        file_line(w, "checkpoint", checkpoint, "")?;
        if self.selectors.is_empty() {
            writeln!(w, "  selectors    none yet")?;
        }
        for s in &self.selectors {
            writeln!(w, "  selector     {}", s.selector)?;
            let extra = match s.round_files {
                Some(n) => format!("  {}", output::count(n, "client update")),
                None => "  client updates unknown".to_owned(),
            };
            file_line(w, "  aggregate", &s.aggregate, &extra)?;
        }

        let Some(temporaries) = &self.temporaries else {
            return writeln!(w, "  temporaries  unknown (see the error above)");
        };
        let stale = temporaries.iter().filter(|t| t.stale).count();
        match temporaries.len() {
            0 => writeln!(w, "  temporaries  none")?,
            n => writeln!(
                w,
                "  temporaries  {} ({stale} older than {}: `fedota-store gc` removes those)",
                n,
                output::age(DEFAULT_OLDER_THAN)
            )?,
        }
        for t in temporaries {
            writeln!(
                w,
                "    {}  {} old, {}",
                t.path.display(),
                output::age(Duration::from_secs(t.age_s)),
                output::bytes(t.size)
            )?;
        }
        Ok(())
    }
}

impl Render for StatusReport {
    fn render(&self, w: &mut dyn Write) -> io::Result<()> {
        if self.problems.is_empty() {
            writeln!(w, "no problems under {}", self.root.display())?;
        }
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(w)?;
            }
            p.render(w)?;
        }
        Ok(())
    }
}

/// One line for a checked file: state, size, round, weight, then why it is wrong.
fn file_line(w: &mut dyn Write, label: &str, f: &FileReport, extra: &str) -> io::Result<()> {
    let size = f.size.map_or("-".to_owned(), output::bytes);
    let round = f.round.map_or(String::new(), |r| format!("  round {r}"));
    let weight = f.weight.map_or(String::new(), |w| format!("  weight {w}"));
    let stale = if f.stale { "  (stale)" } else { "" };

    writeln!(
        w,
        "  {label:<12} {:<10} {size:>10}{round}{weight}{stale}{extra}",
        f.state.label()
    )?;
    if let (true, Some(reason)) = (f.state.is_problem(), f.reason()) {
        writeln!(w, "               {reason}")?;
    }
    Ok(())
}
