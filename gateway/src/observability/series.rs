//! Metric families with fixed label names, their series, and Kong's text
//! exposition of them.
//!
//! - [`Counter`] and [`Histogram`]: one series' value, updated with one
//!   (counter) or two (histogram: its bucket and its sum) relaxed atomic
//!   additions. A histogram keeps per-bucket counts; the cumulative
//!   `_bucket` values and `_count` are summed when rendered.
//! - [`Family`]: a metric name, its help, its label names and its series by
//!   label values. [`Family::series`] finds or registers one under a lock
//!   and hands out an `Arc` the caller keeps (see `kong.rs`: once per
//!   snapshot, never per request); [`Family::render`] writes the family the
//!   way Kong's `prometheus.lua` does: `# HELP`, `# TYPE`, then the series
//!   sorted by label values, histograms as `_bucket` (with `le`), `_count`,
//!   `_sum`. A family without series writes nothing, as Kong's.
//! - [`write_labels`]: label values escaped as the text format requires.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// A counter series.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds `value`.
    pub fn add(&self, value: u64) {
        self.0.fetch_add(value, Ordering::Relaxed);
    }

    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A histogram series with fixed bucket boundaries (inclusive upper
/// bounds, ascending; the `+Inf` bucket is implicit).
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [u64],
    /// Observations per bucket (not cumulative); the last is `+Inf`.
    buckets: Box<[AtomicU64]>,
    sum: AtomicU64,
}

impl Histogram {
    /// An empty histogram with these boundaries.
    pub fn new(bounds: &'static [u64]) -> Self {
        Histogram {
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0),
        }
    }

    /// Records one observation.
    pub fn observe(&self, value: u64) {
        let bucket = self.bounds.partition_point(|&bound| bound < value);
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(value, Ordering::Relaxed);
    }

    /// `(upper bound, cumulative count)` per bucket, `None` for `+Inf`,
    /// then the sum.
    fn cumulative(&self) -> (Vec<(Option<u64>, u64)>, u64) {
        let mut running = 0;
        let buckets = self
            .buckets
            .iter()
            .enumerate()
            .map(|(index, count)| {
                running += count.load(Ordering::Relaxed);
                (self.bounds.get(index).copied(), running)
            })
            .collect();
        (buckets, self.sum.load(Ordering::Relaxed))
    }
}

/// What a family's series are.
pub trait SeriesValue: Send + Sync + 'static {
    /// The `# TYPE` of the family.
    const TYPE: &'static str;
    /// Writes this series' lines.
    fn render(&self, out: &mut String, name: &str, labels: &[&str], values: &[String]);
}

impl SeriesValue for Counter {
    const TYPE: &'static str = "counter";

    fn render(&self, out: &mut String, name: &str, labels: &[&str], values: &[String]) {
        out.push_str(name);
        write_labels(out, labels, values, None);
        let _ = writeln!(out, " {}", self.get());
    }
}

impl SeriesValue for Histogram {
    const TYPE: &'static str = "histogram";

    fn render(&self, out: &mut String, name: &str, labels: &[&str], values: &[String]) {
        let (buckets, sum) = self.cumulative();
        let mut count = 0;
        for (bound, cumulative) in buckets {
            let le = bound.map_or_else(|| "+Inf".to_owned(), |bound| bound.to_string());
            let _ = write!(out, "{name}_bucket");
            write_labels(out, labels, values, Some(&le));
            let _ = writeln!(out, " {cumulative}");
            count = cumulative;
        }
        let _ = write!(out, "{name}_count");
        write_labels(out, labels, values, None);
        let _ = writeln!(out, " {count}");
        let _ = write!(out, "{name}_sum");
        write_labels(out, labels, values, None);
        let _ = writeln!(out, " {sum}");
    }
}

/// A metric family: name, help, label names, and its series.
pub struct Family<T> {
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
    make: Box<dyn Fn() -> T + Send + Sync>,
    series: Mutex<BTreeMap<Vec<String>, Arc<T>>>,
}

impl<T: SeriesValue> Family<T> {
    /// A family without series; `make` makes a new series' value.
    pub fn new(
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
        make: impl Fn() -> T + Send + Sync + 'static,
    ) -> Self {
        Family {
            name,
            help,
            labels,
            make: Box::new(make),
            series: Mutex::new(BTreeMap::new()),
        }
    }

