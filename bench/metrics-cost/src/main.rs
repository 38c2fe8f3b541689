//! Nanoseconds per metric update, on 1 and 2 threads: the `metrics`
//! exporter's registered counter and histogram handles (and registering
//! per call, as `counter!(name, labels)` does) against a plain atomic
//! counter and a histogram kept as per-bucket counts and a sum, as the
//! gateway keeps its series. Also the resident memory the exporter's
//! histogram holds until a scrape drains its samples, and that scrape's
//! time. Results: docs/observability.md ("Cost").

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use metrics::{Key, Label, Level, Metadata, Recorder};
use metrics_exporter_prometheus::PrometheusBuilder;

const OPERATIONS: u64 = 5_000_000;
const BUCKETS: [u64; 13] = [
    25, 50, 80, 100, 250, 400, 700, 1000, 2000, 5000, 10000, 30000, 60000,
];

/// Per-bucket counts and a sum, one `fetch_add` each per observation.
struct BucketHistogram {
    buckets: Vec<AtomicU64>,
    sum: AtomicU64,
}

impl BucketHistogram {
    fn observe(&self, value: u64) {
        let bucket = BUCKETS.partition_point(|bound| *bound < value);
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(value, Ordering::Relaxed);
    }
}

fn resident_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|line| line.starts_with("VmRSS:"))
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|kib| kib.parse().ok())
        .unwrap_or(0)
}

fn timed(label: &str, threads: usize, update: impl Fn(u64) + Sync) {
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| (0..OPERATIONS).for_each(&update));
        }
    });
    let nanos = started.elapsed().as_nanos() as f64 / OPERATIONS as f64;
    println!("{label:58} {nanos:7.1} ns/op per thread ({threads} threads)");
}

fn main() {
    let bounds: Vec<f64> = BUCKETS.iter().map(|bound| *bound as f64).collect();
    let recorder = PrometheusBuilder::new()
        .set_buckets(&bounds)
        .expect("buckets")
        .build_recorder();
    let handle = recorder.handle();
    let metadata = Metadata::new(module_path!(), Level::INFO, None);
    let labels = vec![
        Label::new("service", "s"),
        Label::new("route", "r"),
        Label::new("workspace", "default"),
    ];
    let key = |name: &'static str| Key::from_parts(name, labels.clone());
    let counter = recorder.register_counter(&key("kong_http_requests_total"), &metadata);
    let histogram = recorder.register_histogram(&key("kong_request_latency_ms"), &metadata);
    let own_counter = AtomicU64::new(0);
    let own_histogram = BucketHistogram {
        buckets: (0..=BUCKETS.len()).map(|_| AtomicU64::new(0)).collect(),
        sum: AtomicU64::new(0),
    };
    for threads in [1, 2] {
        timed("exporter Counter::increment", threads, |_| {
            counter.increment(1)
        });
        timed("own counter (fetch_add)", threads, |_| {
            own_counter.fetch_add(1, Ordering::Relaxed);
        });
        let before = resident_kib();
        timed("exporter Histogram::record", threads, |value| {
            histogram.record((value % 3000) as f64)
        });
        let grown = resident_kib().saturating_sub(before);
        println!("    resident memory grew {grown} KiB until the next scrape");
        let started = Instant::now();
        let text = handle.render();
        println!(
            "    a scrape drained them in {:?} ({} bytes)",
            started.elapsed(),
            text.len()
        );
        timed("own histogram (bucket + sum)", threads, |value| {
            own_histogram.observe(value % 3000)
        });
        timed("exporter, registering per call", threads, |_| {
            recorder
                .register_counter(&key("kong_http_requests_total"), &metadata)
                .increment(1)
        });
    }
}
