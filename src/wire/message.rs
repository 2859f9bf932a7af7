//! Messages: the JSON headers a client sends and the replies a server sends.
//!
//! Pure data and parsing, no I/O. The full contract, with every field and
//! every error code, is in `docs/PROTOCOL.md`.

use std::fmt;
use std::io::Read;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::Error;
use crate::wire::frame::{read_full, MAX_REPLY_LEN};

/// The commands a server understands, with their `cmd` names.
pub const COMMANDS: &[&str] = &[
    "put", "get", "ls", "echo", "prove", "quota", "mkdir", "cd", "pwd", "rm",
];

/// A request header, tagged by its `cmd` field. Unknown extra fields are
/// ignored, so that newer clients can add optional fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "lowercase")]
pub enum Request {
    /// Upload a file; `filesize` raw bytes follow the header.
    Put(PutRequest),
    /// Download a file.
    Get(GetRequest),
    /// List the current folder.
    Ls {},
    /// Upper-case some text (the seed's echo server).
    Echo {
        /// The text to echo.
        text: String,
    },
    /// Ask the server to prove it holds the secret.
    Prove {
        /// 32 random bytes, hex-encoded.
        nonce: String,
    },
    /// Show used and free space.
    Quota {},
    /// Create a folder.
    Mkdir {
        /// Path relative to the current folder.
        path: String,
    },
    /// Change the current folder.
    Cd {
        /// Path relative to the current folder; `/` is the home folder.
        path: String,
    },
    /// Print the current folder.
    Pwd {},
    /// Remove a file or an empty folder.
    Rm {
        /// Name in the current folder.
        filename: String,
    },
}

/// The `put` header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutRequest {
    /// Name in the current folder: one path component.
    pub filename: String,
    /// Size of the whole file in bytes.
    pub filesize: u64,
    /// Ask for a `ready` reply before sending the body, so that a refused
    /// upload costs no bytes. Implied by `resume`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub ack: bool,
    /// Continue from partial data the server kept from an earlier attempt;
    /// the `ready` reply gives the offset to send from.
    #[serde(default, skip_serializing_if = "is_false")]
    pub resume: bool,
    /// When set, a [`Digest`] frame follows the body and the file is
    /// committed only if it matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<DigestAlgorithm>,
}

impl PutRequest {
    /// The seed's form: name and size, no extensions.
    pub fn plain(filename: &str, filesize: u64) -> PutRequest {
        PutRequest {
            filename: filename.to_string(),
            filesize,
            ack: false,
            resume: false,
            digest: None,
        }
    }

    /// Whether the client waits for a `ready` reply before the body.
    pub fn wants_ready(&self) -> bool {
        self.ack || self.resume
    }
}

/// The `get` header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetRequest {
    /// Name in the current folder.
    pub filename: String,
    /// First byte to send: the length of the client's partial copy.
    #[serde(default)]
    pub offset: u64,
}

/// Digest algorithms a transfer can be checked with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DigestAlgorithm {
    /// BLAKE3, 256-bit, hex-encoded.
    Blake3,
}

/// The frame that follows a body: the digest of the whole file, from byte 0,
/// even when the transfer resumed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Digest {
    /// Hex-encoded BLAKE3 of the whole file.
    pub blake3: String,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Why a header could not be turned into a [`Request`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestError {
    /// A well-formed header whose `cmd` the server does not know. The
    /// connection stays usable.
    UnknownCommand(String),
    /// Not a JSON object, no string `cmd`, or a field missing or of the
    /// wrong type. The stream can no longer be trusted.
    Malformed(String),
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestError::UnknownCommand(cmd) => write!(
                f,
                "unknown command {:?}; known commands: {}",
                crate::wire::names::escape(cmd),
                COMMANDS.join(", ")
            ),
            RequestError::Malformed(why) => write!(f, "malformed header: {why}"),
        }
    }
}