    /// The family's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The series with these label values (one per label name, in order),
    /// registered now if it is new. Takes the family's lock: callers keep
    /// the result instead of calling this per request.
    pub fn series(&self, values: &[&str]) -> Arc<T> {
        debug_assert_eq!(values.len(), self.labels.len(), "{}", self.name);
        let key: Vec<String> = values.iter().map(|value| (*value).to_owned()).collect();
        let mut series = self.series.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(series.entry(key).or_insert_with(|| Arc::new((self.make)())))
    }

    /// Writes the family in the text format; nothing when it has no series.
    pub fn render(&self, out: &mut String) {
        let series = self.series.lock().unwrap_or_else(PoisonError::into_inner);
        if series.is_empty() {
            return;
        }
        let _ = writeln!(out, "# HELP {} {}", self.name, self.help);
        let _ = writeln!(out, "# TYPE {} {}", self.name, T::TYPE);
        for (values, value) in series.iter() {
            value.render(out, self.name, self.labels, values);
        }
    }
}

/// Writes `{name="value",...}` (with `le` last when given); nothing
/// without labels. Values escape `\`, `"` and line feeds.
pub fn write_labels<S: AsRef<str>>(
    out: &mut String,
    names: &[&str],
    values: &[S],
    le: Option<&str>,
) {
    if names.is_empty() && le.is_none() {
        return;
    }
    out.push('{');
    let mut first = true;
    let pairs = names
        .iter()
        .zip(values.iter().map(AsRef::as_ref))
        .chain(le.map(|le| (&"le", le)));
    for (name, value) in pairs {
        if !first {
            out.push(',');
        }
        first = false;
        out.push_str(name);
        out.push_str("=\"");
        escape_label_value(out, value);
        out.push('"');
    }
    out.push('}');
}

fn escape_label_value(out: &mut String, value: &str) {
    for character in value.chars() {
        match character {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            other => out.push(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOUNDS: &[u64] = &[1, 5, 10];

    #[test]
    fn histograms_count_inclusive_upper_bounds_and_render_cumulatively() {
        let family = Family::new("h_ms", "A histogram.", &["route"], || {
            Histogram::new(BOUNDS)
        });
        let series = family.series(&["r"]);
        for value in [0, 1, 2, 5, 6, 10, 11, 400] {
            series.observe(value);
        }
        let mut out = String::new();
        family.render(&mut out);
        assert_eq!(
            out,
            "# HELP h_ms A histogram.\n# TYPE h_ms histogram\n\
             h_ms_bucket{route=\"r\",le=\"1\"} 2\n\
             h_ms_bucket{route=\"r\",le=\"5\"} 4\n\
             h_ms_bucket{route=\"r\",le=\"10\"} 6\n\
             h_ms_bucket{route=\"r\",le=\"+Inf\"} 8\n\
             h_ms_count{route=\"r\"} 8\n\
             h_ms_sum{route=\"r\"} 435\n"
        );
    }

    #[test]
    fn series_are_shared_by_label_values_and_sorted() {
        let family = Family::new("c_total", "Counts.", &["a", "b"], Counter::default);
        family.series(&["y", "1"]).add(2);
        family.series(&["x", "2"]).add(1);
        family.series(&["y", "1"]).add(3);
        let mut out = String::new();
        family.render(&mut out);
        assert_eq!(
            out,
            "# HELP c_total Counts.\n# TYPE c_total counter\n\
             c_total{a=\"x\",b=\"2\"} 1\nc_total{a=\"y\",b=\"1\"} 5\n"
        );
    }

    #[test]
    fn empty_families_render_nothing_and_values_are_escaped() {
        let family = Family::new("c_total", "Counts.", &["a"], Counter::default);
        let mut out = String::new();
        family.render(&mut out);
        assert_eq!(out, "");
        family.series(&["q\"\\\nz"]).add(1);
        family.render(&mut out);
        assert!(out.ends_with("c_total{a=\"q\\\"\\\\\\nz\"} 1\n"), "{out}");
    }
}
