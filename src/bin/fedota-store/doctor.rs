//! `doctor`: can this root be trusted with a checkpoint tree?
//!
//! Three sources of findings, each pass, warn or fail with the reason and the fix:
//!
//! 1. the mount that holds the root, from `/proc/self/mountinfo`: its type and
//!    options, judged by [`fedota_store::mount`] (`nolock` and
//!    `local_lock=posix|all` fail, `local_lock=flock`, `nocto`, long attribute caches
//!    and `soft` warn);
//! 2. live probes in a scratch directory under the root (see `probes.rs`): `O_EXCL`,
//!    write and fsync, rename over a file, fsync of a directory, a lock that a second
//!    open file description must be refused, and the clock difference with the file
//!    server;
//! 3. with `--peer`, the two-node lock test (see `peer.rs`).
//!
//! Any fail makes `doctor` exit 1; warnings alone exit 0.
//!
//! # JSON
//!
//! ```text
//! { "command": "doctor", "schema_version": 1, "root": string,
//!   "mount": { "mount_point": string, "fs_type": string, "source": string,
//!              "mount_options": [string], "super_options": [string] } | null,
//!   "findings": [ { "check": string, "severity": "pass" | "warn" | "fail",
//!                   "summary": string, "reason": string,
//!                   "fix": string | null } ],          null only for a pass
//!   "summary": { "pass": number, "warn": number, "fail": number } }
//! ```
//!
//! `mount` is null when the mount table cannot be read (on systems other than
//! Linux); a `filesystem` warning then says why.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use fedota_store::mount::{self, Finding, MountInfo, Severity};
use fedota_store::{Error, Store, os};
use serde::Serialize;

use crate::output::{Outcome, Output, OutputArgs, Render};
use crate::{peer, probes};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Also run the two-node lock test with a second `doctor --peer` on another node
    #[arg(long)]
    peer: bool,

    /// How long --peer waits for each step of the other side
    #[arg(long, value_name = "DURATION", default_value = "2m", value_parser = humantime::parse_duration)]
    timeout: Duration,

    #[command(flatten)]
    pub out: OutputArgs,
}

#[derive(Debug, Serialize)]
struct DoctorReport {
    root: PathBuf,
    mount: Option<MountReport>,
    findings: Vec<Finding>,
    summary: Summary,
}

#[derive(Debug, Serialize)]
struct MountReport {
    mount_point: PathBuf,
    fs_type: String,
    source: String,
    mount_options: Vec<String>,
    super_options: Vec<String>,
}

#[derive(Debug, Default, Serialize)]
struct Summary {
    pass: usize,
    warn: usize,
    fail: usize,
}

pub fn run(root: &Path, args: Args, out: &Output) -> Result<Outcome, Error> {
    // A root that does not exist is a usage error, not a finding.
    Store::open(root)?;

    let mut findings = Vec::new();
    let mount = match mount::mount_of(root) {
        Ok(m) => {
            findings.extend(m.findings());
            Some(mount_report(m))
        }
        Err(e) => {
            findings.push(
                Finding::new(
                    "filesystem",
                    Severity::Warn,
                    format!("the mount of the root is unknown: {e}"),
                    "without the mount table, locking and caching options cannot be checked",
                )
                .with_fix("run doctor on Linux, where /proc/self/mountinfo lists the mounts"),
            );
            None
        }
    };

    findings.extend(probes::run(root, os::try_lock));
    if args.peer {
        findings.extend(peer::run(root, args.timeout, os::try_lock));
    }

    let mut summary = Summary::default();
    for f in &findings {
        match f.severity {
            Severity::Pass => summary.pass += 1,
            Severity::Warn => summary.warn += 1,
            Severity::Fail => summary.fail += 1,
        }
    }

    let failed = summary.fail > 0;
    out.report(&DoctorReport {
        root: root.to_owned(),
        mount,
        findings,
        summary,
    })?;
    Ok(Outcome::problems_if(failed))
}

fn mount_report(m: MountInfo) -> MountReport {
    MountReport {
        mount_point: m.mount_point,
        fs_type: m.fs_type,
        source: m.source,
        mount_options: m.mount_options,
        super_options: m.super_options,
    }
}

impl Render for DoctorReport {
    fn render(&self, w: &mut dyn Write) -> io::Result<()> {
        writeln!(w, "doctor: {}", self.root.display())?;
        if let Some(m) = &self.mount {
            writeln!(
                w,
                "  mount: {} from {} on {}",
                m.fs_type,
                m.source,
                m.mount_point.display()
            )?;
            writeln!(
                w,
                "         mount options {}; filesystem options {}",
                m.mount_options.join(","),
                m.super_options.join(",")
            )?;
        }

        let width = self
            .findings
            .iter()
            .map(|f| f.check.len())
            .max()
            .unwrap_or(0);
        for f in &self.findings {
            let tag = f.severity.to_string().to_uppercase();
            writeln!(w, "  {tag}  {:<width$}  {}", f.check, f.summary)?;
            if f.severity != Severity::Pass {
                let indent = " ".repeat(width + 10);
                writeln!(w, "{indent}why: {}", f.reason)?;
                if let Some(fix) = &f.fix {
                    writeln!(w, "{indent}fix: {fix}")?;
                }
            }
        }

        let s = &self.summary;
        let verdict = if s.fail > 0 {
            "do NOT trust this root until the failures are fixed"
        } else if s.warn > 0 {
            "usable, with the warnings above"
        } else {
            "all checks passed"
        };
        writeln!(
            w,
            "doctor: {} pass, {} warn, {} fail: {verdict}",
            s.pass, s.warn, s.fail
        )
    }
}
