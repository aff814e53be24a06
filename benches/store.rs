//! Throughput and latency of the operations every round performs.
//!
//! Run with `cargo bench --bench store`. The numbers depend on the disk: a commit of
//! the global checkpoint pays two fsyncs of files (data and record) and two of the
//! directory, and an aggregate one more for its weight file, so small commits measure
//! the disk's flush latency, and large ones its write bandwidth plus crc32c.

use std::hint::black_box;
use std::io::{self, Read};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use fedota_store::{CreateOptions, LockWait, ProblemId, SelectorId, Store};

/// A reader of `len` bytes of a repeating pattern, so the data is never built in
/// memory first.
struct Pattern {
    left: u64,
}

impl Read for Pattern {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(self.left as usize);
        for (i, b) in buf[..n].iter_mut().enumerate() {
            *b = (i % 251) as u8;
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// A fresh store with one problem in a temporary directory.
fn setup() -> (tempfile::TempDir, Store, ProblemId) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let store = Store::open(dir.path()).expect("open store");
    let id = ProblemId::new("bench").expect("problem id");
    store
        .create_problem(
            &id,
            &mut &b"model"[..],
            &mut &b"0"[..],
            CreateOptions::default(),
        )
        .expect("create problem");
    (dir, store, id)
}

fn commit_global_checkpoint(c: &mut Criterion) {
    let mut group = c.benchmark_group("commit_global_checkpoint");
    group.sample_size(10);

    for size in [4 << 10, 1 << 20, 64 << 20] {
        let (_dir, store, id) = setup();
        let coordinator = store.coordinator(&id, LockWait::Try).expect("lock");
        let mut round = 0;

        group.throughput(Throughput::Bytes(size));
        group.bench_with_input(BenchmarkId::from_parameter(size), &size, |b, &size| {
            b.iter(|| {
                round += 1;
                let mut data = Pattern { left: size };
                black_box(
                    coordinator
                        .commit_global_checkpoint(round, &mut data)
                        .expect("commit"),
                )
            })
        });
    }
    group.finish();
}

fn read_verified(c: &mut Criterion) {
    let mut group = c.benchmark_group("read_global_checkpoint_verified");
    group.sample_size(10);

    for size in [4 << 10, 1 << 20, 64 << 20] {
        let (_dir, store, id) = setup();
        let coordinator = store.coordinator(&id, LockWait::Try).expect("lock");
        coordinator
            .commit_global_checkpoint(1, &mut Pattern { left: size })
            .expect("commit");
        let problem = store.problem(&id).expect("problem");

        group.throughput(Throughput::Bytes(size));
        group.bench_with_input(BenchmarkId::from_parameter(size), &size, |b, _| {
            b.iter(|| {
                let read = problem.read_global_checkpoint(|r| io::copy(r, &mut io::sink()));
                black_box(read.expect("verified read"))
            })
        });
    }
    group.finish();
}

fn commit_aggregate_with_weight(c: &mut Criterion) {
    let (_dir, store, id) = setup();
    let selector = store
        .selector(
            &id,
            &SelectorId::new("s1.selector:50051").expect("selector id"),
        )
        .expect("selector");
    let mut round = 0;

    c.bench_function("commit_aggregate_64KiB_with_weight", |b| {
        b.iter(|| {
            round += 1;
            let mut data = Pattern { left: 64 << 10 };
            black_box(
                selector
                    .commit_aggregate(round, 600, &mut data)
                    .expect("commit"),
            )
        })
    });
}

fn coordinator_lock(c: &mut Criterion) {
    let (_dir, store, id) = setup();

    c.bench_function("coordinator_lock_take_and_release", |b| {
        b.iter(|| black_box(store.coordinator(&id, LockWait::Try).expect("lock")))
    });
}

criterion_group!(
    benches,
    commit_global_checkpoint,
    read_verified,
    commit_aggregate_with_weight,
    coordinator_lock
);
criterion_main!(benches);
