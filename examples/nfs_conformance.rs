//! The NFS lab's conformance program: small subcommands that exercise fedota-store
//! over real NFS, run inside the lab's VMs by `lab/vm/cases.sh` (see `lab/README.md`).
//!
//! Each subcommand does one side of one case through the crate's public API and
//! prints what it saw on stdout. Its last line is `OK ...` or `FAIL ...`, and the
//! exit code agrees: 0 for OK, 1 for FAIL, 2 for a usage or setup error. The lab
//! driver runs the two sides on two NFS clients and compares.
//!
//! Checkpoint contents are self-describing: a header naming the round and the size,
//! then bytes derived from the round; an aggregate's weight is derived from its round
//! too. A reader can thus tell a torn, short or mixed version (or data beside another
//! round's weight) from a whole one without trusting the commit record it is testing.
//!
//! ```text
//! cargo run --example nfs_conformance -- setup --root /tmp/t
//! ```
#![allow(clippy::print_stdout)]

#[path = "nfs_conformance/commands.rs"]
mod commands;
#[path = "nfs_conformance/observe.rs"]
mod observe;
#[path = "nfs_conformance/readers.rs"]
mod readers;

use std::io::{self, Write};
use std::path::PathBuf;
use std::time::Duration;

use fedota_store::{ProblemId, SelectorId};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use commands::{
    commit_loop, crash_loop, gc, hold, setup, stale_commit, takeover, try_lock, verify,
};
use observe::RetryCounter;
use readers::{read_loop, staleness, watch};

const USAGE: &str = "\
usage: nfs_conformance COMMAND [FLAGS]

