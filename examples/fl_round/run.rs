//! Sets the problem up, runs the processes, watches them, and reports.

use std::collections::HashMap;
use std::error::Error;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use fedota_store::{ArtifactKind, CreateOptions, Problem, SelectorId, Store};
use serde_json::json;

use crate::Config;
use crate::common::data::TaskSpec;
use crate::common::model::{LogReg, ModelSpec};
use crate::common::report::{CoordinatorRound, Evaluation, Event, Holding, SelectorRound};
use crate::tree;

/// The log level of every process when `RUST_LOG` is unset.
pub const DEFAULT_LOG: &str = "warn";

/// How often the supervisor looks whether a process exited.
const TICK: Duration = Duration::from_millis(5);

/// Runs the demo. `Ok(false)` means it ran to the end but something failed, which
/// has been printed.
pub fn run(config: &Config) -> Result<bool, Box<dyn Error>> {
    // A fresh tree, kept afterwards so it can be inspected.
    let root = match &config.root {
        Some(root) => {
            std::fs::create_dir_all(root)
                .map_err(|e| format!("create the root {}: {e}", root.display()))?;
            root.clone()
        }
        None => tempfile::Builder::new()
            .prefix("fedota-demo-")
            .tempdir()
            .map_err(|e| {
                format!(
                    "create a directory in {}: {e}",
                    std::env::temp_dir().display()
                )
            })?
            .keep(),
    };
    let store = Store::open(&root)?;
    let problem = create_problem(&store, config)?;
    if config.setup_only {
        print_manual_commands(config, &root);
        return Ok(true);
    }
    let programs = Programs::locate(config.no_build)?;

    let selectors: Vec<SelectorId> = (1..=config.selectors)
        .map(|i| SelectorId::new(format!("selector-{i}")))
        .collect::<Result<_, _>>()?;
    print_header(config, &problem);

    // The coordinator first, so it holds the lock before any aggregate appears.
    let mut procs = Children(vec![spawn_coordinator(&programs, config, &root)?]);
    for (i, id) in selectors.iter().enumerate() {
        let victim = config.kill_at.is_some() && i + 1 == selectors.len();
        let selector = spawn_selector(&programs, config, &root, id, victim)?;
        procs.0.push(selector);
    }

    let started = Instant::now();
    let outcome = supervise(&mut procs.0, &problem, config)?;
    let elapsed = started.elapsed();

    // The tree as the processes left it, every data file read and verified.
    let tree = tree::inspect(&problem)?;
    tree::print(problem.dir(), &tree);

    let mut failures = outcome.failures.clone();
    if outcome.rounds.len() as u64 != config.rounds {
        failures.push(format!(
            "the coordinator reported {} of {} rounds",
            outcome.rounds.len(),
            config.rounds
        ));
    }
    if !tree.all_verified() {
        failures.push("some files of the tree did not verify".to_owned());
    }
    if let (Some(round), None) = (config.kill_at, &outcome.kill) {
        failures.push(format!("the selector was not killed in round {round}"));
    }
    check_learning(&outcome, &mut failures);

    println!(
        "\nfinished in {:.1} s; tree kept at {}",
        elapsed.as_secs_f64(),
        root.display()
    );
    for failure in &failures {
        println!("FAILED: {failure}");
    }

    if let Some(path) = &config.json_summary {
        write_summary(path, config, &root, &problem, &outcome, &tree, &failures)?;
    }
    Ok(failures.is_empty())
}

/// The `selector` and `coordinator` executables.
struct Programs {
    selector: PathBuf,
    coordinator: PathBuf,
}

impl Programs {
    /// Builds them with cargo if cargo started this program, else finds them next to
    /// this executable.
    fn locate(no_build: bool) -> Result<Self, Box<dyn Error>> {
        let exe = std::env::current_exe()?;

        if let (false, Some(cargo)) = (no_build, std::env::var_os("CARGO")) {
            return Self::build(&cargo, &exe);
        }

        let programs = Self {
            selector: exe.with_file_name(format!("selector{}", std::env::consts::EXE_SUFFIX)),
            coordinator: exe.with_file_name(format!("coordinator{}", std::env::consts::EXE_SUFFIX)),
        };
        for path in [&programs.selector, &programs.coordinator] {
            if !path.is_file() {
                return Err(format!(
                    "{} not found; build it with `cargo build --release --examples`, or run \
                     fl_round through `cargo run --release --example fl_round`",
                    path.display()
                )
                .into());
            }
        }
        Ok(programs)
    }

