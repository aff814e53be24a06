//! What a case can observe without trusting the crate under test: checkpoint
//! contents that name their own round, the file server's clock, and how often the
//! library read again.

use std::fs;
use std::io::{self, Read};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use fedota_store::{Round, os};
use tracing::field::{Field, Visit};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;

// ---------------------------------------------------------------------------
// Checkpoint contents

/// The bytes of the global checkpoint of `round`: a header naming the round, then
/// `size` bytes in all, each derived from the round and its offset.
pub(crate) fn payload(round: Round, size: usize) -> Vec<u8> {
    let mut bytes = format!("fedota-lab round {round:020}\n").into_bytes();
    let header = bytes.len();
    bytes.resize(size.max(header), 0);
    for (i, b) in bytes.iter_mut().enumerate().skip(header) {
        *b = ((i as u64)
            .wrapping_mul(31)
            .wrapping_add(round.wrapping_mul(7))
            % 251) as u8;
    }
    bytes
}

/// Checks that `bytes` is exactly the payload of one round, and returns that round.
/// A torn file (short, or mixing two versions) fails here.
pub(crate) fn check_payload(bytes: &[u8]) -> Result<Round, String> {
    let header = bytes
        .get(..37)
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or_else(|| format!("{} bytes without a readable header", bytes.len()))?;
    let round: Round = header
        .strip_prefix("fedota-lab round ")
        .and_then(|r| r.trim_end().parse().ok())
        .ok_or_else(|| format!("bad header {header:?}"))?;
    let expected = payload(round, bytes.len());
    match bytes.iter().zip(&expected).position(|(a, b)| a != b) {
        None => Ok(round),
        Some(at) => Err(format!(
            "round {round}: byte {at} differs from that round's content"
        )),
    }
}

/// Reads everything a verified read hands over.
pub(crate) fn read_all(r: &mut dyn Read) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    r.read_to_end(&mut bytes)?;
    Ok(bytes)
}

// ---------------------------------------------------------------------------
// Time

/// Nanoseconds since the Unix epoch by this host's clock.
pub(crate) fn now_ns() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128)
}

/// How far the file server's clock is ahead of this host's, in nanoseconds, from the
/// mtime of a file created under `dir`. Accurate to half a round trip.
pub(crate) fn server_clock_offset(dir: &Path) -> io::Result<i128> {
    use std::os::unix::fs::MetadataExt;

    let probe = dir.join(format!(
        ".lab-clock-{}-{}",
        os::hostname(),
        std::process::id()
    ));
    let before = now_ns();
    fs::write(&probe, b"clock")?;
    let after = now_ns();
    let meta = fs::metadata(&probe)?;
    fs::remove_file(&probe)?;
    let mtime = i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec());
    Ok(mtime - (before + after) / 2)
}

// ---------------------------------------------------------------------------
// Counting the library's read retries

pub(crate) static RETRY_STALE: AtomicU64 = AtomicU64::new(0);
pub(crate) static RETRY_NOT_FOUND: AtomicU64 = AtomicU64::new(0);
pub(crate) static RETRY_MISMATCH: AtomicU64 = AtomicU64::new(0);

/// A tracing layer that counts the library's "read again" events by cause.
pub(crate) struct RetryCounter;

/// Collects an event's message and error fields.
#[derive(Default)]
pub(crate) struct Fields {
    message: String,
    error: String,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "message" => self.message = format!("{value:?}"),
            "error" => self.error = format!("{value:?}"),
            _ => {}
        }
    }
}

impl<S: tracing::Subscriber> Layer<S> for RetryCounter {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        if fields.message != "read again" {
            return;
        }
        let counter = if fields.error.contains("tale file handle") {
            &RETRY_STALE
        } else if fields.error.contains("No such file") {
            &RETRY_NOT_FOUND
        } else {
            &RETRY_MISMATCH
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}
