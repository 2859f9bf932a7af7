//! Commands that touch no file: echo, the server's proof, and quota.

use super::refusals::store_refusal;
use crate::server::session::Session;
use crate::storage::{Place, Usage as Stored};
use crate::wire::auth::{server_proof, NONCE_LEN};
use crate::wire::message::{Echoed, ErrorCode, ErrorReply, Proof, Usage};

impl Session<'_> {
    pub(crate) fn echo(&self, text: &str) -> Echoed {
        Echoed {
            text: text.to_uppercase(),
        }
    }

    /// Proves to the client that this server holds its account's secret.
    pub(crate) fn prove(&self, nonce: &str) -> Result<Proof, ErrorReply> {
        match hex::decode(nonce).ok() {
            Some(n) if n.len() == NONCE_LEN => Ok(Proof {
                proof: hex::encode(server_proof(self.account.secret.as_bytes(), &n)),
            }),
            _ => Err(ErrorReply::new(
                ErrorCode::BadRequest,
                format!("nonce must be {NONCE_LEN} bytes in hex"),
            )),
        }
    }

    /// What the home holds, for the quota; measured in the home's turn,
    /// when the store measures, so that no name moves under the walk.
    pub(crate) fn used(&self) -> Result<Stored, ErrorReply> {
        let _turn = self.turn();
        self.ctx
            .store
            .usage(&self.home)
            .map_err(|e| store_refusal(e, ""))
    }

    /// Space used by the home, its quota, and what can still be stored.
    pub(crate) fn usage(&self) -> Result<Usage, ErrorReply> {
        let store = &self.ctx.store;
        let refused = |e| store_refusal(e, "");
        let used = self.used()?.bytes;
        let free = store
            .free_space(Place::new(&self.home, &[]))
            .map_err(refused)?
            .unwrap_or(u64::MAX);
        let available = match self.account.quota {
            Some(q) => q.saturating_sub(used).min(free),
            None => free,
        };
        Ok(Usage {
            used,
            quota: self.account.quota,
            available,
        })
    }
}