    /// Runs `cargo build` for the two examples in the profile this executable was
    /// built in, and takes their paths from cargo's JSON messages.
    fn build(cargo: &std::ffi::OsStr, exe: &Path) -> Result<Self, Box<dyn Error>> {
        // target/<dir>/examples/fl_round: the dev profile builds into "debug", every
        // other profile into a directory of its own name.
        let dir = exe
            .parent()
            .and_then(Path::parent)
            .and_then(Path::file_name)
            .and_then(|n| n.to_str())
            .ok_or_else(|| format!("cannot tell the cargo profile from {}", exe.display()))?;
        let profile = if dir == "debug" { "dev" } else { dir };

        let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
        let mut command = Command::new(cargo);
        command
            .args(["build", "--message-format=json-render-diagnostics"])
            .args(["--profile", profile, "--manifest-path", manifest])
            .args(["--example", "selector", "--example", "coordinator"])
            .stdin(Stdio::null())
            .stderr(Stdio::inherit());
        tracing::info!(?command, "building the selector and coordinator examples");
        let output = command
            .output()
            .map_err(|e| format!("run {}: {e}", cargo.to_string_lossy()))?;
        if !output.status.success() {
            return Err(format!("building the examples failed: {}", output.status).into());
        }

        let mut found: HashMap<String, PathBuf> = HashMap::new();
        for line in output.stdout.split(|b| *b == b'\n') {
            let Ok(message) = serde_json::from_slice::<serde_json::Value>(line) else {
                continue;
            };
            if message["reason"] != "compiler-artifact" {
                continue;
            }
            if let (Some(name), Some(exe)) = (
                message["target"]["name"].as_str(),
                message["executable"].as_str(),
            ) {
                found.insert(name.to_owned(), PathBuf::from(exe));
            }
        }

        let mut take = |name: &str| {
            found
                .remove(name)
                .ok_or_else(|| format!("cargo built no executable for the {name} example"))
        };
        Ok(Self {
            selector: take("selector")?,
            coordinator: take("coordinator")?,
        })
    }
}

/// Creates the problem: the model description in `model.h5` and an all-zero model as
/// the global checkpoint of round 0.
fn create_problem(store: &Store, config: &Config) -> Result<Problem, Box<dyn Error>> {
    let spec = ModelSpec::logistic_regression(TaskSpec::demo(config.seed));
    let initial = LogReg::zeros(spec.task.features).to_safetensors(HashMap::from([
        ("round".to_owned(), "0".to_owned()),
        ("producer".to_owned(), "fl_round setup".to_owned()),
    ]))?;

    store
        .create_problem(
            &config.problem,
            &mut &spec.to_bytes()[..],
            &mut &initial[..],
            CreateOptions::default(),
        )
        .map_err(|e| match e.io_kind() {
            Some(std::io::ErrorKind::AlreadyExists) => {
                format!("{e}; fl_round creates the problem, so pass a fresh --root").into()
            }
            _ => e.into(),
        })
}

/// The commands that run the problem's processes by hand, each in its own terminal
/// or on its own machine.
fn print_manual_commands(config: &Config, root: &Path) {
    let common = format!(
        "--root {} --problem {} --rounds {}",
        root.display(),
        config.problem,
        config.rounds
    );
    println!(
        "created {}; now start, in any order:",
        root.join(&config.problem).display()
    );
    println!(
        "  cargo run --release --example coordinator -- {common} --selectors {}",
        config.selectors
    );
    for i in 1..=config.selectors {
        println!(
            "  cargo run --release --example selector -- {common} --selector selector-{i} \
             --clients {}",
            config.clients
        );
    }
}

fn print_header(config: &Config, problem: &Problem) {
    println!(
        "fedota-store demo: {} rounds, {} selectors x {} clients;\n\
         the coordinator and each selector run as separate processes",
        config.rounds, config.selectors, config.clients
    );
    println!("tree: {}", problem.dir().display());
    if let Some(round) = config.kill_at {
        println!(
            "selector-{} will be killed (SIGKILL) in the middle of round {round}",
            config.selectors
        );
    }
    println!(
        "\nround r: the selectors train on global checkpoint r; the coordinator averages\n\
         their aggregates of round r into checkpoint r+1 and evaluates it on held-out data.\n"
    );
    println!(
        "{:>5}  {:>9}  {:>7}  {:>6}  {:>9}  {:>9}  {:>10}  {:>9}  {:>7}  left out",
        "round", "selectors", "loss", "acc", "train", "sel-agg", "coord-wait", "fedavg", "eval"
    );
}

