//! Short human spellings of durations for probe reasons (`timed out after 2s`, `300ms`, `1.5s`).
//! Display only; parsing durations is the registry's job.

use std::time::Duration;

/// `300ms` below a second, else seconds rounded to a tenth (`2s`, `1.5s`, `30s`).
pub(crate) fn human(duration: Duration) -> String {
    let millis = duration.as_millis();
    if millis < 1000 {
        return format!("{millis}ms");
    }
    let tenths = (millis + 50) / 100;
    if tenths.is_multiple_of(10) {
        format!("{}s", tenths / 10)
    } else {
        format!("{}.{}s", tenths / 10, tenths % 10)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings() {
        let cases = [
            (0, "0ms"),
            (5, "5ms"),
            (999, "999ms"),
            (1000, "1s"),
            (1500, "1.5s"),
            (2000, "2s"),
            (30_004, "30s"),
            (30_060, "30.1s"),
            (119_960, "120s"),
        ];
        for (millis, expected) in cases {
            assert_eq!(human(Duration::from_millis(millis)), expected, "{millis}ms");
        }
    }
}
