//! Download: a `ready` reply, then, as the peer reads, the bytes from the
//! asked offset and the digest of the whole file (a [`FileBody`]).

use super::refusals::store_refusal;
use crate::error::{Error, Result};
use crate::io::pump::hash_prefix;
use crate::net::Transport;
use crate::server::bodies::FileBody;
use crate::server::hooks::EventKind;
use crate::server::outcome::{refuse, Outcome};
use crate::server::session::Session;
use crate::storage::{Place, StoredFile};
use crate::wire::frame;
use crate::wire::message::{ErrorCode, ErrorReply, GetReady, GetRequest, Reply};

impl Session<'_> {
    pub(crate) fn get<S: Transport>(&mut self, req: GetRequest, s: &mut S) -> Result<Outcome> {
        // The file stays open while the peer reads it.
        let lease = match self.lease_fds(1) {
            Ok(lease) => lease,
            Err(reply) => return refuse(s, reply),
        };
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
        let event = self.event(EventKind::Download, &req.filename);
        let resumed = req.offset > 0;
        let reading = |e| Error::io("reading the file", e);
        // A range's digest is of the range: only what is sent is hashed.
        let ranged = req.length.is_some();
        // A digest the store kept spares hashing the file (and, for a
        // resumed download, reading its first part at all).
        let known = file.digest().filter(|_| !ranged);
        self.ctx.hooks.fire(event.sized(filesize, known, resumed));
        let mut hasher = known.is_none().then(blake3::Hasher::new);
        if let (Some(h), true) = (hasher.as_mut(), req.offset > 0 && !ranged) {
            let mut prefix = file.read_from(0).map_err(reading)?;
            hash_prefix(&mut prefix, req.offset, h)?;
        }
        let len = req.length.unwrap_or(filesize - req.offset);
        let rest = file.into_reader(req.offset).map_err(reading)?;
        let metrics = self.ctx.metrics.clone();
        let rate = self.account.limits.down_rate();
        let body = FileBody::new(rest, len, (known, hasher), (metrics, rate), lease);
        let from = if req.offset > 0 {
            format!(" from {}", req.offset)
        } else {
            String::new()
        };
        let sending = format!("sending {filesize} bytes{from}");
        let outcome = Outcome::ok(sending, len).transfer(resumed, known);
        Ok(outcome.with_body(Box::new(body)))
    }

    /// Opens the file a get asks for and checks its offset.
    fn open_download(&self, req: &GetRequest) -> Result<Box<dyn StoredFile>, ErrorReply> {
        let (folder, name) = self.resolve_file(&req.filename)?;
        let file = self
            .ctx
            .store
            .open_file(Place::new(&self.home, &folder), &name)
            .map_err(|e| store_refusal(e, &req.filename))?;
        let end = req.offset.checked_add(req.length.unwrap_or(0));
        if end.is_none_or(|end| end > file.size()) {
            return Err(ErrorReply::new(
                ErrorCode::InvalidOffset,
                format!(
                    "offset {}{} is beyond the end of the file ({} bytes)",
                    req.offset,
                    req.length
                        .map_or(String::new(), |n| format!(" plus length {n}")),
                    file.size()
                ),
            ));
        }
        Ok(file)
    }
}
