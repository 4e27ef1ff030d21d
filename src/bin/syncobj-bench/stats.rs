//! Percentiles of one run and the median and range over repeated runs.

use std::fmt;

/// The `p`th percentile of sorted `xs` by linear interpolation between the two nearest ranks
/// (the baseline's rule); NaN for no values.
pub(crate) fn percentile(xs: &[f64], p: f64) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    let rank = (xs.len() - 1) as f64 * p / 100.0;
    let lo = rank.floor() as usize;
    let hi = (lo + 1).min(xs.len() - 1);
    xs[lo] + (xs[hi] - xs[lo]) * (rank - lo as f64)
}

/// One figure over repeated runs: median, smallest, largest, and how many runs gave it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Summary {
    pub(crate) median: f64,
    pub(crate) min: f64,
    pub(crate) max: f64,
    pub(crate) n: usize,
}

impl Summary {
    /// Summarizes the finite values of `values`; `None` if there is none.
    pub(crate) fn of(values: impl IntoIterator<Item = f64>) -> Option<Summary> {
        let mut xs: Vec<f64> = values.into_iter().filter(|v| v.is_finite()).collect();
        if xs.is_empty() {
            return None;
        }
        xs.sort_by(f64::total_cmp);
        Some(Summary {
            median: percentile(&xs, 50.0),
            min: xs[0],
            max: xs[xs.len() - 1],
            n: xs.len(),
        })
    }

    /// `median (min–max, n=N)` with `decimals` digits after the point.
    pub(crate) fn show(&self, decimals: usize) -> String {
        format!(
            "{} ({}–{}, n={})",
            fixed(self.median, decimals),
            fixed(self.min, decimals),
            fixed(self.max, decimals),
            self.n
        )
    }
}

/// A number with `decimals` digits after the point; with none, thousands are separated by
/// commas (`1,234,567`) as in the tables.
pub(crate) fn fixed(x: f64, decimals: usize) -> String {
    if decimals > 0 || !x.is_finite() {
        return format!("{x:.decimals$}");
    }
    let digits = format!("{:.0}", x.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if x < 0.0 && digits != "0" {
        out.insert(0, '-');
    }
    out
}

/// Shows a summary or `n/a`.
pub(crate) struct Shown<'a>(pub(crate) &'a Option<Summary>, pub(crate) usize);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(s) => f.write_str(&s.show(self.1)),
            None => f.write_str("n/a"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_interpolate_between_ranks() {
        let xs = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(percentile(&xs, 0.0), 1.0);
        assert_eq!(percentile(&xs, 50.0), 2.5);
        assert_eq!(percentile(&xs, 100.0), 4.0);
        assert!(percentile(&[], 50.0).is_nan());
    }

    #[test]
    fn summaries_skip_missing_values() {
        let s = Summary::of([3.0, f64::NAN, 1.0, 2.0]).expect("values");
        assert_eq!((s.median, s.min, s.max, s.n), (2.0, 1.0, 3.0, 3));
        assert!(Summary::of([f64::NAN]).is_none());
    }

    #[test]
    fn thousands_are_separated() {
        assert_eq!(fixed(1_234_567.4, 0), "1,234,567");
        assert_eq!(fixed(999.0, 0), "999");
        assert_eq!(fixed(0.1234, 3), "0.123");
    }
}