Every command takes --problem ID (default p). --root may be repeated where noted.

  setup        --root DIR... [--selector SEL] [--size BYTES]
      create the problem (model and global checkpoint of round 0) under each root;
      with --selector, also that selector's aggregate of round 0
  hold         --root DIR... --ready FILE --secs N [--stop FILE] [--commit-every-ms MS]
               [--size BYTES]
      be the coordinator of each root's problem for N seconds, or until the stop file
      exists; create FILE once all are held; with --commit-every-ms, keep committing
      the first root's checkpoint
  try-lock     --root DIR... [--repeat N] [--interval-ms MS] [--expect-holder-host H]
      try to become coordinator, without waiting; print blocked/acquired per root
  commit-loop  --root DIR --count N [--aggregate SEL] [--size BYTES] [--log FILE]
      commit N more rounds of the global checkpoint (or of selector SEL's aggregate,
      with a weight derived from the round); log each commit's time
  read-loop    --root DIR --until-round N [--aggregate SEL] [--timeout-secs S] [--log FILE]
      read the global checkpoint (or SEL's aggregate) continuously, verify every byte
      and the weight, count retries; any error returned fails
  watch        --root DIR --until-round N [--aggregate SEL] [--timeout-secs S]
      on the file server's own filesystem: how long data and record named different
      rounds (the window between a commit's renames)
  staleness    --writer-log FILE --reader-log FILE
      how far behind the reader was while the writer committed, in commits and time
  crash-loop   --root DIR [--size BYTES]
      commit forever (until killed), printing the round before each commit
  takeover     --root DIR --wait-secs S [--size BYTES]
      wait for the coordinator lock, verify the checkpoint, commit the next round
  stale-commit --root DIR --ready FILE --go FILE [--go-timeout-secs S] [--size BYTES]
      become coordinator, create FILE, wait for the go file, then try to commit:
      OK if the commit is refused by the fencing check
  verify       --root DIR [--expect-round N]
      read the global checkpoint, verified, and check its content (and round)
  gc           --root DIR
      remove the crate's leftover temporary files; OK if none is left and every
      other file (.nfs* included) is still there
";

/// What a subcommand concluded: `Ok` is printed as `OK`, `Err` as `FAIL`.
type Outcome = Result<String, String>;

fn main() {
    let counting = RetryCounter;
    let stderr_log = tracing_subscriber::fmt::layer()
        .with_writer(io::stderr)
        .with_target(false)
        .with_ansi(false)
        .with_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")));
    tracing_subscriber::registry()
        .with(counting)
        .with(stderr_log)
        .init();

    let mut args = Flags(std::env::args().skip(1).collect());
    if args.0.iter().any(|a| a == "--help" || a == "-h") || args.0.is_empty() {
        print!("{USAGE}");
        std::process::exit(if args.0.is_empty() { 2 } else { 0 });
    }
    let code = match run(&mut args) {
        Ok(Ok(summary)) => {
            println!("OK {summary}");
            0
        }
        Ok(Err(reason)) => {
            println!("FAIL {reason}");
            1
        }
        Err(e) => {
            eprintln!("nfs_conformance: {e}");
            2
        }
    };
    io::stdout().flush().ok();
    std::process::exit(code);
}

/// The command line not yet consumed: a command, then `--name value` flags.
struct Flags(Vec<String>);

impl Flags {
    /// Removes and returns the first argument, the command.
    fn command(&mut self) -> Result<String, String> {
        if self.0.is_empty() || self.0[0].starts_with("--") {
            return Err(format!("a command is needed\n\n{USAGE}"));
        }
        Ok(self.0.remove(0))
    }

    /// Removes the first `--name VALUE` and returns the value.
    fn value(&mut self, name: &str) -> Result<Option<String>, String> {
        let flag = format!("--{name}");
        let Some(i) = self.0.iter().position(|t| *t == flag) else {
            return Ok(None);
        };
        if i + 1 >= self.0.len() {
            return Err(format!("{flag} needs a value"));
        }
        self.0.remove(i);
        Ok(Some(self.0.remove(i)))
    }

    /// Like [`Flags::value`], parsed.
    fn parse<T: std::str::FromStr>(&mut self, name: &str) -> Result<Option<T>, String>
    where
        T::Err: std::fmt::Display,
    {
        self.value(name)?
            .map(|v| v.parse().map_err(|e| format!("--{name} {v:?}: {e}")))
            .transpose()
    }

    /// Like [`Flags::parse`], but the flag must be there.
    fn required<T: std::str::FromStr>(&mut self, name: &str) -> Result<T, String>
    where
        T::Err: std::fmt::Display,
    {
        self.parse(name)?
            .ok_or_else(|| format!("--{name} is required\n\n{USAGE}"))
    }

    /// Fails if any argument was not consumed.
    fn finish(&self) -> Result<(), String> {
        match self.0.first() {
            None => Ok(()),
            Some(t) => Err(format!("unexpected argument {t:?}\n\n{USAGE}")),
        }
    }
}

/// Runs the subcommand named by the first argument.
fn run(args: &mut Flags) -> Result<Outcome, Box<dyn std::error::Error>> {
    let command = args.command()?;
    let problem = ProblemId::new(args.value("problem")?.unwrap_or_else(|| "p".to_owned()))?;
    match command.as_str() {
        "setup" => {
            let selector = selector(args)?;
            let size = args.parse("size")?.unwrap_or(4096);
            let roots = roots(args)?;
            args.finish()?;
            setup(&roots, &problem, selector.as_ref(), size)
        }
        "hold" => {
            let ready: PathBuf = args.required("ready")?;
            let secs = args.required("secs")?;
            let stop = args.value("stop")?.map(PathBuf::from);
            let every = args.parse::<u64>("commit-every-ms")?;
            let size = args.parse("size")?.unwrap_or(4096);
            let roots = roots(args)?;
            args.finish()?;
            hold(&roots, &problem, &ready, secs, stop.as_deref(), every, size)
        }
        "try-lock" => {
            let repeat = args.parse("repeat")?.unwrap_or(1);
            let interval = args.parse("interval-ms")?.unwrap_or(100);
            let host = args.value("expect-holder-host")?;
            let roots = roots(args)?;
            args.finish()?;
            try_lock(&roots, &problem, repeat, interval, host.as_deref())
        }
        "commit-loop" => {
            let root: PathBuf = args.required("root")?;
            let count = args.required("count")?;
            let aggregate = selector_of(args, "aggregate")?;
            let size = args.parse("size")?.unwrap_or(65536);
            let log = args.value("log")?.map(PathBuf::from);
            args.finish()?;
            commit_loop(
                &root,
                &problem,
                aggregate.as_ref(),
                count,
                size,
                log.as_deref(),
            )
        }
        "read-loop" => {
            let root: PathBuf = args.required("root")?;
            let until = args.required("until-round")?;
            let aggregate = selector_of(args, "aggregate")?;
            let timeout = args.parse("timeout-secs")?.unwrap_or(300);
            let log = args.value("log")?.map(PathBuf::from);
            args.finish()?;
            read_loop(
                &root,
                &problem,
                aggregate.as_ref(),
                until,
                Duration::from_secs(timeout),
                log.as_deref(),
            )
        }
        "watch" => {
            let root: PathBuf = args.required("root")?;
            let until = args.required("until-round")?;
            let aggregate = selector_of(args, "aggregate")?;
            let timeout = args.parse("timeout-secs")?.unwrap_or(300);
            args.finish()?;
            watch(
                &root,
                &problem,
                aggregate.as_ref(),
                until,
                Duration::from_secs(timeout),
            )
        }
        "staleness" => {
            let writer: PathBuf = args.required("writer-log")?;
            let reader: PathBuf = args.required("reader-log")?;
            args.finish()?;
            staleness(&writer, &reader)
        }
        "crash-loop" => {
            let root: PathBuf = args.required("root")?;
            let size = args.parse("size")?.unwrap_or(8 << 20);
            args.finish()?;
            crash_loop(&root, &problem, size)
        }
        "takeover" => {
            let root: PathBuf = args.required("root")?;
            let wait = args.required("wait-secs")?;
            let size = args.parse("size")?.unwrap_or(65536);
            args.finish()?;
            takeover(&root, &problem, Duration::from_secs(wait), size)
        }
        "stale-commit" => {
            let root: PathBuf = args.required("root")?;
            let ready: PathBuf = args.required("ready")?;
            let go: PathBuf = args.required("go")?;
            let timeout = args.parse("go-timeout-secs")?.unwrap_or(120);
            let size = args.parse("size")?.unwrap_or(4096);
            args.finish()?;
            stale_commit(
                &root,
                &problem,
                &ready,
                &go,
                Duration::from_secs(timeout),
                size,
            )
        }
        "verify" => {
            let root: PathBuf = args.required("root")?;
            let expect = args.parse("expect-round")?;
            args.finish()?;
            verify(&root, &problem, expect)
        }
        "gc" => {
            let root: PathBuf = args.required("root")?;
            args.finish()?;
            gc(&root)
        }
        other => Err(format!("unknown command {other:?}\n\n{USAGE}").into()),
    }
}

/// Takes the `--selector` flag, if there is one.
fn selector(args: &mut Flags) -> Result<Option<SelectorId>, Box<dyn std::error::Error>> {
    selector_of(args, "selector")
}

/// Takes flag `--NAME SEL`, a selector id, if it is there.
fn selector_of(
    args: &mut Flags,
    name: &str,
) -> Result<Option<SelectorId>, Box<dyn std::error::Error>> {
    Ok(args.value(name)?.map(SelectorId::new).transpose()?)
}

/// Takes every `--root` flag; at least one is required.
fn roots(args: &mut Flags) -> Result<Vec<PathBuf>, Box<dyn std::error::Error>> {
    let mut roots = Vec::new();
    while let Some(root) = args.value("root")? {
        roots.push(PathBuf::from(root));
    }
    if roots.is_empty() {
        return Err("--root is required".into());
    }
    Ok(roots)
}