/// Parses a header.
///
/// Fails with [`RequestError::UnknownCommand`] for a `cmd` not in
/// [`COMMANDS`], and with [`RequestError::Malformed`] for everything else
/// that is not a valid request.
pub fn parse_request(header: &[u8]) -> Result<Request, RequestError> {
    let text = std::str::from_utf8(header)
        .map_err(|e| RequestError::Malformed(format!("not UTF-8: {e}")))?;
    let value: Value = serde_json::from_str(text).map_err(|e| {
        RequestError::Malformed(if header.is_empty() {
            "empty header".to_string()
        } else {
            format!("not JSON: {e}")
        })
    })?;
    let Value::Object(map) = &value else {
        return Err(RequestError::Malformed(format!(
            "expected a JSON object, got {}",
            json_kind(&value)
        )));
    };
    let cmd = match map.get("cmd") {
        Some(Value::String(cmd)) => cmd,
        Some(other) => {
            return Err(RequestError::Malformed(format!(
                "`cmd` must be a string, got {}",
                json_kind(other)
            )))
        }
        None => return Err(RequestError::Malformed("missing field `cmd`".into())),
    };
    if !COMMANDS.contains(&cmd.as_str()) {
        return Err(RequestError::UnknownCommand(cmd.clone()));
    }
    serde_json::from_value(value).map_err(|e| RequestError::Malformed(e.to_string()))
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Machine-readable error codes, stable across versions. Clients show the
/// message; scripts match on the code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The header is not a valid request; the server closes the connection.
    BadRequest,
    /// The `cmd` is not known.
    UnknownCommand,
    /// The file name breaks the naming rules.
    BadName,
    /// No such file or folder.
    NotFound,
    /// The name exists and the server refuses to overwrite it.
    Exists,
    /// The file is larger than the server's limit.
    TooLarge,
    /// Not enough free disk space.
    NoSpace,
    /// The upload would exceed the user's quota.
    QuotaExceeded,
    /// The digest after the body does not match the data.
    DigestMismatch,
    /// Another connection is uploading the same name right now.
    Busy,
    /// A `get` offset beyond the end of the file.
    InvalidOffset,
    /// `rm` of a folder that is not empty.
    NotEmpty,
    /// The server is at its connection limit.
    TooManyConnections,
    /// The client failed authentication.
    AuthFailed,
    /// The server failed to do something it should have been able to do.
    Internal,
    /// A code this version does not know yet.
    #[serde(other)]
    Other,
}

impl ErrorCode {
    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::UnknownCommand => "unknown_command",
            ErrorCode::BadName => "bad_name",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Exists => "exists",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::NoSpace => "no_space",
            ErrorCode::QuotaExceeded => "quota_exceeded",
            ErrorCode::DigestMismatch => "digest_mismatch",
            ErrorCode::Busy => "busy",
            ErrorCode::InvalidOffset => "invalid_offset",
            ErrorCode::NotEmpty => "not_empty",
            ErrorCode::TooManyConnections => "too_many_connections",
            ErrorCode::AuthFailed => "auth_failed",
            ErrorCode::Internal => "internal",
            ErrorCode::Other => "other",
        }
    }
}

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