/// One child process.
struct Proc {
    name: String,
    selector: Option<SelectorId>,
    child: Child,
    status: Option<ExitStatus>,
    killed: bool,
    pipe_open: bool,
}

/// The child processes; any still running when this is dropped, because the demo
/// stopped on an error, are killed rather than left waiting for a checkpoint.
struct Children(Vec<Proc>);

impl Drop for Children {
    fn drop(&mut self) {
        for proc in self.0.iter_mut().filter(|p| p.status.is_none()) {
            let _ = proc.child.kill();
            let _ = proc.child.wait();
        }
    }
}

fn spawn_coordinator(
    programs: &Programs,
    config: &Config,
    root: &Path,
) -> Result<Proc, Box<dyn Error>> {
    let mut command = Command::new(&programs.coordinator);
    command
        .arg("--root")
        .arg(root)
        .args(["--problem", config.problem.as_str()])
        .args(["--selectors", &config.selectors.to_string()])
        .args(["--rounds", &config.rounds.to_string()])
        .args([
            "--aggregate-timeout",
            &config.aggregate_timeout.as_secs_f64().to_string(),
        ])
        .arg("--json");
    spawn(command, "coordinator".to_owned(), None)
}

fn spawn_selector(
    programs: &Programs,
    config: &Config,
    root: &Path,
    id: &SelectorId,
    victim: bool,
) -> Result<Proc, Box<dyn Error>> {
    let mut command = Command::new(&programs.selector);
    command
        .arg("--root")
        .arg(root)
        .args(["--problem", config.problem.as_str()])
        .args(["--selector", id.as_str()])
        .args(["--clients", &config.clients.to_string()])
        .args(["--rounds", &config.rounds.to_string()])
        .args(["--epochs", &config.epochs.to_string()])
        .args(["--learning-rate", &config.learning_rate.to_string()])
        .args([
            "--wait-timeout",
            &config.wait_timeout.as_secs_f64().to_string(),
        ])
        .args(["--client-delay-ms", &config.client_delay_ms.to_string()])
        .arg("--json");

    // The victim stops in the middle of the kill round and waits there to be killed,
    // so the kill lands between its client updates and its aggregate every time.
    if let (true, Some(round)) = (victim, config.kill_at) {
        command.args(["--hold-in-round", &round.to_string()]);
    }
    spawn(command, id.to_string(), Some(id.clone()))
}

/// Starts `command` with its stdout piped to the supervisor and its stderr shared.
fn spawn(
    mut command: Command,
    name: String,
    selector: Option<SelectorId>,
) -> Result<Proc, Box<dyn Error>> {
    if std::env::var_os("RUST_LOG").is_none() {
        command.env("RUST_LOG", DEFAULT_LOG);
    }
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("start {name} ({}): {e}", command.get_program().display()))?;
    Ok(Proc {
        name,
        selector,
        child,
        status: None,
        killed: false,
        pipe_open: true,
    })
}

/// What the run produced.
#[derive(Debug, Default)]
pub struct Outcome {
    start: Option<Evaluation>,
    rounds: Vec<CoordinatorRound>,
    selector_rounds: Vec<SelectorRound>,
    kill: Option<serde_json::Value>,
    processes: Vec<serde_json::Value>,
    failures: Vec<String>,
}

/// A line from a child, or the end of its output.
enum Message {
    Line(usize, String),
    Closed(usize),
}

