//! Reading a node's `/metrics` (Prometheus text exposition) in tests.

/// The value of the sample written exactly `sample`: the metric's name
/// with its labels as the node exposes them, e.g.
/// `enclave_rate_limited_total{limit="requests"}`. `None` when absent.
pub fn sample(text: &str, sample: &str) -> Option<f64> {
    lines(text).find_map(|(head, value)| (head == sample).then_some(value))
}

/// The sum of every sample of metric `name`, whatever its labels (0 when
/// there is none).
pub fn sum(text: &str, name: &str) -> f64 {
    lines(text)
        .filter(|(head, _)| head.split('{').next() == Some(name))
        .map(|(_, value)| value)
        .sum()
}

/// (name with labels, value) of every sample line.
fn lines(text: &str) -> impl Iterator<Item = (&str, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (head, value) = l.trim_end().rsplit_once(' ')?;
            Some((head, value.parse().ok()?))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# HELP x y\n# TYPE enclave_a counter\nenclave_a_total{limit=\"requests\"} 3\nenclave_a_total{limit=\"writes\"} 4\nenclave_ab 9\nenclave_store_bytes 1024\n";

    #[test]
    fn a_sample_is_found_by_its_exact_name_and_labels() {
        assert_eq!(sample(TEXT, "enclave_a_total{limit=\"writes\"}"), Some(4.0));
        assert_eq!(sample(TEXT, "enclave_store_bytes"), Some(1024.0));
        assert_eq!(sample(TEXT, "enclave_a"), None, "a prefix is not a name");
        assert_eq!(sum(TEXT, "enclave_a_total"), 7.0);
        assert_eq!(sum(TEXT, "enclave_a"), 0.0);
    }
}
