//! The batch against a scripted server: what goes out, in which order,
//! and what the report says when replies agree, refuse, lie or stop.

use std::fs;
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use serde_json::{json, Value};

use super::*;
use crate::client::scripted::{answer, answer_put, answer_then, Exchange, Recorded, Scripted};
use crate::wire::frame;
use crate::wire::reply::ErrorCode;

/// Runs `steps` against `script`; the report and every request sent.
fn run(script: Vec<Exchange>, steps: Vec<Step>) -> (BatchReport, Vec<Recorded>) {
    let (mut client, server) = Scripted::start(script);
    let report = client.run_batch(steps, BatchOptions::default(), &mut NoProgress);
    drop(client);
    (report, server.requests())
}

struct NoProgress;
impl BatchProgress for NoProgress {}

fn upload(local: &Path, remote: &str) -> Step {
    Step::Upload(Upload {
        local: local.to_path_buf(),
        remote: remote.into(),
        size: fs::metadata(local).map_or(0, |m| m.len()),
    })
}

fn download(remote: &str, local: &Path, size: u64) -> Step {
    Step::Download(Download {
        remote: remote.into(),
        local: local.to_path_buf(),
        size,
    })
}

/// The server's `ok` to a put of `data` under `remote`.
fn stored(remote: &str, data: &[u8]) -> Value {
    json!({"status":"ok","filename":remote,"size":data.len(),"received":data.len(),
           "blake3":blake3::hash(data).to_hex().to_string()})
}

/// A download's reply: ready, the body, and the digest the server claims.
fn served(remote: &str, data: &[u8], claimed: &[u8], mtime: u64) -> Exchange {
    let ready = json!({"status":"ok","filename":remote,"filesize":data.len(),"offset":0,
                       "mtime":mtime});
    let mut then = data.to_vec();
    let digest = json!({"blake3": blake3::hash(claimed).to_hex().to_string()});
    then.extend(frame::encode_json(&digest).unwrap());
    answer_then(&[ready], &then)
}

/// The one step that failed.
fn the_failure(report: &BatchReport) -> &Failure {
    let [failure] = &report.failures[..] else {
        panic!("{:?}", report.failures)
    };
    failure
}

fn commands(sent: &[Recorded]) -> Vec<&str> {
    sent.iter()
        .map(|r| r.header["cmd"].as_str().unwrap_or("?"))
        .collect()
}

#[test]
fn steps_go_out_in_order_and_every_reply_is_counted() {
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("a.txt");
    fs::write(&local, b"hello batch").unwrap();
    let script = vec![
        answer(&[json!({"status":"ok","path":"/docs"})]),
        answer_put(11, &[stored("docs/a.txt", b"hello batch")]),
        answer(&[json!({"status":"ok","filename":"old.txt","entries":1})]),
    ];
    let steps = vec![
        Step::MakeFolder("docs".into()),
        upload(&local, "docs/a.txt"),
        Step::Remove {
            path: "old.txt".into(),
            recursive: false,
        },
    ];
    let (report, sent) = run(script, steps);
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert_eq!((report.folders, report.files, report.removed), (1, 1, 1));
    assert_eq!(report.bytes, 11);
    assert!(report.stopped.is_none());
    assert_eq!(commands(&sent), ["mkdir", "put", "rm"]);
    let put = &sent[1];
    assert_eq!(put.header["filename"], "docs/a.txt");
    assert_eq!(put.header["filesize"], 11);
    assert_eq!(put.body, b"hello batch");
    let digest = put.digest.as_ref().expect("a digest after the body");
    assert_eq!(
        digest["blake3"],
        blake3::hash(b"hello batch").to_hex().as_str()
    );
}

#[test]
fn a_refused_step_fails_alone_with_the_servers_code() {
    let refusal = json!({"status":"error","code":"bad_name","message":"no such name"});
    let script = vec![
        answer(&[refusal]),
        answer(&[json!({"status":"ok","filename":"b","entries":1})]),
    ];
    let steps = vec![
        Step::MakeFolder("bad/".into()),
        Step::Remove {
            path: "b".into(),
            recursive: false,
        },
    ];
    let (report, sent) = run(script, steps);
    assert_eq!(commands(&sent), ["mkdir", "rm"]);
    assert_eq!(report.removed, 1);
    let failure = the_failure(&report);
    assert_eq!((failure.verb, failure.subject.as_str()), ("mkdir", "bad/"));
    assert!(
        matches!(
            failure.error,
            Error::Remote {
                code: ErrorCode::BadName,
                ..
            }
        ),
        "{}",
        failure.error
    );
}

#[test]
fn a_download_lands_whole_with_the_servers_time() {
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("got.bin");
    let data = b"downloaded bytes";
    let script = vec![served("got.bin", data, data, 1_000_000)];
    let (report, sent) = run(script, vec![download("got.bin", &local, 16)]);
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert_eq!(commands(&sent), ["get"]);
    assert_eq!(fs::read(&local).unwrap(), data);
    let mtime = fs::metadata(&local).unwrap().modified().unwrap();
    assert_eq!(mtime, UNIX_EPOCH + Duration::from_secs(1_000_000));
}

#[test]
fn a_download_whose_digest_differs_is_not_kept() {
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("bad.bin");
    let script = vec![served("bad.bin", b"what came", b"what was meant", 0)];
    let (report, _) = run(script, vec![download("bad.bin", &local, 9)]);
    let failure = the_failure(&report);
    assert!(
        matches!(failure.error, Error::DigestMismatch { .. }),
        "{}",
        failure.error
    );
    assert!(!local.exists(), "a file that did not match was kept");
}

#[test]
fn an_unreadable_upload_fails_alone_and_sends_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.txt");
    let script = vec![answer(&[json!({"status":"ok","path":"/after"})])];
    let steps = vec![
        upload(&missing, "missing.txt"),
        Step::MakeFolder("after".into()),
    ];
    let (report, sent) = run(script, steps);
    assert_eq!(commands(&sent), ["mkdir"], "the put went out");
    assert_eq!(report.folders, 1);
    let failure = the_failure(&report);
    assert!(
        matches!(failure.error, Error::LocalFile { .. }),
        "{}",
        failure.error
    );
    assert!(failure.error.to_string().starts_with("cannot read "));
}

#[test]
fn a_connection_that_cannot_be_reopened_stops_the_batch_with_what_is_left() {
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("x.txt");
    fs::write(&local, b"x").unwrap();
    // The script answers the mkdir, then hangs up; nothing listens for a
    // new connection.
    let script = vec![answer(&[json!({"status":"ok","path":"/a"})])];
    let steps = vec![
        Step::MakeFolder("a".into()),
        upload(&local, "x.txt"),
        download("y.bin", &dir.path().join("y.bin"), 1),
    ];
    let (report, _) = run(script, steps);
    assert_eq!(report.folders, 1);
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    let stopped = report.stopped.expect("the batch stopped");
    assert!(matches!(stopped, Error::ConnectionLost { .. }), "{stopped}");
    assert!(stopped
        .to_string()
        .contains("run the same command to resume"));
    assert_eq!(report.unfinished.len(), 2, "{:?}", report.unfinished);
}
