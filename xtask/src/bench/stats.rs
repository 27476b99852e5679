//! Summaries of repeated measurements (median, p95, range), targets, and the two outputs: the
//! printed table and `report.json`.
//! No measuring here and no judgement beyond comparing a median with its target.

use std::fmt::Write as _;

/// The unit a metric is measured and printed in.
#[derive(Clone, Copy)]
pub(crate) enum Unit {
    Millis,
    MiB,
    Percent,
    LinesPerSec,
    RequestsPerSec,
    Count,
}

impl Unit {
    fn name(self) -> &'static str {
        match self {
            Unit::Millis => "ms",
            Unit::MiB => "MiB",
            Unit::Percent => "% of a core",
            Unit::LinesPerSec => "lines/s",
            Unit::RequestsPerSec => "req/s",
            Unit::Count => "",
        }
    }

    fn format(self, value: f64) -> String {
        match self {
            Unit::Millis if value.abs() < 10.0 => format!("{value:.2} ms"),
            Unit::Millis => format!("{value:.1} ms"),
            Unit::MiB => format!("{value:.1} MiB"),
            Unit::Percent => format!("{value:.3} %"),
            Unit::LinesPerSec => format!("{} l/s", thousands(value)),
            Unit::RequestsPerSec => format!("{} r/s", thousands(value)),
            Unit::Count => format!("{value:.0}"),
        }
    }
}

fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

/// What a metric's median must meet.
#[derive(Clone, Copy)]
pub(crate) enum Target {
    None,
    AtMost(f64),
    AtLeast(f64),
}

/// One measured quantity: every run's value, its unit and target.
pub(crate) struct Metric {
    pub(crate) key: &'static str,
    pub(crate) label: String,
    pub(crate) unit: Unit,
    pub(crate) target: Target,
    pub(crate) samples: Vec<f64>,
}

/// Median, p95 (nearest rank) and range of a non-empty sample.
pub(crate) struct Summary {
    pub(crate) median: f64,
    pub(crate) p95: f64,
    pub(crate) min: f64,
    pub(crate) max: f64,
}

impl Summary {
    pub(crate) fn of(samples: &[f64]) -> Option<Self> {
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        if n == 0 {
            return None;
        }
        let median = if n % 2 == 1 {
            sorted[n / 2]
        } else {
            (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
        };
        Some(Self {
            median,
            p95: percentile(&sorted, 95.0),
            min: sorted[0],
            max: sorted[n - 1],
        })
    }
}

/// Nearest-rank percentile of sorted, non-empty values.
pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

impl Metric {
    pub(crate) fn new(
        key: &'static str,
        label: impl Into<String>,
        unit: Unit,
        target: Target,
    ) -> Self {
        Self {
            key,
            label: label.into(),
            unit,
            target,
            samples: Vec::new(),
        }
    }

    /// Whether the median meets the target (`None` when there is no target or no sample).
    pub(crate) fn ok(&self) -> Option<bool> {
        let median = Summary::of(&self.samples)?.median;
        match self.target {
            Target::None => None,
            Target::AtMost(limit) => Some(median <= limit),
            Target::AtLeast(limit) => Some(median >= limit),
        }
    }

    fn target_text(&self) -> String {
        match self.target {
            Target::None => "—".to_owned(),
            Target::AtMost(limit) => format!("≤ {}", self.unit.format(limit)),
            Target::AtLeast(limit) => format!("≥ {}", self.unit.format(limit)),
        }
    }

