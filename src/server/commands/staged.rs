//! A durable put whose commit waits for its group. Flushing each file and
//! its folder before each `ok` costs two journal commits a file; a client
//! that pipelines puts pays them a thousand times. So a put on a durable
//! store is staged (its data written and checked, its name not yet taken)
//! while the next request already sent is another put, and the group then
//! commits in one order: the data of all flushed at once, every name
//! taken, the names flushed at once, and only then the replies, in order
//! (see `server::serving`). `ok` still means the file is on disk under its
//! name; a put not yet answered when the connection breaks may not be.
//! How each put of the group is then answered is `answer`'s.

use crate::server::context::Context;
use crate::server::hooks::Event;
use crate::server::uploads::UploadLock;
use crate::storage::{Staged, StoreError, StoreResult};
use crate::wire::message::PutRequest;

/// A member of a group, in the order its request came: a staged put, or
/// the reply of a request that ended meanwhile (a put refused), held
/// until the puts before it are answered.
pub(crate) enum InGroup {
    Put(Box<PendingPut>),
    Reply(Vec<u8>),
}

/// Where an upload lands, for its reply.
pub(crate) struct Landed {
    pub(crate) name: String,
    /// Whether it replaces a file of that name.
    pub(crate) replaced: bool,
    /// Where its body started (a resume).
    pub(crate) offset: u64,
    /// Bytes of its body that crossed the network (a delta upload's
    /// recipe and new bytes).
    pub(crate) received: u64,
    /// What the upload hook is told, once the file is stored (boxed: a
    /// group holds many of these, and most servers set no hook).
    pub(crate) event: Box<Event>,
}

/// A put staged for its group: the store's part, its name's lock (no other
/// upload of the name may start meanwhile), and what its reply says.
pub(crate) struct PendingPut {
    staged: Box<dyn Staged>,
    lock: UploadLock,
    home: String,
    req: PutRequest,
    landed: Landed,
}

impl PendingPut {
    /// A put of `req` into `home`, staged by the store.
    pub(crate) fn new(
        staged: Box<dyn Staged>,
        lock: UploadLock,
        home: String,
        req: PutRequest,
        landed: Landed,
    ) -> PendingPut {
        PendingPut {
            staged,
            lock,
            home,
            req,
            landed,
        }
    }

    /// Takes the file's name, in the home's turn (the same namespace step
    /// as an unstaged commit).
    pub(crate) fn commit(self, ctx: &Context) -> (Answer, StoreResult<Option<blake3::Hash>>) {
        let committed = {
            let _turn = ctx.name_order.enter(&self.home);
            self.staged.commit()
        };
        drop(self.lock);
        let answer = Answer {
            req: self.req,
            landed: self.landed,
        };
        (answer, committed)
    }
}

impl PendingPut {
    /// Gives the put up without its name: the group's flush failed. Its
    /// partial file stays, for a resume.
    pub(crate) fn abandon(self, e: StoreError) -> (Answer, StoreResult<Option<blake3::Hash>>) {
        drop(self.staged);
        drop(self.lock);
        let answer = Answer {
            req: self.req,
            landed: self.landed,
        };
        (answer, Err(e))
    }
}

/// The error each put of a group meets when the group's flush failed.
pub(crate) fn flush_failed(e: &std::io::Error) -> StoreError {
    let again = std::io::Error::new(e.kind(), crate::error::reason(e));
    StoreError::Failed("flushing the disk", again)
}

/// What a committed put's reply needs.
pub(crate) struct Answer {
    pub(super) req: PutRequest,
    pub(super) landed: Landed,
}
