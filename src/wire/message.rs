//! Messages: the JSON headers a client sends and the replies a server sends.
//!
//! Pure data and parsing, no I/O. The full contract, with every field and
//! every error code, is in `docs/PROTOCOL.md`.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use crate::wire::reply::{
    Echoed, Entry, EntryKind, ErrorCode, ErrorReply, Folder, GetReady, Listing, Moved, Proof,
    PutDone, PutReady, Removed, Reply, Usage,
};

/// The commands a server understands, with their `cmd` names: derived
/// from [`Request`], so that a new command is written in one place.
pub const COMMANDS: &[&str] = <Cmd as strum::VariantNames>::VARIANTS;

/// A request header, tagged by its `cmd` field. Unknown extra fields are
/// ignored, so that newer clients can add optional fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, strum::EnumDiscriminants)]
#[serde(tag = "cmd", rename_all = "lowercase")]
#[strum_discriminants(
    name(Cmd),
    derive(strum::VariantNames, strum::IntoStaticStr),
    strum(serialize_all = "lowercase"),
    doc = "A request's kind: its `cmd` name."
)]
pub enum Request {
    /// Upload a file; `filesize` raw bytes follow the header.
    Put(PutRequest),
    /// Download a file.
    Get(GetRequest),
    /// A file's delta signature: its chunks' lengths and BLAKE3s (see
    /// [`crate::wire::delta`]).
    Sig {
        /// Path of the file, relative to the current folder.
        filename: String,
    },
    /// List a folder (the current one by default).
    Ls(LsRequest),
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
        /// Succeed when the folder exists already (`mkdir -p`).
        #[serde(default, skip_serializing_if = "is_false")]
        parents: bool,
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
        /// Path of the file or folder, relative to the current folder.
        filename: String,
        /// Remove a folder with everything in it.
        #[serde(default, skip_serializing_if = "is_false")]
        recursive: bool,
    },
    /// Rename or move a file or folder inside the home folder.
    Mv {
        /// Path of what is moved, relative to the current folder.
        from: String,
        /// Its new path, relative to the current folder; nothing may be there.
        to: String,
    },
}

/// The `ls` header.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LsRequest {
    /// Take the listing in pages of bounded size, however big the folder;
    /// without it, one frame that may be truncated.
    #[serde(default, skip_serializing_if = "is_false")]
    pub pages: bool,
    /// The folder to list, relative to the current folder; the current
    /// folder when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Everything below the folder too: each entry's name is then its path
    /// from the listed folder (`sub/a.txt`), and a folder comes before what
    /// it holds.
    #[serde(default, skip_serializing_if = "is_false")]
    pub recursive: bool,
    /// Give each file's BLAKE3 (computed once and kept by the server).
    #[serde(default, skip_serializing_if = "is_false")]
    pub digests: bool,
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
    /// Modification time to give the stored file, seconds since the Unix
    /// epoch; the time of the upload when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtime: Option<u64>,
    /// Permission bits to give the stored file (`0o777` at most); the
    /// server's default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
    /// Build the file from the stored one's chunks and new bytes: the
    /// body is a recipe, then the new bytes (see [`crate::wire::delta`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delta: Option<DeltaBase>,
}

/// What a delta upload builds on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeltaBase {
    /// The BLAKE3 (hex) of the stored file whose signature the recipe
    /// names chunks of, as the `sig` reply gave it.
    pub base: String,
    /// The recipe's length in bytes: the first bytes of the body.
    pub recipe: u64,
}

impl Request {
    /// The request's `cmd` name.
    pub fn cmd(&self) -> &'static str {
        Cmd::from(self).into()
    }

    /// Whether the request changes what is stored: what a read-only
    /// account may not send.
    pub fn writes(&self) -> bool {
        matches!(
            self,
            Request::Put(_) | Request::Mkdir { .. } | Request::Rm { .. } | Request::Mv { .. }
        )
    }
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
            mtime: None,
            mode: None,
            delta: None,
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
    /// Send only this many bytes from `offset` (a delta download's
    /// missing chunks); the digest frame is then of those bytes alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length: Option<u64>,
}

impl GetRequest {
    /// A get of `filename` from `offset`, of `length` bytes (to the end
    /// when `None`).
    pub fn ranged(filename: &str, offset: u64, length: Option<u64>) -> GetRequest {
        GetRequest {
            filename: filename.to_string(),
            offset,
            length,
        }
    }
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
                digest: None,
                mtime: None,
                mode: None,
                delta: None,
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
        let v = serde_json::to_value(Request::Ls(LsRequest::default())).unwrap();
        assert_eq!(v, serde_json::json!({"cmd": "ls"}));
        let paged = LsRequest {
            pages: true,
            ..LsRequest::default()
        };
        let v = serde_json::to_value(Request::Ls(paged)).unwrap();
        assert_eq!(v, serde_json::json!({"cmd": "ls", "pages": true}));
        let put = Request::Put(PutRequest {
            resume: true,
            digest: Some(DigestAlgorithm::Blake3),
            ..PutRequest::plain("a", 1)
        });
        let v = serde_json::to_value(&put).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"cmd":"put","filename":"a","filesize":1,"resume":true,"digest":"blake3"})
        );
    }

    #[test]
    fn the_command_list_is_the_request_variants() {
        assert_eq!(
            COMMANDS,
            [
                "put", "get", "sig", "ls", "echo", "prove", "quota", "mkdir", "cd", "pwd", "rm",
                "mv"
            ]
        );
        let ls = Request::Ls(LsRequest::default());
        assert_eq!(ls.cmd(), "ls");
        let json = serde_json::to_value(&ls).unwrap();
        assert_eq!(json["cmd"], ls.cmd(), "serde and strum agree on the names");
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
}