/// Reads the children's reports, prints the table, kills the victim at the right
/// moment, and waits for every process.
fn supervise(
    procs: &mut [Proc],
    problem: &Problem,
    config: &Config,
) -> Result<Outcome, Box<dyn Error>> {
    let (tx, rx) = mpsc::channel();
    for (i, proc) in procs.iter_mut().enumerate() {
        let stdout = proc.child.stdout.take().ok_or("a child without stdout")?;
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(Message::Line(i, line)).is_err() {
                    return;
                }
            }
            let _ = tx.send(Message::Closed(i));
        });
    }
    drop(tx);

    let mut outcome = Outcome::default();
    let mut table = Table::default();
    let victim = config.kill_at.map(|round| (procs.len() - 1, round));

    loop {
        match rx.recv_timeout(TICK) {
            Ok(Message::Line(i, line)) => match serde_json::from_str::<Event>(&line) {
                Ok(Event::Start(e)) => {
                    print_start(&e);
                    outcome.start = Some(e);
                }
                Ok(Event::Round(r)) => table.rounds.push(r),
                Ok(Event::SelectorRound(r)) => table.selector_rounds.push(r),
                Ok(Event::Holding(h)) => match victim {
                    Some((index, round)) if index == i && h.round == round => {
                        outcome.kill = Some(kill_holding(&mut procs[i], problem, &h)?);
                    }
                    _ => outcome.failures.push(format!(
                        "{} stopped in round {} to be killed, but it is not to be killed there",
                        procs[i].name, h.round
                    )),
                },
                Err(_) => println!("{}: {line}", procs[i].name),
            },
            Ok(Message::Closed(i)) => procs[i].pipe_open = false,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }

        reap(procs, &mut outcome, false);
        table.print_ready(procs);
    }

    // Every pipe is closed: the processes are exiting. Wait for them.
    reap(procs, &mut outcome, true);
    table.print_ready(procs);

    outcome.rounds = table.rounds;
    outcome.selector_rounds = table.selector_rounds;
    outcome.processes = procs
        .iter()
        .map(|p| {
            json!({
                "name": p.name,
                "status": p.status.map(|s| s.to_string()),
                "success": p.status.is_some_and(|s| s.success()),
                "killed_by_demo": p.killed,
            })
        })
        .collect();
    Ok(outcome)
}

/// Records processes that exited, waiting for each if `block`; if the coordinator
/// failed, stops the selectors, which would otherwise wait for a checkpoint that
/// never comes.
fn reap(procs: &mut [Proc], outcome: &mut Outcome, block: bool) {
    let mut coordinator_failed = false;

    for proc in procs.iter_mut() {
        if proc.status.is_some() {
            continue;
        }
        let exited = if block {
            proc.child.wait().map(Some)
        } else {
            proc.child.try_wait()
        };
        let status = match exited {
            Ok(Some(status)) => status,
            Ok(None) => continue,
            Err(e) => {
                outcome
                    .failures
                    .push(format!("wait for {}: {e}", proc.name));
                continue;
            }
        };
        proc.status = Some(status);
        if status.success() || proc.killed {
            continue;
        }
        outcome
            .failures
            .push(format!("{} exited with {status}", proc.name));
        coordinator_failed |= proc.selector.is_none();
    }

    if coordinator_failed {
        for proc in procs.iter_mut().filter(|p| p.status.is_none()) {
            tracing::warn!(process = %proc.name, "the coordinator failed; stopping");
            proc.killed = proc.child.kill().is_ok();
        }
    }
}

/// Kills `proc`, a selector holding in the middle of a round as `holding` says, with
/// SIGKILL, then checks in the tree that it died mid-round: some client updates of
/// the round committed, its aggregate of the round not. Returns what was on disk.
fn kill_holding(
    proc: &mut Proc,
    problem: &Problem,
    holding: &Holding,
) -> Result<serde_json::Value, Box<dyn Error>> {
    let selector = proc
        .selector
        .clone()
        .ok_or("the victim is not a selector")?;
    let round = holding.round;

    // Child::kill sends SIGKILL on Unix: no cleanup, no flush, like a node dying.
    proc.child
        .kill()
        .map_err(|e| format!("kill {selector}: {e}"))?;
    proc.status = Some(
        proc.child
            .wait()
            .map_err(|e| format!("wait for {selector}: {e}"))?,
    );
    proc.killed = true;

    // What the tree says, not what the selector said.
    let mut committed = 0;
    for client in problem.client_updates(&selector)? {
        let artifact = problem.artifact(ArtifactKind::ClientUpdate(selector.clone(), client));
        if problem.record(&artifact)?.is_some_and(|r| r.round == round) {
            committed += 1;
        }
    }
    let aggregate = problem.artifact(ArtifactKind::Aggregate(selector.clone()));
    let aggregate_round = problem.record(&aggregate)?.map(|r| r.round);
    if committed == 0 || aggregate_round == Some(round) {
        return Err(format!(
            "{selector} was killed in round {round} but not mid-round: {committed} client \
             updates of the round in the tree, its aggregate of round {aggregate_round:?}"
        )
        .into());
    }

    println!(
        "  -- killed {selector} (SIGKILL) in round {round}: {committed} of {} client \
         updates committed, its aggregate on disk is {}",
        holding.clients,
        aggregate_round.map_or("none".to_owned(), |r| format!("from round {r}"))
    );
    Ok(json!({
        "selector": selector.as_str(),
        "round": round,
        "client_updates_committed": committed,
        "aggregate_round_on_disk": aggregate_round,
    }))
}

