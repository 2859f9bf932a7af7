//! Sizes and rates written by people: `10MiB`, `1 GiB`, `500KB`, and
//! sizes written for people: `1.50 KiB`.
//!
//! IEC units are powers of 1024 and SI units powers of 1000, as their
//! names say: `1MiB` is 1,048,576 bytes and `1MB` is 1,000,000.

use serde::{Deserialize, Serialize};

/// Parses a size such as `1048576`, `512KiB`, `1.5 MiB`, `2GB` or `1TiB`.
///
/// Fails with a message that shows an accepted form.
pub(crate) fn parse_size(s: &str) -> Result<u64, String> {
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
pub(crate) fn human(n: u64) -> String {
    indicatif::HumanBytes(n).to_string()
}

/// A number of bytes, written as a number or as a size such as `10GiB`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Size(pub u64);

impl std::str::FromStr for Size {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Size, String> {
        parse_size(s).map(Size)
    }
}

impl std::fmt::Display for Size {
    /// The largest binary unit that divides the size exactly, so a
    /// printed size reads back to the same number.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let units = [
            (1 << 40, "TiB"),
            (1 << 30, "GiB"),
            (1 << 20, "MiB"),
            (1 << 10, "KiB"),
        ];
        match units
            .iter()
            .find(|(n, _)| self.0 >= *n && self.0.is_multiple_of(*n))
        {
            Some((n, unit)) => write!(f, "{}{unit}", self.0 / n),
            None => write!(f, "{}", self.0),
        }
    }
}

impl Serialize for Size {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Size, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged, expecting = "a size such as 10GiB, or a number of bytes")]
        enum Written {
            Bytes(u64),
            Text(String),
        }
        match Written::deserialize(d)? {
            Written::Bytes(n) => Ok(Size(n)),
            Written::Text(t) => t.parse().map_err(serde::de::Error::custom),
        }
    }
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

    #[test]
    fn sizes_print_in_the_largest_exact_unit_and_read_back() {
        for (n, text) in [
            (1 << 30, "1GiB"),
            (1024, "1KiB"),
            (1000, "1000"),
            (0, "0"),
            (3 << 19, "1536KiB"),
        ] {
            assert_eq!(Size(n).to_string(), text);
            assert_eq!(text.parse::<Size>().unwrap(), Size(n));
        }
    }
}
