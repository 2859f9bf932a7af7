//! The client's commands against a scripted server: which failures leave
//! the connection in step for the next command, and which lose it.

use std::path::Path;

use serde_json::json;

use super::*;
use crate::client::scripted::{answer, Scripted};
use crate::wire::reply::ErrorCode;

struct Quiet;
impl Progress for Quiet {}

#[test]
fn a_refusal_leaves_the_connection_in_step_for_the_next_command() {
    let refusal = json!({"status":"error","code":"not_found","message":"no such folder"});
    let usage = json!({"status":"ok","used":1024,"quota":4096,"available":3072});
    let (mut client, server) = Scripted::start(vec![answer(&[refusal]), answer(&[usage])]);
    let refused = client.cd("nowhere").unwrap_err();
    assert!(
        matches!(
            refused,
            Error::Remote {
                code: ErrorCode::NotFound,
                ..
            }
        ),
        "{refused}"
    );
    // Nothing listens for a second connection: this is the first one.
    let quota = client.quota().unwrap();
    assert_eq!(
        (quota.used, quota.quota, quota.available),
        (1024, Some(4096), 3072)
    );
    assert_eq!(client.folder(), "/", "a refused cd moves nowhere");
    drop(client);
    let sent: Vec<_> = server.requests().into_iter().map(|r| r.header).collect();
    assert_eq!(sent[0], json!({"cmd":"cd","path":"nowhere"}));
    assert_eq!(sent[1]["cmd"], "quota");
}

#[test]
fn a_local_file_that_cannot_be_read_sends_nothing_and_keeps_the_connection() {
    let usage = json!({"status":"ok","used":0,"available":10});
    let (mut client, server) = Scripted::start(vec![answer(&[usage])]);
    let missing = Path::new("/nonexistent/folder/file.bin");
    let failed = client.put(missing, &mut Quiet).unwrap_err();
    assert!(matches!(failed, Error::LocalFile { .. }), "{failed}");
    assert_eq!(
        failed.to_string(),
        "cannot read /nonexistent/folder/file.bin: No such file or directory"
    );
    assert_eq!(client.quota().unwrap().available, 10);
    drop(client);
    let sent = server.requests();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].header["cmd"], "quota");
}

#[test]
fn a_reply_outside_the_protocol_is_malformed_and_the_next_command_reconnects() {
    let (mut client, server) = Scripted::start(vec![answer(&[json!({"status":"maybe"})])]);
    let bad = client.quota().unwrap_err();
    assert!(matches!(bad, Error::Malformed(_)), "{bad}");
    assert!(bad.to_string().contains("neither ok nor error"), "{bad}");
    // The connection is out of step: before the next command the client
    // dials again, and nothing is there to answer.
    let refused = client.ensure_connected().unwrap_err();
    assert!(matches!(refused, Error::Io { .. }), "{refused}");
    drop(client);
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn a_server_that_hangs_up_loses_the_connection_and_says_to_run_it_again() {
    let (mut client, server) = Scripted::start(Vec::new());
    let lost = client.quota().unwrap_err();
    let Error::ConnectionLost { cause } = &lost else {
        panic!("{lost}")
    };
    assert!(cause.is_disconnect(), "{cause}");
    assert!(
        lost.to_string().ends_with("run the same command to resume"),
        "{lost}"
    );
    drop(client);
    assert_eq!(server.requests().len(), 1);
}
