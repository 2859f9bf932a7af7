//! Sizes and rates written by people: `10MiB`, `1 GiB`, `500KiB`.

/// Parses a size such as `1048576`, `512KiB`, `1MiB`, `2 GiB` or `1TiB`.
///
/// Fails with a message naming the accepted units.
pub fn parse_size(s: &str) -> std::result::Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("invalid size {s:?}: expected a number such as 10MiB"))?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" | "K" | "KB" => 1 << 10,
        "MiB" | "M" | "MB" => 1 << 20,
        "GiB" | "G" | "GB" => 1 << 30,
        "TiB" | "T" | "TB" => 1 << 40,
        other => {
            return Err(format!(
                "invalid size unit {other:?} in {s:?}: use B, KiB, MiB, GiB or TiB"
            ))
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("size {s:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("10").unwrap(), 10);
        assert_eq!(parse_size("1KiB").unwrap(), 1024);
        assert_eq!(parse_size("1 MiB").unwrap(), 1 << 20);
        assert_eq!(parse_size("3GiB").unwrap(), 3 << 30);
        assert!(parse_size("1.5MiB").is_err());
        assert!(parse_size("1PiB").unwrap_err().contains("KiB, MiB"));
        assert!(parse_size("99999999999TiB").is_err());
    }
}
