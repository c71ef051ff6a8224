//! clap's value parsers: each flag's rule, and the message when a value breaks it.

use super::Cutoffs;

pub(super) fn parse_cutoffs(s: &str) -> Result<Cutoffs, String> {
    let values: Result<Vec<usize>, _> = s.split(',').map(|v| v.trim().parse::<usize>()).collect();
    match values {
        Ok(values) if !s.trim().is_empty() => Ok(Cutoffs(values)),
        _ => Err(format!("{s:?} is not a comma-separated list of word ranks, such as 2000,6000")),
    }
}

pub(super) fn parse_level(s: &str) -> Result<rnnlm::files::corpus::Level, String> {
    s.parse()
}

pub(super) fn parse_cell(s: &str) -> Result<rnnlm::Cell, String> {
    rnnlm::Cell::from_name(s).ok_or_else(|| format!("{s:?} is not a cell: rnn, lstm or gru"))
}

/// Parses a number of type `T` that `accept` allows; `rule` says what that is.
pub(super) fn number<T: std::str::FromStr>(s: &str, accept: impl Fn(&T) -> bool, rule: &str) -> Result<T, String> {
    match s.parse::<T>() {
        Ok(v) if accept(&v) => Ok(v),
        Ok(_) => Err(rule.to_owned()),
        Err(_) => Err(format!("{s:?} is not a number")),
    }
}

pub(super) fn positive_usize(s: &str) -> Result<usize, String> {
    number(s, |&n: &usize| n > 0, "must be at least 1")
}

pub(super) fn dropout_ratio(s: &str) -> Result<f32, String> {
    number(s, |v: &f32| (0.0..1.0).contains(v), "must be at least 0 and below 1")
}

pub(super) fn positive_f32(s: &str) -> Result<f32, String> {
    number(s, |v: &f32| v.is_finite() && *v > 0.0, "must be a positive number")
}

pub(super) fn positive_f64(s: &str) -> Result<f64, String> {
    number(s, |v: &f64| v.is_finite() && *v > 0.0, "must be a positive number")
}

pub(super) fn finite_f64(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        _ => Err(format!("{s:?} is not a finite number")),
    }
}

pub(super) fn non_negative_f32(s: &str) -> Result<f32, String> {
    number(s, |v: &f32| v.is_finite() && *v >= 0.0, "must be zero or a positive number")
}

pub(super) fn parse_schedule(s: &str) -> Result<rnnlm::train::Schedule, String> {
    s.parse()
}

pub(super) fn decay_factor(s: &str) -> Result<f32, String> {
    number(
        s,
        |v: &f32| v.is_finite() && *v >= 1.0,
        "must be a number of at least 1 (the learning rate is divided by it)",
    )
}
