//! Human durations in the config: "250ms", "15s", "5m", "2h", "30d". Pure.

use std::time::Duration;

/// Parse "<number><unit>" with unit ms, s, m, h or d. The number may have a
/// fractional part ("1.5h"). The error says what is accepted.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("'{text}' is not a duration: write a number and a unit, e.g. \"500ms\", \"15s\", \"5m\", \"2h\" or \"30d\""))?;
    let secs_per = match unit.trim() {
        "ms" => 0.001,
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        "d" => 86400.0,
        "" => {
            return Err(format!(
                "'{text}' has no unit: add ms, s, m, h or d (e.g. \"{num}s\")"
            ))
        }
        other => {
            return Err(format!(
                "'{text}': unknown unit '{other}'; use ms, s, m, h or d"
            ))
        }
    };
    let secs = n * secs_per;
    if !secs.is_finite() || !(0.0..=100.0 * 365.0 * 86400.0).contains(&secs) {
        return Err(format!("'{text}' is out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("15s"), Ok(Duration::from_secs(15)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration(" 30d "), Ok(Duration::from_secs(30 * 86400)));
        assert!(parse_duration("15").unwrap_err().contains("no unit"));
        assert!(parse_duration("5 weeks")
            .unwrap_err()
            .contains("unknown unit"));
        assert!(parse_duration("fast")
            .unwrap_err()
            .contains("not a duration"));
        assert!(parse_duration("-5s").is_err());
    }
}
