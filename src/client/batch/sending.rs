//! Why a batch's step could not be sent, and what its sending goes
//! through: a request out on the pipe, a file's bytes to the socket. Both
//! the whole and the delta uploads use them, so they stand apart from
//! either.

use std::path::PathBuf;

use crate::client::pipeline::Pipe;
use crate::error::{Error, Result};
use crate::io::interrupt::is_interruption;
use crate::io::pump::PumpError;
use crate::wire::frame;

use super::Upload;

/// Why a step could not be sent.
pub(super) enum Sending {
    /// Something local (a file that cannot be read): only this step fails.
    Local(Error),
    /// The connection failed before the step went out whole: try it again.
    Lost(Error),
    /// The connection is out of step because of this step (its file
    /// changed size mid-body, or could not be read): it fails, and the
    /// batch reconnects.
    LostWith {
        /// The step's local file.
        file: PathBuf,
        /// What went wrong with it.
        cause: Error,
    },
}

pub(super) fn lost(e: impl Into<Error>) -> Sending {
    Sending::Lost(e.into())
}

pub(super) fn local(e: impl Into<Error>) -> Sending {
    Sending::Local(e.into())
}

/// One request out on the pipe, queued behind those before it.
pub(super) fn request_out(pipe: &mut Pipe, message: &impl serde::Serialize) -> Result<(), Sending> {
    let bytes = frame::encode_json(message).map_err(local)?;
    pipe.send_request(&bytes)
        .map_err(|e| lost(Error::io("sending requests", e)))
}

/// What sending a file's bytes came to, for the batch.
pub(super) fn body_sent(u: &Upload, sent: Result<u64, PumpError>) -> Result<(), Sending> {
    match sent {
        Ok(_) => Ok(()),
        Err(PumpError::Source(cause)) => Err(Sending::LostWith {
            file: u.local.clone(),
            cause,
        }),
        Err(PumpError::Sink(e)) if is_interruption(&e) => {
            Err(lost(Error::Interrupted { what: "upload" }))
        }
        Err(PumpError::Sink(e)) => Err(lost(Error::io("sending file data", e))),
    }
}
