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
//!               "holder": { "host", "pid", "since", "generation", "role" } | null },
//!     "model": File, "checkpoint": File,
//!     "selectors": [ { "selector": string, "aggregate": File, "round_files": number } ],
//!     "temporaries": [ { "path": string, "age_s": number, "size": number,
//!                        "stale": bool } ]     stale: older than gc's default, 10 min
//!   } ] }
//! ```
//!
//! `File` is the checked-file object documented in `check.rs`.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use fedota_store::{ArtifactKind, Error, LockHolder, LockStatus, Problem, ProblemId, Round, Store};
use serde::Serialize;

use crate::check::{self, FileReport, State};
use crate::gc::{DEFAULT_OLDER_THAN, TempReport};
use crate::output::{self, Outcome, Output, OutputArgs, Render};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only this problem [default: every problem under the root]
    #[arg(long, value_name = "ID")]
    problem: Option<ProblemId>,

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
    lock: LockReport,
    model: FileReport,
    checkpoint: FileReport,
    selectors: Vec<SelectorStatus>,
    temporaries: Vec<TempReport>,
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
    round_files: usize,
}

pub fn run(root: &Path, args: Args, out: &Output) -> Result<Outcome, Error> {
    let store = Store::open(root)?;
    let ids = match args.problem {
        Some(id) => vec![id],
        None => store.problems()?,
    };

    let mut problems = Vec::with_capacity(ids.len());
    for id in &ids {
        problems.push(problem_status(&store.problem(id)?)?);
    }

    let found_problem = problems.iter().any(|p| {
        p.model.state.is_problem()
            || p.checkpoint.state.is_problem()
            || p.selectors.iter().any(|s| s.aggregate.state.is_problem())
    });
    out.report(&StatusReport {
        root: root.to_owned(),
        problems,
    })?;
    Ok(Outcome::problems_if(found_problem))
}

fn problem_status(problem: &Problem) -> Result<ProblemStatus, Error> {
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

    let lock = match problem.lock_status()? {
        LockStatus::Free => LockReport {
            state: "free",
            holder: None,
        },
        LockStatus::Held(holder) => LockReport {
            state: "held",
            holder,
        },
    };

    // An aggregate that was never committed is not a problem: the selector has not
    // finished its first round yet.
    let mut selectors = Vec::new();
    for id in problem.selectors()? {
        let artifact = problem.artifact(ArtifactKind::Aggregate(id.clone()));
        let mut aggregate = if artifact.data_path().exists() || artifact.record_path().exists() {
            check::check(problem, &artifact, None)
        } else {
            FileReport::absent(&artifact)
        };
        aggregate.judge_staleness(round);
        selectors.push(SelectorStatus {
            selector: id.to_string(),
            aggregate,
            round_files: problem.client_updates(&id)?.len(),
        });
    }

    let temporaries = problem
        .temporaries(Duration::ZERO)?
        .into_iter()
        .map(TempReport::from)
        .collect();

    Ok(ProblemStatus {
        problem: problem.id().to_string(),
        dir: problem.dir().to_owned(),
        layout_version: problem.layout_version()?,
        round,
        lock,
        model,
        checkpoint,
        selectors,
        temporaries,
    })
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

impl ProblemStatus {
    fn render(&self, w: &mut dyn Write) -> io::Result<()> {
        let layout = self
            .layout_version
            .map_or("no layout marker: made by older services".to_owned(), |v| {
                format!("layout {v}")
            });
        writeln!(
            w,
            "problem {}  {}  ({layout})",
            self.problem,
            self.dir.display()
        )?;

        let round = self.round.map_or("unknown".to_owned(), |r| r.to_string());
        writeln!(w, "  round        {round}")?;
        match (&self.lock.holder, self.lock.state) {
            (_, "free") => writeln!(w, "  lock         free")?,
            (Some(h), _) => writeln!(w, "  lock         held by {h}")?,
            (None, _) => writeln!(w, "  lock         held (no readable holder record)")?,
        }

        file_line(w, "model", &self.model, "")?;
        file_line(w, "checkpoint", &self.checkpoint, "")?;
        if self.selectors.is_empty() {
            writeln!(w, "  selectors    none yet")?;
        }
        for s in &self.selectors {
            writeln!(w, "  selector     {}", s.selector)?;
            let extra = format!("  {}", output::count(s.round_files, "client update"));
            file_line(w, "  aggregate", &s.aggregate, &extra)?;
        }

        let stale = self.temporaries.iter().filter(|t| t.stale).count();
        match self.temporaries.len() {
            0 => writeln!(w, "  temporaries  none")?,
            n => writeln!(
                w,
                "  temporaries  {} ({stale} older than {}: `fedota-store gc` removes those)",
                n,
                output::age(DEFAULT_OLDER_THAN)
            )?,
        }
        for t in &self.temporaries {
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
