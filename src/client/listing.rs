//! Listings on the client: reading a listing page by page, and printing
//! each page as it comes, so that a folder of any size is shown with one
//! page in memory.

use std::io::{self, Read, Write};

use crate::client::command::ListOptions;
use crate::config::units::human;
use crate::error::{Error, Result};
use crate::wire::frame::{read_full, whole};
use crate::wire::listing::{decode_page, Step, MAX_PAGE_LEN};
use crate::wire::message::{Entry, EntryKind, Listing};
use crate::wire::names::escape;

/// Reads the pages of one listing, handing each to `each` as it arrives,
/// until the page that says no more follow. Returns whether the server
/// cut the listing short (an older server does, past 50,000 names).
///
/// Fails when a page is larger than [`MAX_PAGE_LEN`] (before reading it),
/// is not a listing, or is an error reply; when the connection breaks;
/// and when `each` fails.
pub(crate) fn read_pages<R: Read>(
    r: &mut R,
    mut each: impl FnMut(Listing) -> Result<()>,
) -> Result<bool> {
    let mut buf = Vec::new();
    loop {
        match decode_page(&mut buf, MAX_PAGE_LEN)? {
            // Exactly what the frame lacks, never a byte of what follows.
            Step::Need(n) => {
                let have = buf.len();
                buf.resize(have + n, 0);
                let got = read_full(r, &mut buf[have..])?;
                if got == 0 && have == 0 {
                    return Err(Error::Closed);
                }
                whole("listing page", got, n)?;
            }
            Step::Page(page) => {
                let (more, truncated) = (page.more, page.truncated);
                each(page)?;
                if !more {
                    return Ok(truncated);
                }
            }
        }
    }
}

/// Prints a listing page by page: size, modification time (UTC) and name,
/// folders with a trailing `/`. Names are escaped. Dot-files are left out
/// unless `all`, as `ls` does.
///
/// A recursive listing is held to its end and printed sorted, each
/// folder's entries together (the top folder's first, then each folder
/// below in name order), as `ls -R` does: the server sorts each page, not
/// the whole tree, so printed as it came one folder's files could show up
/// in several places.
pub(crate) struct ListingPrinter {
    how: ListOptions,
    shown: u64,
    /// A recursive listing's entries, until it ends.
    held: Vec<Entry>,
}

/// Most entries a recursive listing holds before it is printed.
const MAX_HELD: usize = crate::client::tree::MAX_TREE_ENTRIES;

impl ListingPrinter {
    /// A printer that has shown nothing yet.
    pub(crate) fn new(how: ListOptions) -> ListingPrinter {
        ListingPrinter {
            how,
            shown: 0,
            held: Vec::new(),
        }
    }

    /// Prints the entries of one page, or holds them for a recursive
    /// listing.
    ///
    /// Fails when `out` does, or a recursive listing holds more than
    /// [`MAX_HELD`] entries.
    pub(crate) fn page(&mut self, out: &mut impl Write, page: &Listing) -> io::Result<()> {
        let all = self.how.all;
        let shown = page
            .files
            .iter()
            .filter(|e| all || !e.name.split('/').any(|part| part.starts_with('.')));
        if self.how.recursive {
            self.held.extend(shown.cloned());
            if self.held.len() > MAX_HELD {
                let why = format!("the server listed more than {MAX_HELD} entries");
                return Err(io::Error::other(why));
            }
            return Ok(());
        }
        for e in shown {
            self.line(out, e)?;
        }
        Ok(())
    }

    fn line(&mut self, out: &mut impl Write, e: &Entry) -> io::Result<()> {
        let when = utc_time(e.mtime);
        let slash = if e.kind == EntryKind::Dir { "/" } else { "" };
        let size = match self.how.human {
            true => human(e.size),
            false => e.size.to_string(),
        };
        self.shown += 1;
        writeln!(out, "{size:>12}  {when}  {}{slash}", escape(&e.name))
    }

    /// Ends the listing: prints what a recursive one held, and says so
    /// when nothing was shown, or when the server left names out.
    ///
    /// Fails when `out` does.
    pub(crate) fn finish(&mut self, out: &mut impl Write, truncated: bool) -> io::Result<()> {
        let mut held = std::mem::take(&mut self.held);
        held.sort_by(|a, b| folder_order(&a.name).cmp(&folder_order(&b.name)));
        for e in &held {
            self.line(out, e)?;
        }
        if self.shown == 0 {
            writeln!(out, "(no files)")?;
        }
        if truncated {
            writeln!(out, "(the server listed only part of this folder)")?;
        }
        Ok(())
    }
}

/// Where a path below the listed folder goes in a recursive listing: by
/// its folder, component by component, then by its own name.
fn folder_order(path: &str) -> (Vec<&str>, &str) {
    match path.rsplit_once('/') {
        Some((folder, name)) => (folder.split('/').collect(), name),
        None => (Vec::new(), path),
    }
}

