//! Replies: what a server answers, `ok` with a payload or `error` with a
//! stable code. Pure data, no I/O beyond recognising an error frame.

use std::borrow::Cow;
use std::io::Read;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use crate::wire::code::ErrorCode;
use crate::wire::error::WireError;
use crate::wire::frame::{read_full, whole};

/// The body of an error reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorReply {
    /// What went wrong, for programs.
    pub code: ErrorCode,
    /// What went wrong, for people.
    pub message: String,
}

impl ErrorReply {
    /// An error reply.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ErrorReply {
        ErrorReply {
            code,
            message: message.into(),
        }
    }
}

impl From<ErrorReply> for WireError {
    fn from(e: ErrorReply) -> WireError {
        match e.code {
            ErrorCode::AuthFailed => WireError::AuthFailed,
            code => WireError::Remote {
                code,
                message: clip(e.message),
            },
        }
    }
}

/// The longest server message an error keeps, in bytes: a message is for
/// people, and one of megabytes would only flood the terminal.
pub const MAX_REMOTE_MESSAGE: usize = 1024;

/// `message` cut to [`MAX_REMOTE_MESSAGE`] bytes (at a character
/// boundary), marked with `…` when it was cut.
pub(crate) fn clip(mut message: String) -> String {
    if message.len() > MAX_REMOTE_MESSAGE {
        let mut end = MAX_REMOTE_MESSAGE;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message.push('…');
    }
    message
}

/// A reply: `{"status":"ok", ...T's fields}` or
/// `{"status":"error","code":...,"message":...}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum Reply<T> {
    /// Success, with the command's fields.
    Ok(T),
    /// Failure.
    Error(ErrorReply),
}

impl<T> Reply<T> {
    /// Turns the reply into a `Result`.
    pub fn into_result(self) -> Result<T, WireError> {
        match self {
            Reply::Ok(t) => Ok(t),
            Reply::Error(e) => Err(e.into()),
        }
    }
}

/// Parses the body of a reply as `T` when its status is `ok`, and as an
/// [`WireError`] when it is `error`.
///
/// Serde's internally tagged [`Reply`] would buffer the whole body as a
/// tree of values before it finds the tag (a reply of 16 MiB took the
/// client past 270 MiB); here a small struct that skips every other field
/// reads the status first, and the body is then parsed once, into what it
/// holds.
///
/// Fails with [`WireError::Malformed`] when the body is not a reply of that
/// shape, and with the server's error for an error reply.
pub fn parse_reply<T: DeserializeOwned>(body: &[u8]) -> Result<T, WireError> {
    #[derive(Deserialize)]
    struct Status<'a> {
        #[serde(borrow)]
        status: Cow<'a, str>,
    }
    let malformed = |e: serde_json::Error| WireError::Malformed(e.to_string());
    let status: Status = serde_json::from_slice(body).map_err(malformed)?;
    match &*status.status {
        "ok" => serde_json::from_slice(body).map_err(malformed),
        "error" => Err(serde_json::from_slice::<ErrorReply>(body)
            .map_err(malformed)?
            .into()),
        other => Err(WireError::Malformed(format!(
            "a reply whose status is {other:?}, neither ok nor error"
        ))),
    }
}

/// `ready` reply to a `put` with `ack` or `resume`: send the body from
/// `offset`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutReady {
    /// Bytes the server already holds; send `filesize - offset` bytes.
    pub offset: u64,
}

/// Final reply to a `put`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutDone {
    /// The name the file was stored under.
    pub filename: String,
    /// Size of the stored file.
    pub size: u64,
    /// Bytes that crossed the network in this request.
    pub received: u64,
    /// Whether an existing file of that name was replaced.
    #[serde(default)]
    pub replaced: bool,
    /// Digest of the stored file, when one was checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blake3: Option<String>,
}

/// Reply to a `get`, sent before the body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetReady {
    /// The file's name.
    pub filename: String,
    /// Size of the whole file; `filesize - offset` bytes follow, then a
    /// [`Digest`](crate::wire::message::Digest) frame.
    pub filesize: u64,
    /// The offset the body starts at.
    pub offset: u64,
    /// Modification time, seconds since the Unix epoch.
    pub mtime: u64,
    /// Permission bits of the stored file, when the store keeps them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
}