impl From<ErrorReply> for Error {
    fn from(e: ErrorReply) -> Error {
        match e.code {
            ErrorCode::AuthFailed => Error::AuthFailed,
            code => Error::Remote {
                code: code.as_str().to_string(),
                message: e.message,
            },
        }
    }
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
    pub fn into_result(self) -> Result<T, Error> {
        match self {
            Reply::Ok(t) => Ok(t),
            Reply::Error(e) => Err(e.into()),
        }
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
    /// [`Digest`] frame.
    pub filesize: u64,
    /// The offset the body starts at.
    pub offset: u64,
    /// Modification time, seconds since the Unix epoch.
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

/// Reply to `ls`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listing {
    /// Entries sorted by name.
    pub files: Vec<Entry>,
    /// True when the folder held more entries than a listing carries.
    #[serde(default)]
    pub truncated: bool,
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
}

/// Recognises an error frame where a challenge was expected: a busy server
/// answers a new connection with one instead of a challenge. `start` holds
/// the bytes read so far; the rest of the frame is read from `rest`.
///
/// A random challenge looks like this with a chance of about 2^-80.
pub(crate) fn error_reply_in<R: Read>(start: &[u8], rest: &mut R) -> Option<Error> {
    const MARKER: &[u8] = b"{\"status\":\"error\"";
    if start.len() < 4 + MARKER.len() || !start[4..].starts_with(MARKER) {
        return None;
    }
    let len = i32::from_le_bytes([start[0], start[1], start[2], start[3]]);
    let len = usize::try_from(len).ok().filter(|&l| l <= MAX_REPLY_LEN)?;
    let mut body = start[4..].to_vec();
    if body.len() < len {
        let mut more = vec![0u8; len - body.len()];
        let got = read_full(rest, &mut more).ok()?;
        body.extend_from_slice(&more[..got]);
    }
    body.truncate(len);
    let reply: Reply<Value> = serde_json::from_slice(&body).ok()?;
    reply.into_result().err()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_seed_put_header() {
        let r = parse_request(br#"{"cmd": "put", "filename": "a.txt", "filesize": 123}"#).unwrap();
        assert_eq!(
            r,
            Request::Put(PutRequest {
                filename: "a.txt".into(),
                filesize: 123,
                ack: false,
                resume: false,
                digest: None
            })
        );
    }

    #[test]
    fn ignores_unknown_fields() {
        let r = parse_request(br#"{"cmd":"echo","text":"hi","future":[1,2]}"#).unwrap();
        assert_eq!(r, Request::Echo { text: "hi".into() });
    }

    #[test]
    fn serializes_with_cmd_tag() {
        let v = serde_json::to_value(Request::Ls {}).unwrap();
        assert_eq!(v, serde_json::json!({"cmd": "ls"}));
        let put = Request::Put(PutRequest {
            filename: "a".into(),
            filesize: 1,
            ack: false,
            resume: true,
            digest: Some(DigestAlgorithm::Blake3),
        });
        let v = serde_json::to_value(&put).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"cmd":"put","filename":"a","filesize":1,"resume":true,"digest":"blake3"})
        );
    }

    #[test]
    fn unknown_command_is_its_own_error() {
        let e = parse_request(br#"{"cmd":"format_disk"}"#).unwrap_err();
        assert_eq!(e, RequestError::UnknownCommand("format_disk".into()));
        assert!(e.to_string().contains("known commands: put, get"));
    }

    #[test]
    fn hostile_headers_are_malformed() {
        let cases: &[&[u8]] = &[
            b"",
            b"\xff\xfe",
            b"not json",
            b"[1,2]",
            b"\"put\"",
            b"{}",
            br#"{"cmd":7}"#,
            br#"{"cmd":null}"#,
            br#"{"cmd":"put","filename":"a"}"#,
            br#"{"cmd":"put","filesize":1}"#,
            br#"{"cmd":"put","filename":"a","filesize":-1}"#,
            br#"{"cmd":"put","filename":"a","filesize":1.5}"#,
            br#"{"cmd":"put","filename":"a","filesize":"12"}"#,
            br#"{"cmd":"put","filename":"a","filesize":null}"#,
            br#"{"cmd":"put","filename":"a","filesize":1e30}"#,
            br#"{"cmd":"put","filename":7,"filesize":1}"#,
            br#"{"cmd":"echo"}"#,
        ];
        for case in cases {
            match parse_request(case) {
                Err(RequestError::Malformed(_)) => {}
                other => panic!("{:?} gave {other:?}", String::from_utf8_lossy(case)),
            }
        }
    }

    #[test]
    fn deep_nesting_is_refused_not_a_stack_overflow() {
        let deep = format!("{}{}", "[".repeat(50_000), "]".repeat(50_000));
        assert!(matches!(
            parse_request(deep.as_bytes()),
            Err(RequestError::Malformed(_))
        ));
    }

    #[test]
    fn reply_round_trip() {
        let ok: Reply<Echoed> = Reply::Ok(Echoed { text: "HI".into() });
        let s = serde_json::to_string(&ok).unwrap();
        assert_eq!(s, r#"{"status":"ok","text":"HI"}"#);
        let err: Reply<Echoed> =
            serde_json::from_str(r#"{"status":"error","code":"bad_name","message":"no"}"#).unwrap();
        assert!(matches!(err.into_result(), Err(Error::Remote { code, .. }) if code == "bad_name"));
        let future: Reply<Echoed> =
            serde_json::from_str(r#"{"status":"error","code":"brand_new","message":"?"}"#).unwrap();
        assert!(future.into_result().is_err());
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