    fn to_json(&self) -> serde_json::Value {
        let summary = Summary::of(&self.samples);
        let (op, value) = match self.target {
            Target::None => (None, None),
            Target::AtMost(limit) => (Some("<="), Some(limit)),
            Target::AtLeast(limit) => (Some(">="), Some(limit)),
        };
        serde_json::json!({
            "key": self.key,
            "label": self.label,
            "unit": self.unit.name(),
            "median": summary.as_ref().map(|s| s.median),
            "p95": summary.as_ref().map(|s| s.p95),
            "min": summary.as_ref().map(|s| s.min),
            "max": summary.as_ref().map(|s| s.max),
            "runs": self.samples.len(),
            "samples": self.samples,
            "target": op.map(|op| serde_json::json!({ "op": op, "value": value })),
            "ok": self.ok(),
        })
    }
}

/// The printed table: metric | median | p95 | min–max | target | ok?
pub(crate) fn table(metrics: &[&Metric]) -> String {
    let mut rows = vec![[
        "metric".to_owned(),
        "median".to_owned(),
        "p95".to_owned(),
        "min–max".to_owned(),
        "target".to_owned(),
        "ok?".to_owned(),
    ]];
    for metric in metrics {
        let (median, p95, range) = match Summary::of(&metric.samples) {
            Some(s) => (
                metric.unit.format(s.median),
                metric.unit.format(s.p95),
                format!(
                    "{} – {}",
                    metric.unit.format(s.min),
                    metric.unit.format(s.max)
                ),
            ),
            None => ("—".to_owned(), "—".to_owned(), "not measured".to_owned()),
        };
        let ok = match metric.ok() {
            Some(true) => "✓",
            Some(false) => "✗ MISS",
            None => "",
        };
        rows.push([
            metric.label.clone(),
            median,
            p95,
            range,
            metric.target_text(),
            ok.to_owned(),
        ]);
    }
    let mut widths = [0usize; 6];
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for (i, row) in rows.iter().enumerate() {
        for (column, (cell, width)) in row.iter().zip(widths).enumerate() {
            let pad = width - cell.chars().count();
            if column == 0 || column == 5 {
                let _ = write!(out, "{cell}{}", " ".repeat(pad));
            } else {
                let _ = write!(out, "{}{cell}", " ".repeat(pad));
            }
            if column < 5 {
                out.push_str(" | ");
            }
        }
        out.truncate(out.trim_end().len());
        out.push('\n');
        if i == 0 {
            let total = widths.iter().sum::<usize>() + 3 * 5;
            out.push_str(&"-".repeat(total));
            out.push('\n');
        }
    }
    out
}

/// Every metric as JSON objects.
pub(crate) fn metrics_json(metrics: &[&Metric]) -> serde_json::Value {
    serde_json::Value::Array(metrics.iter().map(|metric| metric.to_json()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_gives_median_nearest_rank_p95_and_range() {
        let odd = Summary::of(&[5.0, 1.0, 3.0, 2.0, 4.0]).expect("five samples");
        assert_eq!(
            (odd.median, odd.p95, odd.min, odd.max),
            (3.0, 5.0, 1.0, 5.0)
        );
        let even = Summary::of(&[4.0, 1.0, 3.0, 2.0]).expect("four samples");
        assert_eq!(even.median, 2.5);
        let hundred: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&hundred, 99.0), 99.0);
        assert_eq!(percentile(&hundred, 50.0), 50.0);
        assert!(Summary::of(&[]).is_none());
    }

    #[test]
    fn ok_compares_the_median_with_the_target() {
        let mut at_most = Metric::new("k", "l", Unit::Millis, Target::AtMost(25.0));
        assert_eq!(at_most.ok(), None, "no sample, no verdict");
        at_most.samples = vec![20.0, 24.0, 90.0];
        assert_eq!(at_most.ok(), Some(true));
        at_most.samples = vec![26.0, 24.0, 30.0];
        assert_eq!(at_most.ok(), Some(false));
        let mut at_least = Metric::new("k", "l", Unit::LinesPerSec, Target::AtLeast(1e6));
        at_least.samples = vec![2e6];
        assert_eq!(at_least.ok(), Some(true));
        let none = Metric {
            samples: vec![1.0],
            ..Metric::new("k", "l", Unit::Count, Target::None)
        };
        assert_eq!(none.ok(), None);
    }

    #[test]
    fn table_marks_misses_and_aligns_columns() {
        let mut miss = Metric::new("a", "startup", Unit::Millis, Target::AtMost(25.0));
        miss.samples = vec![30.0, 31.0, 35.0];
        let mut rate = Metric::new("b", "logs", Unit::LinesPerSec, Target::AtLeast(1e6));
        rate.samples = vec![1_500_000.0];
        let text = table(&[&miss, &rate]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert!(
            lines[2].contains("31.0 ms") && lines[2].ends_with("✗ MISS"),
            "{text}"
        );
        assert!(
            lines[3].contains("1 500 000 l/s") && lines[3].ends_with('✓'),
            "{text}"
        );
        let bars: Vec<Vec<usize>> = [lines[0], lines[2], lines[3]]
            .iter()
            .map(|line| {
                line.match_indices(" | ")
                    .map(|(i, _)| line[..i].chars().count())
                    .collect()
            })
            .collect();
        assert!(bars.windows(2).all(|pair| pair[0] == pair[1]), "{text}");
    }
}
