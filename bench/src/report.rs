//! Results: per-run samples, medians and spreads, the printed table and the target check.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

/// One measured run.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Sample {
    /// The primary figure.
    pub(crate) value: f64,
    /// Secondary figures (latency percentiles, peak RSS, bytes).
    pub(crate) extra: BTreeMap<String, f64>,
    /// 1-minute load average just before the run.
    pub(crate) load1: f64,
    /// Cores kept busy by processes other than the benchmark's during the run.
    pub(crate) other_cpu: f64,
}

/// Every run of one server (or machine limit) in one scenario.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Series {
    /// Scenario ID (`s1-chunked`, `limit`, ...).
    pub(crate) scenario: String,
    /// Server or limit name.
    pub(crate) server: String,
    /// Ours, as opposed to a peer or a limit.
    pub(crate) is_ours: bool,
    /// A machine limit rather than a server.
    pub(crate) is_limit: bool,
    /// Unit of `value`.
    pub(crate) unit: String,
    /// The runs.
    pub(crate) samples: Vec<Sample>,
    /// Median of the runs' values (NaN without runs).
    pub(crate) median: f64,
    /// Smallest value.
    pub(crate) min: f64,
    /// Largest value.
    pub(crate) max: f64,
    /// Medians of the secondary figures.
    pub(crate) extra: BTreeMap<String, f64>,
    /// Why runs are missing, if they are.
    pub(crate) error: Option<String>,
}

impl Series {
    /// An empty series.
    pub(crate) fn new(scenario: &str, server: &str, unit: &str, is_ours: bool, is_limit: bool) -> Self {
        Series {
            scenario: scenario.into(),
            server: server.into(),
            is_ours,
            is_limit,
            unit: unit.into(),
            samples: Vec::new(),
            median: f64::NAN,
            min: f64::NAN,
            max: f64::NAN,
            extra: BTreeMap::new(),
            error: None,
        }
    }

    /// Recomputes median, spread and secondary medians from the samples.
    pub(crate) fn summarize(&mut self) {
        let values: Vec<f64> = self.samples.iter().map(|s| s.value).collect();
        self.median = median(&values);
        self.min = values.iter().copied().fold(f64::INFINITY, f64::min);
        self.max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let keys: Vec<String> = self.samples.iter().flat_map(|s| s.extra.keys().cloned()).collect();
        for k in keys {
            let v: Vec<f64> = self.samples.iter().filter_map(|s| s.extra.get(&k).copied()).collect();
            self.extra.insert(k, median(&v));
        }
    }

    fn load_range(&self) -> String {
        let l: Vec<f64> = self.samples.iter().map(|s| s.load1).collect();
        let o: Vec<f64> = self.samples.iter().map(|s| s.other_cpu).collect();
        if l.is_empty() {
            return " | ".into();
        }
        let (lmin, lmax) = (l.iter().copied().fold(f64::INFINITY, f64::min), l.iter().copied().fold(0.0, f64::max));
        format!("{lmin:.1}–{lmax:.1} | {:.2}", median(&o))
    }
}

/// Median (NaN for no values).
pub(crate) fn median(v: &[f64]) -> f64 {
    let mut v: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}

/// A scenario's row group in the table.
pub(crate) struct Group {
    /// Scenario ID.
    pub(crate) id: String,
    /// Human title.
    pub(crate) title: String,
    /// Name and value of the limit this scenario is compared with.
    pub(crate) limit: Option<(String, f64)>,
}

/// The best peer's median in `scenario`.
pub(crate) fn best_peer(series: &[Series], scenario: &str) -> Option<(String, f64)> {
    series
        .iter()
        .filter(|s| s.scenario == scenario && !s.is_ours && !s.is_limit && s.median.is_finite())
        .max_by(|a, b| a.median.total_cmp(&b.median))
        .map(|s| (s.server.clone(), s.median))
}

fn notes(s: &Series) -> String {
    let mut n = Vec::new();
    if let (Some(p50), Some(p99)) = (s.extra.get("p50_ms"), s.extra.get("p99_ms")) {
        n.push(format!("p50 {p50:.1} ms, p99 {p99:.1} ms"));
    }
    if let Some(rss) = s.extra.get("peak_rss") {
        n.push(format!("peak RSS {:.0} MiB", rss / 1048576.0));
    }
    if let Some(e) = &s.error {
        n.push(e.clone());
    }
    n.join("; ")
}

/// The table, as Markdown.
pub(crate) fn table(series: &[Series], groups: &[Group]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| scenario | server | median | spread (min–max, n) | ÷ best peer | ÷ limit | notes | load1 before runs | other CPU (cores) |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|");
    for g in groups {
        let peer = best_peer(series, &g.id);
        for s in series.iter().filter(|s| s.scenario == g.id) {
            let vs_peer = match (&peer, s.is_ours) {
                (Some((_, p)), true) if s.median.is_finite() => format!("{:.2}×", s.median / p),
                _ => String::new(),
            };
            let vs_limit = match &g.limit {
                Some((_, l)) if s.median.is_finite() && !s.is_limit => format!("{:.0} %", 100.0 * s.median / l),
                _ => String::new(),
            };
            let (median, spread) = if s.median.is_finite() {
                (format!("{:.1} {}", s.median, s.unit), format!("{:.1}–{:.1}, n={}", s.min, s.max, s.samples.len()))
            } else {
                ("—".into(), String::new())
            };
            let _ = writeln!(
                out,
                "| {} | {} | {median} | {spread} | {vs_peer} | {vs_limit} | {} | {} |",
                g.title,
                s.server,
                notes(s),
                s.load_range()
            );
        }
        if let Some((name, value)) = &g.limit {
            let _ = writeln!(out, "| {} | *limit: {name}* | {value:.1} | | | 100 % | | | |", g.title);
        }
    }
    out
}

/// One target of the issue, checked.
#[derive(Debug, Serialize)]
pub(crate) struct Target {
    /// What is asked.
    pub(crate) target: String,
    /// What was measured.
    pub(crate) measured: String,
    /// Met, missed, or `None` when it could not be measured.
    pub(crate) met: Option<bool>,
}

/// Median of `server` in `scenario`.
pub(crate) fn value(series: &[Series], scenario: &str, server: &str) -> Option<f64> {
    series.iter().find(|s| s.scenario == scenario && s.server == server).map(|s| s.median).filter(|v| v.is_finite())
}

/// A secondary median of `server` in `scenario`.
pub(crate) fn extra(series: &[Series], scenario: &str, server: &str, key: &str) -> Option<f64> {
    series.iter().find(|s| s.scenario == scenario && s.server == server).and_then(|s| s.extra.get(key).copied())
}

/// The targets table, as Markdown.
pub(crate) fn targets_table(targets: &[Target]) -> String {
    let mut out = String::from("| target | measured | met |\n|---|---|---|\n");
    for t in targets {
        let met = match t.met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "not measured",
        };
        let _ = writeln!(out, "| {} | {} | {met} |", t.target, t.measured);
    }
    out
}
