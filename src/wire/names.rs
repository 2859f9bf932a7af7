//! File names from the wire are untrusted: the rules that keep every name
//! inside the upload root, and escaping for names shown on a terminal.

use std::fmt;

/// Longest name accepted, in bytes: the usual file system limit.
pub const MAX_NAME_LEN: usize = 255;

/// Longest path accepted, in bytes: as a request gives it, and as it is
/// from the home once resolved (`/a/b/c`, see [`path_len`]), so that no
/// name a client can make is too long to name again from the home.
pub const MAX_PATH_LEN: usize = 4096;

/// Deepest folder path accepted, in components.
pub const MAX_PATH_DEPTH: usize = 32;

/// The folder inside each root where partial uploads are kept. Reserved:
/// it is never listed and never accepted as a name.
pub const PARTIAL_DIR: &str = ".ftp-partial";

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameError {
    /// The name is empty.
    Empty,
    /// The name is longer than [`MAX_NAME_LEN`] bytes.
    TooLong(usize),
    /// The name has `/` or `\`, so it would name another folder.
    Separator,
    /// The name is `.` or `..`.
    DotName,
    /// The name has a NUL, a control character or an escape sequence.
    ControlCharacter,
    /// The name starts with a drive prefix such as `C:`.
    DrivePrefix,
    /// The name hides `/`, `\` or `..` behind percent-encoding.
    EncodedTraversal,
    /// The name is reserved for the server's own use.
    Reserved,
    /// A path has too many components or is too long.
    PathTooLong,
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameError::Empty => write!(f, "the name is empty"),
            NameError::TooLong(n) => {
                write!(f, "the name is too long: {n} > {MAX_NAME_LEN} bytes")
            }
            NameError::Separator => write!(
                f,
                "the name contains a path separator ('/' or '\\'); send a plain file name"
            ),
            NameError::DotName => write!(f, "'.' and '..' are not file names"),
            NameError::ControlCharacter => {
                write!(f, "the name contains a NUL or control character")
            }
            NameError::DrivePrefix => write!(f, "the name starts with a drive prefix like 'C:'"),
            NameError::EncodedTraversal => {
                write!(f, "the name contains a percent-encoded separator or '..'")
            }
            NameError::Reserved => write!(f, "the name {PARTIAL_DIR} is reserved by the server"),
            NameError::PathTooLong => write!(
                f,
                "the path is too long (at most {MAX_PATH_DEPTH} folders and {MAX_PATH_LEN} bytes)"
            ),
        }
    }
}

impl std::error::Error for NameError {}

/// Checks that `name` is a single, harmless path component.
///
/// Fails for the empty name, `.` and `..`, names with a separator, a NUL or
/// any control character (C0, DEL or C1), a drive prefix, percent-encoded
/// separators or dots, the reserved [`PARTIAL_DIR`], and names over
/// [`MAX_NAME_LEN`] bytes.
pub fn validate_name(name: &str) -> Result<&str, NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > MAX_NAME_LEN {
        return Err(NameError::TooLong(name.len()));
    }
    if name.chars().any(is_control) {
        return Err(NameError::ControlCharacter);
    }
    if name.contains(['/', '\\']) {
        return Err(NameError::Separator);
    }
    if name == "." || name == ".." {
        return Err(NameError::DotName);
    }
    let b = name.as_bytes();
    if b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':' {
        return Err(NameError::DrivePrefix);
    }
    let lower = name.to_ascii_lowercase();
    if ["%2f", "%5c", "%2e%2e", "%00"]
        .iter()
        .any(|p| lower.contains(p))
    {
        return Err(NameError::EncodedTraversal);
    }
    if name == PARTIAL_DIR {
        return Err(NameError::Reserved);
    }
    Ok(name)
}

/// Splits a folder path given to `cd` or `mkdir` into validated components.
///
/// `/` starts from the home folder; otherwise the path is relative to
/// `current`. `..` steps up but never above the home folder, and `.` and
/// empty components are skipped. Every other component must pass
/// [`validate_name`]. Returns the resulting components from the home folder.
pub fn resolve_folder(current: &[String], path: &str) -> Result<Vec<String>, NameError> {
    if path.len() > MAX_PATH_LEN {
        return Err(NameError::PathTooLong);
    }
    if path.contains('\\') {
        return Err(NameError::Separator);
    }
    let mut out: Vec<String> = if path.starts_with('/') {
        Vec::new()
    } else {
        current.to_vec()
    };
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            other => out.push(validate_name(other)?.to_string()),
        }
        if out.len() > MAX_PATH_DEPTH {
            return Err(NameError::PathTooLong);
        }
    }
    // A relative path from a deep current folder can be short itself.
    if path_len(&out) > MAX_PATH_LEN {
        return Err(NameError::PathTooLong);
    }
    Ok(out)
}

