//! Download: a `ready` reply, the bytes from the asked offset, and the
//! digest of the whole file.

use super::store_refusal;
use crate::error::{Error, Result};
use crate::io::digest::Digester;
use crate::io::pump::{hash_prefix, relay, PumpError};
use crate::net::Transport;
use crate::server::session::{refuse, Outcome, Session};
use crate::storage::{Place, StoredFile};
use crate::wire::frame;
use crate::wire::message::{Digest, ErrorCode, ErrorReply, GetReady, GetRequest, Reply};

impl Session<'_> {
    pub(crate) fn get<S: Transport>(&mut self, req: GetRequest, s: &mut S) -> Result<Outcome> {
        let mut file = match self.open_download(&req) {
            Ok(file) => file,
            Err(reply) => return refuse(s, reply),
        };
        let filesize = file.size();
        frame::write_json(
            s,
            &Reply::Ok(GetReady {
                filename: req.filename.clone(),
                filesize,
                offset: req.offset,
                mtime: file.mtime(),
                mode: file.mode(),
            }),
        )?;
        let reading = |e| Error::io("reading the file", e);
        // A digest the store recorded spares hashing the file (and, for a
        // resumed download, reading its first part at all).
        let known = file.digest();
        let mut hasher = known.is_none().then(blake3::Hasher::new);
        if let (Some(h), true) = (hasher.as_mut(), req.offset > 0) {
            let mut prefix = file.read_from(0).map_err(reading)?;
            hash_prefix(&mut prefix, req.offset, h)?;
        }
        let body = filesize - req.offset;
        let mut rest = self
            .account
            .limits
            .paced_down(file.read_from(req.offset).map_err(reading)?);
        let mut hasher = hasher.map(|h| Digester::new(h, body));
        relay(&mut rest, s, body, hasher.as_mut(), |_| {}).map_err(|e| match e {
            // The file shrank under us: the promised length cannot be kept.
            PumpError::Source(e) => e,
            PumpError::Sink(e) => Error::io("sending file data", e),
        })?;
        let digest = known.unwrap_or_else(|| hasher.unwrap_or_default().finalize());
        let blake3 = digest.to_hex().to_string();
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
    fn open_download(&self, req: &GetRequest) -> Result<Box<dyn StoredFile>, ErrorReply> {
        let (folder, name) = self.resolve_file(&req.filename)?;
        let file = self
            .ctx
            .store
            .open_file(Place::new(&self.home, &folder), &name)
            .map_err(|e| store_refusal(e, &req.filename))?;
        if req.offset > file.size() {
            return Err(ErrorReply::new(
                ErrorCode::InvalidOffset,
                format!(
                    "offset {} is beyond the end of the file ({} bytes)",
                    req.offset,
                    file.size()
                ),
            ));
        }
        Ok(file)
    }
}
