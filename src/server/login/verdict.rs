//! The login's verdicts: once the bytes of an answer or a proof are in,
//! whether the peer is in, refused (and with which reply), or gone.

use std::time::Duration;

use super::step::{Admitted, Identity, LoginContext, Next, Step};
use crate::logging::{logged_in, Event};
use crate::net::tls::ServerHandshake;
use crate::server::accounts::{Account, Seat};
use crate::wire::auth::Challenge;
use crate::wire::binding::{self, find_client};
use crate::wire::frame::{self, Incoming};
use crate::wire::message::{ErrorCode, ErrorReply, Reply};

/// The seed's dialect: the 16 bytes are an HMAC-MD5 answer, or on an
/// anonymous server the start of a frame.
pub(super) fn plaintext(cx: &LoginContext<'_>, challenge: &Challenge, answer: [u8; 16]) -> Step {
    let (config, metrics) = (cx.config, &cx.config.context.metrics);
    if config.require_tls {
        Event::login("refused").warn(format_args!(
            "login refused: plaintext logins are off (--require-tls)"
        ));
        metrics.login("failed", "legacy");
        return refuse_plain("this server takes only encrypted logins (--require-tls)");
    }
    if let Some(left) = cx.backoff.locked_out(cx.ip) {
        return refuse_plain(&locked_out(left));
    }
    let accounts = &cx.roster.accounts;
    let found = cx.roster.keys.find(challenge, &answer);
    if let Some((index, account)) = found.and_then(|i| Some((i, accounts.get(i)?))) {
        let Some(seat) = admit(cx, account, "legacy") else {
            return refuse_plain("authentication failed");
        };
        let name = account.label();
        logged_in(name).info(format_args!("login ok as {name}; legacy plaintext session"));
        metrics.login("ok", "legacy");
        cx.backoff.forget(cx.ip);
        return Step::next(Next::In(Admitted {
            identity: Identity::Plaintext(index),
            seat: Some(seat),
            tls: None,
            incoming: Incoming::default(),
        }));
    }
    if frame::starts_a_frame(&answer) {
        if config.anonymous {
            return anonymous(cx, Incoming::starting_with(&answer));
        }
        Event::login("failed").warn(format_args!(
            "login failed: a frame came instead of the answer to the challenge (a client \
             that does not log in, such as the seed's FtpClient; --anonymous accepts its \
             uploads)"
        ));
        metrics.login("failed", "legacy");
        return refuse_plain("authentication failed");
    }
    Event::login("failed").warn(format_args!("login failed: wrong answer to the challenge"));
    metrics.login("failed", "legacy");
    cx.backoff.note_failure(cx.ip);
    refuse_plain("authentication failed")
}

/// The client's tag is in: the account it proves, and the server's proof
/// over the same exporter.
pub(super) fn prove(cx: &LoginContext<'_>, mut hs: Box<ServerHandshake>, tag: &[u8]) -> Step {
    let (accounts, metrics) = (&cx.roster.accounts, &cx.config.context.metrics);
    if let Some(left) = cx.backoff.locked_out(cx.ip) {
        return refuse_tls(hs, &locked_out(left));
    }
    let exporter = match hs.exporter() {
        Ok(e) => e,
        Err(e) => return Step::gone(format!("in the TLS login: {e}")),
    };
    let found = find_client(accounts.secrets(), &exporter, tag);
    let Some((index, account)) = found.and_then(|i| Some((i, accounts.get(i)?))) else {
        Event::login("failed").warn(format_args!("login failed: wrong proof over TLS"));
        metrics.login("failed", "tls");
        cx.backoff.note_failure(cx.ip);
        return refuse_tls(hs, "authentication failed");
    };
    let Some(seat) = admit(cx, account, "tls") else {
        return refuse_tls(hs, "authentication failed");
    };
    let proof = binding::server_proof(account.secret.as_bytes(), &exporter);
    let mut send = Vec::new();
    if let Err(e) = hs.send(&proof, &mut send) {
        return Step::gone(format!("sending the server's proof: {e}"));
    }
    logged_in(account.label()).info(format_args!("login ok as {} over TLS", account.label()));
    metrics.login("ok", "tls");
    cx.backoff.forget(cx.ip);
    Step {
        send,
        next: Next::In(Admitted {
            identity: Identity::Tls(index),
            seat: Some(seat),
            tls: Some(hs),
            incoming: Incoming::default(),
        }),
    }
}

/// Refuses inside TLS: the error frame, close_notify, and the close.
pub(super) fn refuse_tls(mut hs: Box<ServerHandshake>, why: &str) -> Step {
    let mut send = Vec::new();
    let _ = hs.send(&refusal(why), &mut send);
    hs.close(&mut send);
    Step::refused(send)
}

pub(super) fn refuse_plain(why: &str) -> Step {
    Step::refused(refusal(why))
}

/// The account's rules, once its secret is proved: a seat, or `None`
/// after the log says which rule refused the login. The client is told
/// only that authentication failed, as for a wrong secret, so that the
/// rules of an account are not shown to whoever holds its secret.
pub(super) fn admit(
    cx: &LoginContext<'_>,
    account: &Account,
    dialect: &'static str,
) -> Option<Seat> {
    match cx.config.accounts.admit(account, cx.ip) {
        Ok(seat) => Some(seat),
        Err(rule) => {
            Event::login("refused")
                .user(account.label())
                .warn(format_args!("login refused as {}: {rule}", account.label()));
            cx.config.context.metrics.login("refused", dialect);
            None
        }
    }
}

/// An anonymous session, starting with the frame bytes read so far.
pub(super) fn anonymous(cx: &LoginContext<'_>, first: Incoming) -> Step {
    let anonymous = "no login, a frame instead: anonymous session (--anonymous)";
    logged_in("anonymous").info(format_args!("{anonymous}"));
    cx.config.context.metrics.login("ok", "anonymous");
    Step::next(Next::In(Admitted {
        identity: Identity::Anonymous,
        seat: None,
        tls: None,
        incoming: first,
    }))
}

/// Why a locked-out host is refused. A host that used up its failed
/// logins for the minute gets no answer checked, even a right one, until
/// the minute is over.
pub(super) fn locked_out(left: Duration) -> String {
    Event::login("refused").warn(format_args!(
        "login refused: too many failed logins from this address"
    ));
    format!(
        "too many failed logins from your address; try again in {} s",
        left.as_secs().max(1)
    )
}

/// The `auth_failed` frame a refused login is answered with.
pub(super) fn refusal(why: &str) -> Vec<u8> {
    let reply = Reply::<()>::Error(ErrorReply::new(ErrorCode::AuthFailed, why));
    frame::encode_json(&reply).unwrap_or_default()
}

/// A TLS login left unfinished: the server may have paid for the
/// handshake, so it counts as a failed login of the host (back-off, and
/// the per-minute cap).
pub(super) fn abandoned(cx: &LoginContext<'_>, e: impl std::fmt::Display) -> Step {
    cx.backoff.note_failure(cx.ip);
    let why = crate::error::without_os_code(e.to_string());
    Step::gone(format!("{why} (counted as a failed login)"))
}