/// A Unix time in seconds as an RFC 3339 UTC time, to the second.
fn utc_time(secs: u64) -> String {
    i64::try_from(secs)
        .ok()
        .and_then(|s| jiff::Timestamp::from_second(s).ok())
        .map_or_else(|| "(time unknown)".into(), |t| t.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::listing::{PageBuilder, PageEnd};

    fn entry(name: &str, kind: EntryKind, size: u64) -> Entry {
        Entry {
            name: name.into(),
            kind,
            size,
            mtime: 0,
            blake3: None,
        }
    }

    fn listing(files: Vec<Entry>) -> Listing {
        Listing {
            files,
            truncated: false,
            more: false,
        }
    }

    fn printed(pages: &[Listing], how: ListOptions, truncated: bool) -> String {
        let mut out = Vec::new();
        let mut printer = ListingPrinter::new(how);
        for p in pages {
            printer.page(&mut out, p).unwrap();
        }
        printer.finish(&mut out, truncated).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn pages_are_read_until_the_last_and_nothing_past_it() {
        let mut bytes = Vec::new();
        for (names, end) in [(["b", "a"], PageEnd::More), (["c", "d"], PageEnd::Last)] {
            let mut page = PageBuilder::new(1024);
            for n in names {
                page.push(entry(n, EntryKind::File, 1)).unwrap();
            }
            bytes.extend(page.finish(end).unwrap());
        }
        bytes.extend_from_slice(b"next reply");
        let mut r = bytes.as_slice();
        let mut names = Vec::new();
        let truncated = read_pages(&mut r, |p| {
            names.extend(p.files.into_iter().map(|e| e.name));
            Ok(())
        })
        .unwrap();
        assert_eq!(names, ["a", "b", "c", "d"]);
        assert!(!truncated);
        assert_eq!(r, b"next reply");
    }

    #[test]
    fn an_older_servers_single_frame_is_a_listing_of_one_page() {
        let old = br#"{"status":"ok","files":[{"name":"a","kind":"file","size":1,"mtime":0}],"truncated":true}"#;
        let bytes = crate::wire::frame::encode(old).unwrap();
        let mut pages = 0;
        let truncated = read_pages(&mut &bytes[..], |p| {
            pages += 1;
            assert_eq!(p.files[0].name, "a");
            Ok(())
        })
        .unwrap();
        assert_eq!(pages, 1);
        assert!(truncated);
        // One bigger than a page may be is refused from its length alone.
        let mut huge = (MAX_PAGE_LEN as i32 + 1).to_le_bytes().to_vec();
        huge.extend_from_slice(b"{");
        let err = read_pages(&mut &huge[..], |_| Ok(())).unwrap_err();
        assert!(matches!(err, Error::FrameTooLarge { .. }), "{err}");
    }

    #[test]
    fn a_reply_cut_in_the_middle_of_a_page_is_an_error() {
        let mut page = PageBuilder::new(1024);
        page.push(entry("a", EntryKind::File, 1)).unwrap();
        let frame = page.finish(PageEnd::More).unwrap();
        let err = read_pages(&mut &frame[..frame.len() - 3], |_| Ok(())).unwrap_err();
        assert!(err.is_disconnect(), "{err}");
        let err = read_pages(&mut &frame[..], |_| Ok(())).unwrap_err();
        assert!(matches!(err, Error::Closed), "{err}");
    }

    #[test]
    fn listing_escapes_names_and_marks_folders() {
        let page = listing(vec![
            entry("evil\x1b[2J", EntryKind::File, 5),
            entry("sub", EntryKind::Dir, 0),
        ]);
        let text = printed(&[page], ListOptions::default(), false);
        assert!(!text.contains('\x1b'));
        assert!(text.contains("evil\\u{1b}[2J"));
        assert!(text.contains("1970-01-01T00:00:00Z  sub/"));
        assert_eq!(
            printed(&[listing(vec![])], ListOptions::default(), false),
            "(no files)\n"
        );
    }

    #[test]
    fn dot_files_hidden_unless_all_and_sizes_human_on_request() {
        let page = listing(vec![
            entry(".gitkeep", EntryKind::File, 0),
            entry("big.bin", EntryKind::File, 3 << 20),
        ]);
        let pages = [page];
        let plain = printed(&pages, ListOptions::default(), false);
        assert!(
            !plain.contains(".gitkeep") && plain.contains(" 3145728  "),
            "{plain}"
        );
        let how = ListOptions {
            recursive: false,
            all: true,
            human: true,
        };
        let all = printed(&pages, how, false);
        assert!(
            all.contains(".gitkeep") && all.contains("3.00 MiB  "),
            "{all}"
        );
        let only_dots = listing(vec![entry(".hidden", EntryKind::File, 1)]);
        let text = printed(&[only_dots], ListOptions::default(), false);
        assert_eq!(text, "(no files)\n");
    }

    #[test]
    fn a_listing_spread_over_pages_prints_as_one_and_says_when_cut() {
        let one = listing(vec![entry(".a", EntryKind::File, 1)]);
        let two = listing(vec![entry("b", EntryKind::File, 2)]);
        let text = printed(&[one, two], ListOptions::default(), true);
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(text.ends_with("  b\n(the server listed only part of this folder)\n"));
    }

    #[test]
    fn a_recursive_listing_prints_each_folder_together_whatever_the_pages() {
        let file = |n: &str| entry(n, EntryKind::File, 1);
        let pages = [
            listing(vec![
                file("b/x"),
                file("top2"),
                entry("b", EntryKind::Dir, 0),
            ]),
            listing(vec![
                file("a/deep/z"),
                file("top1"),
                entry("a", EntryKind::Dir, 0),
            ]),
            listing(vec![
                file("a/y"),
                file("b/w"),
                entry("a/deep", EntryKind::Dir, 0),
            ]),
        ];
        let how = ListOptions {
            recursive: true,
            ..ListOptions::default()
        };
        let text = printed(&pages, how, false);
        let names: Vec<&str> = text
            .lines()
            .map(|l| l.rsplit("  ").next().unwrap())
            .collect();
        assert_eq!(
            names,
            ["a/", "b/", "top1", "top2", "a/deep/", "a/y", "a/deep/z", "b/w", "b/x"]
        );
    }
}