/// Reply to a `sig`, sent before its `chunks` entries of
/// [`crate::wire::delta::signature::ENTRY_LEN`] bytes each.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SigReady {
    /// The file's name, as asked.
    pub filename: String,
    /// The file's size: the chunks add up to it.
    pub filesize: u64,
    /// How many entries follow.
    pub chunks: u64,
    /// The whole file's BLAKE3, hex-encoded: names the version the
    /// signature describes.
    pub blake3: String,
    /// Its modification time, seconds since the Unix epoch.
    #[serde(default)]
    pub mtime: u64,
}

/// One entry of a listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The entry's name.
    pub name: String,
    /// `file` or `dir`.
    pub kind: EntryKind,
    /// Size in bytes; 0 for folders.
    pub size: u64,
    /// Modification time, seconds since the Unix epoch.
    pub mtime: u64,
    /// The file's BLAKE3, hex-encoded, when the listing asked for digests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blake3: Option<String>,
}

/// What an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A folder.
    Dir,
}

/// Reply to `ls`, or one page of it (see [`crate::wire::listing`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listing {
    /// Entries, sorted by name within the page.
    pub files: Vec<Entry>,
    /// True when the folder held more entries than this one-frame reply
    /// carries (only a client that did not ask for pages sees it).
    #[serde(default)]
    pub truncated: bool,
    /// True when another page of the listing follows this one.
    #[serde(default, skip_serializing_if = "is_false")]
    pub more: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Reply to `echo`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Echoed {
    /// The text, upper-cased.
    pub text: String,
}

/// Reply to `prove`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proof {
    /// Hex-encoded HMAC-MD5 over a fixed label and the client's nonce.
    pub proof: String,
}

/// Reply to `quota`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Bytes used in the home folder, partial uploads included.
    pub used: u64,
    /// The user's quota, if there is one.
    #[serde(default)]
    pub quota: Option<u64>,
    /// Bytes the user can still upload: the smaller of the quota left and
    /// the free disk space.
    pub available: u64,
}

/// Reply to `cd`, `pwd` and `mkdir`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Folder {
    /// The folder, as a path from the home folder starting with `/`.
    pub path: String,
}

/// Reply to `rm`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Removed {
    /// The name removed.
    pub filename: String,
    /// How many files and folders went, the named one included (more than
    /// one only for a recursive `rm`).
    #[serde(default = "one")]
    pub entries: u64,
}

fn one() -> u64 {
    1
}

/// Reply to `mv`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Moved {
    /// The old path, as a path from the home folder starting with `/`.
    pub from: String,
    /// The new path, likewise.
    pub to: String,
}

/// Longest error frame taken in place of a challenge or a login proof: a
/// busy server's refusal is a short sentence.
pub const MAX_REFUSAL_LEN: usize = 4096;

