//! Just enough command-line parsing for the example programs: `--name value`,
//! `--name=value` and `--switch`.
//!
//! The examples do not use clap, because the crate's clap dependency belongs to the
//! `cli` feature and the examples must build without it.

use std::str::FromStr;
use std::time::Duration;

/// The command-line flags not yet consumed.
#[derive(Debug)]
pub struct Args {
    usage: &'static str,
    tokens: Vec<String>,
}

/// A command-line mistake, with the usage text to show.
#[derive(Debug)]
pub struct UsageError {
    message: String,
    usage: &'static str,
}

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}\n\n{}", self.message, self.usage)
    }
}

impl std::error::Error for UsageError {}

impl Args {
    /// The process's arguments. `--help` or `-h` prints `usage` and exits.
    pub fn from_env(usage: &'static str) -> Self {
        let tokens: Vec<String> = std::env::args().skip(1).collect();

        if tokens.iter().any(|t| t == "--help" || t == "-h") {
            println!("{usage}");
            std::process::exit(0);
        }
        Self { usage, tokens }
    }

    fn error(&self, message: String) -> UsageError {
        UsageError {
            message,
            usage: self.usage,
        }
    }

    /// Removes `--name` and returns whether it was there.
    pub fn switch(&mut self, name: &str) -> bool {
        let flag = format!("--{name}");
        let before = self.tokens.len();
        self.tokens.retain(|t| *t != flag);
        self.tokens.len() != before
    }

    /// Removes `--name VALUE` or `--name=VALUE` and parses the value.
    pub fn value<T>(&mut self, name: &str) -> Result<Option<T>, UsageError>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        let flag = format!("--{name}");
        let prefix = format!("--{name}=");

        let Some(i) = self
            .tokens
            .iter()
            .position(|t| *t == flag || t.starts_with(&prefix))
        else {
            return Ok(None);
        };

        // The value is either glued on with '=' or is the next token.
        let token = self.tokens.remove(i);
        let text = match token.strip_prefix(&prefix) {
            Some(text) => text.to_owned(),
            None if i < self.tokens.len() && !self.tokens[i].starts_with("--") => {
                self.tokens.remove(i)
            }
            None => return Err(self.error(format!("{flag} needs a value"))),
        };

        text.parse()
            .map(Some)
            .map_err(|e| self.error(format!("{flag} {text:?}: {e}")))
    }

    /// Like [`Args::value`], but the flag must be given.
    pub fn required<T>(&mut self, name: &str) -> Result<T, UsageError>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        self.value(name)?
            .ok_or_else(|| self.error(format!("--{name} is required")))
    }

    /// Like [`Args::value`], with a default.
    pub fn value_or<T>(&mut self, name: &str, default: T) -> Result<T, UsageError>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        Ok(self.value(name)?.unwrap_or(default))
    }

    /// A duration given in seconds, such as `--timeout 2.5`, with a default.
    pub fn seconds_or(&mut self, name: &str, default: Duration) -> Result<Duration, UsageError> {
        match self.value::<f64>(name)? {
            None => Ok(default),
            Some(secs) => Duration::try_from_secs_f64(secs)
                .map_err(|e| self.error(format!("--{name} {secs}: {e}"))),
        }
    }

    /// Fails if any argument was not consumed.
    pub fn finish(self) -> Result<(), UsageError> {
        match self.tokens.first() {
            None => Ok(()),
            Some(t) => Err(self.error(format!("unexpected argument {t:?}"))),
        }
    }
}
