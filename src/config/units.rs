//! Sizes and rates written by people: `10MiB`, `1 GiB`, `500KB`, and
//! sizes written for people: `1.50 KiB`.
//!
//! IEC units are powers of 1024 and SI units powers of 1000, as their
//! names say: `1MiB` is 1,048,576 bytes and `1MB` is 1,000,000.

/// Parses a size such as `1048576`, `512KiB`, `1.5 MiB`, `2GB` or `1TiB`.
///
/// Fails with a message that shows an accepted form.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    parse_size::Config::new().parse_size(t).map_err(|e| {
        // The crate says "invalid digit" for an unknown unit; name the unit.
        let number = t.trim_end_matches(|c: char| c.is_alphabetic()).trim();
        let unit = t[number.len()..].trim();
        if !unit.is_empty() && number.parse::<f64>().is_ok() {
            format!(
                "invalid size unit {unit:?} in {s:?}: use B, kB, MB, GB, TB (1000-based) \
                 or KiB, MiB, GiB, TiB (1024-based)"
            )
        } else {
            format!(
                "invalid size {s:?}: {e}; write it like 10MiB (1024-based) or 10MB (1000-based)"
            )
        }
    })
}

/// `1536` → `1.50 KiB`.
pub fn human(n: u64) -> String {
    indicatif::HumanBytes(n).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_sizes() {
        assert_eq!(human(0), "0 B");
        assert_eq!(human(1536), "1.50 KiB");
        assert_eq!(human(3 << 30), "3.00 GiB");
    }

    #[test]
    fn iec_units_are_binary_and_si_units_decimal() {
        assert_eq!(parse_size("10").unwrap(), 10);
        assert_eq!(parse_size("1KiB").unwrap(), 1024);
        assert_eq!(parse_size("1 MiB").unwrap(), 1 << 20);
        assert_eq!(parse_size("3GiB").unwrap(), 3 << 30);
        assert_eq!(parse_size("1MB").unwrap(), 1_000_000);
        assert_eq!(parse_size("2kB").unwrap(), 2_000);
        assert_eq!(parse_size("1.5MiB").unwrap(), 3 << 19);
    }

    #[test]
    fn nonsense_is_refused_with_an_example() {
        assert!(parse_size("ten").unwrap_err().contains("10MiB"));
        assert!(parse_size("12 parsecs")
            .unwrap_err()
            .starts_with("invalid size unit \"parsecs\""));
        assert!(parse_size("99999999999TiB").is_err());
    }
}