/// Recognises an error frame where a challenge was expected: a busy server
/// answers a new connection with one instead of a challenge. `start` holds
/// the bytes read so far; the rest of the frame is read from `rest`, which
/// the caller holds to the login's deadline.
///
/// Returns `None` when `start` is not the start of an error frame (a
/// random challenge looks like one with a chance of about 2^-80); else the
/// server's error, or why its frame could not be taken: longer than
/// [`MAX_REFUSAL_LEN`], cut short, or not a reply.
pub(crate) fn error_reply_in<R: Read>(start: &[u8], rest: &mut R) -> Option<WireError> {
    const MARKER: &[u8] = b"{\"status\":\"error\"";
    if start.len() < 4 + MARKER.len() || !start[4..].starts_with(MARKER) {
        return None;
    }
    let len = i32::from_le_bytes([start[0], start[1], start[2], start[3]]);
    let len = match usize::try_from(len) {
        Ok(len) if len <= MAX_REFUSAL_LEN => len,
        _ => {
            return Some(WireError::Malformed(format!(
                "the server sent an error frame of {len} bytes before the login \
                 (at most {MAX_REFUSAL_LEN} are read)"
            )))
        }
    };
    let mut body = start[4..].to_vec();
    if body.len() < len {
        let mut more = vec![0u8; len - body.len()];
        let got = match read_full(rest, &mut more) {
            Ok(got) => got,
            Err(e) => return Some(e),
        };
        if let Err(e) = whole("error frame", got, more.len()) {
            return Some(e);
        }
        body.extend_from_slice(&more);
    }
    body.truncate(len);
    Some(parse_reply::<Value>(&body).err().unwrap_or_else(|| {
        WireError::Malformed("the server sent an ok frame where the login was expected".into())
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_round_trip() {
        let ok: Reply<Echoed> = Reply::Ok(Echoed { text: "HI".into() });
        let s = serde_json::to_string(&ok).unwrap();
        assert_eq!(s, r#"{"status":"ok","text":"HI"}"#);
        let err: Reply<Echoed> =
            serde_json::from_str(r#"{"status":"error","code":"bad_name","message":"no"}"#).unwrap();
        assert!(matches!(
            err.into_result(),
            Err(WireError::Remote {
                code: ErrorCode::BadName,
                ..
            })
        ));
        let future: Reply<Echoed> =
            serde_json::from_str(r#"{"status":"error","code":"brand_new","message":"?"}"#).unwrap();
        match future.into_result() {
            Err(WireError::Remote { code, .. }) => {
                assert_eq!(code, ErrorCode::Unknown("brand_new".into()))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn replies_parse_status_first_then_once_into_what_they_hold() {
        let ok: Echoed =
            parse_reply(br#"{"text":"HI","status":"ok","extra":[1,{"a":2}]}"#).unwrap();
        assert_eq!(ok.text, "HI");
        let err = parse_reply::<Echoed>(br#"{"status":"error","code":"not_found","message":"no"}"#)
            .unwrap_err();
        assert!(
            matches!(
                err,
                WireError::Remote {
                    code: ErrorCode::NotFound,
                    ..
                }
            ),
            "{err}"
        );
        // An escaped status is still read; an unknown one is refused, shown escaped.
        assert!(parse_reply::<Echoed>(br#"{"status":"\u006fk","text":"x"}"#).is_ok());
        let odd = parse_reply::<Echoed>(b"{\"status\":\"\\u001b[2J\"}").unwrap_err();
        assert!(matches!(odd, WireError::Malformed(_)), "{odd}");
        assert!(!odd.to_string().contains('\x1b'), "{odd}");
        assert!(matches!(
            parse_reply::<Echoed>(br#"{"text":"x"}"#),
            Err(WireError::Malformed(_))
        ));
    }

    #[test]
    fn long_messages_are_clipped() {
        let long = clip("é".repeat(MAX_REMOTE_MESSAGE));
        assert!(long.len() <= MAX_REMOTE_MESSAGE + '…'.len_utf8());
        assert!(long.ends_with('…'));
        assert_eq!(clip("short".into()), "short");
    }

    #[test]
    fn a_busy_frame_too_long_or_cut_short_is_an_error_not_a_challenge() {
        let mut head = ((MAX_REFUSAL_LEN + 1) as i32).to_le_bytes().to_vec();
        head.extend_from_slice(br#"{"status":"error","code":"busy","message":"#);
        let err = error_reply_in(&head[..32], &mut std::io::empty()).unwrap();
        assert!(err.to_string().contains("4097 bytes"), "{err}");
        let mut head = 100i32.to_le_bytes().to_vec();
        head.extend_from_slice(br#"{"status":"error","code":"busy","message":"#);
        let err = error_reply_in(&head[..32], &mut &head[32..]).unwrap();
        assert!(matches!(err, WireError::Truncated { .. }), "{err}");
    }

    #[test]
    fn busy_frame_is_recognised_in_place_of_a_challenge() {
        let frame = crate::wire::frame::encode_json(&Reply::<()>::Error(ErrorReply::new(
            ErrorCode::TooManyConnections,
            "server busy",
        )))
        .unwrap();
        let (head, tail) = frame.split_at(32);
        let err = error_reply_in(head, &mut std::io::Cursor::new(tail.to_vec())).unwrap();
        assert!(err.to_string().contains("server busy"), "{err}");
        assert!(error_reply_in(&[7u8; 32], &mut std::io::empty()).is_none());
    }
}
