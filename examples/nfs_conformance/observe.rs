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

/// The first bytes of every payload: the round and the whole payload's size.
fn header(round: Round, size: usize) -> String {
    format!("fedota-lab round {round:020} size {size:012}\n")
}

/// How long [`header`] is, whatever the round and size.
pub(crate) const HEADER_LEN: usize = 56;

/// The bytes of a checkpoint of `round`: a header naming the round and the size, then
/// bytes derived from the round and their offset, `size` bytes in all (at least the
/// header).
pub(crate) fn payload(round: Round, size: usize) -> Vec<u8> {
    let size = size.max(HEADER_LEN);
    let mut bytes = header(round, size).into_bytes();
    bytes.resize(size, 0);
    for (i, b) in bytes.iter_mut().enumerate().skip(HEADER_LEN) {
        *b = ((i as u64)
            .wrapping_mul(31)
            .wrapping_add(round.wrapping_mul(7))
            % 251) as u8;
    }
    bytes
}

/// The weight the lab commits with the aggregate of `round`, so a reader can tell
/// which round a weight belongs to.
pub(crate) fn aggregate_weight(round: Round) -> u64 {
    1_000_000 + round * 17
}

/// The round and size a payload's header names.
pub(crate) fn parse_header(bytes: &[u8]) -> Result<(Round, usize), String> {
    let header = bytes
        .get(..HEADER_LEN)
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or_else(|| format!("{} bytes without a readable header", bytes.len()))?;
    header
        .strip_prefix("fedota-lab round ")
        .and_then(|rest| rest.trim_end().split_once(" size "))
        .and_then(|(round, size)| Some((round.parse().ok()?, size.parse().ok()?)))
        .ok_or_else(|| format!("bad header {header:?}"))
}

/// Checks that `bytes` is exactly the payload of one round, and returns that round.
/// A torn file fails here: one that is short or long of the size its header names,
/// or that mixes two versions.
pub(crate) fn check_payload(bytes: &[u8]) -> Result<Round, String> {
    let (round, size) = parse_header(bytes)?;

    // The size first: a short read would otherwise match every byte it has.
    if bytes.len() != size {
        return Err(format!(
            "round {round}: {} bytes, but its header says {size}",
            bytes.len()
        ));
    }
    let expected = payload(round, size);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_whole_payload_names_its_round() {
        for size in [0, HEADER_LEN, 4096, 65536] {
            let bytes = payload(42, size);
            assert_eq!(bytes.len(), size.max(HEADER_LEN));
            assert_eq!(check_payload(&bytes), Ok(42));
        }
    }

    #[test]
    fn a_short_payload_is_refused() {
        let bytes = payload(7, 4096);
        for len in [4095, 2048, HEADER_LEN] {
            let err = check_payload(&bytes[..len]).unwrap_err();
            assert!(err.contains("its header says 4096"), "{err}");
        }
        assert!(check_payload(&bytes[..HEADER_LEN - 1]).is_err());
    }

    #[test]
    fn a_long_payload_is_refused() {
        let mut bytes = payload(7, 4096);
        bytes.extend_from_slice(&payload(8, 4096)[..100]);
        assert!(check_payload(&bytes).is_err());
    }

    #[test]
    fn a_payload_mixing_two_rounds_is_refused() {
        let mut bytes = payload(7, 4096);
        bytes[2048..].copy_from_slice(&payload(8, 4096)[2048..]);
        let err = check_payload(&bytes).unwrap_err();
        assert!(err.contains("byte 2048"), "{err}");
    }

    #[test]
    fn the_header_is_as_long_as_said() {
        assert_eq!(header(0, 0).len(), HEADER_LEN);
        assert_eq!(header(Round::MAX, 999_999_999_999).len(), HEADER_LEN);
    }
}