/// The length in bytes of the path `/c1/c2/...` from the home.
pub fn path_len(components: &[String]) -> usize {
    components.iter().map(|c| c.len() + 1).sum::<usize>().max(1)
}

/// Whether a tree moved to `to` (its full path from the home) keeps every
/// name within the limits, when its deepest folder is `depth` levels
/// below its top and its longest path below the top (`a/b/c`) has `len`
/// bytes. A folder's path holds at most [`MAX_PATH_DEPTH`] folders, and
/// a file's folder as many.
pub fn fits_below(to: &[String], depth: usize, len: usize) -> bool {
    let below = match len {
        0 => 0,
        len => len + 1,
    };
    to.len() + depth <= MAX_PATH_DEPTH && path_len(to) + below <= MAX_PATH_LEN
}

/// Splits a file path given to `put`, `get`, `rm` or `mv` into its folder
/// (resolved as [`resolve_folder`] does) and its name, the last component,
/// which must pass [`validate_name`] itself: `a/b/c.txt` from `/x` is
/// `(["x", "a", "b"], "c.txt")`; `/c.txt` is in the home. A path that
/// ends in `/`, `.` or `..` names no file and is refused.
pub fn resolve_file(current: &[String], path: &str) -> Result<(Vec<String>, String), NameError> {
    if path.len() > MAX_PATH_LEN {
        return Err(NameError::PathTooLong);
    }
    let (folder, name) = match path.rfind('/') {
        Some(i) => (&path[..=i], &path[i + 1..]),
        None => ("", path),
    };
    let name = validate_name(name)?;
    let folder = resolve_folder(current, folder)?;
    if path_len(&folder) + 1 + name.len() > MAX_PATH_LEN {
        return Err(NameError::PathTooLong);
    }
    Ok((folder, name.to_string()))
}

/// Shows a folder path from the home folder as `/a/b`.
pub fn display_folder(components: &[String]) -> String {
    format!("/{}", components.join("/"))
}

fn is_control(c: char) -> bool {
    c.is_control()
}

/// Characters that show as nothing or reorder the text around them, so
/// that a name holding them reads as another name (`invoice\u{202e}fdp.exe`
/// shows as `invoiceexe.pdf`): zero-width ones, bidi controls, line and
/// paragraph separators, and a few other invisible fillers. Names may hold
/// them (Persian needs U+200C); they are only escaped when shown.
fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{ad}' | '\u{61c}' | '\u{180e}'
        | '\u{200b}'..='\u{200f}'
        | '\u{2028}'..='\u{202e}'
        | '\u{2060}'..='\u{2064}'
        | '\u{2066}'..='\u{2069}'
        | '\u{feff}')
}