fn print_start(e: &Evaluation) {
    println!(
        "{:>5}  {:>9}  {:>7.4}  {:>5.1}%",
        "start",
        "-",
        e.loss,
        e.accuracy * 100.0
    );
}

/// A duration in milliseconds, for the table.
fn ms(value: f64) -> String {
    format!("{value:.1} ms")
}

/// The coordinator's rounds waiting to be printed until every selector used in them
/// has reported its own timings.
#[derive(Default)]
struct Table {
    rounds: Vec<CoordinatorRound>,
    selector_rounds: Vec<SelectorRound>,
    printed: usize,
}

impl Table {
    fn print_ready(&mut self, procs: &[Proc]) {
        while let Some(round) = self.rounds.get(self.printed) {
            let mine: Vec<&SelectorRound> = self
                .selector_rounds
                .iter()
                .filter(|s| s.round == round.round)
                .collect();

            // A selector's line may come a moment after the coordinator's: wait for
            // it, unless that selector's output has ended.
            let waiting = round.used.iter().any(|u| {
                !mine.iter().any(|s| s.selector == u.selector)
                    && procs.iter().any(|p| p.name == u.selector && p.pipe_open)
            });
            if waiting {
                return;
            }

            let max = |f: fn(&SelectorRound) -> f64| mine.iter().map(|s| f(s)).fold(0.0, f64::max);
            let left_out: Vec<String> = round
                .skipped
                .iter()
                .map(|s| format!("{} ({})", s.selector, s.reason))
                .collect();
            println!(
                "{:>5}  {:>9}  {:>7.4}  {:>5.1}%  {:>9}  {:>9}  {:>10}  {:>9}  {:>7}  {}",
                round.round,
                format!(
                    "{} of {}",
                    round.used.len(),
                    round.used.len() + round.skipped.len()
                ),
                round.evaluation.loss,
                round.evaluation.accuracy * 100.0,
                ms(max(|s| s.train_ms)),
                ms(max(|s| s.aggregate_ms)),
                ms(round.wait_ms),
                ms(round.fedavg_ms),
                ms(round.eval_ms),
                if left_out.is_empty() {
                    "-".to_owned()
                } else {
                    left_out.join("; ")
                }
            );
            self.printed += 1;
        }
    }
}

/// Adds a failure if the model did not learn: from the start to the end, the
/// held-out loss must fall and the accuracy rise.
///
/// Only the ends are compared, not each round: when a selector is lost, the model
/// stops learning its clients' regions of the feature space, and the accuracy can
/// dip for a round or two while the loss still falls (the kill demo shows it).
fn check_learning(outcome: &Outcome, failures: &mut Vec<String>) {
    let (Some(start), Some(last)) = (outcome.start, outcome.rounds.last()) else {
        return;
    };
    let end = last.evaluation;

    if end.loss >= start.loss {
        failures.push(format!(
            "the held-out loss did not fall: {:.4} at the start, {:.4} at the end",
            start.loss, end.loss
        ));
    }
    if end.accuracy <= start.accuracy {
        failures.push(format!(
            "the held-out accuracy did not rise: {:.1}% at the start, {:.1}% at the end",
            start.accuracy * 100.0,
            end.accuracy * 100.0
        ));
    }
}

fn write_summary(
    path: &Path,
    config: &Config,
    root: &Path,
    problem: &Problem,
    outcome: &Outcome,
    tree: &tree::Tree,
    failures: &[String],
) -> Result<(), Box<dyn Error>> {
    let summary = json!({
        "root": root,
        "problem": problem.id().as_str(),
        "problem_dir": problem.dir(),
        "config": {
            "rounds": config.rounds,
            "selectors": config.selectors,
            "clients": config.clients,
            "kill_selector_at_round": config.kill_at,
            "aggregate_timeout_s": config.aggregate_timeout.as_secs_f64(),
            "seed": config.seed,
        },
        "start": outcome.start,
        "rounds": outcome.rounds,
        "selector_rounds": outcome.selector_rounds,
        "killed": outcome.kill,
        "processes": outcome.processes,
        "tree": tree,
        "failures": failures,
        "ok": failures.is_empty(),
    });
    let text = serde_json::to_string_pretty(&summary)?;
    std::fs::write(path, text).map_err(|e| format!("write {}: {e}", path.display()).into())
}
