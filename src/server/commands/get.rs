//! Download: a `ready` reply, the bytes from the asked offset, and the
//! digest of the whole file.

use std::fs::{File, Metadata};

use super::{bad_name, internal, not_found};
use crate::error::{Error, Result};
use crate::io::pump::{hash_prefix, relay, PumpError};
use crate::net::Transport;
use crate::server::session::{refuse, Outcome, Session};
use crate::storage::local;
use crate::wire::frame;
use crate::wire::message::{Digest, ErrorCode, ErrorReply, GetReady, GetRequest, Reply};
use crate::wire::names::validate_name;

impl Session<'_> {
    pub(crate) fn get<S: Transport>(&mut self, req: GetRequest, s: &mut S) -> Result<Outcome> {
        let (name, mut file, meta) = match self.open_download(&req) {
            Ok(v) => v,
            Err(reply) => return refuse(s, reply),
        };
        let filesize = meta.len();
        frame::write_json(
            s,
            &Reply::Ok(GetReady {
                filename: name,
                filesize,
                offset: req.offset,
                mtime: local::unix_secs(meta.modified().unwrap_or(std::time::UNIX_EPOCH)),
            }),
        )?;
        let mut hasher = blake3::Hasher::new();
        hash_prefix(&mut file, req.offset, &mut hasher)?;
        let body = filesize - req.offset;
        relay(&mut file, s, body, Some(&mut hasher), |_| {}).map_err(|e| match e {
            // The file shrank under us: the promised length cannot be kept.
            PumpError::Source(e) => e,
            PumpError::Sink(e) => Error::io("sending file data", e),
        })?;
        let blake3 = hasher.finalize().to_hex().to_string();
        frame::write_json(s, &Digest { blake3 })?;
        self.ctx.metrics.bytes_out.inc_by(body);
        let from = if req.offset > 0 {
            format!(" from {}", req.offset)
        } else {
            String::new()
        };
        Ok(Outcome::ok(format!("sent {filesize} bytes{from}"), body))
    }

    /// Opens the file a get asks for and checks its offset.
    fn open_download(&self, req: &GetRequest) -> Result<(String, File, Metadata), ErrorReply> {
        let name = validate_name(&req.filename).map_err(bad_name)?;
        let path = self.folder()?.join(name);
        let file = local::open_regular(&path).map_err(|e| not_found(name, &e))?;
        let meta = file.metadata().map_err(|e| internal("stat", &e))?;
        if req.offset > meta.len() {
            return Err(ErrorReply::new(
                ErrorCode::InvalidOffset,
                format!(
                    "offset {} is beyond the end of the file ({} bytes)",
                    req.offset,
                    meta.len()
                ),
            ));
        }
        Ok((name.to_string(), file, meta))
    }
}