/// Escapes control and invisible characters for printing: a name from the
/// server can never move the cursor, change colours, rewrite the terminal
/// title, or pass for another name.
pub fn escape(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if is_control(c) || is_invisible(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relative_path_from_a_deep_folder_is_bounded_once_resolved() {
        let long = |c: char| c.to_string().repeat(250);
        // 16 folders of 250 bytes: 4,016 bytes from the home.
        let deep: Vec<String> = (0..16).map(|i| long((b'a' + i) as char)).collect();
        assert_eq!(path_len(&deep), 4016);
        assert!(resolve_folder(&deep, "x").is_ok());
        assert_eq!(
            resolve_folder(&deep, &long('z')),
            Err(NameError::PathTooLong)
        );
        assert_eq!(resolve_file(&deep, &long('z')), Err(NameError::PathTooLong));
        assert!(resolve_file(&deep, &"f".repeat(79)).is_ok());
        assert_eq!(
            resolve_file(&deep, &"f".repeat(80)),
            Err(NameError::PathTooLong)
        );
    }

    #[test]
    fn a_tree_fits_below_a_place_only_within_both_limits() {
        let at = |n: usize| vec!["d".to_string(); n];
        assert!(fits_below(&at(1), 31, 100));
        assert!(!fits_below(&at(2), 31, 100));
        assert!(fits_below(&at(32), 0, 0), "an empty folder at the limit");
        assert!(fits_below(&at(1), 0, 4093));
        assert!(!fits_below(&at(1), 0, 4094));
    }

    #[test]
    fn plain_names_pass() {
        for n in [
            "a.txt",
            "file with spaces",
            "Übung.pdf",
            ".bashrc",
            "...",
            "a..b",
            "%41",
        ] {
            assert_eq!(validate_name(n), Ok(n), "{n}");
        }
    }

    #[test]
    fn names_that_leave_the_root_fail() {
        let long = "x".repeat(256);
        let cases = [
            "",
            ".",
            "..",
            "../x",
            "..\\x",
            "/etc/passwd",
            "\\windows",
            "C:x",
            "c:\\x",
            "//server/share",
            "\\\\server\\share",
            "a/b",
            "....//",
            "..../",
            "a\0b",
            "a\nb",
            "a\rb",
            "\t",
            "\x1b[31mred",
            "\u{9b}31m",
            "\x7f",
            "%2e%2e%2fx",
            "%2E%2E",
            "..%2fx",
            "..%5cx",
            "x%00",
            long.as_str(),
            ".ftp-partial",
            "a/../../b",
            "./x",
            "x/",
        ];
        for n in cases {
            assert!(validate_name(n).is_err(), "{n:?} was accepted");
        }
    }

    #[test]
    fn folders_resolve_inside_home() {
        let here = vec!["a".to_string()];
        assert_eq!(resolve_folder(&here, "b/c").unwrap(), ["a", "b", "c"]);
        assert_eq!(resolve_folder(&here, "..").unwrap(), Vec::<String>::new());
        assert_eq!(
            resolve_folder(&here, "../../..").unwrap(),
            Vec::<String>::new()
        );
        assert_eq!(resolve_folder(&here, "/").unwrap(), Vec::<String>::new());
        assert_eq!(resolve_folder(&here, "/x/./y/").unwrap(), ["x", "y"]);
        assert!(resolve_folder(&here, "a\\b").is_err());
        assert!(resolve_folder(&here, "x/\x1b").is_err());
        assert!(resolve_folder(&here, &"d/".repeat(40)).is_err());
        assert_eq!(display_folder(&here), "/a");
    }

    #[test]
    fn files_resolve_to_a_folder_and_a_name() {
        let here = vec!["a".to_string()];
        let split = |p: &str| resolve_file(&here, p);
        assert_eq!(split("f.txt").unwrap(), (here.clone(), "f.txt".into()));
        assert_eq!(
            split("b/c/f.txt").unwrap(),
            (vec!["a".into(), "b".into(), "c".into()], "f.txt".into())
        );
        assert_eq!(split("/f").unwrap(), (vec![], "f".into()));
        assert_eq!(split("../../f").unwrap(), (vec![], "f".into()));
        assert_eq!(split("./x/../f").unwrap(), (here.clone(), "f".into()));
        for bad in [
            "",
            "/",
            "b/",
            "..",
            "b/..",
            ".",
            "a\\b",
            "x/\x1b/f",
            "b/.ftp-partial",
        ] {
            assert!(split(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(split(&"d/".repeat(40)).is_err());
        assert!(split(&format!("/{}f", "d/".repeat(33))).is_err());
        assert!(split(&format!("/{}f", "d/".repeat(32))).is_ok());
    }

    #[test]
    fn escape_neutralises_terminal_sequences() {
        assert_eq!(escape("a\x1b[2Jb"), "a\\u{1b}[2Jb");
        assert_eq!(escape("line\nbreak"), "line\\nbreak");
        assert_eq!(escape("plain"), "plain");
    }

    #[test]
    fn escape_shows_invisible_and_reordering_characters() {
        for c in ('\u{200b}'..='\u{200f}')
            .chain('\u{202a}'..='\u{202e}')
            .chain('\u{2066}'..='\u{2069}')
            .chain(['\u{feff}', '\u{2060}', '\u{2028}', '\u{2029}'])
        {
            let shown = escape(&format!("a{c}b"));
            assert_eq!(
                shown,
                format!("a\\u{{{:x}}}b", c as u32),
                "U+{:04X}",
                c as u32
            );
        }
        assert_eq!(escape("Übung.pdf"), "Übung.pdf");
        assert_eq!(escape("日本語"), "日本語");
    }
}
